//! API keys: created by the operator for a user or a service account,
//! within its scope ceiling; revoked everywhere at once.

use std::time::Duration;

use super::ceilings::{check_ceiling, narrow_ceiling, Ceiling};
use super::scopes::check_scopes;
use super::{CredentialError, Op};
use crate::clock::now_unix;
use crate::grants::GrantClaim;
use crate::store::{ApiKey, Principal};

/// A new API key of `principal` with the declared `scope`s, each within the
/// principal's ceiling; limited to the tile grant `tiles` and to the web
/// `origins` (a service account's key: within the service account's grant
/// ceiling, each left out taken from it; a user's: `None`/empty is any);
/// expiring after `expires_in` (`None`: never). The key's text is
/// returned this once.
pub async fn create_api_key(
    op: &Op<'_>,
    principal: &Principal,
    scope: &str,
    tiles: Option<&GrantClaim>,
    origins: &[String],
    expires_in: Option<Duration>,
) -> Result<(ApiKey, String), CredentialError> {
    let asked = check_ceiling(tiles, origins)?;
    let scopes = check_scopes(op.cfg, scope)?;
    let limits = op
        .store
        .principal_limits(principal)
        .await?
        .ok_or_else(|| CredentialError::NotFound(format!("no {} {}", principal.kind(), principal.id())))?;
    if limits.disabled {
        return Err(CredentialError::Disabled { name: limits.name });
    }
    let holder = format!("{} {}", principal.kind(), limits.name);
    // Within a service account's grant ceiling (users carry none); what
    // the key leaves out is the service account's.
    let limited = narrow_ceiling(&Ceiling::of(&limits.tiles, &limits.allowed_origins), &asked, &holder)?;
    let ceiling = op.cfg.ceiling(&limits);
    if let Some(bad) = scopes.iter().find(|s| !ceiling.contains(s)) {
        return Err(CredentialError::ScopeNotAllowed {
            scope: bad.clone(),
            holder,
            ceiling: ceiling.join(" "),
        });
    }
    let now = now_unix();
    let expires_at = expires_in.map(|d| now + d.as_secs() as i64);
    let (key, text) = op
        .store
        .create_api_key_limited(
            principal,
            &scopes,
            limited.tiles.as_ref(),
            limited.origins.as_deref(),
            expires_at,
            now,
        )
        .await?;
    op.store
        .audit(op.actor, "api_key.created", &key.id, &scopes.join(" "), now)
        .await?;
    Ok((key, text))
}

/// Revoke a key; the revocation entry (in the store and in this replica's
/// set alike) outlives every token it minted.
pub async fn revoke_api_key(op: &Op<'_>, id: &str) -> Result<ApiKey, CredentialError> {
    let now = now_unix();
    if op.store.find_api_key(id).await?.is_none() {
        return Err(CredentialError::NotFound(format!("no API key {id}")));
    }
    // The revocation entry first: should the second write fail, the key's
    // tokens are already dead everywhere (never the other way round).
    op.revoke(id, op.credential_until(), "api_key.revoked").await?;
    op.store
        .revoke_api_key(id, now)
        .await?
        .ok_or_else(|| CredentialError::NotFound(format!("no API key {id}")))
}

/// `90d`, `12h`, … for an API key's expiry.
pub fn parse_expiry(s: &str) -> Result<Duration, CredentialError> {
    crate::config::parse_duration(s).map_err(CredentialError::BadExpiry)
}
