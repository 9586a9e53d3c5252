//! Named tokens and access-generator tokens.
//!
//! `POST {named_token}?name=&validTime=&action=&resourceType=` (and an
//! optional `tiles` grant, JSON) with the user's generator token mints a
//! JWT with a `jti` whose record is kept;
//! `GET {named_tokens}` lists, `DELETE {named_tokens}/{id}` revokes.
//! `GET|POST {generator_token}` shows or regenerates the generator token
//! (with a login token); regenerating kills the old one and every token it
//! minted.

use http::{Method, StatusCode};

use super::{rfc3339, Ctx, IssueError};
use crate::clock::now_unix;
use crate::credentials::named::{regenerate, revoke_named};
use crate::credentials::signing::TokenClaims;
use crate::credentials::CredentialError;
use crate::grants::{Grant, GrantClaim};
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

/// The optional `tiles` parameter: a tile grant as JSON (docs/grants.md),
/// checked on its own (400 `invalid_tiles`); the generator token holds no
/// grant, so any valid one may be asked for.
pub fn parse_tiles_param(query: Option<&str>) -> Result<Option<Grant>, IssueError> {
    let pairs = super::form_pairs(query.unwrap_or("").as_bytes())?;
    let mut it = pairs.iter().filter(|(n, _)| n == "tiles");
    let Some((_, v)) = it.next() else { return Ok(None) };
    if it.next().is_some() {
        return Err(IssueError::InvalidRequest("parameter tiles is repeated".into()));
    }
    let claim: GrantClaim = serde_json::from_str(v).map_err(|e| {
        IssueError::InvalidTiles(format!(
            "parameter tiles must be a JSON object of minzoom, maxzoom, bounds and layers: {e}"
        ))
    })?;
    let g = Grant::from_claim(&claim).map_err(|e| IssueError::InvalidTiles(format!("tiles: {e}")))?;
    Ok((!g.is_unlimited()).then_some(g))
}

async fn generator_from_bearer(
    ctx: &Ctx<'_>,
    parts: &http::request::Parts,
) -> Result<std::sync::Arc<crate::store::GeneratorToken>, IssueError> {
    // Refused before the token is looked at when this address failed too
    // often (list and delete reach here without another check).
    ctx.issuer.check_blocked(ctx.ip())?;
    let text = crate::auth::extract::bearer(&parts.headers)
        .map_err(|_| ctx.failed(IssueError::Unauthorized("malformed Authorization header")))?
        .ok_or(IssueError::Unauthorized(
            "an access-generator token is required as a bearer token",
        ))?;
    match ctx.generator(text).await? {
        Some(g) if !ctx.verifier.revocations.is_revoked(None, Some(&g.id)) => Ok(g),
        _ => Err(ctx.failed(IssueError::Unauthorized("the access-generator token is invalid"))),
    }
}

pub async fn create(ctx: &Ctx<'_>, parts: &http::request::Parts) -> Result<Resp, IssueError> {
    ctx.require(parts, &[Method::POST])?;
    ctx.issuer.check_blocked(ctx.ip())?;
    let g = generator_from_bearer(ctx, parts).await?;
    let req = parse_query(parts.uri.query())?;
    let tiles = parse_tiles_param(parts.uri.query())?;
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
        tiles: tiles.as_ref().map(Grant::to_claim),
    };
    let token = ctx.sign(
        &TokenClaims::new(ctx.cfg, "named", &g.uid, &id, &scope, now, exp)
            .org(Some(&g.org_id))
            .user(&g.uid, Some(&g.username))
            .credential(&g.id)
            .read_only(read_only)
            .tiles(tiles.as_ref()),
    )?;
    // Recorded before it is handed out: a token that exists is revocable.
    ctx.store.insert_named_token(&record).await?;
    // An operator lowering the ceiling meanwhile revokes the named tokens
    // beyond it that are stored when it looks; this one may have been
    // stored just after. Read the ceiling again now that it is stored: if
    // it no longer holds the scopes, revoke the token and refuse.
    let now_ceiling = ctx
        .store
        .principal_limits(&crate::store::Principal::User(g.uid.clone()))
        .await?
        .filter(|l| !l.disabled)
        .map(|l| ctx.cfg.ceiling(&l));
    if !now_ceiling.is_some_and(|c| scopes.iter().all(|s| c.contains(s))) {
        revoke_named(&ctx.op(&g.uid), &record.id, None).await?;
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
    if let Some(g) = &t.tiles {
        v["tiles"] = serde_json::to_value(g).unwrap_or_default();
    }
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
    let list = ctx.store.list_named_tokens(Some(&uid)).await?;
    let items: Vec<_> = list.iter().map(|t| describe(t, None)).collect();
    Ok(json(StatusCode::OK, &serde_json::json!({ "tokens": items })))
}

