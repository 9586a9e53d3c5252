//! `POST /oauth/token`: the service-account JSON grant (seed 000) and the
//! OAuth 2.0 form grants (RFC 6749: client_credentials with
//! client_secret_basic / client_secret_post / client_secret_jwt per RFC
//! 7523, and password for a temporary login token); RFC 7662 introspection
//! and RFC 7009 revocation.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::header::AUTHORIZATION;
use http::StatusCode;
use hyper::body::Incoming;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::exchange::{principal_id, remaining, usable};
use super::signer::{sign, TokenClaims};
use super::{media_type, read_body, subset, Ctx, IssueError, MANAGE_SCOPE};
use crate::auth::now_unix;
use crate::http::{json, Resp};
use crate::store::{random_token, Client};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

pub async fn token(ctx: &Ctx<'_>, parts: http::request::Parts, body: Incoming) -> Result<Resp, IssueError> {
    ctx.require(&parts, &[http::Method::POST])?;
    ctx.gw.issuer.check_blocked(ctx.ip())?;
    let body = read_body(body, ctx.cfg.limits.token_body_bytes).await?;
    match media_type(&parts).as_deref() {
        Some("application/json") => json_grant(ctx, &body).await,
        Some("application/x-www-form-urlencoded") => {
            let form = Form::parse(&body)?;
            match form.get("grant_type") {
                Some("client_credentials") => client_credentials(ctx, &parts, &form).await,
                Some("password") if ctx.cfg.tokens.password_grant => password(ctx, &form).await,
                Some(_) => Err(IssueError::UnsupportedGrantType),
                None => Err(IssueError::InvalidRequest("grant_type is required".into())),
            }
        }
        _ => Err(IssueError::InvalidRequest(
            "Content-Type must be application/x-www-form-urlencoded or application/json".into(),
        )),
    }
}

/// Form parameters; a repeated parameter is an error (RFC 6749 §3.1).
pub struct Form(Vec<(String, String)>);

impl Form {
    pub fn parse(body: &[u8]) -> Result<Form, IssueError> {
        let pairs = super::form_pairs(body)?;
        for (i, (k, _)) in pairs.iter().enumerate() {
            if pairs[..i].iter().any(|(k2, _)| k2 == k) {
                return Err(IssueError::InvalidRequest(format!("parameter {k} is repeated")));
            }
        }
        Ok(Form(pairs))
    }
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

async fn json_grant(ctx: &Ctx<'_>, body: &[u8]) -> Result<Resp, IssueError> {
    let m = super::parse_object(body)?;
    match m.get("grantType") {
        Some(serde_json::Value::String(s)) if s == "exchange_api_key_access_token" => {}
        Some(serde_json::Value::String(_)) => return Err(IssueError::UnsupportedGrantType),
        _ => {
            return Err(IssueError::InvalidRequest(
                "grantType must be \"exchange_api_key_access_token\"".into(),
            ))
        }
    }
    let Some(serde_json::Value::String(api_key)) = m.get("apiKey") else {
        return Err(IssueError::InvalidRequest("apiKey must be a string".into()));
    };
    let now = now_unix();
    let key = match ctx.api_key(api_key).await? {
        Some(k) if usable(ctx, &k.key, now) => k,
        _ => {
            return Err(ctx.gw.issuer.record_failure(
                ctx.ip(),
                IssueError::InvalidGrant("the API key is invalid, expired or revoked"),
            ))
        }
    };
    let ttl = ctx.cfg.tokens.default_ttl.as_secs().min(remaining(&key.key, now));
    let exp = now + ttl as i64;
    let id = random_token("", 16);
    let sub = format!("tok_short_{id}");
    let scope = key.key.scopes.join(" ");
    let token = sign(
        ctx.gw,
        &TokenClaims {
            iss: &ctx.cfg.tokens.issuer,
            aud: &ctx.cfg.tokens.audience,
            sub: &sub,
            exp: Some(exp),
            iat: now,
            nbf: now,
            jti: &id,
            org_id: Some(&key.key.org_id),
            scope: &scope,
            token_type: "access",
            uid: Some(principal_id(&key.key.principal)),
            username: key.username.as_deref(),
            cid: Some(&key.key.id),
            ro: false,
        },
    )?;
    ctx.touch(&key, now);
    crate::admin::metrics::token_issued("service_account");
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "accessToken": token, "expiresAt": exp }),
    ))
}

