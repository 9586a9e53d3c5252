//! The gateway process: shared state ([`Gateway`]), start-up, the accept
//! loop with connection limits, TLS and graceful drain, and reload. The
//! request path itself is composed in `stack.rs`.

pub mod conn;
pub mod proxy_protocol;
mod reload;
pub mod rescue;
mod shutdown;
pub mod stack;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::HeaderValue;
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use conn::ConnLimits;

use crate::auth::keys::{self, KeySet};
use crate::auth::revocation::Revocations;
use crate::auth::Verifier;
use crate::clock::now_unix;
use crate::config::{self, Config};
use crate::credentials::Secrets;
use crate::issue::Issuer;
use crate::net::trusted::TrustedProxies;
use crate::proxy::Upstream;
use crate::routing::RouteTable;
use crate::store::{Kek, RevocationListener, Store, StoreError, StoreEvent};

/// What a config load builds and a reload swaps whole.
pub struct Runtime {
    pub config: Arc<Config>,
    /// Same order as `config.upstreams`.
    pub upstreams: Vec<Upstream>,
    /// `config.routes` compiled, with each route's counters and limiter
    /// (made anew by every load, so a reload resets them).
    pub routes: RouteTable,
}

impl Runtime {
    pub fn build(config: Arc<Config>) -> Result<Runtime, Vec<String>> {
        let mut errors = Vec::new();
        let mut upstreams = Vec::new();
        for u in &config.upstreams {
            match Upstream::new(u.clone()) {
                Ok(x) => upstreams.push(x),
                Err(e) => errors.push(format!("upstreams \"{}\": {e}", u.name)),
            }
        }
        let routes = RouteTable::build(&config.routes).unwrap_or_else(|e| {
            errors.extend(e);
            RouteTable::empty()
        });
        if errors.is_empty() {
            Ok(Runtime {
                config,
                upstreams,
                routes,
            })
        } else {
            Err(errors)
        }
    }
}

/// Process-wide state shared by every connection.
pub struct Gateway {
    pub runtime: ArcSwap<Runtime>,
    pub verifier: Arc<Verifier>,
    pub store: Arc<Store>,
    pub issuer: Issuer,
    /// The verified-secret caches of the token endpoints.
    pub secrets: Secrets,
    pub config_path: Option<PathBuf>,
    ready: AtomicBool,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("config: {0}")]
    Config(#[from] config::ConfigError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Other(String),
}

/// Read the key-encryption key from the env var or file; generate the file
/// when neither exists (the embedded default).
pub fn load_kek(cfg: &Config) -> Result<Kek, StartError> {
    if let Ok(v) = std::env::var(&cfg.store.kek_env) {
        return Kek::from_base64(v.trim()).map_err(|e| StartError::Other(format!("{}: {e}", cfg.store.kek_env)));
    }
    let path = &cfg.store.kek_file;
    match std::fs::read_to_string(path) {
        Ok(text) => Kek::from_base64(text.trim()).map_err(|e| StartError::Other(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let kek = Kek::generate();
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                // 0700 when created here (it is usually the store's `data/` too).
                crate::store::create_private_dir(dir)
                    .map_err(|e| StartError::Other(format!("{}: {e}", dir.display())))?;
            }
            write_private(path, kek.to_base64().as_bytes())?;
            tracing::info!(path = %path.display(), "generated a key-encryption key");
            Ok(kek)
        }
        Err(e) => Err(StartError::Other(format!("{}: {e}", path.display()))),
    }
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), StartError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| StartError::Other(format!("{}: {e}", path.display())))?;
    f.write_all(data)
        .map_err(|e| StartError::Other(format!("{}: {e}", path.display())))
}

/// Open the store and make sure an active signing key exists.
pub async fn open_store(cfg: &Config) -> Result<Arc<Store>, StartError> {
    let kek = load_kek(cfg)?;
    let store = Store::open_with(&cfg.store.url, cfg.store.pool_size, cfg.store.acquire_timeout, kek).await?;
    ensure_signing_key(&store, cfg).await?;
    Ok(Arc::new(store))
}

