//! Client credentials management: `POST /v1/clients` with a
//! login token → 201 `{client_id, client_secret}` (the secret shown this
//! once); `GET` lists without secrets; `DELETE /v1/clients/{id}`.

use super::{optional_str, read_body, Ctx, IssueError};
use crate::body::ClientBody;
use crate::credentials::clients::{create_client, delete_client};
use crate::credentials::scopes::{subset, within};
use crate::credentials::CredentialError;
use crate::http::{json, Resp};
use http::{Method, StatusCode};

pub async fn collection(ctx: &Ctx<'_>, parts: http::request::Parts, body: &mut ClientBody) -> Result<Resp, IssueError> {
    ctx.require(&parts, &[Method::GET, Method::POST])?;
    let (_, uid) = ctx.login_user(&parts).await?;
    if parts.method == Method::GET {
        let list = ctx.store.list_clients(Some(&uid)).await?;
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
    // A client may carry any declared scope but the credential-management
    // one, within its owner's scope ceiling (default: all of those).
    let declared: Vec<String> = ctx
        .cfg
        .scopes
        .keys()
        .filter(|s| *s != super::MANAGE_SCOPE)
        .cloned()
        .collect();
    let limits = ctx
        .store
        .principal_limits(&crate::store::Principal::User(uid.clone()))
        .await?
        .filter(|l| !l.disabled)
        .ok_or(IssueError::InvalidToken("the token's user is disabled or gone"))?;
    let ceiling: Vec<String> = ctx
        .cfg
        .ceiling(&limits)
        .into_iter()
        .filter(|s| declared.contains(s))
        .collect();
    let scopes: Vec<String> = match &scope {
        Some(s) => {
            let wanted = subset(s, within(&declared))
                .map_err(|bad| IssueError::InvalidScope(format!("scope \"{bad}\" is not available")))?;
            if let Some(bad) = wanted.iter().find(|w| !ceiling.iter().any(|c| c == *w)) {
                return Err(IssueError::InvalidScope(format!(
                    "scope \"{bad}\" is beyond your scope ceiling"
                )));
            }
            wanted.into_iter().map(String::from).collect()
        }
        None => ceiling,
    };
    let (client, secret) = create_client(&ctx.op(&uid), &uid, name.as_deref(), &scopes).await?;
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
    // Only the owner's own client (never another user's id); the same
    // action as the operator's, revoking before it deletes.
    match delete_client(&ctx.op(&uid), id, Some(&uid)).await {
        Ok(_) => Ok(crate::http::empty(StatusCode::NO_CONTENT)),
        Err(CredentialError::NotFound(_)) => Err(IssueError::NotFound("no such client")),
        Err(e) => Err(e.into()),
    }
}

pub use crate::store::valid_name;