/// Authenticate the client by exactly one method.
async fn authenticate_client(ctx: &Ctx<'_>, parts: &http::request::Parts, form: &Form) -> Result<Client, IssueError> {
    let basic = basic_credentials(parts)?;
    let post = form
        .get("client_secret")
        .map(|s| (form.get("client_id").unwrap_or(""), s));
    let assertion = form.get("client_assertion");
    let methods = basic.is_some() as u8 + post.is_some() as u8 + assertion.is_some() as u8;
    if methods > 1 {
        return Err(IssueError::InvalidRequest(
            "use exactly one client authentication method".into(),
        ));
    }
    let fail = |m| ctx.gw.issuer.record_failure(ctx.ip(), IssueError::InvalidClient(m));
    if let Some(a) = assertion {
        if form.get("client_assertion_type") != Some(ASSERTION_TYPE) {
            return Err(IssueError::InvalidRequest(format!(
                "client_assertion_type must be {ASSERTION_TYPE}"
            )));
        }
        return assertion_client(ctx, a).await.map_err(|e| match e {
            IssueError::InvalidClient(m) => fail(m),
            other => other,
        });
    }
    let (id, secret) = match (basic, post) {
        (Some((i, s)), _) => (i, s.to_owned()),
        (None, Some((i, s))) => (i.to_owned(), s.to_owned()),
        _ => return Err(fail("client authentication is required")),
    };
    let Some((client, stored)) = ctx.gw.store.client_with_secret(&id).await? else {
        return Err(fail("client authentication failed"));
    };
    if stored.ct_eq(secret.as_bytes()).into() && !ctx.gw.verifier.revocations.is_revoked(None, Some(&client.client_id))
    {
        Ok(client)
    } else {
        Err(fail("client authentication failed"))
    }
}

/// `Authorization: Basic` client credentials (form-urlencoded parts,
/// RFC 6749 §2.3.1), if present.
fn basic_credentials(parts: &http::request::Parts) -> Result<Option<(String, String)>, IssueError> {
    let Some(v) = parts.headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let v = v
        .to_str()
        .map_err(|_| IssueError::InvalidClient("malformed Authorization header"))?;
    let Some((scheme, rest)) = v.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let raw = STANDARD
        .decode(rest.trim())
        .map_err(|_| IssueError::InvalidClient("malformed Basic credentials"))?;
    let raw = String::from_utf8(raw).map_err(|_| IssueError::InvalidClient("malformed Basic credentials"))?;
    let (id, secret) = raw
        .split_once(':')
        .ok_or(IssueError::InvalidClient("malformed Basic credentials"))?;
    let dec = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    Ok(Some((dec(id), dec(secret))))
}

#[derive(Deserialize)]
struct AssertionPeek {
    iss: String,
    sub: String,
}

#[derive(Deserialize)]
struct AssertionClaims {
    exp: i64,
    jti: Option<String>,
}

