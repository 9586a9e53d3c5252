//! The verified-secret caches: API keys and generator tokens found in the
//! store, by the SHA-256 of their text, as fresh as `cache.secret_ttl`.
//! The token endpoints read through them; a revocation, a regeneration or
//! a change of a principal's limits clears them ([`Secrets::forget`]).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use moka::sync::Cache;

use crate::config::Config;
use crate::store::{ApiKey, GeneratorToken, Limits, Store, StoreError};

/// A long-lived secret found in the store, cached by its SHA-256, with
/// what bounds its principal (ceilings, disabled; `None`: the principal is
/// gone), read with it and as fresh as it (`cache.secret_ttl`).
#[derive(Debug)]
pub struct CachedKey {
    pub key: ApiKey,
    pub limits: Option<Limits>,
    last_touch: AtomicI64,
}

impl CachedKey {
    pub fn username(&self) -> Option<&str> {
        self.limits.as_ref().map(|l| l.name.as_str())
    }

    /// Record use of the key at most once a minute (not on every exchange),
    /// in the background.
    pub fn touch(&self, store: &Arc<Store>, now: i64) {
        let last = self.last_touch.load(Ordering::Relaxed);
        if now - last >= 60
            && self
                .last_touch
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let store = store.clone();
            let id = self.key.id.clone();
            tokio::spawn(async move {
                let _ = store.touch_api_key(&id, now).await;
            });
        }
    }
}

/// The caches of one replica.
pub struct Secrets {
    api_keys: Cache<crate::auth::Key, Arc<CachedKey>>,
    generators: Cache<crate::auth::Key, Arc<GeneratorToken>>,
}

impl Secrets {
    pub fn new(cfg: &Config) -> Secrets {
        Secrets {
            api_keys: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(cfg.cache.secret_ttl)
                .build(),
            generators: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(cfg.cache.secret_ttl)
                .build(),
        }
    }

    /// Forget every cached secret (after a revocation, a regeneration, or a
    /// change of limits).
    pub fn forget(&self) {
        self.api_keys.invalidate_all();
        self.generators.invalidate_all();
    }

    /// An API key by its plain text, through the cache.
    pub async fn api_key(&self, store: &Store, plaintext: &str) -> Result<Option<Arc<CachedKey>>, StoreError> {
        let h = crate::auth::token_key(plaintext);
        if let Some(k) = self.api_keys.get(&h) {
            return Ok(Some(k));
        }
        let Some(key) = store.lookup_api_key(plaintext).await? else {
            return Ok(None);
        };
        let limits = store.principal_limits(&key.principal).await?;
        let c = Arc::new(CachedKey {
            key,
            limits,
            last_touch: AtomicI64::new(0),
        });
        self.api_keys.insert(h, c.clone());
        Ok(Some(c))
    }

    /// A generator token by its plain text, through the cache.
    pub async fn generator(&self, store: &Store, plaintext: &str) -> Result<Option<Arc<GeneratorToken>>, StoreError> {
        let h = crate::auth::token_key(plaintext);
        if let Some(g) = self.generators.get(&h) {
            return Ok(Some(g));
        }
        let Some(g) = store.lookup_generator_token(plaintext).await? else {
            return Ok(None);
        };
        let g = Arc::new(g);
        self.generators.insert(h, g.clone());
        Ok(Some(g))
    }
}
