//! Organizations, users and service accounts: creating them, their scope
//! ceilings, disabling and deleting them with everything they hold.

use super::api_keys::revoke_api_key;
use super::ceilings::{check_ceiling, check_patch, patch_text, CeilingPatch};
use super::named::{regenerate, revoke_named};
use super::scopes::declared;
use super::{check_name, CredentialError, Op, Revoked};
use crate::clock::now_unix;
use crate::config::Config;
use crate::grants::GrantClaim;
use crate::store::{Org, Principal, ServiceAccount, Store, User};

/// Shortest password an operator may set (`user reset-password`, and the
/// CLI's `user create`).
pub const MIN_PASSWORD_CHARS: usize = 8;

// ---------------------------------------------------------------- ceilings

/// An operator's ceiling: `None` keeps the default; `Some("")` is a
/// ceiling of no scope at all; otherwise declared scopes.
fn parse_ceiling(cfg: &Config, ceiling: Option<&str>) -> Result<Option<Vec<String>>, CredentialError> {
    ceiling.map(|c| declared(cfg, c)).transpose()
}

/// The effective ceiling of an org (no user ceiling).
fn org_ceiling(cfg: &Config, org: &Org) -> Vec<String> {
    cfg.ceiling(&crate::store::Limits {
        name: String::new(),
        org_id: org.id.clone(),
        org_ceiling: org.scope_ceiling.clone(),
        user_ceiling: None,
        disabled: false,
        tiles: None,
        allowed_origins: None,
    })
}

/// A user's own ceiling must lie within its org's.
fn within_org(cfg: &Config, org: &Org, ceiling: &Option<Vec<String>>) -> Result<(), CredentialError> {
    let bound = org_ceiling(cfg, org);
    if let Some(bad) = ceiling.iter().flatten().find(|s| !bound.contains(s)) {
        return Err(CredentialError::ScopeNotAllowed {
            scope: bad.clone(),
            holder: format!("organization {}", org.name),
            ceiling: bound.join(" "),
        });
    }
    Ok(())
}

// ------------------------------------------------------------------ lookups

/// An organization by id or name.
pub async fn org(store: &Store, id_or_name: &str) -> Result<Org, CredentialError> {
    check_name("organization", id_or_name)?;
    store
        .find_org(id_or_name)
        .await?
        .ok_or_else(|| CredentialError::NotFound(format!("no org {id_or_name}")))
}

/// A user by uid or username.
pub async fn user(store: &Store, uid_or_username: &str) -> Result<User, CredentialError> {
    check_name("user", uid_or_username)?;
    store
        .find_user(uid_or_username)
        .await?
        .ok_or_else(|| CredentialError::NotFound(format!("no user {uid_or_username}")))
}

/// Organizations with their effective ceiling (`effective_scope_ceiling`).
pub async fn orgs_view(store: &Store, cfg: &Config) -> Result<Vec<serde_json::Value>, CredentialError> {
    Ok(store.list_orgs().await?.iter().map(|o| org_view(cfg, o)).collect())
}

pub fn org_view(cfg: &Config, o: &Org) -> serde_json::Value {
    let mut v = serde_json::to_value(o).unwrap_or_default();
    v["effective_scope_ceiling"] = org_ceiling(cfg, o).join(" ").into();
    v
}

/// Users (of one org, or all) with their effective ceiling.
pub async fn users_view(
    store: &Store,
    cfg: &Config,
    org_filter: Option<&str>,
) -> Result<Vec<serde_json::Value>, CredentialError> {
    let org_id = match org_filter {
        Some(o) => Some(org(store, o).await?.id),
        None => None,
    };
    let orgs = store.list_orgs().await?;
    let mut out = Vec::new();
    for u in store.list_users(org_id.as_deref()).await? {
        out.push(user_view(cfg, &u, orgs.iter().find(|o| o.id == u.org_id)));
    }
    Ok(out)
}

pub fn user_view(cfg: &Config, u: &User, org: Option<&Org>) -> serde_json::Value {
    let mut v = serde_json::to_value(u).unwrap_or_default();
    let ceiling = org.map(|o| {
        cfg.ceiling(&crate::store::Limits {
            name: u.username.clone(),
            org_id: u.org_id.clone(),
            org_ceiling: o.scope_ceiling.clone(),
            user_ceiling: u.scope_ceiling.clone(),
            disabled: u.disabled_at.is_some(),
            tiles: None,
            allowed_origins: None,
        })
    });
    v["effective_scope_ceiling"] = ceiling.unwrap_or_default().join(" ").into();
    v
}

// ------------------------------------------------------------ orgs, users

