//! What every request reads, and what keeps it current: the [`Runtime`]
//! a config load builds (swapped whole on reload), the process-wide
//! [`Gateway`] (verifier, store, token-endpoint state), bootstrap (the
//! key-encryption key, the store, a signing key) and the background sync
//! (revocations from the store, limiter upkeep).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::auth::keys::{self, KeySet};
use crate::auth::revocation::Revocations;
use crate::auth::Verifier;
use crate::clock::now_unix;
use crate::config::{self, Config};
use crate::credentials::Secrets;
use crate::issue::Issuer;
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
            match Upstream::new(u.clone(), config.server.workers.count()) {
                Ok(x) => upstreams.push(x),
                Err(e) => errors.push(format!("upstreams \"{}\": {e}", u.name)),
            }
        }
        let routes = RouteTable::build(&config.routes)
            .map(|t| t.with_inline(config.endpoints.table()))
            .unwrap_or_else(|e| {
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

    /// Mark the gateway ready (`/readyz`), once its listeners are bound.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    /// Re-read the config file; swap it in only when it is valid.
    pub async fn reload(&self) -> bool {
        let Some(path) = &self.config_path else { return false };
        let mut new = match config::load(path) {
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
        // The worker threads are started once: the running model stays,
        // and the upstream connections are kept apart for those workers.
        if new.server.workers != old.config.server.workers {
            tracing::warn!("server.workers takes effect at the next restart only");
            new.server.workers = old.config.server.workers;
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

/// How often the rate limiters forget keys that are back to a full quota.
const LIMITER_PRUNE_INTERVAL: Duration = Duration::from_secs(30);

/// Keep the rate limiters' maps to the keys that matter: the token
/// endpoints' failure counters and every route's `rate_limit_per_subject`
/// limiter drop the keys whose quota has refilled (governor's
/// `retain_recent`) and give the memory back (`shrink_to_fit`), so a
/// stream of new addresses or credentials leaves nothing behind.
pub async fn limiter_upkeep(gw: Arc<Gateway>, mut shutdown: watch::Receiver<bool>) {
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
