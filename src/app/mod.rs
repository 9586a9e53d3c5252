//! Process wiring: bind the proxy listener and the admin listener, start
//! the background tasks (reload, signals, metrics upkeep, limiter upkeep,
//! revocation sync, key and JWKS refresh), and `tilegate serve`.
//!
//! The proxy listener runs one of two ways (`server.workers`): shared, on
//! the runtime `start` is called on; or per-core, as N OS threads, each
//! with its own current-thread runtime and its own `SO_REUSEPORT` socket on
//! the listen address, running that socket's accept loop and connections.
//! The background tasks and the admin listener stay on the calling runtime
//! either way; the state (config, caches, caps) is shared.

mod reload;
mod shutdown;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::{self, Workers};
use crate::server::conn::ConnLimits;
use crate::state::{limiter_upkeep, open_store, Gateway, StartError};

/// Handles to a running gateway (`serve` and `demo` use them).
pub struct Running {
    pub addr: SocketAddr,
    pub admin_addr: Option<SocketAddr>,
    /// Kept with the handles: the background tasks stop when it says so.
    _shutdown: watch::Sender<bool>,
    /// The proxy listener, until it has drained.
    pub done: tokio::task::JoinHandle<()>,
}

/// The proxy listener's sockets: one, or one per per-core worker.
enum Listener {
    Shared(TcpListener),
    PerCore(Vec<std::net::TcpListener>),
}

/// Start a per-core worker (an OS thread with its own current-thread
/// runtime) for each socket; each serves its socket until `shutdown` and the
/// drain. The sockets are registered with their workers' runtimes here, so
/// that a failure stops the start (and no bound socket is left without an
/// accept loop). Resolves, per worker, once its runtime is gone.
fn start_workers(
    gw: &Arc<Gateway>,
    sockets: Vec<std::net::TcpListener>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: watch::Receiver<bool>,
    limits: Arc<ConnLimits>,
) -> Result<Vec<oneshot::Receiver<()>>, StartError> {
    let failed = |what: &str, e: std::io::Error| StartError::Other(format!("per-core worker: {what}: {e}"));
    let mut workers = Vec::with_capacity(sockets.len());
    for socket in sockets {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| failed("runtime", e))?;
        let listener = {
            let _in_worker = rt.enter();
            TcpListener::from_std(socket).map_err(|e| failed("listener", e))?
        };
        workers.push((rt, listener));
    }
    let mut finished = Vec::with_capacity(workers.len());
    for (i, (rt, listener)) in workers.into_iter().enumerate() {
        let index = i + 1;
        let (done, finished_rx) = oneshot::channel();
        let (gw, tls, shutdown, limits) = (gw.clone(), tls.clone(), shutdown.clone(), limits.clone());
        std::thread::Builder::new()
            .name(format!("tilegate-worker-{index}"))
            .spawn(move || {
                crate::net::workers::enter(index);
                rt.block_on(crate::server::serve(gw, listener, tls, shutdown, limits, Some(index)));
                // Connections still open after the grace close here.
                drop(rt);
                let _ = done.send(());
            })
            .map_err(|e| failed("thread", e))?;
        finished.push(finished_rx);
    }
    Ok(finished)
}

/// Bind the listeners and start serving; returns once ready.
pub async fn start(gw: Arc<Gateway>) -> Result<Running, StartError> {
    let cfg = gw.runtime.load().config.clone();
    // Install the metrics recorder before the first request records anything.
    let _ = crate::metrics::handle();
    let listen_failed = |e: std::io::Error| StartError::Other(format!("server.listen {}: {e}", cfg.server.listen));
    let listener = match cfg.server.workers {
        Workers::Shared => Listener::Shared(TcpListener::bind(cfg.server.listen).await.map_err(listen_failed)?),
        Workers::PerCore(n) => {
            Listener::PerCore(crate::net::workers::bind_reuseport(cfg.server.listen, n.get()).map_err(listen_failed)?)
        }
    };
    let addr = match &listener {
        Listener::Shared(l) => l.local_addr(),
        Listener::PerCore(ls) => ls[0].local_addr(),
    }
    .map_err(|e| StartError::Other(e.to_string()))?;
    let tls = match &cfg.server.tls {
        Some(t) => Some(tokio_rustls::TlsAcceptor::from(
            crate::net::tls::server_config(&t.cert, &t.key, true).map_err(StartError::Other)?,
        )),
        None => None,
    };
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (reload_tx, reload_rx) = mpsc::channel(4);

    let admin_addr = match cfg.admin.listen {
        Some(a) => {
            let l = TcpListener::bind(a)
                .await
                .map_err(|e| StartError::Other(format!("admin.listen {a}: {e}")))?;
            let admin_addr = l.local_addr().ok();
            let admin = crate::admin::Admin::new(gw.clone(), &cfg).map_err(StartError::Other)?;
            tokio::spawn(crate::admin::serve(admin, l, shutdown_rx.clone()));
            admin_addr
        }
        None => None,
    };

    tokio::spawn(shutdown::signals(shutdown_tx.clone(), reload_tx.clone()));
    let watcher = match (&gw.config_path, cfg.server.watch_config) {
        (Some(p), true) => reload::watch_file(p.clone(), reload_tx.clone()),
        _ => None,
    };
    tokio::spawn(reload::reload_loop(gw.clone(), reload_rx, shutdown_rx.clone()));
    tokio::spawn(crate::metrics::upkeep_loop(shutdown_rx.clone()));
    tokio::spawn(limiter_upkeep(gw.clone(), shutdown_rx.clone()));
    tokio::spawn(gw.clone().revocation_sync(shutdown_rx.clone()));
    tokio::spawn(
        gw.verifier
            .clone()
            .key_refresh_loop(cfg.store.revocation_resync, shutdown_rx.clone()),
    );
    tokio::spawn(crate::auth::issuers::refresh_loop(
        gw.verifier.clone(),
        shutdown_rx.clone(),
    ));
    let limits = crate::server::limits(&gw);
    let done = match listener {
        Listener::Shared(l) => {
            let gw = gw.clone();
            tokio::spawn(async move {
                // The config file watcher lives as long as the listener.
                let _watcher = watcher;
                crate::server::serve(gw, l, tls, shutdown_rx, limits, None).await;
            })
        }
        Listener::PerCore(sockets) => {
            // A worker that fails to start (a thread that cannot be
            // spawned) fails the start: the workers and tasks already
            // started are told to shut down, not left serving.
            let finished = match start_workers(&gw, sockets, tls, shutdown_rx, limits) {
                Ok(f) => f,
                Err(e) => {
                    let _ = shutdown_tx.send(true);
                    return Err(e);
                }
            };
            tokio::spawn(async move {
                let _watcher = watcher;
                for f in finished {
                    let _ = f.await;
                }
            })
        }
    };
    gw.set_ready();
    Ok(Running {
        addr,
        admin_addr,
        _shutdown: shutdown_tx,
        done,
    })
}

/// `tilegate serve`: run until SIGTERM/SIGINT and the drain are done.
pub async fn run(config_path: PathBuf) -> Result<(), StartError> {
    let cfg = config::load(&config_path)?;
    let store = open_store(&cfg).await?;
    let gw = Gateway::new(cfg, store, Some(config_path)).await?;
    let running = start(gw).await?;
    tracing::info!(addr = %running.addr, admin = %running.admin_addr.map(|a| a.to_string()).unwrap_or_default(), "ready");
    let _ = running.done.await;
    Ok(())
}