/// A new organization, with its ceiling (`None`: the default) in the same write.
pub async fn create_org(op: &Op<'_>, name: &str, ceiling: Option<&str>) -> Result<Org, CredentialError> {
    check_name("name", name)?;
    let ceiling = parse_ceiling(op.cfg, ceiling)?;
    // Names are unique (and an org is named by id or name everywhere, so a
    // name may not be another org's id either). The store's UNIQUE
    // constraint still decides a race between two creations.
    if let Some(o) = op.store.find_org(name).await? {
        return Err(CredentialError::Conflict(if o.id == name {
            format!("{name} is the id of the organization {}", o.name)
        } else {
            format!("an organization named {name} already exists ({})", o.id)
        }));
    }
    let o = op.store.create_org_with(name, ceiling.as_deref(), now_unix()).await?;
    op.audit("org.created", &o.id, &ceiling_detail(&o.scope_ceiling))
        .await?;
    Ok(o)
}

/// A new user of `org` (id or name), with its own ceiling within the org's.
pub async fn create_user(
    op: &Op<'_>,
    org_ref: &str,
    username: &str,
    password: Option<&str>,
    ceiling: Option<&str>,
) -> Result<User, CredentialError> {
    check_name("username", username)?;
    let o = org(op.store, org_ref).await?;
    let ceiling = parse_ceiling(op.cfg, ceiling)?;
    within_org(op.cfg, &o, &ceiling)?;
    let u = op
        .store
        .create_user_with(&o.id, username, password, ceiling.as_deref(), now_unix())
        .await?;
    op.audit("user.created", &u.uid, &ceiling_detail(&u.scope_ceiling))
        .await?;
    Ok(u)
}

fn ceiling_detail(c: &Option<Vec<String>>) -> String {
    match c {
        None => "scope_ceiling=default".into(),
        Some(c) => format!("scope_ceiling={}", c.join(" ")),
    }
}

/// Sets an org's ceiling (`None`: back to the default). What is already
/// out and beyond it: named tokens of its users are revoked; API keys and
/// clients keep their stored scopes but every exchange grants only what
/// is within the ceiling; short-lived tokens already issued run out
/// (`tokens.max_ttl` at most).
pub async fn set_org_ceiling(
    op: &Op<'_>,
    org_ref: &str,
    ceiling: Option<&str>,
) -> Result<(Org, Revoked), CredentialError> {
    let o = org(op.store, org_ref).await?;
    let ceiling = parse_ceiling(op.cfg, ceiling)?;
    let o = op
        .store
        .set_org_ceiling(&o.id, ceiling.as_deref())
        .await?
        .ok_or_else(|| CredentialError::NotFound(format!("no org {org_ref}")))?;
    op.limits_changed().await?;
    op.audit("org.ceiling_set", &o.id, &ceiling_detail(&o.scope_ceiling))
        .await?;
    let users = op.store.list_users(Some(&o.id)).await?;
    let revoked = enforce_ceiling(op, &users).await?;
    Ok((o, revoked))
}

/// Sets a user's own ceiling (`None`: the org's); it must lie within the
/// org's. Named tokens beyond it are revoked, as for [`set_org_ceiling`].
pub async fn set_user_ceiling(
    op: &Op<'_>,
    user_ref: &str,
    ceiling: Option<&str>,
) -> Result<(User, Revoked), CredentialError> {
    let u = user(op.store, user_ref).await?;
    let ceiling = parse_ceiling(op.cfg, ceiling)?;
    let o = org(op.store, &u.org_id).await?;
    within_org(op.cfg, &o, &ceiling)?;
    let u = op
        .store
        .set_user_ceiling(&u.uid, ceiling.as_deref())
        .await?
        .ok_or_else(|| CredentialError::NotFound(format!("no user {user_ref}")))?;
    op.limits_changed().await?;
    op.audit("user.ceiling_set", &u.uid, &ceiling_detail(&u.scope_ceiling))
        .await?;
    let revoked = enforce_ceiling(op, std::slice::from_ref(&u)).await?;
    Ok((u, revoked))
}

/// Revoke the active named tokens of `users` that carry a scope beyond
/// their user's ceiling as it is now.
async fn enforce_ceiling(op: &Op<'_>, users: &[User]) -> Result<Revoked, CredentialError> {
    let mut revoked = Revoked::default();
    let now = now_unix();
    for u in users {
        let Some(limits) = op.store.principal_limits(&Principal::User(u.uid.clone())).await? else {
            continue;
        };
        let ceiling = op.cfg.ceiling(&limits);
        for t in op.store.list_named_tokens(Some(&u.uid)).await? {
            if t.is_active(now) && t.scopes.iter().any(|s| !ceiling.contains(s)) {
                revoke_named(op, &t.id, None).await?;
                revoked.named_tokens.push(t.id);
            }
        }
    }
    Ok(revoked)
}

enum LoginChange<'p> {
    Disable,
    Password(&'p str),
}

