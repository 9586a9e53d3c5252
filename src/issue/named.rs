//! Named tokens and access-generator tokens (seed 001).
//!
//! `POST {named_token}?name=&validTime=&action=&resourceType=` with the
//! user's generator token mints a JWT with a `jti` whose record is kept;
//! `GET {named_tokens}` lists, `DELETE {named_tokens}/{id}` revokes.
//! `GET|POST {generator_token}` shows or regenerates the generator token
//! (with a login token); regenerating kills the old one and every token it
//! minted.

use http::{Method, StatusCode};

use super::signer::{rfc3339, sign, TokenClaims};
use super::{Ctx, IssueError};
use crate::clock::now_unix;
use crate::http::{json, Resp};
use crate::store::{random_token, NamedToken};

/// Parsed and checked query of the create call.
#[derive(Debug, PartialEq, Eq)]
pub struct NamedRequest {
    pub name: String,
    /// Minutes, or None for never.
    pub valid_minutes: Option<i64>,
    pub action: String,
    pub resource_type: String,
}

/// Check the four mandatory parameters; each error names its parameter.
pub fn parse_query(query: Option<&str>) -> Result<NamedRequest, IssueError> {
    let pairs = super::form_pairs(query.unwrap_or("").as_bytes())?;
    let get = |k: &str| -> Result<&str, IssueError> {
        let mut it = pairs.iter().filter(|(n, _)| n == k);
        let v = it
            .next()
            .ok_or_else(|| IssueError::InvalidRequest(format!("parameter {k} is required")))?;
        if it.next().is_some() {
            return Err(IssueError::InvalidRequest(format!("parameter {k} is repeated")));
        }
        Ok(v.1.as_str())
    };
    let name = get("name")?;
    if !super::clients::valid_name(name) {
        return Err(IssueError::InvalidRequest(
            "parameter name must be 1-128 characters without control or bidirectional-override characters".into(),
        ));
    }
    let vt = get("validTime")?;
    // Plain decimal digits only ("+5", " 5" and "05" are not what a caller means).
    let digits = !vt.starts_with('0') && !vt.is_empty() && vt.bytes().all(|b| b.is_ascii_digit());
    let valid_minutes = match vt.parse::<i64>() {
        Ok(-1) if vt == "-1" => None,
        Ok(m) if digits && (1..=9999).contains(&m) => Some(m),
        _ => {
            return Err(IssueError::InvalidRequest(
                "parameter validTime must be -1 or an integer from 1 to 9999".into(),
            ))
        }
    };
    let action = get("action")?;
    if !matches!(action, "read_only" | "read_write") {
        return Err(IssueError::InvalidRequest(
            "parameter action must be read_only or read_write".into(),
        ));
    }
    let resource_type = get("resourceType")?;
    if !matches!(
        resource_type,
        "all" | "dataset_streaming" | "dataset_streaming_refreshing" | "embedded_published_project"
    ) {
        return Err(IssueError::InvalidRequest(
            "parameter resourceType must be all, dataset_streaming, dataset_streaming_refreshing or embedded_published_project".into(),
        ));
    }
    Ok(NamedRequest {
        name: name.to_owned(),
        valid_minutes,
        action: action.to_owned(),
        resource_type: resource_type.to_owned(),
    })
}

async fn generator_from_bearer(
    ctx: &Ctx<'_>,
    parts: &http::request::Parts,
) -> Result<std::sync::Arc<crate::store::GeneratorToken>, IssueError> {
    // Refused before the token is looked at when this address failed too
    // often (list and delete reach here without another check).
    ctx.gw.issuer.check_blocked(ctx.ip())?;
    let text = crate::auth::extract::bearer(&parts.headers)
        .map_err(|_| ctx.failed(IssueError::Unauthorized("malformed Authorization header")))?
        .ok_or(IssueError::Unauthorized(
            "an access-generator token is required as a bearer token",
        ))?;
    match ctx.generator(text).await? {
        Some(g) if !ctx.gw.verifier.revocations.is_revoked(None, Some(&g.id)) => Ok(g),
        _ => Err(ctx.failed(IssueError::Unauthorized("the access-generator token is invalid"))),
    }
}

