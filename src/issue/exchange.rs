//! `POST /v1/auth/token` (API-key exchange): a long-lived API key in
//! `Authorization: Bearer` for a short-lived token, `{ttl, scope}` JSON.

use crate::body::ClientBody;
use http::StatusCode;
use serde_json::Value;

use super::{grant, json_object, optional_str, read_body, rfc3339, Beyond, Ctx, IssueError};
use crate::clock::now_unix;
use crate::credentials::signing::TokenClaims;
use crate::credentials::CachedKey;
use crate::http::{json, Resp};
use crate::store::{random_token, Principal};

pub async fn api_key_exchange(
    ctx: &Ctx<'_>,
    parts: http::request::Parts,
    body: &mut ClientBody,
) -> Result<Resp, IssueError> {
    ctx.require(&parts, &[http::Method::POST])?;
    ctx.issuer.check_blocked(ctx.ip())?;
    let key_text = crate::auth::extract::bearer(&parts.headers)
        .map_err(|_| ctx.failed(IssueError::Unauthorized("malformed Authorization header")))?
        .ok_or(IssueError::Unauthorized("an API key is required as a bearer token"))?
        .to_owned();
    let body = read_body(body, ctx.cfg.limits.token_body_bytes).await?;
    let (ttl, scope) = parse_request(
        json_object(&parts, &body)?,
        ctx.cfg.tokens.default_ttl.as_secs(),
        ctx.cfg.tokens.max_ttl.as_secs(),
    )?;
    let now = now_unix();
    let key = match ctx.api_key(&key_text).await? {
        Some(k) if usable(ctx, &k, now) => k,
        _ => {
            return Err(ctx.issuer.record_failure(
                ctx.ip(),
                IssueError::Unauthorized("the API key is invalid, expired or revoked"),
            ))
        }
    };
    let ceiling = ceiling_of(ctx, &key);
    let granted = grant(scope.as_deref(), &key.key.scopes, &ceiling).map_err(|(why, bad)| {
        IssueError::ScopeExceeded(match why {
            Beyond::Credential => format!("scope \"{bad}\" exceeds the API key's scopes"),
            Beyond::Ceiling => format!("scope \"{bad}\" is beyond the scope ceiling of the key's owner"),
        })
    })?;
    let scope = granted.join(" ");
    let ttl = ttl.min(remaining(&key.key, now));
    let exp = now + ttl as i64;
    let id = random_token("", 16);
    let sub = format!("tok_short_{id}");
    let uid = principal_id(&key.key.principal);
    let token = ctx.sign(
        &TokenClaims::new(ctx.cfg, "api_token", &sub, &id, &scope, now, Some(exp))
            .org(Some(&key.key.org_id))
            .user(uid, key.username())
            .credential(&key.key.id),
    )?;
    ctx.touch(&key, now);
    crate::metrics::token_issued("api_key");
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": ttl,
            "expires_at": rfc3339(exp),
            "scope": scope,
        }),
    ))
}

pub fn principal_id(p: &Principal) -> &str {
    match p {
        Principal::User(u) => u,
        Principal::ServiceAccount(s) => s,
    }
}

/// A key may be exchanged when neither revoked nor expired (also checked
/// against the revocation set, which other replicas feed), and its
/// principal exists and is not disabled.
pub fn usable(ctx: &Ctx<'_>, c: &CachedKey, now: i64) -> bool {
    let k = &c.key;
    k.revoked_at.is_none()
        && k.expires_at.is_none_or(|e| e > now)
        && c.limits.as_ref().is_some_and(|l| !l.disabled)
        && !ctx.verifier.revocations.is_revoked(None, Some(&k.id))
}

/// The scope ceiling of the key's principal (empty when it is gone, which
/// [`usable`] refuses before).
pub fn ceiling_of(ctx: &Ctx<'_>, c: &CachedKey) -> Vec<String> {
    c.limits.as_ref().map(|l| ctx.cfg.ceiling(l)).unwrap_or_default()
}

/// A token never outlives the key it came from.
pub fn remaining(k: &crate::store::ApiKey, now: i64) -> u64 {
    k.expires_at.map(|e| (e - now).max(1) as u64).unwrap_or(u64::MAX)
}

/// `{ttl, scope}`; both optional; no body means defaults.
pub fn parse_request(
    body: Option<serde_json::Map<String, Value>>,
    default_ttl: u64,
    max_ttl: u64,
) -> Result<(u64, Option<String>), IssueError> {
    let Some(map) = body else {
        return Ok((default_ttl, None));
    };
    let bad_ttl = || IssueError::InvalidTtl(format!("TTL must be an integer between 1 and {max_ttl} seconds"));
    let ttl = match map.get("ttl") {
        None | Some(Value::Null) => default_ttl,
        Some(Value::Number(n)) => {
            let t = n.as_u64().ok_or_else(bad_ttl)?;
            if t == 0 || t > max_ttl {
                return Err(bad_ttl());
            }
            t
        }
        Some(_) => return Err(bad_ttl()),
    };
    let scope = optional_str(&map, "scope", "scope must be a space-separated string")?;
    Ok((ttl, scope.map(String::from)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issue::parse_object;

    fn parse(body: &[u8]) -> Result<(u64, Option<String>), IssueError> {
        let map = if body.is_empty() {
            None
        } else {
            Some(parse_object(body)?)
        };
        parse_request(map, 3600, 14400)
    }

    #[test]
    fn ttl_and_scope_parsing() {
        assert_eq!(parse(b"").unwrap(), (3600, None));
        assert_eq!(parse(br#"{"ttl":60,"scope":"a"}"#).unwrap(), (60, Some("a".into())));
        for bad in [
            &br#"{"ttl":0}"#[..],
            br#"{"ttl":14401}"#,
            br#"{"ttl":"60"}"#,
            br#"{"ttl":1.5}"#,
            br#"{"ttl":-1}"#,
        ] {
            assert!(
                matches!(parse(bad), Err(IssueError::InvalidTtl(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        for bad in [
            &b"{"[..],
            b"[1]",
            br#"{"scope":5}"#,
            br#"{"ttl":60,"ttl":61}"#,
            br#"{"scope":"a","scope":"b"}"#,
        ] {
            assert!(
                matches!(parse(bad), Err(IssueError::InvalidRequest(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // Repeated keys deeper down are the value's business, not ours.
        assert!(parse(br#"{"ttl":60,"x":{"a":1,"a":2}}"#).is_ok());
    }
}
