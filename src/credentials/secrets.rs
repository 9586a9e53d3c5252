//! The verified-secret caches: API keys and generator tokens found in the
//! store, by the SHA-256 of their text, as fresh as `cache.secret_ttl`.
//! The token endpoints read through them; a revocation, a regeneration or
//! a change of a principal's limits clears them ([`Secrets::forget`]).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
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
    /// Bumped by every [`Secrets::forget`]: a lookup that read the store
    /// before a forget (old limits, a key since revoked) does not leave
    /// its entry in the cache after it.
    generation: AtomicU64,
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
            generation: AtomicU64::new(0),
        }
    }

    /// Forget every cached secret (after a revocation, a regeneration, or a
    /// change of limits).
    pub fn forget(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.api_keys.invalidate_all();
        self.generators.invalidate_all();
    }

    /// The generation a lookup reads the store in.
    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Cache what a lookup started in generation `seen` read, unless a
    /// forget came since: then it may be stale and is not kept. Checked
    /// again after the insert, since a forget may fall between the check
    /// and the insert (a forget bumps the generation before it clears, so
    /// either its clear follows the insert or the second check sees it).
    fn insert_if_current<V: Clone + Send + Sync + 'static>(
        &self,
        cache: &Cache<crate::auth::Key, V>,
        h: crate::auth::Key,
        v: V,
        seen: u64,
    ) {
        if self.generation() != seen {
            return;
        }
        cache.insert(h, v);
        if self.generation() != seen {
            cache.invalidate(&h);
        }
    }

    /// An API key by its plain text, through the cache.
    pub async fn api_key(&self, store: &Store, plaintext: &str) -> Result<Option<Arc<CachedKey>>, StoreError> {
        let h = crate::auth::token_key(plaintext);
        if let Some(k) = self.api_keys.get(&h) {
            return Ok(Some(k));
        }
        let seen = self.generation();
        let Some(key) = store.lookup_api_key(plaintext).await? else {
            return Ok(None);
        };
        let limits = store.principal_limits(&key.principal).await?;
        let c = Arc::new(CachedKey {
            key,
            limits,
            last_touch: AtomicI64::new(0),
        });
        self.insert_if_current(&self.api_keys, h, c.clone(), seen);
        Ok(Some(c))
    }

    /// A generator token by its plain text, through the cache.
    pub async fn generator(&self, store: &Store, plaintext: &str) -> Result<Option<Arc<GeneratorToken>>, StoreError> {
        let h = crate::auth::token_key(plaintext);
        if let Some(g) = self.generators.get(&h) {
            return Ok(Some(g));
        }
        let seen = self.generation();
        let Some(g) = store.lookup_generator_token(plaintext).await? else {
            return Ok(None);
        };
        let g = Arc::new(g);
        self.insert_if_current(&self.generators, h, g.clone(), seen);
        Ok(Some(g))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> Arc<GeneratorToken> {
        Arc::new(GeneratorToken {
            id: "gen_1".into(),
            uid: "u_1".into(),
            org_id: "org_1".into(),
            username: "ana".into(),
            created_at: 0,
        })
    }

    #[test]
    fn a_lookup_from_before_a_forget_is_not_cached() {
        let s = Secrets::new(&crate::config::from_str("[scopes]\n\"tiles:read\" = \"r\"\n").unwrap());
        let h = crate::auth::token_key("tgg_stale");
        // The racy order: the lookup reads the store, the limits change
        // and the caches are forgotten, then the lookup inserts.
        let seen = s.generation();
        s.forget();
        s.insert_if_current(&s.generators, h, token(), seen);
        assert!(s.generators.get(&h).is_none());
        // A lookup that started after the forget is cached.
        let seen = s.generation();
        s.insert_if_current(&s.generators, h, token(), seen);
        assert!(s.generators.get(&h).is_some());
        // A forget after its insert clears it as before.
        s.forget();
        assert!(s.generators.get(&h).is_none());
    }
}