/// RFC 7523 client_secret_jwt: HS256 with the client secret, iss = sub =
/// client_id, aud = the token endpoint URL, short exp, single-use jti.
async fn assertion_client(ctx: &Ctx<'_>, assertion: &str) -> Result<Client, IssueError> {
    let bad = IssueError::InvalidClient("the client assertion is invalid");
    let peek = jsonwebtoken::dangerous::insecure_decode::<AssertionPeek>(assertion)
        .map_err(|_| IssueError::InvalidClient("the client assertion is malformed"))?;
    if peek.claims.iss != peek.claims.sub {
        return Err(bad);
    }
    let Some((client, secret)) = ctx.gw.store.client_with_secret(&peek.claims.iss).await? else {
        return Err(bad);
    };
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.leeway = ctx.cfg.tokens.leeway.as_secs();
    v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    v.set_issuer(&[&client.client_id]);
    v.set_audience(&[ctx.url(&ctx.cfg.endpoints.oauth_token)]);
    let data = jsonwebtoken::decode::<AssertionClaims>(assertion, &jsonwebtoken::DecodingKey::from_secret(&secret), &v)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                IssueError::InvalidClient("the client assertion has expired")
            }
            jsonwebtoken::errors::ErrorKind::InvalidAudience => {
                IssueError::InvalidClient("the client assertion audience is wrong")
            }
            _ => IssueError::InvalidClient("the client assertion is invalid"),
        })?;
    let now = now_unix();
    // `tokens.max_assertion_lifetime` (1h by default: authlib's assertions
    // live one hour), plus the leeway for a client clock running ahead.
    // The single-use jti below is kept until exp + 5 minutes, which covers
    // any lifetime (the leeway is at most 5 minutes).
    let longest = ctx.cfg.tokens.max_assertion_lifetime.as_secs() + ctx.cfg.tokens.leeway.as_secs();
    if data.claims.exp.saturating_sub(now) > i64::try_from(longest).unwrap_or(i64::MAX) {
        return Err(IssueError::InvalidClient("the client assertion lives too long"));
    }
    let jti = data
        .claims
        .jti
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or(IssueError::InvalidClient("the client assertion needs a jti"))?;
    if !ctx
        .gw
        .store
        .use_assertion_jti(&client.client_id, &jti, data.claims.exp, now)
        .await?
    {
        return Err(IssueError::InvalidClient("the client assertion was already used"));
    }
    if ctx.gw.verifier.revocations.is_revoked(None, Some(&client.client_id)) {
        return Err(bad);
    }
    Ok(client)
}

async fn client_credentials(ctx: &Ctx<'_>, parts: &http::request::Parts, form: &Form) -> Result<Resp, IssueError> {
    let client = authenticate_client(ctx, parts, form).await?;
    let scope = match form.get("scope") {
        Some(s) => subset(s, &client.scopes)
            .map_err(|bad| IssueError::InvalidScope(format!("scope \"{bad}\" exceeds the client's scopes")))?
            .join(" "),
        None => client.scopes.join(" "),
    };
    // The token names the client's owner (`uid`, `username`), as `/me` shows.
    let owner = ctx.gw.store.find_user(&client.owner_uid).await?;
    let now = now_unix();
    let ttl = ctx.cfg.tokens.default_ttl.as_secs();
    let jti = random_token("", 16);
    let token = sign(
        ctx.gw,
        &TokenClaims {
            iss: &ctx.cfg.tokens.issuer,
            aud: &ctx.cfg.tokens.audience,
            sub: &client.client_id,
            exp: Some(now + ttl as i64),
            iat: now,
            nbf: now,
            jti: &jti,
            org_id: Some(&client.org_id),
            scope: &scope,
            token_type: "access",
            uid: Some(&client.owner_uid),
            username: owner.as_ref().map(|u| u.username.as_str()),
            cid: Some(&client.client_id),
            ro: false,
        },
    )?;
    crate::admin::metrics::token_issued("client_credentials");
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "access_token": token, "token_type": "Bearer", "expires_in": ttl, "scope": scope }),
    ))
}

async fn password(ctx: &Ctx<'_>, form: &Form) -> Result<Resp, IssueError> {
    let (Some(username), Some(pw)) = (form.get("username"), form.get("password")) else {
        return Err(IssueError::InvalidRequest("username and password are required".into()));
    };
    let Some(user) = ctx.gw.store.verify_password(username, pw).await? else {
        return Err(ctx
            .gw
            .issuer
            .record_failure(ctx.ip(), IssueError::InvalidGrant("invalid username or password")));
    };
    let now = now_unix();
    let ttl = ctx.cfg.tokens.login_ttl.as_secs();
    let jti = random_token("", 16);
    let token = sign(
        ctx.gw,
        &TokenClaims {
            iss: &ctx.cfg.tokens.issuer,
            aud: &ctx.cfg.tokens.audience,
            sub: &user.uid,
            exp: Some(now + ttl as i64),
            iat: now,
            nbf: now,
            jti: &jti,
            org_id: Some(&user.org_id),
            scope: MANAGE_SCOPE,
            token_type: "login",
            uid: Some(&user.uid),
            username: Some(&user.username),
            cid: None,
            ro: false,
        },
    )?;
    crate::admin::metrics::token_issued("password");
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "access_token": token, "token_type": "Bearer", "expires_in": ttl, "scope": MANAGE_SCOPE }),
    ))
}