pub async fn ensure_signing_key(store: &Store, cfg: &Config) -> Result<(), StartError> {
    let recs = store.signing_keys().await?;
    if !recs.iter().any(|r| r.retired_at.is_none()) {
        let k = keys::generate(cfg.tokens.algorithm, now_unix()).map_err(|e| StartError::Other(e.to_string()))?;
        store.insert_signing_key(&k).await?;
        store
            .audit("system", "signing_key.created", &k.kid, &k.alg, now_unix())
            .await?;
        tracing::info!(kid = %k.kid, alg = %k.alg, "generated a signing key");
    }
    Ok(())
}

impl Gateway {
    /// Build the gateway from a loaded config and an open store.
    pub async fn new(
        config: Config,
        store: Arc<Store>,
        config_path: Option<PathBuf>,
    ) -> Result<Arc<Gateway>, StartError> {
        let config = Arc::new(config);
        let recs = store.signing_keys().await?;
        let keyset = KeySet::from_records(&recs, now_unix(), config.tokens.rotation_grace.as_secs() as i64)
            .map_err(|e| StartError::Other(e.to_string()))?;
        let revocations = Arc::new(Revocations::new());
        revocations.replace(store.list_revocations(now_unix()).await?, now_unix());
        let verifier = Arc::new(Verifier::new(&config, keyset, Some(store.clone()), revocations));
        let runtime = Runtime::build(config.clone()).map_err(|e| StartError::Other(e.join("\n")))?;
        let issuer = Issuer::new(&config);
        let secrets = Secrets::new(&config);
        Ok(Arc::new(Gateway {
            runtime: ArcSwap::from_pointee(runtime),
            verifier,
            store,
            issuer,
            secrets,
            config_path,
            ready: AtomicBool::new(false),
        }))
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Re-read the config file; swap it in only when it is valid.
    pub async fn reload(&self) -> bool {
        let Some(path) = &self.config_path else { return false };
        let new = match config::load(path) {
            Ok(c) => c,
            Err(e) => {
                crate::metrics::reload(false);
                tracing::error!(problems = ?e.problems(), "config reload refused; keeping the running config");
                return false;
            }
        };
        let old = self.runtime.load();
        if new.tokens.issuer != old.config.tokens.issuer
            || new.tokens.audience != old.config.tokens.audience
            || new.tokens.max_token_bytes != old.config.tokens.max_token_bytes
            || new.cache.max_entries != old.config.cache.max_entries
        {
            tracing::warn!("tokens.issuer, tokens.audience, tokens.max_token_bytes and cache sizes take effect at the next restart only");
        }
        if new.server.listen != old.config.server.listen
            || new.store.url != old.config.store.url
            || new.admin.listen != old.config.admin.listen
        {
            tracing::warn!("listen addresses and the store take effect at the next restart only");
        }
        let new = Arc::new(new);
        match Runtime::build(new.clone()) {
            Ok(rt) => {
                self.verifier.reconfigure(&new);
                if let Err(e) = self.verifier.reload_keys().await {
                    tracing::warn!(error = %e, "signing keys not re-read at reload");
                }
                self.issuer.reconfigure(&new);
                self.runtime.store(Arc::new(rt));
                crate::metrics::reload(true);
                tracing::info!(routes = new.routes.len(), "config reloaded");
                true
            }
            Err(e) => {
                crate::metrics::reload(false);
                tracing::error!(problems = ?e, "config reload refused; keeping the running config");
                false
            }
        }
    }

    /// Revocations: follow the store's notifications (PostgreSQL) and
    /// resync in full periodically, so a missed notification or a restarted
    /// database still converges.
    ///
    /// A lost listener is reconnected at once and then every
    /// [`LISTEN_RETRY`], each attempt bounded (so sqlx's own connect backoff,
    /// which grows to seconds, does not delay the reconnection after the
    /// database is back); every successful (re)connection is followed by a
    /// full resync, which catches up on what was revoked meanwhile.
    pub async fn revocation_sync(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let every = self
            .runtime
            .load()
            .config
            .store
            .revocation_resync
            .max(Duration::from_millis(200));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut listener: Option<RevocationListener> = None;
        // False once the store says it has no notifications (SQLite).
        let mut notifications = true;
        let mut failures: u32 = 0;
        // When to (re)connect the listener; at once to begin with.
        let retry = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(retry);
        loop {
            let connect = notifications && listener.is_none();
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => self.resync_revocations().await,
                _ = &mut retry, if connect => {
                    // Short attempts while the database is likely just
                    // restarting; longer ones after that, for a slow one.
                    let limit = if failures < 20 {
                        LISTEN_CONNECT_TIMEOUT
                    } else {
                        LISTEN_CONNECT_TIMEOUT * 5
                    };
                    match tokio::time::timeout(limit, self.store.revocation_listener()).await {
                        Ok(Ok(Some(l))) => {
                            if failures > 0 {
                                tracing::info!("revocation listener reconnected");
                            }
                            failures = 0;
                            listener = Some(l);
                            // Catch up on what happened while not listening
                            // (revocations, and a rotation elsewhere).
                            self.resync_revocations().await;
                            self.reload_keys_after_event().await;
                        }
                        Ok(Ok(None)) => notifications = false,
                        Ok(Err(e)) => {
                            failures += 1;
                            tracing::warn!(error = %e, "revocation listener cannot connect; retrying");
                            retry.as_mut().reset(tokio::time::Instant::now() + LISTEN_RETRY);
                        }
                        Err(_) => {
                            failures += 1;
                            tracing::warn!(timeout = ?limit, "revocation listener connection timed out; retrying");
                            retry.as_mut().reset(tokio::time::Instant::now() + LISTEN_RETRY);
                        }
                    }
                }
                r = next_revocation(&mut listener) => match r {
                    // The notification carries the entry's `until`, so it
                    // expires here when it does in the store; no reload per
                    // notification, so that a burst of revocations is
                    // applied without a full reload each.
                    Ok(StoreEvent::LimitsChanged) => self.secrets.forget(),
                    Ok(StoreEvent::Revoked(id, until)) => self.verifier.revocations.insert(&id, until),
                    // A rotation on another replica or by the CLI: sign
                    // with and publish the new key now, not at the next
                    // periodic refresh.
                    Ok(StoreEvent::KeysChanged) => self.reload_keys_after_event().await,
                    Err(e) => {
                        tracing::warn!(error = %e, "revocation listener lost; reconnecting");
                        listener = None;
                        // Reconnect right away (each attempt is bounded).
                        retry.as_mut().reset(tokio::time::Instant::now());
                    }
                },
            }
        }
    }

