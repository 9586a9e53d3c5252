//! `GET /me`, JWKS and RFC 8414 metadata.

use http::{Method, StatusCode};

use super::{Ctx, IssueError};
use crate::http::{json, Resp};

pub async fn me(ctx: &Ctx<'_>, parts: &http::request::Parts) -> Result<Resp, IssueError> {
    ctx.require(parts, &[Method::GET, Method::HEAD])?;
    let v = ctx.bearer_token(parts).await?;
    if !v.own {
        // An external issuer's token is no local user: its namespaced
        // subject and issuer, what tilegate grants it, and null for every
        // local identity field.
        return Ok(json(
            StatusCode::OK,
            &serde_json::json!({
                "uid": null,
                "username": null,
                "org_id": null,
                "sub": v.sub(),
                "scope": v.scope(),
                "token_type": v.token_type(),
                "exp": v.exp,
                "issuer": v.issuer_name(),
                "external": true,
            }),
        ));
    }
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "uid": v.uid().unwrap_or(v.sub()),
            "username": v.username(),
            "sub": v.sub(),
            "org_id": v.org_id(),
            "scope": v.scope(),
            "token_type": v.token_type(),
            "exp": v.exp,
            "issuer": v.issuer_name(),
            "external": false,
        }),
    ))
}

pub fn jwks(ctx: &Ctx<'_>, parts: &http::request::Parts) -> Result<Resp, IssueError> {
    ctx.require(parts, &[Method::GET, Method::HEAD])?;
    let mut r = json(StatusCode::OK, &ctx.verifier.keys().jwks());
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("public, max-age=300"),
    );
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/jwk-set+json"),
    );
    Ok(r)
}

pub fn metadata(ctx: &Ctx<'_>, parts: &http::request::Parts) -> Result<Resp, IssueError> {
    ctx.require(parts, &[Method::GET, Method::HEAD])?;
    let e = &ctx.cfg.endpoints;
    let mut grants = vec!["client_credentials"];
    if ctx.cfg.tokens.password_grant {
        grants.push("password");
    }
    let scopes: Vec<&String> = ctx.cfg.scopes.keys().collect();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "issuer": &*ctx.cfg.tokens.issuer,
            "token_endpoint": ctx.url(&e.oauth_token),
            "jwks_uri": ctx.url(&e.jwks),
            "introspection_endpoint": ctx.url(&e.introspect),
            "revocation_endpoint": ctx.url(&e.revoke),
            "grant_types_supported": grants,
            "response_types_supported": [],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "client_secret_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["HS256"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "client_secret_jwt", "bearer"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "client_secret_jwt", "bearer"],
            "scopes_supported": scopes,
            "service_documentation": "https://github.com/tilegate/tilegate/tree/main/docs",
        }),
    ))
}