/// Who calls introspection or revocation: an authenticated client or the
/// holder of a valid token. Returns the caller's user id.
async fn caller(
    ctx: &Ctx<'_>,
    parts: &http::request::Parts,
    form: &Form,
) -> Result<(String, Option<String>), IssueError> {
    if basic_credentials(parts)?.is_some()
        || form.get("client_secret").is_some()
        || form.get("client_assertion").is_some()
    {
        let c = authenticate_client(ctx, parts, form).await?;
        return Ok((c.owner_uid, Some(c.client_id)));
    }
    let v = ctx
        .bearer_token(parts)
        .await
        .map_err(|_| IssueError::InvalidClient("client authentication or a bearer token is required"))?;
    Ok((v.uid.as_deref().unwrap_or(&v.sub).to_owned(), None))
}

pub async fn introspect(ctx: &Ctx<'_>, parts: http::request::Parts, body: Incoming) -> Result<Resp, IssueError> {
    ctx.require(&parts, &[http::Method::POST])?;
    // Client authentication happens here too: a blocked address is refused
    // before its credentials are checked, as on the token endpoint.
    ctx.gw.issuer.check_blocked(ctx.ip())?;
    let body = read_body(body, ctx.cfg.limits.token_body_bytes).await?;
    let form = Form::parse(&body)?;
    caller(ctx, &parts, &form).await?;
    let token = form
        .get("token")
        .ok_or_else(|| IssueError::InvalidRequest("token is required".into()))?;
    let Ok(v) = ctx.gw.verifier.verify(token).await else {
        return Ok(json(StatusCode::OK, &serde_json::json!({ "active": false })));
    };
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "active": true,
            "scope": &*v.scope,
            "sub": &*v.sub,
            "uid": v.uid.as_deref(),
            "username": v.username.as_deref(),
            "org_id": v.org_id.as_deref(),
            "token_type": &*v.token_type,
            "exp": v.exp,
            "iat": v.iat,
            "iss": &*v.issuer,
            "jti": v.jti.as_deref(),
            "client_id": v.cid.as_deref().filter(|c| c.starts_with("tgc_")),
        }),
    ))
}

pub async fn revoke(ctx: &Ctx<'_>, parts: http::request::Parts, body: Incoming) -> Result<Resp, IssueError> {
    ctx.require(&parts, &[http::Method::POST])?;
    // Client authentication happens here too: a blocked address is refused
    // before its credentials are checked, as on the token endpoint.
    ctx.gw.issuer.check_blocked(ctx.ip())?;
    let body = read_body(body, ctx.cfg.limits.token_body_bytes).await?;
    let form = Form::parse(&body)?;
    let (caller_uid, _) = caller(ctx, &parts, &form).await?;
    let token = form
        .get("token")
        .ok_or_else(|| IssueError::InvalidRequest("token is required".into()))?;
    // RFC 7009 §2.2: an invalid or unknown token is answered 200 as well.
    if let Ok(v) = ctx.gw.verifier.verify(token).await {
        let owner = v.uid.as_deref().unwrap_or(&v.sub);
        if v.own && owner == caller_uid {
            if let Some(jti) = v.jti.as_deref() {
                if v.token_type.as_ref() == "named" {
                    ctx.gw.store.revoke_named_token(jti, None, now_unix()).await?;
                }
                let until = ctx.cfg.tokens.revoked_until(v.exp);
                super::revoke_id(ctx.gw, jti, until, &caller_uid, "token.revoked").await?;
            }
        }
    }
    Ok(crate::http::empty(StatusCode::OK))
}
