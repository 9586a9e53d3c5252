//! OAuth clients: made by their user on the clients endpoint, listed and
//! deleted by the operator or their user.

use super::ceilings::{check_patch, patch_text, CeilingPatch};
use super::principals::{org, user};
use super::{CredentialError, Op};
use crate::store::{Client, Store};

/// A new client of `uid` with `scopes` (already checked by the caller
/// against what the user may give it); the secret is returned this once.
pub async fn create_client(
    op: &Op<'_>,
    uid: &str,
    name: Option<&str>,
    scopes: &[String],
) -> Result<(Client, String), CredentialError> {
    let (client, secret) = op
        .store
        .create_client(uid, name, scopes, crate::clock::now_unix())
        .await?;
    op.audit("client.created", &client.client_id, "").await?;
    Ok((client, secret))
}

fn client_not_found(id: &str) -> CredentialError {
    CredentialError::NotFound(format!("no client {id}"))
}

/// An id no client can have is "no such client", before any lookup.
fn check_client_id(id: &str) -> Result<(), CredentialError> {
    if id.len() > 256 || !crate::store::valid_name(id) {
        return Err(client_not_found(id));
    }
    Ok(())
}

/// Change the grant ceiling of an OAuth client (set by the operator), a
/// JSON merge patch: each dimension left out unchanged, removed or set
/// (validated before anything is written). Its tokens minted afterwards
/// are within it; those already minted keep their grant until they expire.
pub async fn set_client_grant(op: &Op<'_>, id: &str, patch: &CeilingPatch) -> Result<Client, CredentialError> {
    check_client_id(id)?;
    let not_found = || client_not_found(id);
    let p = check_patch(patch)?;
    let detail = patch_text(&p);
    // The change and its audit entry: one transaction. (A client is read
    // from the store at each token: no cache to forget.)
    op.store
        .set_client_limits(
            id,
            p.tiles.as_ref().map(Option::as_ref),
            p.origins.as_ref().map(Option::as_deref),
            &op.audit_note("client.grant_set", &detail),
        )
        .await?
        .ok_or_else(not_found)
}

/// Clients of one user and/or organization (ids or names), or all.
pub async fn list_clients(
    store: &Store,
    user_ref: Option<&str>,
    org_ref: Option<&str>,
) -> Result<Vec<Client>, CredentialError> {
    let uid = match user_ref {
        Some(u) => Some(user(store, u).await?.uid),
        None => None,
    };
    let org_id = match org_ref {
        Some(o) => Some(org(store, o).await?.id),
        None => None,
    };
    Ok(store.list_clients_in(uid.as_deref(), org_id.as_deref()).await?)
}

/// Delete an OAuth client (only `owner`'s when given: the user endpoint);
/// its tokens stop on every replica. The revocation is written first:
/// should the deletion fail, the tokens are already dead and a retry
/// finds the client to delete.
pub async fn delete_client(op: &Op<'_>, id: &str, owner: Option<&str>) -> Result<Client, CredentialError> {
    check_client_id(id)?;
    let not_found = || client_not_found(id);
    let c = op.store.find_client(id, owner).await?.ok_or_else(not_found)?;
    op.revoke(id, op.credential_until(), "client.deleted").await?;
    if !op.store.delete_client(id, owner).await? {
        return Err(not_found());
    }
    Ok(c)
}