    async fn reload_keys_after_event(&self) {
        match self.verifier.reload_keys().await {
            Ok(()) => tracing::debug!("signing keys re-read (notified)"),
            Err(e) => tracing::warn!(error = %e, "signing keys not re-read; the periodic refresh retries"),
        }
    }

    /// Bring the revocation set up to date with the store.
    ///
    /// A revocation made through this replica is committed to the store and
    /// then added to the set, concurrently with this function. Replacing the
    /// whole set with a list read before that commit would drop the entry,
    /// and the revoked token would work again until the next resync. So the
    /// usual resync only adds what the set lacks, which cannot lose
    /// anything; the set is replaced (to drop entries that have expired or
    /// were purged) only when it held more entries than the store, and then
    /// the store is read once more right after and whatever is new is added
    /// back, which narrows that window to the time of one query.
    /// Fold the store's revocation list into this replica's set (an
    /// atomic merge: a revocation made here meanwhile is never undone).
    pub async fn resync_revocations(&self) {
        let now = now_unix();
        match self.store.list_revocations(now).await {
            Ok(list) => self.verifier.revocations.merge(&list, now),
            Err(e) => tracing::warn!(error = %e, "revocation resync failed"),
        }
    }
}

/// Bound of an attempt to connect the revocation listener (five times as
/// long after 20 failures in a row). sqlx retries a refused connection
/// inside an attempt with a backoff that grows towards seconds; cutting the
/// attempt short and starting over keeps the reconnection after a
/// restarted database prompt.
const LISTEN_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause between failed attempts to connect the revocation listener.
const LISTEN_RETRY: Duration = Duration::from_millis(250);

