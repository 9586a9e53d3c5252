//! The admin API (JSON), behind the admin credential. The same operations
//! as the CLI (one implementation each, in `credentials`), plus an
//! immediate update of this replica's revocation set and secret caches.
//!
//! POST|GET /admin/v1/orgs · PATCH|DELETE /admin/v1/orgs/{id or name}
//! POST|GET /admin/v1/users · PATCH|DELETE /admin/v1/users/{uid or username}
//! POST /admin/v1/users/{user}/disable|enable|password
//! POST|GET /admin/v1/service-accounts {org, name, tiles?, allowed_origins?}
//! PATCH|DELETE /admin/v1/service-accounts/{id} (PATCH: {tiles?, allowed_origins?}, the grant ceiling as a merge patch)
//! POST /admin/v1/api-keys {service_account | user, scope, expires_in?, tiles?, allowed_origins?} · GET /admin/v1/api-keys[?org=]
//! DELETE /admin/v1/api-keys/{id} · GET|POST /admin/v1/users/{uid}/generator-token
//! GET /admin/v1/clients[?user=&org=] · PATCH|DELETE /admin/v1/clients/{id} (PATCH: {tiles?, allowed_origins?}, a merge patch)
//! GET /admin/v1/named-tokens[?user=] · DELETE /admin/v1/named-tokens/{id}
//! POST /admin/v1/keys/rotate · GET /admin/v1/audit

use std::sync::Arc;

use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::{Deserialize, Deserializer};

use super::error::AdminError;
use crate::credentials::ceilings::CeilingPatch;
use crate::credentials::{api_keys, clients, named, principals, signing, CredentialError, Local, Op};
use crate::http::{json, Resp};
use crate::state::Gateway;
use crate::store::Principal;

const ACTOR: &str = "admin-api";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrg {
    name: String,
    scope_ceiling: Option<String>,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    org: String,
    username: String,
    password: Option<String>,
    scope_ceiling: Option<String>,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSa {
    org: String,
    name: String,
    /// The grant ceiling of its API keys (docs/grants.md).
    tiles: Option<crate::grants::GrantClaim>,
    #[serde(default)]
    allowed_origins: Vec<String>,
}
/// A change to a grant ceiling, a JSON merge patch (RFC 7396):
/// `{"tiles": {...} | null, "allowed_origins": [...] | null}`, each member
/// left out unchanged, `null` removing that limit, a value setting it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetGrant {
    #[serde(default, deserialize_with = "present")]
    tiles: Option<Option<crate::grants::GrantClaim>>,
    #[serde(default, deserialize_with = "present")]
    allowed_origins: Option<Option<Vec<String>>>,
}

impl SetGrant {
    fn patch(self) -> CeilingPatch {
        CeilingPatch {
            tiles: self.tiles,
            origins: self.allowed_origins,
        }
    }
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    service_account: Option<String>,
    user: Option<String>,
    scope: String,
    expires_in: Option<String>,
    /// The key's tile-grant ceiling (`docs/grants.md`).
    tiles: Option<crate::grants::GrantClaim>,
    /// Web origins the key's tokens may be used from (docs/grants.md).
    #[serde(default)]
    allowed_origins: Vec<String>,
}
/// `{"scope_ceiling": "a b"}`, `{"scope_ceiling": ""}` (no scope) or
/// `{"scope_ceiling": null}` (back to the default); the key is required.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetCeiling {
    #[serde(deserialize_with = "nullable")]
    scope_ceiling: Option<String>,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPassword {
    password: String,
}

/// An optional member that may be null: left out `None` (by
/// `#[serde(default)]`), `null` `Some(None)`, a value `Some(Some(_))`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A required member that may be null.
fn nullable<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d)
}

async fn body<T: for<'de> Deserialize<'de>>(b: Incoming) -> Result<T, AdminError> {
    let bytes = Limited::new(b, 64 * 1024)
        .collect()
        .await
        .map_err(|_| AdminError::BodyUnreadable)?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| AdminError::BadJson(e.to_string()))
}

fn query_param(req: &http::request::Parts, k: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(req.uri.query().unwrap_or("")).ok()?;
    pairs.into_iter().find(|(n, _)| n == k).map(|(_, v)| v)
}

