//! Process wiring: bind the proxy listener and the admin listener, start
//! the background tasks (reload, signals, metrics upkeep, limiter upkeep,
//! revocation sync, key and JWKS refresh), and `tilegate serve`.

mod reload;
mod shutdown;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::config;
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

/// Bind the listeners and start serving; returns once ready.
pub async fn start(gw: Arc<Gateway>) -> Result<Running, StartError> {
    let cfg = gw.runtime.load().config.clone();
    // Install the metrics recorder before the first request records anything.
    let _ = crate::metrics::handle();
    let listener = TcpListener::bind(cfg.server.listen)
        .await
        .map_err(|e| StartError::Other(format!("server.listen {}: {e}", cfg.server.listen)))?;
    let addr = listener.local_addr().map_err(|e| StartError::Other(e.to_string()))?;
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
    gw.set_ready();
    let done = tokio::spawn(crate::server::serve(gw.clone(), listener, tls, shutdown_rx, watcher));
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
