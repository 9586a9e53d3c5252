//! The admin API (JSON), behind the admin credential. The same operations
//! as the CLI, plus an immediate update of this replica's revocation set.
//!
//! POST /admin/v1/orgs {name} · POST /admin/v1/users {org, username, password?}
//! POST /admin/v1/service-accounts {org, name}
//! POST /admin/v1/api-keys {service_account | user, scope, expires_in?} · GET /admin/v1/api-keys[?org=]
//! DELETE /admin/v1/api-keys/{id} · GET|POST /admin/v1/users/{uid}/generator-token
//! GET /admin/v1/named-tokens[?user=] · DELETE /admin/v1/named-tokens/{id}
//! POST /admin/v1/keys/rotate · GET /admin/v1/audit

use std::sync::Arc;

use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Deserialize;

use super::ops;
use crate::http::{json, IntoResponse, Resp};
use crate::server::Gateway;
use crate::store::{Principal, StoreError};

const ACTOR: &str = "admin-api";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrg {
    name: String,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    org: String,
    username: String,
    password: Option<String>,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSa {
    org: String,
    name: String,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    service_account: Option<String>,
    user: Option<String>,
    scope: String,
    expires_in: Option<String>,
}

async fn body<T: for<'de> Deserialize<'de>>(b: Incoming) -> Result<T, StoreError> {
    let bytes = Limited::new(b, 64 * 1024)
        .collect()
        .await
        .map_err(|_| StoreError::Invalid("the body is too large or unreadable".into()))?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| StoreError::Invalid(format!("invalid JSON: {e}")))
}

fn query_param(req: &http::request::Parts, k: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(req.uri.query().unwrap_or("")).ok()?;
    pairs.into_iter().find(|(n, _)| n == k).map(|(_, v)| v)
}

pub async fn handle(gw: &Arc<Gateway>, req: Request<Incoming>) -> Resp {
    let (parts, b) = req.into_parts();
    match route(gw, &parts, b).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn route(gw: &Arc<Gateway>, parts: &http::request::Parts, b: Incoming) -> Result<Resp, StoreError> {
    let store = &gw.store;
    let cfg = gw.runtime.load().config.clone();
    let path = parts.uri.path().trim_start_matches("/admin/v1");
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let now = crate::auth::now_unix();
    let r = match (&parts.method, segs.as_slice()) {
        (&Method::POST, ["orgs"]) => {
            let n: NewOrg = body(b).await?;
            ops::check_name("name", &n.name)?;
            let org = store.create_org(&n.name).await?;
            store.audit(ACTOR, "org.created", &org.id, "", now).await?;
            json(StatusCode::CREATED, &org)
        }
        (&Method::GET, ["orgs"]) => json(StatusCode::OK, &store.list_orgs().await?),
        (&Method::POST, ["users"]) => {
            let n: NewUser = body(b).await?;
            ops::check_name("username", &n.username)?;
            let org = store
                .find_org(&n.org)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("no org {}", n.org)))?;
            let u = store.create_user(&org.id, &n.username, n.password.as_deref()).await?;
            store.audit(ACTOR, "user.created", &u.uid, "", now).await?;
            json(StatusCode::CREATED, &u)
        }
        (&Method::POST, ["service-accounts"]) => {
            let n: NewSa = body(b).await?;
            ops::check_name("name", &n.name)?;
            let org = store
                .find_org(&n.org)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("no org {}", n.org)))?;
            let sa = store.create_service_account(&org.id, &n.name).await?;
            store.audit(ACTOR, "service_account.created", &sa.id, "", now).await?;
            json(StatusCode::CREATED, &sa)
        }
        (&Method::POST, ["api-keys"]) => {
            let n: NewKey = body(b).await?;
            let principal = match (n.service_account, n.user) {
                (Some(s), None) => Principal::ServiceAccount(s),
                (None, Some(u)) => Principal::User(u),
                _ => {
                    return Err(StoreError::Invalid(
                        "give exactly one of service_account and user".into(),
                    ))
                }
            };
            let exp = n.expires_in.as_deref().map(ops::parse_expiry).transpose()?;
            let (key, text) = ops::create_api_key(store, &cfg, &principal, &n.scope, exp, ACTOR).await?;
            let mut v = serde_json::to_value(&key).unwrap_or_default();
            v["api_key"] = text.into();
            json(StatusCode::CREATED, &v)
        }
        (&Method::GET, ["api-keys"]) => json(
            StatusCode::OK,
            &store.list_api_keys(query_param(parts, "org").as_deref()).await?,
        ),
        (&Method::DELETE, ["api-keys", id]) => {
            let (key, until) = ops::revoke_api_key(store, &cfg, id, ACTOR).await?;
            gw.verifier.revocations.insert(&key.id, until);
            gw.issuer.forget_secrets();
            json(StatusCode::OK, &key)
        }
        (&Method::GET, ["users", uid, "generator-token"]) => {
            let (g, text) = store
                .generator_token(uid)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("no generator token for {uid}")))?;
            json(
                StatusCode::OK,
                &serde_json::json!({ "id": g.id, "uid": g.uid, "token": text }),
            )
        }
        (&Method::POST, ["users", uid, "generator-token"]) => {
            let (g, text) = crate::issue::regenerate(gw, uid, ACTOR).await.map_err(|e| match e {
                crate::issue::IssueError::Store(s) => s,
                other => StoreError::Internal(other.to_string()),
            })?;
            json(
                StatusCode::OK,
                &serde_json::json!({ "id": g.id, "uid": g.uid, "token": text }),
            )
        }
        (&Method::GET, ["named-tokens"]) => json(
            StatusCode::OK,
            &store.list_named_tokens(query_param(parts, "user").as_deref()).await?,
        ),
        (&Method::DELETE, ["named-tokens", id]) => {
            let (t, until) = ops::revoke_named(store, &cfg, id, ACTOR).await?;
            gw.verifier.revocations.insert(&t.id, until);
            json(StatusCode::OK, &t)
        }
        (&Method::POST, ["keys", "rotate"]) => {
            let kid = ops::rotate_keys(store, &cfg, ACTOR).await?;
            gw.verifier.reload_keys().await?;
            json(StatusCode::OK, &serde_json::json!({ "kid": kid }))
        }
        (&Method::GET, ["audit"]) => json(StatusCode::OK, &store.list_audit(200).await?),
        _ => crate::http::error(StatusCode::NOT_FOUND, "not_found", "no such admin endpoint"),
    };
    Ok(r)
}
