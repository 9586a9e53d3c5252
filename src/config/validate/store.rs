//! `[store]`: the credential store and the key-encryption key.

use std::time::Duration;

use super::Problems;
use crate::config::file::FileStore;
use crate::config::types::StoreConfig;

pub(super) fn store(s: &FileStore, p: &mut Problems) -> StoreConfig {
    if s.url.starts_with("postgres://") || s.url.starts_with("postgresql://") {
        // TLS policy (store/transport.rs); the message never repeats the
        // URL, which holds the password.
        if let Err(e) = crate::store::check_postgres_transport(&s.url, s.allow_insecure_transport) {
            p.push("store.url", e);
        }
    } else if !s.url.starts_with("sqlite:") {
        p.push("store.url", "must start with sqlite: or postgres://");
    }
    if s.pool_size == 0 {
        p.push("store.pool_size", "must be at least 1");
    }
    let acquire_timeout = p.duration("store.acquire_timeout", &s.acquire_timeout);
    if acquire_timeout < Duration::from_millis(10) || acquire_timeout > Duration::from_secs(60) {
        p.push("store.acquire_timeout", "must be between 10ms and 60s");
    }
    StoreConfig {
        url: s.url.clone(),
        kek_env: s.kek_env.clone(),
        kek_file: s.kek_file.clone().into(),
        revocation_resync: p.duration("store.revocation_resync", &s.revocation_resync),
        pool_size: s.pool_size,
        acquire_timeout,
        allow_insecure_transport: s.allow_insecure_transport,
    }
}