pub async fn create(ctx: &Ctx<'_>, parts: &http::request::Parts) -> Result<Resp, IssueError> {
    ctx.require(parts, &[Method::POST])?;
    ctx.gw.issuer.check_blocked(ctx.ip())?;
    let g = generator_from_bearer(ctx, parts).await?;
    let req = parse_query(parts.uri.query())?;
    let (scopes, read_only) = ctx
        .cfg
        .named_tokens
        .lookup(&req.action, &req.resource_type)
        .ok_or_else(|| {
            IssueError::InvalidRequest(format!(
                "action={} with resourceType={} is not one of the five allowed pairs",
                req.action, req.resource_type
            ))
        })?;
    check_valid_time(&req, &ctx.cfg.named_tokens)?;
    // The user's scope ceiling, read now (a lowered ceiling binds an old
    // generator token too): the pair's scopes must all be within it.
    let limits = ctx
        .gw
        .store
        .principal_limits(&crate::store::Principal::User(g.uid.clone()))
        .await?
        .filter(|l| !l.disabled)
        .ok_or(IssueError::Unauthorized("the access-generator token is invalid"))?;
    let ceiling = ctx.cfg.ceiling(&limits);
    if let Some(bad) = scopes.iter().find(|s| !ceiling.contains(s)) {
        return Err(IssueError::ScopeExceeded(format!(
            "action={} with resourceType={} grants scope \"{bad}\", which is beyond your scope ceiling",
            req.action, req.resource_type
        )));
    }
    let now = now_unix();
    let id = random_token("ntk_", 16);
    let exp = req.valid_minutes.map(|m| now + m * 60);
    let scope = scopes.join(" ");
    let record = NamedToken {
        id: id.clone(),
        uid: g.uid.clone(),
        org_id: g.org_id.clone(),
        generator_id: g.id.clone(),
        name: req.name.clone(),
        action: req.action.clone(),
        resource_type: req.resource_type.clone(),
        scopes: scopes.to_vec(),
        created_at: now,
        expires_at: exp,
        revoked_at: None,
    };
    let token = sign(
        ctx.gw,
        &TokenClaims {
            iss: &ctx.cfg.tokens.issuer,
            aud: &ctx.cfg.tokens.audience,
            sub: &g.uid,
            exp,
            iat: now,
            nbf: now,
            jti: &id,
            org_id: Some(&g.org_id),
            scope: &scope,
            token_type: "named",
            uid: Some(&g.uid),
            username: Some(&g.username),
            cid: Some(&g.id),
            ro: read_only,
        },
    )?;
    // Recorded before it is handed out: a token that exists is revocable.
    ctx.gw.store.insert_named_token(&record).await?;
    // An operator lowering the ceiling meanwhile revokes the named tokens
    // beyond it that are stored when it looks; this one may have been
    // stored just after. Read the ceiling again now that it is stored: if
    // it no longer holds the scopes, revoke the token and refuse.
    let now_ceiling = ctx
        .gw
        .store
        .principal_limits(&crate::store::Principal::User(g.uid.clone()))
        .await?
        .filter(|l| !l.disabled)
        .map(|l| ctx.cfg.ceiling(&l));
    if !now_ceiling.is_some_and(|c| scopes.iter().all(|s| c.contains(s))) {
        let op = crate::admin::ops::Op::on(ctx.gw, ctx.cfg, &g.uid);
        crate::admin::ops::revoke_named(&op, &record.id).await?;
        return Err(IssueError::ScopeExceeded(
            "your scope ceiling changed while the token was made; it has been revoked".into(),
        ));
    }
    crate::metrics::token_issued("named");
    Ok(json(StatusCode::OK, &describe(&record, Some(&token))))
}

/// The operator's bounds on `validTime`: at most
/// `named_tokens.max_valid_time`, and `-1` only when
/// `named_tokens.allow_never_expiring` is on.
pub fn check_valid_time(req: &NamedRequest, policy: &crate::config::NamedTokenScopes) -> Result<(), IssueError> {
    match req.valid_minutes {
        None if !policy.allow_never_expiring => Err(IssueError::InvalidRequest(format!(
            "parameter validTime -1 (never expires) is not allowed here; give 1 to {} minutes",
            policy.max_valid_minutes
        ))),
        Some(m) if m > policy.max_valid_minutes => Err(IssueError::InvalidRequest(format!(
            "parameter validTime must be at most {} minutes here",
            policy.max_valid_minutes
        ))),
        _ => Ok(()),
    }
}

/// The JSON shape of a named token (the `token` only at creation).
pub fn describe(t: &NamedToken, token: Option<&str>) -> serde_json::Value {
    let mut v = serde_json::json!({
        "id": t.id,
        "name": t.name,
        "action": t.action,
        "resourceType": t.resource_type,
        "scope": t.scopes.join(" "),
        "createdAt": rfc3339(t.created_at),
        "expiresAt": t.expires_at.map(rfc3339),
        "revoked": t.revoked_at.is_some(),
    });
    if let Some(tok) = token {
        v["token"] = tok.into();
    }
    v
}