/// The next revoked id from the listener; never resolves without one.
async fn next_revocation(listener: &mut Option<RevocationListener>) -> Result<StoreEvent, StoreError> {
    match listener {
        Some(l) => l.recv_event().await,
        None => std::future::pending().await,
    }
}

/// Per-connection facts the request path needs.
#[derive(Clone)]
pub struct ConnInfo {
    /// The TCP peer.
    pub remote: SocketAddr,
    /// The client spoke TLS: to this listener, or to the proxy in front
    /// (a PROXY v2 header's SSL flag).
    pub tls: bool,
    /// The connection's client: the address its PROXY header carries, or
    /// else the TCP peer.
    pub client: IpAddr,
    /// `client` as a header value (computed once per connection).
    pub client_ip: HeaderValue,
    /// Set when `client` is a trusted proxy: then each request's
    /// `X-Forwarded-For` and `X-Forwarded-Proto` say who and how the
    /// client is (`net::trusted`). `None` on every other connection, so
    /// their requests cost one branch.
    pub trusted: Option<Arc<TrustedProxies>>,
}

impl ConnInfo {
    /// A connection's facts; `trusted` is the `[server] trusted_proxies`
    /// of the config it was accepted under.
    pub fn new(remote: SocketAddr, tls: bool, client: IpAddr, trusted: &Arc<TrustedProxies>) -> ConnInfo {
        let client = client.to_canonical();
        ConnInfo {
            remote,
            tls,
            client,
            client_ip: HeaderValue::from_str(&client.to_string()).unwrap_or(HeaderValue::from_static("unknown")),
            trusted: trusted.contains(client).then(|| trusted.clone()),
        }
    }
}

/// Handles to a running gateway (tests and `demo` use them).
pub struct Running {
    pub addr: SocketAddr,
    pub admin_addr: Option<SocketAddr>,
    pub gateway: Arc<Gateway>,
    pub shutdown: watch::Sender<bool>,
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
    gw.ready.store(true, Ordering::Relaxed);
    let done = tokio::spawn(accept_loop(gw.clone(), listener, tls, shutdown_rx, watcher));
    Ok(Running {
        addr,
        admin_addr,
        gateway: gw,
        shutdown: shutdown_tx,
        done,
    })
}