pub async fn item(ctx: &Ctx<'_>, parts: &http::request::Parts, id: &str) -> Result<Resp, IssueError> {
    ctx.require(parts, &[Method::DELETE])?;
    let uid = user_of(ctx, parts).await?;
    match revoke_named(&ctx.op(&uid), id, Some(&uid)).await {
        Ok(_) => Ok(crate::http::empty(StatusCode::NO_CONTENT)),
        Err(CredentialError::NotFound(_)) => Err(IssueError::NotFound("no such named token")),
        Err(e) => Err(e.into()),
    }
}

pub async fn generator(ctx: &Ctx<'_>, parts: &http::request::Parts) -> Result<Resp, IssueError> {
    ctx.require(parts, &[Method::GET, Method::POST])?;
    let (_, uid) = ctx.login_user(parts).await?;
    if parts.method == Method::GET {
        let (g, text) = ctx
            .store
            .generator_token(&uid)
            .await?
            .ok_or(IssueError::NotFound("this user has no access-generator token"))?;
        return Ok(json(
            StatusCode::OK,
            &serde_json::json!({ "id": g.id, "token": text, "createdAt": rfc3339(g.created_at) }),
        ));
    }
    let (g, text) = regenerate(&ctx.op(&uid), &uid).await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "id": g.id, "token": text, "createdAt": rfc3339(g.created_at) }),
    ))
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

    /// The named-token endpoints on an in-memory store, without a server:
    /// a minted token verifies; deleting it revokes it here at once.
    #[tokio::test]
    async fn a_named_token_is_minted_verified_and_revoked_without_a_server() {
        use crate::credentials::principals;
        let r = crate::credentials::tests::Replica::new("[named_tokens]\nread_only_all = [\"tiles:read\"]\n").await;
        principals::create_org(&r.op(), "acme", None).await.unwrap();
        let u = principals::create_user(&r.op(), "acme", "alice", Some("a long password"), None)
            .await
            .unwrap();
        let (_, generator) = r.store.generator_token(&u.uid).await.unwrap().unwrap();
        let issuer = crate::issue::Issuer::new(&r.cfg);
        let ctx = Ctx {
            verifier: &r.verifier,
            store: &r.store,
            issuer: &issuer,
            secrets: &r.secrets,
            cfg: &r.cfg,
            client: "127.0.0.1".parse().unwrap(),
        };
        let request = |method: Method, uri: String| {
            http::Request::builder()
                .method(method)
                .uri(uri)
                .header("authorization", format!("Bearer {generator}"))
                .body(())
                .unwrap()
                .into_parts()
                .0
        };
        let e = &r.cfg.endpoints;
        let parts = request(
            Method::POST,
            format!(
                "{}?name=map&validTime=60&action=read_only&resourceType=all",
                e.named_token
            ),
        );
        let resp = create(&ctx, &parts).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .ok()
            .unwrap()
            .to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let token = v["token"].as_str().unwrap();
        let id = v["id"].as_str().unwrap();

        let verified = r.verifier.verify(token).await.unwrap();
        assert_eq!(verified.scope(), "tiles:read");
        assert_eq!(verified.token_type(), "named");
        assert_eq!(verified.uid(), Some(u.uid.as_str()));
        assert_eq!(verified.jti(), Some(id));

        let parts = request(Method::DELETE, format!("{}/{id}", e.named_tokens));
        let resp = item(&ctx, &parts, id).await.unwrap();
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        assert!(r.revocations.is_revoked(Some(id), None));
        assert!(
            r.verifier.verify(token).await.is_err(),
            "revoked on this replica at once"
        );
        // Another user's or an unknown id: no such named token.
        let parts = request(Method::DELETE, format!("{}/ntk_missing", e.named_tokens));
        let missing = item(&ctx, &parts, "ntk_missing").await;
        assert!(matches!(missing, Err(IssueError::NotFound(_))));
    }
}