/// The user behind a login token or a generator token.
async fn user_of(ctx: &Ctx<'_>, parts: &http::request::Parts) -> Result<String, IssueError> {
    let is_generator = crate::auth::extract::bearer(&parts.headers)
        .ok()
        .flatten()
        .is_some_and(|t| t.starts_with("tgg_"));
    if is_generator {
        Ok(generator_from_bearer(ctx, parts).await?.uid.clone())
    } else {
        Ok(ctx.login_user(parts).await?.1)
    }
}

pub async fn list(ctx: &Ctx<'_>, parts: &http::request::Parts) -> Result<Resp, IssueError> {
    ctx.require(parts, &[Method::GET])?;
    let uid = user_of(ctx, parts).await?;
    let list = ctx.gw.store.list_named_tokens(Some(&uid)).await?;
    let items: Vec<_> = list.iter().map(|t| describe(t, None)).collect();
    Ok(json(StatusCode::OK, &serde_json::json!({ "tokens": items })))
}

pub async fn item(ctx: &Ctx<'_>, parts: &http::request::Parts, id: &str) -> Result<Resp, IssueError> {
    ctx.require(parts, &[Method::DELETE])?;
    let uid = user_of(ctx, parts).await?;
    let Some(t) = ctx.gw.store.revoke_named_token(id, Some(&uid), now_unix()).await? else {
        return Err(IssueError::NotFound("no such named token"));
    };
    let until = ctx.cfg.tokens.revoked_until(t.expires_at);
    super::revoke_id(ctx.gw, &t.id, until, &uid, "named_token.revoked").await?;
    Ok(crate::http::empty(StatusCode::NO_CONTENT))
}

pub async fn generator(ctx: &Ctx<'_>, parts: &http::request::Parts) -> Result<Resp, IssueError> {
    ctx.require(parts, &[Method::GET, Method::POST])?;
    let (_, uid) = ctx.login_user(parts).await?;
    if parts.method == Method::GET {
        let (g, text) = ctx
            .gw
            .store
            .generator_token(&uid)
            .await?
            .ok_or(IssueError::NotFound("this user has no access-generator token"))?;
        return Ok(json(
            StatusCode::OK,
            &serde_json::json!({ "id": g.id, "token": text, "createdAt": rfc3339(g.created_at) }),
        ));
    }
    let (g, text) = regenerate(ctx.gw, &uid, &uid).await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "id": g.id, "token": text, "createdAt": rfc3339(g.created_at) }),
    ))
}

/// Replace a user's generator token; the old one and every named token it
/// minted stop working at once (its id goes into the revocation set for good).
pub async fn regenerate(
    gw: &crate::server::Gateway,
    uid: &str,
    actor: &str,
) -> Result<(crate::store::GeneratorToken, String), IssueError> {
    // The replacement and the revocation are two writes. Revoke the current
    // token first: if the replacement then fails, the user is left with a
    // dead generator token to regenerate again (closed); in the other order
    // a failure in between would leave the tokens the old one minted, some
    // never expiring, valid for good (open).
    if let Some((current, _)) = gw.store.generator_token(uid).await? {
        gw.store.add_revocation(&current.id, None, now_unix()).await?;
        gw.verifier.revocations.insert(&current.id, None);
    }
    let (g, text, old) = gw.store.regenerate_generator_token(uid, now_unix()).await?;
    if let Some(old) = old {
        super::revoke_id(gw, &old, None, actor, "generator_token.regenerated").await?;
    }
    Ok((g, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_parameter_is_checked_and_named() {
        let ok = parse_query(Some("name=t1&validTime=60&action=read_only&resourceType=all")).unwrap();
        assert_eq!(ok.valid_minutes, Some(60));
        assert_eq!(
            parse_query(Some("name=t&validTime=-1&action=read_only&resourceType=all"))
                .unwrap()
                .valid_minutes,
            None
        );
        let err = |q: &str| parse_query(Some(q)).unwrap_err().to_string();
        for bad in [
            "0", "-2", "10000", "abc", "1.5", "", "%2B5", "+5", "%205", "05", "-01", "%D9%A5",
        ] {
            assert!(
                err(&format!("name=t&validTime={bad}&action=read_only&resourceType=all")).contains("validTime"),
                "{bad}"
            );
        }
        assert!(err("validTime=1&action=read_only&resourceType=all").contains("name"));
        assert!(err(&format!(
            "name={}&validTime=1&action=read_only&resourceType=all",
            "x".repeat(129)
        ))
        .contains("name"));
        assert!(err("name=t&validTime=1&action=write&resourceType=all").contains("action"));
        assert!(err("name=t&validTime=1&action=read_only&resourceType=x").contains("resourceType"));
        assert!(err("name=t&validTime=1&action=read_only").contains("resourceType"));
        assert!(err("name=t&name=u&validTime=1&action=read_only&resourceType=all").contains("repeated"));
    }
}