async fn accept_loop(
    gw: Arc<Gateway>,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
    _watcher: Option<notify::RecommendedWatcher>,
) {
    let cfg = gw.runtime.load().config.clone();
    let limits = ConnLimits::new(cfg.server.max_connections, cfg.server.max_connections_per_ip);
    let timeouts = conn::Timeouts::from_config(&cfg.server);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    conn::configure(&mut builder, &cfg.server);
    builder.http2().enable_connect_protocol();
    if !cfg.server.h2c && tls.is_none() {
        builder = builder.http1_only();
    }
    let builder = Arc::new(builder);
    tracing::info!(addr = %cfg.server.listen, tls = tls.is_some(), "tilegate listening");

    loop {
        let (stream, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let accepted = tokio::time::Instant::now();
        // Trusted proxies and PROXY headers as configured now: a reload
        // applies to the connections accepted after it.
        let (trusted, proxy_protocol) = {
            let rt = gw.runtime.load();
            (
                rt.config.server.trusted_proxies.clone(),
                rt.config.server.proxy_protocol,
            )
        };
        let from_proxy = !trusted.is_empty() && trusted.contains(remote.ip());
        let admitted = if from_proxy {
            limits.admit_proxy()
        } else {
            limits.admit(remote.ip())
        };
        let mut admission = match admitted {
            Ok(a) => a,
            Err(why) => {
                refused(why, remote.ip());
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let read_proxy_header = from_proxy && proxy_protocol;
        let addr_cap = read_proxy_header.then(|| limits.addr_cap());
        let builder = builder.clone();
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        let gw = gw.clone();
        tokio::spawn(async move {
            let mut stream = stream;
            crate::metrics::connection_opened();
            let deadline = accepted + timeouts.handshake;
            // A trusted proxy's PROXY header names the client (and says
            // whether it spoke TLS to the proxy); read within the
            // handshake deadline, and nothing but a valid one is served.
            let (client, proxied_tls) = match addr_cap {
                None => (remote.ip(), false),
                Some(cap) => match tokio::time::timeout_at(deadline, proxy_protocol::read(&mut stream)).await {
                    Ok(Ok(h)) => {
                        let client = h.source.map_or(remote.ip(), |s| s.ip());
                        // The client's connections count against its own
                        // address, unless it is a trusted proxy as well.
                        if !trusted.contains(client) {
                            match cap.take(client) {
                                Ok(slot) => admission.key(slot),
                                Err(why) => {
                                    refused(why, client);
                                    crate::metrics::connection_closed();
                                    return;
                                }
                            }
                        }
                        (client, h.tls)
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(client.ip = %remote.ip(), error = %e, "PROXY header refused");
                        crate::metrics::connection_closed();
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(client.ip = %remote.ip(), "PROXY header timed out");
                        crate::metrics::connection_timed_out("handshake");
                        crate::metrics::connection_closed();
                        return;
                    }
                },
            };
            let _admission = admission;
            let info = ConnInfo::new(remote, tls.is_some() || proxied_tls, client, &trusted);
            let activity = Arc::new(conn::Activity::default());
            let svc = conn::Tracked::new(TowerToHyperService::new(stack::build(gw, info)), activity.clone());
            let closed = match tls {
                None => conn::drive(&builder, stream, svc, &activity, timeouts, deadline, shutdown).await,
                // The handshake deadline covers the TLS handshake too.
                Some(acc) => match tokio::time::timeout_at(deadline, acc.accept(stream)).await {
                    Ok(Ok(s)) => conn::drive(&builder, s, svc, &activity, timeouts, deadline, shutdown).await,
                    Ok(Err(_)) => {
                        tracing::debug!(client.ip = %client, "TLS handshake failed");
                        conn::Closed::Normally
                    }
                    Err(_) => {
                        tracing::debug!(client.ip = %client, "TLS handshake timed out");
                        conn::Closed::Handshake
                    }
                },
            };
            match closed {
                conn::Closed::Handshake => crate::metrics::connection_timed_out("handshake"),
                conn::Closed::Idle => crate::metrics::connection_timed_out("idle"),
                conn::Closed::Send => crate::metrics::connection_timed_out("send"),
                conn::Closed::Normally | conn::Closed::Shutdown => {}
            }
            crate::metrics::connection_closed();
        });
    }
    drop(listener);
    let grace = cfg.server.shutdown_grace;
    tokio::select! {
        _ = limits.drained() => tracing::info!("all connections drained"),
        _ = tokio::time::sleep(grace) => tracing::warn!("shutdown grace elapsed; closing remaining connections"),
    }
}

/// Count and log a connection refused by a cap.
fn refused(why: conn::Refused, ip: IpAddr) {
    match why {
        conn::Refused::Full => crate::metrics::connection_refused(),
        conn::Refused::PerAddress => crate::metrics::connection_refused_per_ip(),
    }
    tracing::debug!(client.ip = %ip, reason = ?why, "connection refused");
}

/// How often the rate limiters forget keys that are back to a full quota.
const LIMITER_PRUNE_INTERVAL: Duration = Duration::from_secs(30);

/// Keep the rate limiters' maps to the keys that matter: the token
/// endpoints' failure counters and every route's `rate_limit_per_subject`
/// limiter drop the keys whose quota has refilled (governor's
/// `retain_recent`) and give the memory back (`shrink_to_fit`), so a
/// stream of new addresses or credentials leaves nothing behind.
async fn limiter_upkeep(gw: Arc<Gateway>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(LIMITER_PRUNE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => {
                gw.issuer.prune();
                for route in gw.runtime.load().routes.routes() {
                    if let Some(l) = &route.limiter {
                        l.prune();
                    }
                }
            }
        }
    }
}

/// Pause after a failed `accept` (EMFILE and friends) before the next one.
pub(crate) const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

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
