//! Generator tokens and the named tokens they mint: regenerating a user's
//! generator token, revoking a named token.

use super::{CredentialError, Op};
use crate::clock::now_unix;
use crate::store::{GeneratorToken, NamedToken};

/// Replace a user's generator token; the old one and every named token it
/// minted stop working at once (its id is revoked for good, and this
/// replica's secret caches are cleared).
pub async fn regenerate(op: &Op<'_>, uid: &str) -> Result<(GeneratorToken, String), CredentialError> {
    // The replacement and the revocation are two writes. Revoke the current
    // token first: if the replacement then fails, the user is left with a
    // dead generator token to regenerate again (closed); in the other order
    // a failure in between would leave the tokens the old one minted, some
    // never expiring, valid for good (open).
    if let Some((current, _)) = op.store.generator_token(uid).await? {
        op.revocation(&current.id, None, now_unix()).await?;
    }
    let (g, text, old) = op.store.regenerate_generator_token(uid, now_unix()).await?;
    if let Some(old) = old {
        op.revoke(&old, None, "generator_token.regenerated").await?;
    }
    Ok((g, text))
}

/// Revoke a named token (only `owner`'s when given: the user endpoint);
/// its revocation entry lives until its expiry plus the leeway (as long as
/// it could still verify), for good if it never expires.
pub async fn revoke_named(op: &Op<'_>, id: &str, owner: Option<&str>) -> Result<NamedToken, CredentialError> {
    let t = op
        .store
        .revoke_named_token(id, owner, now_unix())
        .await?
        .ok_or_else(|| CredentialError::NotFound(format!("no named token {id}")))?;
    let until = op.cfg.tokens.revoked_until(t.expires_at);
    op.revoke(&t.id, until, "named_token.revoked").await?;
    Ok(t)
}
