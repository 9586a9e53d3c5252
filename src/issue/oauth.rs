//! `POST /oauth/token`: the service-account JSON grant and the
//! OAuth 2.0 form grants (RFC 6749: client_credentials with
//! client_secret_basic / client_secret_post / client_secret_jwt per RFC
//! 7523, and password for a temporary login token); RFC 7662 introspection
//! and RFC 7009 revocation.

use crate::body::ClientBody;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::header::AUTHORIZATION;
use http::StatusCode;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::exchange::{
    ceiling_of, describe_grant, key_ceiling, narrow_grant, parse_origins, parse_origins_text, parse_tiles,
    principal_id, remaining, usable,
};
use super::{grant, media_type, read_body, Beyond, Credential, CredentialKind, Ctx, IssueError, MANAGE_SCOPE};
use crate::clock::now_unix;
use crate::credentials::ceilings::Ceiling;
use crate::credentials::signing::TokenClaims;
use crate::http::{json, Resp};
use crate::store::{random_token, Client};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

pub async fn token(ctx: &Ctx<'_>, parts: http::request::Parts, body: &mut ClientBody) -> Result<Resp, IssueError> {
    ctx.require(&parts, &[http::Method::POST])?;
    ctx.issuer.check_blocked(ctx.ip())?;
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

/// Form parameters; a repeated parameter is an error (RFC 6749 §3.1), and
/// so are more than [`super::MAX_PARAMS`] of them. Linear in the body: the
/// repeat check is one hash-set insertion per parameter.
#[derive(Debug)]
pub struct Form(Vec<(String, String)>);

impl Form {
    pub fn parse(body: &[u8]) -> Result<Form, IssueError> {
        let pairs = super::form_pairs(body)?;
        let mut seen = std::collections::HashSet::with_capacity(pairs.len());
        for (k, _) in &pairs {
            if !seen.insert(k.as_str()) {
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
    // Optional narrowing, as on the API-key exchange.
    let asked_tiles = parse_tiles(&m)?;
    let asked_origins = parse_origins(&m)?;
    let now = now_unix();
    let key = match ctx.api_key(api_key).await? {
        Some(k) if usable(ctx, &k, now) => k,
        _ => {
            return Err(ctx.issuer.record_failure(
                ctx.ip(),
                IssueError::InvalidGrant("the API key is invalid, expired or revoked"),
            ))
        }
    };
    // All the key's scopes that are within its owner's ceiling.
    let scope = grant(None, &key.key.scopes, &ceiling_of(ctx, &key))
        .map_err(|(_, bad)| {
            IssueError::InvalidScope(format!(
                "scope \"{bad}\" is beyond the scope ceiling of the key's owner"
            ))
        })?
        .join(" ");
    // The key's grant (within its service account's), or narrower.
    let parent = key_ceiling(&key)?;
    let (tiles, origins) = narrow_grant(&parent, asked_tiles.as_ref(), asked_origins.as_deref(), "API key")?;
    let ttl = ctx.cfg.tokens.default_ttl.as_secs().min(remaining(&key.key, now));
    let exp = now + ttl as i64;
    let id = random_token("", 16);
    let sub = format!("tok_short_{id}");
    let token = ctx.sign(
        &TokenClaims::new(ctx.cfg, "access", &sub, &id, &scope, now, Some(exp))
            .org(Some(&key.key.org_id))
            .user(principal_id(&key.key.principal), key.username())
            .credential(&key.key.id)
            .tiles(tiles.as_ref())
            .origins(origins),
    )?;
    ctx.touch(&key, now);
    crate::metrics::token_issued("service_account");
    let mut out = serde_json::json!({ "accessToken": token, "expiresAt": exp });
    describe_grant(&mut out, tiles.as_ref(), origins);
    Ok(json(StatusCode::OK, &out))
}

/// Authenticate the client by exactly one method. A failure with a client
/// id named (Basic, form, or an assertion's issuer) counts against that
/// client id as well as the address; a success proves the address for it.
async fn authenticate_client(ctx: &Ctx<'_>, parts: &http::request::Parts, form: &Form) -> Result<Client, IssueError> {
    let mut named: Option<Credential> = None;
    let r = authenticate_client_as(ctx, parts, form, &mut named).await;
    let issuer = &ctx.issuer;
    match (r, named) {
        (Ok(c), Some(cred)) => {
            issuer.credential_proven(ctx.ip(), cred);
            Ok(c)
        }
        (Ok(c), None) => Ok(c),
        (Err(IssueError::InvalidClient(m)), Some(cred)) => {
            Err(issuer.credential_failure(ctx.ip(), cred, IssueError::InvalidClient(m)))
        }
        (Err(IssueError::InvalidClient(m)), None) => Err(ctx.failed(IssueError::InvalidClient(m))),
        (Err(e), _) => Err(e),
    }
}

/// [`authenticate_client`]'s checks; sets `named` once a client id is
/// known, and refuses a blocked one from an address that has not proven
/// it. Failures are `InvalidClient`, counted by the caller.
async fn authenticate_client_as(
    ctx: &Ctx<'_>,
    parts: &http::request::Parts,
    form: &Form,
    named: &mut Option<Credential>,
) -> Result<Client, IssueError> {
    let issuer = &ctx.issuer;
    let mut name = |id: &str| -> Result<(), IssueError> {
        let cred = issuer.credential(CredentialKind::Client, id);
        *named = Some(cred);
        issuer.check_credential(ctx.ip(), cred)
    };
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
    if let Some(a) = assertion {
        if form.get("client_assertion_type") != Some(ASSERTION_TYPE) {
            return Err(IssueError::InvalidRequest(format!(
                "client_assertion_type must be {ASSERTION_TYPE}"
            )));
        }
        return assertion_client(ctx, a, &mut name).await;
    }
    let (id, secret) = match (basic, post) {
        (Some((i, s)), _) => (i, s.to_owned()),
        (None, Some((i, s))) => (i.to_owned(), s.to_owned()),
        _ => return Err(IssueError::InvalidClient("client authentication is required")),
    };
    name(&id)?;
    let Some((client, stored)) = ctx.store.client_with_secret(&id).await? else {
        return Err(IssueError::InvalidClient("client authentication failed"));
    };
    if stored.ct_eq(secret.as_bytes()).into()
        && client.revoked_at.is_none()
        && !ctx.verifier.revocations.is_revoked(None, Some(&client.client_id))
    {
        Ok(client)
    } else {
        Err(IssueError::InvalidClient("client authentication failed"))
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
async fn assertion_client(
    ctx: &Ctx<'_>,
    assertion: &str,
    name: &mut impl FnMut(&str) -> Result<(), IssueError>,
) -> Result<Client, IssueError> {
    let bad = IssueError::InvalidClient("the client assertion is invalid");
    let peek = jsonwebtoken::dangerous::insecure_decode::<AssertionPeek>(assertion)
        .map_err(|_| IssueError::InvalidClient("the client assertion is malformed"))?;
    if peek.claims.iss != peek.claims.sub {
        return Err(bad);
    }
    name(&peek.claims.iss)?;
    let Some((client, secret)) = ctx.store.client_with_secret(&peek.claims.iss).await? else {
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
        .store
        .use_assertion_jti(&client.client_id, &jti, data.claims.exp, now)
        .await?
    {
        return Err(IssueError::InvalidClient("the client assertion was already used"));
    }
    if client.revoked_at.is_some() || ctx.verifier.revocations.is_revoked(None, Some(&client.client_id)) {
        return Err(bad);
    }
    Ok(client)
}

/// The `tiles` form parameter: a tile grant as JSON (400 `invalid_tiles`).
fn form_tiles(form: &Form) -> Result<Option<crate::grants::GrantClaim>, IssueError> {
    let Some(text) = form.get("tiles") else {
        return Ok(None);
    };
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        IssueError::InvalidTiles(format!(
            "parameter tiles must be a JSON object of minzoom, maxzoom, bounds and layers: {e}"
        ))
    })?;
    let mut m = serde_json::Map::new();
    m.insert("tiles".into(), v);
    parse_tiles(&m)
}

async fn client_credentials(ctx: &Ctx<'_>, parts: &http::request::Parts, form: &Form) -> Result<Resp, IssueError> {
    // The optional narrowing, checked before the client is (a malformed
    // request costs no authentication attempt).
    let asked_tiles = form_tiles(form)?;
    let asked_origins = parse_origins_text(form.get("allowed_origins"))?;
    let client = authenticate_client(ctx, parts, form).await?;
    // The owner's ceiling, read now: a ceiling lowered after the client was
    // made binds it too. A disabled owner's clients are revoked as well.
    let owner = match ctx
        .store
        .principal_limits(&crate::store::Principal::User(client.owner_uid.clone()))
        .await?
    {
        Some(l) if !l.disabled => l,
        _ => {
            return Err(ctx
                .issuer
                .record_failure(ctx.ip(), IssueError::InvalidClient("client authentication failed")))
        }
    };
    // Never the credential-management scope, whatever the client was given.
    let ceiling: Vec<String> = ctx
        .cfg
        .ceiling(&owner)
        .into_iter()
        .filter(|s| s != MANAGE_SCOPE)
        .collect();
    let scope = grant(form.get("scope"), &client.scopes, &ceiling)
        .map_err(|(why, bad)| {
            IssueError::InvalidScope(match why {
                Beyond::Credential => format!("scope \"{bad}\" exceeds the client's scopes"),
                Beyond::Ceiling => format!("scope \"{bad}\" is beyond the scope ceiling of the client's owner"),
            })
        })?
        .join(" ");
    let parent = Ceiling::of(&client.tiles, &client.allowed_origins);
    let (tiles, origins) = narrow_grant(&parent, asked_tiles.as_ref(), asked_origins.as_deref(), "client")?;
    let now = now_unix();
    let ttl = ctx.cfg.tokens.default_ttl.as_secs();
    let jti = random_token("", 16);
    let token = ctx.sign(
        &TokenClaims::new(
            ctx.cfg,
            "access",
            &client.client_id,
            &jti,
            &scope,
            now,
            Some(now + ttl as i64),
        )
        .org(Some(&client.org_id))
        .user(&client.owner_uid, Some(&owner.name))
        .credential(&client.client_id)
        .tiles(tiles.as_ref())
        .origins(origins),
    )?;
    crate::metrics::token_issued("client_credentials");
    let mut out =
        serde_json::json!({ "access_token": token, "token_type": "Bearer", "expires_in": ttl, "scope": scope });
    describe_grant(&mut out, tiles.as_ref(), origins);
    Ok(json(StatusCode::OK, &out))
}

async fn password(ctx: &Ctx<'_>, form: &Form) -> Result<Resp, IssueError> {
    let (Some(username), Some(pw)) = (form.get("username"), form.get("password")) else {
        return Err(IssueError::InvalidRequest("username and password are required".into()));
    };
    // Counted per username too (whether it exists or not, alike), so an
    // attack spread over many addresses is slowed; checked before argon2.
    let issuer = &ctx.issuer;
    let cred = issuer.credential(CredentialKind::Username, username);
    issuer.check_credential(ctx.ip(), cred)?;
    let Some(user) = ctx.store.verify_password(username, pw).await? else {
        return Err(issuer.credential_failure(
            ctx.ip(),
            cred,
            IssueError::InvalidGrant("invalid username or password"),
        ));
    };
    issuer.credential_proven(ctx.ip(), cred);
    let now = now_unix();
    let ttl = ctx.cfg.tokens.login_ttl.as_secs();
    let jti = random_token("", 16);
    let token = ctx.sign(
        &TokenClaims::new(
            ctx.cfg,
            "login",
            &user.uid,
            &jti,
            MANAGE_SCOPE,
            now,
            Some(now + ttl as i64),
        )
        .org(Some(&user.org_id))
        .user(&user.uid, Some(&user.username))
        // Revocable as a whole: disabling the user or resetting the
        // password revokes this id (and gives the user a new one).
        .credential(&user.login_id),
    )?;
    crate::metrics::token_issued("password");
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
    let basic = basic_credentials(parts).map_err(|e| match e {
        IssueError::InvalidClient(m) => ctx.failed(IssueError::InvalidClient(m)),
        other => other,
    })?;
    if basic.is_some() || form.get("client_secret").is_some() || form.get("client_assertion").is_some() {
        let c = authenticate_client(ctx, parts, form).await?;
        return Ok((c.owner_uid, Some(c.client_id)));
    }
    // A bearer token that was sent and fails is counted (in bearer_token);
    // past the quota the answer stays a 429.
    let v = ctx.bearer_token(parts).await.map_err(|e| match e {
        e @ (IssueError::TooManyRequests(_) | IssueError::Store(_)) => e,
        _ => IssueError::InvalidClient("client authentication or a bearer token is required"),
    })?;
    // Only the gateway's own tokens name a tilegate user; an external
    // issuer's token is no caller here.
    if !v.own {
        return Err(IssueError::InvalidClient(
            "client authentication or a bearer token is required",
        ));
    }
    Ok((v.uid().unwrap_or(v.sub()).to_owned(), None))
}

pub async fn introspect(ctx: &Ctx<'_>, parts: http::request::Parts, body: &mut ClientBody) -> Result<Resp, IssueError> {
    ctx.require(&parts, &[http::Method::POST])?;
    // Client authentication happens here too: a blocked address is refused
    // before its credentials are checked, as on the token endpoint.
    ctx.issuer.check_blocked(ctx.ip())?;
    let body = read_body(body, ctx.cfg.limits.token_body_bytes).await?;
    let form = Form::parse(&body)?;
    caller(ctx, &parts, &form).await?;
    let token = form
        .get("token")
        .ok_or_else(|| IssueError::InvalidRequest("token is required".into()))?;
    let Ok(v) = ctx.verifier.verify(token).await else {
        return Ok(json(StatusCode::OK, &serde_json::json!({ "active": false })));
    };
    if !v.own {
        // An external issuer's token: what tilegate grants it, under its
        // namespaced subject; no local user, organization or credential.
        return Ok(json(
            StatusCode::OK,
            &serde_json::json!({
                "active": true,
                "scope": v.scope(),
                "sub": v.sub(),
                "uid": null,
                "username": null,
                "org_id": null,
                "token_type": v.token_type(),
                "exp": v.exp,
                "iat": v.iat,
                "iss": &*v.issuer,
                "issuer": v.issuer_name(),
                "external": true,
            }),
        ));
    }
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "active": true,
            "scope": v.scope(),
            "sub": v.sub(),
            "uid": v.uid(),
            "username": v.username(),
            "org_id": v.org_id(),
            "token_type": v.token_type(),
            "exp": v.exp,
            "iat": v.iat,
            "iss": &*v.issuer,
            "jti": v.jti(),
            "client_id": v.cid().filter(|c| c.starts_with("tgc_")),
            "issuer": v.issuer_name(),
            "external": false,
        }),
    ))
}

pub async fn revoke(ctx: &Ctx<'_>, parts: http::request::Parts, body: &mut ClientBody) -> Result<Resp, IssueError> {
    ctx.require(&parts, &[http::Method::POST])?;
    // Client authentication happens here too: a blocked address is refused
    // before its credentials are checked, as on the token endpoint.
    ctx.issuer.check_blocked(ctx.ip())?;
    let body = read_body(body, ctx.cfg.limits.token_body_bytes).await?;
    let form = Form::parse(&body)?;
    let (caller_uid, _) = caller(ctx, &parts, &form).await?;
    let token = form
        .get("token")
        .ok_or_else(|| IssueError::InvalidRequest("token is required".into()))?;
    // RFC 7009 §2.2: an invalid or unknown token is answered 200 as well.
    if let Ok(v) = ctx.verifier.verify(token).await {
        let owner = v.uid().unwrap_or(v.sub());
        if v.own && owner == caller_uid {
            if let Some(jti) = v.jti() {
                if v.token_type() == "named" {
                    ctx.store.revoke_named_token(jti, None, now_unix()).await?;
                }
                let until = ctx.cfg.tokens.revoked_until(v.exp);
                ctx.op(&caller_uid).revoke(jti, until, "token.revoked").await?;
            }
        }
    }
    Ok(crate::http::empty(StatusCode::OK))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issue::MAX_PARAMS;
    use proptest::prelude::*;

    fn encode(pairs: &[(String, String)]) -> String {
        serde_urlencoded::to_string(pairs).unwrap()
    }

    #[test]
    fn the_parameter_cap_is_exact() {
        let pairs = |n: usize| (0..n).map(|i| (format!("k{i}"), "v".to_string())).collect::<Vec<_>>();
        assert!(Form::parse(encode(&pairs(MAX_PARAMS)).as_bytes()).is_ok());
        let e = Form::parse(encode(&pairs(MAX_PARAMS + 1)).as_bytes()).unwrap_err();
        assert!(
            matches!(&e, IssueError::InvalidRequest(m) if m.contains("parameters")),
            "{e}"
        );
        // Empty segments are not parameters.
        let padded = format!("{}{}", "&".repeat(60_000), encode(&pairs(MAX_PARAMS)));
        assert!(Form::parse(padded.as_bytes()).is_ok());
        // The audit's body: ~64 KiB of distinct keys, refused by the cap.
        let big: String = (0..16_000).map(|i| format!("{i:x}=&")).collect();
        assert!(Form::parse(big.as_bytes()).is_err());
    }

    proptest! {
        /// Distinct names parse back to exactly what was encoded, in order.
        #[test]
        fn distinct_parameters_round_trip(
            names in proptest::collection::btree_set("[a-z_]{1,6}|[^&=]{1,4}", 0..=MAX_PARAMS),
            value in "\\PC{0,8}",
        ) {
            let pairs: Vec<(String, String)> = names.into_iter().map(|n| (n, value.clone())).collect();
            let form = Form::parse(encode(&pairs).as_bytes()).unwrap();
            prop_assert_eq!(&form.0, &pairs);
            for (k, v) in &pairs {
                prop_assert_eq!(form.get(k), Some(v.as_str()).filter(|v| !v.is_empty()));
            }
        }

        /// A repeated name is found wherever the two copies are, whatever
        /// their values.
        #[test]
        fn a_repeat_is_found_in_any_position(
            names in proptest::collection::btree_set("[a-z]{1,5}", 1..MAX_PARAMS),
            pick in any::<proptest::sample::Index>(),
            at in any::<proptest::sample::Index>(),
            value in "[a-z0-9]{0,5}",
        ) {
            let mut pairs: Vec<(String, String)> = names.into_iter().map(|n| (n, "x".to_string())).collect();
            let dup = pairs[pick.index(pairs.len())].0.clone();
            pairs.insert(at.index(pairs.len() + 1), (dup.clone(), value));
            let e = Form::parse(encode(&pairs).as_bytes()).unwrap_err();
            let repeated = matches!(&e, IssueError::InvalidRequest(m) if m == &format!("parameter {dup} is repeated"));
            prop_assert!(repeated, "{}", e);
        }
    }
}
