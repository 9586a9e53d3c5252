//! Client credentials management (seed 002): `POST /v1/clients` with a
//! login token → 201 `{client_id, client_secret}` (the secret shown this
//! once); `GET` lists without secrets; `DELETE /v1/clients/{id}`.

use super::{optional_str, read_body, subset, Ctx, IssueError};
use crate::auth::now_unix;
use crate::body::ClientBody;
use crate::http::{json, Resp};
use http::{Method, StatusCode};

pub async fn collection(ctx: &Ctx<'_>, parts: http::request::Parts, body: &mut ClientBody) -> Result<Resp, IssueError> {
    ctx.require(&parts, &[Method::GET, Method::POST])?;
    let (_, uid) = ctx.login_user(&parts).await?;
    if parts.method == Method::GET {
        let list = ctx.gw.store.list_clients(Some(&uid)).await?;
        return Ok(json(StatusCode::OK, &serde_json::json!({ "clients": list })));
    }
    let body = read_body(body, ctx.cfg.limits.token_body_bytes).await?;
    let (name, scope) = match super::json_object(&parts, &body)? {
        None => (None, None),
        Some(m) => {
            const BAD_NAME: &str = "name must be 1-128 printable characters";
            let name = optional_str(&m, "name", BAD_NAME)?;
            if name.is_some_and(|n| !valid_name(n)) {
                return Err(IssueError::InvalidRequest(BAD_NAME.into()));
            }
            let scope = optional_str(&m, "scope", "scope must be a space-separated string")?;
            (name.map(String::from), scope.map(String::from))
        }
    };
    // A client may carry any declared scope but the credential-management one.
    let declared: Vec<String> = ctx
        .cfg
        .scopes
        .keys()
        .filter(|s| *s != super::MANAGE_SCOPE)
        .cloned()
        .collect();
    let scopes: Vec<String> = match &scope {
        Some(s) => subset(s, &declared)
            .map_err(|bad| IssueError::InvalidScope(format!("scope \"{bad}\" is not available")))?
            .into_iter()
            .map(String::from)
            .collect(),
        None => declared,
    };
    let (client, secret) = ctx.gw.store.create_client(&uid, name.as_deref(), &scopes).await?;
    ctx.gw
        .store
        .audit(&uid, "client.created", &client.client_id, "", now_unix())
        .await?;
    Ok(json(
        StatusCode::CREATED,
        &serde_json::json!({
            "client_id": client.client_id,
            "client_secret": secret,
            "name": client.name,
            "scope": client.scopes.join(" "),
            "created_at": client.created_at,
        }),
    ))
}

pub async fn item(ctx: &Ctx<'_>, parts: &http::request::Parts, id: &str) -> Result<Resp, IssueError> {
    ctx.require(parts, &[Method::DELETE])?;
    let (_, uid) = ctx.login_user(parts).await?;
    // Only the owner's own client is revoked (never another user's id).
    let owned = ctx
        .gw
        .store
        .list_clients(Some(&uid))
        .await?
        .iter()
        .any(|c| c.client_id == id);
    if !owned {
        return Err(IssueError::NotFound("no such client"));
    }
    // Tokens minted by the client die with it. The revocation is written
    // first: should the deletion fail, the client's tokens are already dead
    // everywhere and a retry finds the client to delete.
    let until = now_unix() + ctx.cfg.tokens.max_ttl.as_secs() as i64 + ctx.cfg.tokens.leeway.as_secs() as i64;
    super::revoke_id(ctx.gw, id, Some(until), &uid, "client.deleted").await?;
    if !ctx.gw.store.delete_client(id, Some(&uid)).await? {
        return Err(IssueError::NotFound("no such client"));
    }
    Ok(crate::http::empty(StatusCode::NO_CONTENT))
}

pub use crate::store::valid_name;