/// End every login session of the user and apply `change`: the current
/// login id is revoked first (until any login token with it has expired),
/// then replaced together with the change. Returns the revoked id.
async fn end_logins(op: &Op<'_>, uid: &str, change: LoginChange<'_>) -> Result<String, CredentialError> {
    for _ in 0..5 {
        let current = user(op.store, uid).await?.login_id;
        op.revoke(&current, op.credential_until(), "user.logins_ended").await?;
        let done = match change {
            LoginChange::Disable => op.store.disable_user(uid, &current, now_unix()).await?,
            LoginChange::Password(p) => op.store.set_password(uid, &current, p).await?,
        };
        if done {
            return Ok(current);
        }
        // The login id changed meanwhile (a concurrent reset): revoke that one too.
    }
    Err(CredentialError::Conflict(
        "the user's login kept changing meanwhile; try again".into(),
    ))
}

/// Disable a user: no password login, no new credentials, and everything
/// the user holds stops working on every replica at once: login tokens
/// (login id), the generator token and every named token it minted
/// (replaced by a new one the user can read after being enabled), the
/// user's clients and API keys (revoked for good). Idempotent.
pub async fn disable_user(op: &Op<'_>, user_ref: &str) -> Result<(User, Revoked), CredentialError> {
    let u = user(op.store, user_ref).await?;
    let revoked = contain(op, &u, false).await?;
    op.limits_changed().await?;
    op.audit("user.disabled", &u.uid, &revoked.summary()).await?;
    Ok((user(op.store, &u.uid).await?, revoked))
}

/// Let a disabled user log in again. Credentials revoked by disabling
/// stay revoked: the user reads the new generator token, makes new
/// clients; API keys are the operator's to make again.
pub async fn enable_user(op: &Op<'_>, user_ref: &str) -> Result<User, CredentialError> {
    let u = user(op.store, user_ref).await?;
    let u = op
        .store
        .enable_user(&u.uid)
        .await?
        .ok_or_else(|| CredentialError::NotFound(format!("no user {user_ref}")))?;
    op.limits_changed().await?;
    op.audit("user.enabled", &u.uid, "").await?;
    Ok(u)
}

/// Set a new password; the old one stops working and so does every login
/// token issued with it (the login id is revoked and replaced). Other
/// credentials are untouched: after a compromise, disable first.
pub async fn reset_password(op: &Op<'_>, user_ref: &str, password: &str) -> Result<(User, Revoked), CredentialError> {
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > 1024 {
        return Err(CredentialError::PasswordLength);
    }
    let u = user(op.store, user_ref).await?;
    let old = end_logins(op, &u.uid, LoginChange::Password(password)).await?;
    op.audit("user.password_reset", &u.uid, "").await?;
    let revoked = Revoked {
        credentials: vec![old],
        ..Revoked::default()
    };
    Ok((user(op.store, &u.uid).await?, revoked))
}

/// Delete a user: [`disable_user`]'s revocations (the generator token
/// revoked for good, no replacement), then the user and everything it
/// holds are deleted.
pub async fn delete_user(op: &Op<'_>, user_ref: &str) -> Result<(User, Revoked), CredentialError> {
    let u = user(op.store, user_ref).await?;
    let revoked = contain(op, &u, true).await?;
    if !op.store.delete_user(&u.uid).await? {
        return Err(CredentialError::NotFound(format!("no user {user_ref}")));
    }
    op.limits_changed().await?;
    op.audit("user.deleted", &u.uid, &revoked.summary()).await?;
    Ok((u, revoked))
}

/// Disable `u` and revoke every credential it holds, each revocation
/// written before the record changes. `for_deletion`: the generator token
/// is revoked without a replacement.
async fn contain(op: &Op<'_>, u: &User, for_deletion: bool) -> Result<Revoked, CredentialError> {
    let mut revoked = Revoked::default();
    // First close the door: no login, no new client, no generator use.
    revoked
        .credentials
        .push(end_logins(op, &u.uid, LoginChange::Disable).await?);
    // The generator token, and with it every named token it minted.
    if let Some((g, _)) = op.store.generator_token(&u.uid).await? {
        if for_deletion {
            op.revoke(&g.id, None, "generator_token.revoked").await?;
        } else {
            regenerate(op, &u.uid).await?;
        }
        revoked.credentials.push(g.id);
    }
    revoked.named_tokens_marked = op.store.mark_named_tokens_revoked(&u.uid, now_unix()).await?;
    for c in op.store.list_clients(Some(&u.uid)).await? {
        if c.revoked_at.is_none() {
            op.revoke(&c.client_id, op.credential_until(), "client.revoked").await?;
            op.store.revoke_client(&c.client_id, now_unix()).await?;
            revoked.credentials.push(c.client_id);
        }
    }
    let mine = Principal::User(u.uid.clone());
    for k in op.store.list_api_keys(Some(&u.org_id)).await? {
        if k.principal == mine && k.revoked_at.is_none() {
            revoke_api_key(op, &k.id).await?;
            revoked.credentials.push(k.id);
        }
    }
    Ok(revoked)
}

