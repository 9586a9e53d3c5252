//! Operator actions shared by the CLI (on the store directly) and the
//! admin API (which also updates the running replica at once).

use std::time::Duration;

use crate::auth::keys;
use crate::auth::now_unix;
use crate::config::Config;
use crate::store::{ApiKey, Principal, Store, StoreError};

/// Scopes must be declared in the config; returns them deduplicated.
pub fn check_scopes(cfg: &Config, scope: &str) -> Result<Vec<String>, StoreError> {
    let mut out: Vec<String> = Vec::new();
    for s in scope.split(' ').filter(|s| !s.is_empty()) {
        if !cfg.scopes.contains_key(s) {
            return Err(StoreError::Invalid(format!(
                "scope \"{s}\" is not declared in [scopes]"
            )));
        }
        if !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    if out.is_empty() {
        return Err(StoreError::Invalid("at least one scope is required".into()));
    }
    Ok(out)
}

pub use crate::store::check_name;

pub async fn create_api_key(
    store: &Store,
    cfg: &Config,
    principal: &Principal,
    scope: &str,
    expires_in: Option<Duration>,
    actor: &str,
) -> Result<(ApiKey, String), StoreError> {
    let scopes = check_scopes(cfg, scope)?;
    let now = now_unix();
    let expires_at = expires_in.map(|d| now + d.as_secs() as i64);
    let (key, text) = store.create_api_key(principal, &scopes, expires_at).await?;
    store
        .audit(actor, "api_key.created", &key.id, &scopes.join(" "), now)
        .await?;
    Ok((key, text))
}

/// Revoke a key; the revocation entry outlives every token it minted.
/// Returns the key and the entry's `until`.
pub async fn revoke_api_key(
    store: &Store,
    cfg: &Config,
    id: &str,
    actor: &str,
) -> Result<(ApiKey, Option<i64>), StoreError> {
    let now = now_unix();
    if !store.list_api_keys(None).await?.iter().any(|k| k.id == id) {
        return Err(StoreError::NotFound(format!("no API key {id}")));
    }
    // The revocation entry first: should the second write fail, the key's
    // tokens are already dead everywhere (never the other way round).
    let until = now + cfg.tokens.max_ttl.as_secs() as i64 + cfg.tokens.leeway.as_secs() as i64;
    store.add_revocation(id, Some(until), now).await?;
    let key = store
        .revoke_api_key(id, now)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no API key {id}")))?;
    store.audit(actor, "api_key.revoked", &key.id, "", now).await?;
    Ok((key, Some(until)))
}

/// A new active signing key; the old ones stay in the JWKS for the grace.
pub async fn rotate_keys(store: &Store, cfg: &Config, actor: &str) -> Result<String, StoreError> {
    let k = keys::generate(cfg.tokens.algorithm, now_unix()).map_err(|e| StoreError::Internal(e.to_string()))?;
    store.insert_signing_key(&k).await?;
    store
        .audit(actor, "signing_key.rotated", &k.kid, &k.alg, now_unix())
        .await?;
    Ok(k.kid)
}

/// Regenerate a user's generator token from the store side (CLI).
pub async fn regenerate_generator(
    store: &Store,
    uid: &str,
    actor: &str,
) -> Result<(crate::store::GeneratorToken, String), StoreError> {
    let now = now_unix();
    // Revoke the current one first: its never-expiring named tokens must not
    // survive a failed second write.
    if let Some((current, _)) = store.generator_token(uid).await? {
        store.add_revocation(&current.id, None, now).await?;
    }
    let (g, text, old) = store.regenerate_generator_token(uid, now).await?;
    if let Some(old) = old {
        store.add_revocation(&old, None, now).await?;
        store.audit(actor, "generator_token.regenerated", &old, "", now).await?;
    }
    Ok((g, text))
}

/// Revoke a named token; returns it and the revocation entry's `until`
/// (its expiry plus the leeway, as long as it could still verify).
pub async fn revoke_named(
    store: &Store,
    cfg: &Config,
    id: &str,
    actor: &str,
) -> Result<(crate::store::NamedToken, Option<i64>), StoreError> {
    let now = now_unix();
    let t = store
        .revoke_named_token(id, None, now)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no named token {id}")))?;
    let until = cfg.tokens.revoked_until(t.expires_at);
    store.add_revocation(&t.id, until, now).await?;
    store.audit(actor, "named_token.revoked", &t.id, "", now).await?;
    Ok((t, until))
}

/// `90d`, `12h`, … for `--expires-in`.
pub fn parse_expiry(s: &str) -> Result<Duration, StoreError> {
    crate::config::parse_duration(s).map_err(StoreError::Invalid)
}