/// A path segment naming a record, percent-decoded (a username may need
/// escapes); one that does not decode to UTF-8 is a 400.
fn seg(s: &str) -> Result<String, AdminError> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| AdminError::SegmentNotUtf8)
}

pub async fn handle(gw: &Arc<Gateway>, req: Request<Incoming>) -> Resp {
    let (parts, b) = req.into_parts();
    match route(gw, &parts, b).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn route(gw: &Arc<Gateway>, parts: &http::request::Parts, b: Incoming) -> Result<Resp, AdminError> {
    let store = &gw.store;
    let cfg = gw.runtime.load().config.clone();
    let local = Local {
        revocations: &gw.verifier.revocations,
        secrets: &gw.secrets,
        verifier: &gw.verifier,
    };
    let op = Op::on(store, &cfg, local, ACTOR);
    let path = parts.uri.path().trim_start_matches("/admin/v1");
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let ok = |v: serde_json::Value| json(StatusCode::OK, &v);
    let r = match (&parts.method, segs.as_slice()) {
        (&Method::POST, ["orgs"]) => {
            let n: NewOrg = body(b).await?;
            let org = principals::create_org(&op, &n.name, n.scope_ceiling.as_deref()).await?;
            json(StatusCode::CREATED, &principals::org_view(&cfg, &org))
        }
        (&Method::GET, ["orgs"]) => json(StatusCode::OK, &principals::orgs_view(store, &cfg).await?),
        (&Method::PATCH, ["orgs", id]) => {
            let n: SetCeiling = body(b).await?;
            let (org, revoked) = principals::set_org_ceiling(&op, &seg(id)?, n.scope_ceiling.as_deref()).await?;
            let mut v = principals::org_view(&cfg, &org);
            v["revoked"] = serde_json::to_value(&revoked).unwrap_or_default();
            ok(v)
        }
        (&Method::DELETE, ["orgs", id]) => {
            let (org, revoked) = principals::delete_org(&op, &seg(id)?).await?;
            ok(serde_json::json!({ "deleted": org.id, "revoked": revoked }))
        }
        (&Method::GET, ["users"]) => json(
            StatusCode::OK,
            &principals::users_view(store, &cfg, query_param(parts, "org").as_deref()).await?,
        ),
        (&Method::POST, ["users"]) => {
            let n: NewUser = body(b).await?;
            let u = principals::create_user(
                &op,
                &n.org,
                &n.username,
                n.password.as_deref(),
                n.scope_ceiling.as_deref(),
            )
            .await?;
            let org = store.find_org(&u.org_id).await?;
            json(StatusCode::CREATED, &principals::user_view(&cfg, &u, org.as_ref()))
        }
        (&Method::PATCH, ["users", id]) => {
            let n: SetCeiling = body(b).await?;
            let (u, revoked) = principals::set_user_ceiling(&op, &seg(id)?, n.scope_ceiling.as_deref()).await?;
            let org = store.find_org(&u.org_id).await?;
            let mut v = principals::user_view(&cfg, &u, org.as_ref());
            v["revoked"] = serde_json::to_value(&revoked).unwrap_or_default();
            ok(v)
        }
        (&Method::DELETE, ["users", id]) => {
            let (u, revoked) = principals::delete_user(&op, &seg(id)?).await?;
            ok(serde_json::json!({ "deleted": u.uid, "revoked": revoked }))
        }
        (&Method::POST, ["users", id, "disable"]) => {
            let (u, revoked) = principals::disable_user(&op, &seg(id)?).await?;
            let org = store.find_org(&u.org_id).await?;
            ok(serde_json::json!({ "user": principals::user_view(&cfg, &u, org.as_ref()), "revoked": revoked }))
        }
        (&Method::POST, ["users", id, "enable"]) => {
            let u = principals::enable_user(&op, &seg(id)?).await?;
            let org = store.find_org(&u.org_id).await?;
            ok(principals::user_view(&cfg, &u, org.as_ref()))
        }
        (&Method::POST, ["users", id, "password"]) => {
            let n: NewPassword = body(b).await?;
            let (u, revoked) = principals::reset_password(&op, &seg(id)?, &n.password).await?;
            let org = store.find_org(&u.org_id).await?;
            ok(serde_json::json!({ "user": principals::user_view(&cfg, &u, org.as_ref()), "revoked": revoked }))
        }
        (&Method::POST, ["service-accounts"]) => {
            let n: NewSa = body(b).await?;
            let sa =
                principals::create_service_account(&op, &n.org, &n.name, n.tiles.as_ref(), &n.allowed_origins).await?;
            json(StatusCode::CREATED, &sa)
        }
        (&Method::PATCH, ["service-accounts", id]) => {
            let n: SetGrant = body(b).await?;
            let sa = principals::set_service_account_grant(&op, &seg(id)?, &n.patch()).await?;
            ok(serde_json::to_value(&sa).unwrap_or_default())
        }
        (&Method::GET, ["service-accounts"]) => {
            let org = query_param(parts, "org");
            json(
                StatusCode::OK,
                &principals::list_service_accounts(store, org.as_deref()).await?,
            )
        }
        (&Method::DELETE, ["service-accounts", id]) => {
            let revoked = principals::delete_service_account(&op, &seg(id)?).await?;
            ok(serde_json::json!({ "deleted": seg(id)?, "revoked": revoked }))
        }
        (&Method::POST, ["api-keys"]) => {
            let n: NewKey = body(b).await?;
            let principal = match (n.service_account, n.user) {
                (Some(s), None) => Principal::ServiceAccount(s),
                (None, Some(u)) => Principal::User(u),
                _ => return Err(AdminError::OwnerNotOne),
            };
            let exp = n.expires_in.as_deref().map(api_keys::parse_expiry).transpose()?;
            let (key, text) =
                api_keys::create_api_key(&op, &principal, &n.scope, n.tiles.as_ref(), &n.allowed_origins, exp).await?;
            let mut v = serde_json::to_value(&key).unwrap_or_default();
            v["api_key"] = text.into();
            json(StatusCode::CREATED, &v)
        }
        (&Method::GET, ["api-keys"]) => json(
            StatusCode::OK,
            &store.list_api_keys(query_param(parts, "org").as_deref()).await?,
        ),
        (&Method::DELETE, ["api-keys", id]) => json(StatusCode::OK, &api_keys::revoke_api_key(&op, id).await?),
        (&Method::GET, ["users", uid, "generator-token"]) => {
            let (g, text) = store
                .generator_token(uid)
                .await?
                .ok_or_else(|| CredentialError::NotFound(format!("no generator token for {uid}")))?;
            json(
                StatusCode::OK,
                &serde_json::json!({ "id": g.id, "uid": g.uid, "token": text }),
            )
        }
        (&Method::POST, ["users", uid, "generator-token"]) => {
            let (g, text) = named::regenerate(&op, uid).await?;
            json(
                StatusCode::OK,
                &serde_json::json!({ "id": g.id, "uid": g.uid, "token": text }),
            )
        }
        (&Method::GET, ["clients"]) => json(
            StatusCode::OK,
            &clients::list_clients(
                store,
                query_param(parts, "user").as_deref(),
                query_param(parts, "org").as_deref(),
            )
            .await?,
        ),
        (&Method::PATCH, ["clients", id]) => {
            let n: SetGrant = body(b).await?;
            let c = clients::set_client_grant(&op, &seg(id)?, &n.patch()).await?;
            ok(serde_json::to_value(&c).unwrap_or_default())
        }
        (&Method::DELETE, ["clients", id]) => {
            json(StatusCode::OK, &clients::delete_client(&op, &seg(id)?, None).await?)
        }
        (&Method::GET, ["named-tokens"]) => json(
            StatusCode::OK,
            &store.list_named_tokens(query_param(parts, "user").as_deref()).await?,
        ),
        (&Method::DELETE, ["named-tokens", id]) => json(StatusCode::OK, &named::revoke_named(&op, id, None).await?),
        (&Method::POST, ["keys", "rotate"]) => {
            let kid = signing::rotate_keys(&op).await?;
            json(StatusCode::OK, &serde_json::json!({ "kid": kid }))
        }
        (&Method::GET, ["audit"]) => json(StatusCode::OK, &store.list_audit(200).await?),
        _ => crate::http::error(StatusCode::NOT_FOUND, "not_found", "no such admin endpoint"),
    };
    Ok(r)
}