/// A new service account of `org` (id or name).
/// A new service account of an organization (id or name), optionally with
/// a grant ceiling (a tile grant, allowed origins) for its API keys.
pub async fn create_service_account(
    op: &Op<'_>,
    org_ref: &str,
    name: &str,
    tiles: Option<&GrantClaim>,
    origins: &[String],
) -> Result<ServiceAccount, CredentialError> {
    check_name("name", name)?;
    let c = check_ceiling(tiles, origins)?;
    let org = org(op.store, org_ref).await?;
    let sa = op
        .store
        .create_service_account_limited(
            &org.id,
            name,
            c.tiles.as_ref(),
            c.origins.as_deref(),
            crate::clock::now_unix(),
        )
        .await?;
    op.audit("service_account.created", &sa.id, "").await?;
    Ok(sa)
}

/// Change the grant ceiling of a service account, a JSON merge patch:
/// each dimension left out unchanged, removed or set (validated before
/// anything is written). Tokens minted from its API keys afterwards are
/// within it; those already minted keep their grant until they expire.
pub async fn set_service_account_grant(
    op: &Op<'_>,
    id: &str,
    patch: &CeilingPatch,
) -> Result<ServiceAccount, CredentialError> {
    let not_found = || CredentialError::NotFound(format!("no service account {id}"));
    if !crate::store::valid_name(id) {
        return Err(not_found());
    }
    let p = check_patch(patch)?;
    let detail = patch_text(&p);
    // The change and its audit entry: one transaction.
    let written = op
        .store
        .set_service_account_limits(
            id,
            p.tiles.as_ref().map(Option::as_ref),
            p.origins.as_ref().map(Option::as_deref),
            &op.audit_note("service_account.grant_set", &detail),
        )
        .await;
    // Cached keys carry the service account's limits: re-read them
    // whatever the outcome (a commit whose answer was lost is still a
    // change; forgetting when nothing changed costs one store read).
    let announced = op.limits_changed().await;
    let sa = written?.ok_or_else(not_found)?;
    announced?;
    Ok(sa)
}

/// Service accounts of one organization (id or name), or all.
pub async fn list_service_accounts(
    store: &Store,
    org_ref: Option<&str>,
) -> Result<Vec<ServiceAccount>, CredentialError> {
    let org_id = match org_ref {
        Some(o) => Some(org(store, o).await?.id),
        None => None,
    };
    Ok(store.list_service_accounts(org_id.as_deref()).await?)
}

/// Delete a service account: its API keys are revoked (their tokens stop
/// on every replica), then it and its keys are deleted.
pub async fn delete_service_account(op: &Op<'_>, id: &str) -> Result<Revoked, CredentialError> {
    check_name("service account", id)?;
    let sa = op
        .store
        .find_service_account(id)
        .await?
        .ok_or_else(|| CredentialError::NotFound(format!("no service account {id}")))?;
    let mut revoked = Revoked::default();
    let mine = Principal::ServiceAccount(sa.id.clone());
    for k in op.store.list_api_keys(Some(&sa.org_id)).await? {
        if k.principal == mine && k.revoked_at.is_none() {
            revoke_api_key(op, &k.id).await?;
            revoked.credentials.push(k.id);
        }
    }
    if !op.store.delete_service_account(&sa.id).await? {
        return Err(CredentialError::NotFound(format!("no service account {id}")));
    }
    op.audit("service_account.deleted", &sa.id, &revoked.summary()).await?;
    Ok(revoked)
}

/// Delete an organization and everything under it: every user
/// ([`delete_user`]) and service account ([`delete_service_account`]),
/// every API key of the org, then the org.
pub async fn delete_org(op: &Op<'_>, org_ref: &str) -> Result<(Org, Revoked), CredentialError> {
    let o = org(op.store, org_ref).await?;
    let mut revoked = Revoked::default();
    for k in op.store.list_api_keys(Some(&o.id)).await? {
        if k.revoked_at.is_none() {
            revoke_api_key(op, &k.id).await?;
            revoked.credentials.push(k.id);
        }
    }
    for u in op.store.list_users(Some(&o.id)).await? {
        revoked.add(delete_user(op, &u.uid).await?.1);
    }
    for sa in op.store.list_service_accounts(Some(&o.id)).await? {
        revoked.add(delete_service_account(op, &sa.id).await?);
    }
    if !op.store.delete_org(&o.id).await? {
        return Err(CredentialError::NotFound(format!("no org {org_ref}")));
    }
    op.audit("org.deleted", &o.id, &revoked.summary()).await?;
    Ok((o, revoked))
}
