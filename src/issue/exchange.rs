//! `POST /v1/auth/token`: a long-lived API key in `Authorization: Bearer`
//! for a short-lived token, `{ttl, scope, tiles, allowed_origins}` JSON
//! (`tiles`: a tile grant within the key's; `allowed_origins`: origins
//! within the key's; docs/grants.md).

use crate::body::ClientBody;
use http::StatusCode;
use serde_json::Value;

use super::{grant, json_object, optional_str, read_body, rfc3339, Beyond, Ctx, IssueError};
use crate::clock::now_unix;
use crate::credentials::ceilings::{narrow_ceiling, narrow_origins, narrow_tiles, Ceiling};
use crate::credentials::signing::TokenClaims;
use crate::credentials::CachedKey;
use crate::credentials::CredentialError;
use crate::grants::{Grant, GrantClaim, NarrowError};
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
    let ExchangeRequest {
        ttl,
        scope,
        tiles,
        origins,
    } = parse_request(
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
    let parent = key_ceiling(&key)?;
    let (tiles, origins) = narrow_grant(&parent, tiles.as_ref(), origins.as_deref(), "API key")?;
    let ttl = ttl.min(remaining(&key.key, now));
    let exp = now + ttl as i64;
    let id = random_token("", 16);
    let sub = format!("tok_short_{id}");
    let uid = principal_id(&key.key.principal);
    let token = ctx.sign(
        &TokenClaims::new(ctx.cfg, "api_token", &sub, &id, &scope, now, Some(exp))
            .org(Some(&key.key.org_id))
            .user(uid, key.username())
            .credential(&key.key.id)
            .tiles(tiles.as_ref())
            .origins(origins),
    )?;
    ctx.touch(&key, now);
    crate::metrics::token_issued("api_key");
    let mut out = serde_json::json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": ttl,
        "expires_at": rfc3339(exp),
        "scope": scope,
    });
    describe_grant(&mut out, tiles.as_ref(), origins);
    Ok(json(StatusCode::OK, &out))
}

/// A token response's `tiles` and `allowed_origins`, when limited (an
/// empty list of origins, as the token carries it: no origin allowed).
pub fn describe_grant(out: &mut Value, tiles: Option<&Grant>, origins: Option<&[String]>) {
    if let Some(g) = tiles.filter(|g| !g.is_unlimited()) {
        out["tiles"] = serde_json::to_value(g.to_claim()).unwrap_or_default();
    }
    if let Some(o) = origins {
        out["allowed_origins"] = serde_json::to_value(o).unwrap_or_default();
    }
}

/// The grant ceiling of the tokens minted from `key`: the key's own,
/// within its service account's current ceiling (what the key leaves out
/// is the service account's). A key beyond a ceiling lowered after it was
/// made mints nothing: 403 `tiles_exceeded` or `origins_exceeded`.
pub fn key_ceiling(key: &CachedKey) -> Result<Ceiling, IssueError> {
    let own = Ceiling::of(&key.key.tiles, &key.key.allowed_origins);
    let Some(l) = key
        .limits
        .as_ref()
        .filter(|l| l.tiles.is_some() || l.allowed_origins.is_some())
    else {
        return Ok(own);
    };
    let holder = Ceiling::of(&l.tiles, &l.allowed_origins);
    narrow_ceiling(&holder, &own, &format!("service account {}", l.name)).map_err(|e| match e {
        CredentialError::OriginsBeyondCeiling { .. } => IssueError::OriginsExceeded(format!("the API key's {e}")),
        other => IssueError::TilesExceeded(format!("the API key's {other}")),
    })
}

/// The tile grant and allowed origins of a token derived from a credential
/// holding `parent` (the `holder`: "API key", "client"), narrowed by what
/// the request asks; each left out is the parent's. More than the parent
/// holds is 403 `tiles_exceeded` or `origins_exceeded`.
pub fn narrow_grant<'a>(
    parent: &'a Ceiling,
    tiles: Option<&GrantClaim>,
    origins: Option<&'a [String]>,
    holder: &str,
) -> Result<(Option<Grant>, Option<&'a [String]>), IssueError> {
    let tiles = narrow_tiles(parent.tiles.as_ref(), tiles).map_err(|e| {
        IssueError::TilesExceeded(match e {
            NarrowError::Beyond(d) => format!("the requested tiles are beyond the {holder}'s in {}", d.as_str()),
            // Valid alone (checked when parsed), so it contradicts a
            // dimension the credential limits (minzoom above its maxzoom).
            NarrowError::Invalid(why) => format!("the requested tiles do not fit the {holder}'s: {why}"),
        })
    })?;
    let origins = narrow_origins(parent.origins.as_deref(), origins).map_err(|bad| {
        IssueError::OriginsExceeded(format!(
            "allowed origin \"{bad}\" is beyond the {holder}'s allowed origins"
        ))
    })?;
    Ok((tiles, origins))
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

/// What an exchange asks for.
#[derive(Debug, PartialEq)]
pub struct ExchangeRequest {
    pub ttl: u64,
    pub scope: Option<String>,
    /// A tile grant, valid on its own (not yet checked against the key's).
    pub tiles: Option<GrantClaim>,
    /// Allowed-origin patterns, each valid (not yet checked against the key's).
    pub origins: Option<Vec<String>>,
}

/// `{ttl, scope, tiles}`; all optional; no body means defaults.
pub fn parse_request(
    body: Option<serde_json::Map<String, Value>>,
    default_ttl: u64,
    max_ttl: u64,
) -> Result<ExchangeRequest, IssueError> {
    let Some(map) = body else {
        return Ok(ExchangeRequest {
            ttl: default_ttl,
            scope: None,
            tiles: None,
            origins: None,
        });
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
    let tiles = parse_tiles(&map)?;
    let origins = parse_origins(&map)?;
    Ok(ExchangeRequest {
        ttl,
        scope: scope.map(String::from),
        tiles,
        origins,
    })
}

/// The `tiles` field of a token request: a grant object, checked on its
/// own (400 `invalid_tiles` when it is not one); absent or `null`: none.
pub fn parse_tiles(map: &serde_json::Map<String, Value>) -> Result<Option<GrantClaim>, IssueError> {
    let claim = match map.get("tiles") {
        None | Some(Value::Null) => return Ok(None),
        Some(v) => serde_json::from_value::<GrantClaim>(v.clone()).map_err(|e| {
            IssueError::InvalidTiles(format!(
                "tiles must be an object of minzoom, maxzoom, bounds and layers: {e}"
            ))
        })?,
    };
    Grant::from_claim(&claim).map_err(|e| IssueError::InvalidTiles(format!("tiles: {e}")))?;
    Ok(Some(claim))
}

/// The `allowed_origins` field of a token request: an array of origin
/// patterns as an API key takes them (400 `invalid_request` otherwise);
/// absent or `null`: none asked.
pub fn parse_origins(map: &serde_json::Map<String, Value>) -> Result<Option<Vec<String>>, IssueError> {
    let list = match map.get("allowed_origins") {
        None | Some(Value::Null) => return Ok(None),
        Some(v) => serde_json::from_value::<Vec<String>>(v.clone())
            .map_err(|_| IssueError::InvalidRequest("allowed_origins must be an array of origin strings".into()))?,
    };
    check_origins(&list)?;
    Ok(Some(list))
}

/// Space-separated origin patterns (a form parameter), checked as
/// [`parse_origins`] checks an array.
pub fn parse_origins_text(text: Option<&str>) -> Result<Option<Vec<String>>, IssueError> {
    let Some(t) = text else {
        return Ok(None);
    };
    let list: Vec<String> = t.split_ascii_whitespace().map(String::from).collect();
    check_origins(&list)?;
    Ok(Some(list))
}

fn check_origins(list: &[String]) -> Result<(), IssueError> {
    if list.is_empty() {
        return Err(IssueError::InvalidRequest(
            "allowed_origins must name at least one origin (leave it out for the credential's)".into(),
        ));
    }
    crate::credentials::ceilings::check_origins(list).map_err(|e| IssueError::InvalidRequest(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issue::parse_object;

    fn parse(body: &[u8]) -> Result<(u64, Option<String>), IssueError> {
        full(body).map(|r| (r.ttl, r.scope))
    }

    fn full(body: &[u8]) -> Result<ExchangeRequest, IssueError> {
        let map = if body.is_empty() {
            None
        } else {
            Some(parse_object(body)?)
        };
        parse_request(map, 3600, 14400)
    }

    #[test]
    fn tiles_parsing() {
        let r = full(br#"{"tiles":{"maxzoom":14,"layers":["basemap"]}}"#).unwrap();
        assert_eq!(r.tiles.unwrap().maxzoom, Some(14));
        assert_eq!(full(br#"{"tiles":null}"#).unwrap().tiles, None);
        for bad in [
            &br#"{"tiles":{"minzoom":9,"maxzoom":3}}"#[..],
            br#"{"tiles":{"maxzoom":31}}"#,
            br#"{"tiles":{"bounds":[[0,0,10]]}}"#,
            br#"{"tiles":{"bounds":[[-181,0,10,10]]}}"#,
            br#"{"tiles":{"bounds":[[0,20,10,10]]}}"#,
            br#"{"tiles":{"layers":[]}}"#,
            br#"{"tiles":{"zoom":3}}"#,
            br#"{"tiles":"basemap"}"#,
        ] {
            assert!(
                matches!(full(bad), Err(IssueError::InvalidTiles(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn origins_parsing() {
        let r = full(br#"{"allowed_origins":["https://app.example.com","https://*.example.org"]}"#).unwrap();
        assert_eq!(
            r.origins.unwrap(),
            vec!["https://app.example.com", "https://*.example.org"]
        );
        assert_eq!(full(br#"{"allowed_origins":null}"#).unwrap().origins, None);
        for bad in [
            &br#"{"allowed_origins":[]}"#[..],
            br#"{"allowed_origins":"https://app.example.com"}"#,
            br#"{"allowed_origins":["https://app.example.com/"]}"#,
            br#"{"allowed_origins":["*.example.com"]}"#,
            br#"{"allowed_origins":["https://APP.example.com"]}"#,
            br#"{"allowed_origins":[5]}"#,
        ] {
            assert!(
                matches!(full(bad), Err(IssueError::InvalidRequest(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            parse_origins_text(Some(" https://a.example.com  https://b.example.com ")).unwrap(),
            Some(vec![
                "https://a.example.com".to_string(),
                "https://b.example.com".to_string()
            ])
        );
        assert!(parse_origins_text(Some("https://a.example.com/x")).is_err());
        assert_eq!(parse_origins_text(None).unwrap(), None);
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
