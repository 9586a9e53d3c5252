//! Operator actions shared by the CLI (on the store directly) and the
//! admin API (which also updates the running replica at once). Each action
//! has one implementation here, whichever interface calls it.

use std::time::Duration;

use serde::Serialize;

use crate::auth::keys;
use crate::clock::now_unix;
use crate::config::Config;
use crate::server::Gateway;
use crate::store::{ApiKey, Client, NamedToken, Org, Principal, Store, StoreError, User};

/// Shortest password an operator may set (`user reset-password`, and the
/// CLI's `user create`).
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Who runs an operator action, and where its effects go.
pub struct Op<'a> {
    pub store: &'a Store,
    pub cfg: &'a Config,
    /// The replica the action runs in (admin API, the user endpoints): its
    /// revocation set and secret caches are updated at once as well. `None`
    /// for the CLI: running replicas learn a revocation by notification
    /// (PostgreSQL, within a second) or their periodic resync
    /// (`store.revocation_resync`), and re-read ceilings with the secrets
    /// they cache (`cache.secret_ttl`).
    pub gw: Option<&'a Gateway>,
    /// Who the audit log names.
    pub actor: &'a str,
}

impl<'a> Op<'a> {
    /// The CLI: the store only.
    pub fn cli(store: &'a Store, cfg: &'a Config, actor: &'a str) -> Op<'a> {
        Op {
            store,
            cfg,
            gw: None,
            actor,
        }
    }

    /// Inside a running replica.
    pub fn on(gw: &'a Gateway, cfg: &'a Config, actor: &'a str) -> Op<'a> {
        Op {
            store: &gw.store,
            cfg,
            gw: Some(gw),
            actor,
        }
    }

    /// Revoke a token or credential id everywhere (the store, which
    /// notifies other PostgreSQL replicas; this replica's set and secret
    /// caches when there is one), audited.
    async fn revoke(&self, id: &str, until: Option<i64>, action: &str) -> Result<(), StoreError> {
        match self.gw {
            Some(gw) => crate::issue::revoke_id(gw, id, until, self.actor, action).await,
            None => {
                let now = now_unix();
                self.store.add_revocation(id, until, now).await?;
                self.store.audit(self.actor, action, id, "", now).await
            }
        }
    }

    async fn audit(&self, action: &str, target: &str, detail: &str) -> Result<(), StoreError> {
        self.store.audit(self.actor, action, target, detail, now_unix()).await
    }

    /// Cached API keys carry their principal's limits: this replica
    /// re-reads them at once, other PostgreSQL replicas on the notification.
    async fn limits_changed(&self) -> Result<(), StoreError> {
        if let Some(gw) = self.gw {
            gw.issuer.forget_secrets();
        }
        self.store.announce_limits_changed().await
    }

    fn credential_until(&self) -> Option<i64> {
        Some(self.cfg.credential_revoked_until(now_unix()))
    }
}

/// What an action revoked.
#[derive(Debug, Default, Serialize)]
pub struct Revoked {
    /// Credential ids whose tokens stopped verifying on every replica: API
    /// keys (`key_…`), clients (`tgc_…`), generator tokens (`gen_…`, with
    /// every named token they minted), login ids (`lgn_…`, every login token).
    pub credentials: Vec<String>,
    /// Named tokens revoked one by one (a lowered ceiling).
    pub named_tokens: Vec<String>,
    /// Named tokens marked revoked in the listings because their generator
    /// token was revoked.
    pub named_tokens_marked: u64,
}

impl Revoked {
    fn add(&mut self, other: Revoked) {
        self.credentials.extend(other.credentials);
        self.named_tokens.extend(other.named_tokens);
        self.named_tokens_marked += other.named_tokens_marked;
    }

    fn summary(&self) -> String {
        format!(
            "{} credentials, {} named tokens",
            self.credentials.len(),
            self.named_tokens.len() as u64 + self.named_tokens_marked
        )
    }
}

// ------------------------------------------------------------------ scopes

/// Scopes must be declared in the config; returns them deduplicated.
pub fn check_scopes(cfg: &Config, scope: &str) -> Result<Vec<String>, StoreError> {
    let out = declared(cfg, scope)?;
    if out.is_empty() {
        return Err(StoreError::Invalid("at least one scope is required".into()));
    }
    Ok(out)
}

/// Declared scopes, deduplicated; none at all is allowed.
fn declared(cfg: &Config, scope: &str) -> Result<Vec<String>, StoreError> {
    let mut out: Vec<String> = Vec::new();
    for s in scope.split(' ').filter(|s| !s.is_empty()) {
        if !cfg.scopes.contains_key(s) {
            return Err(StoreError::Invalid(format!(
                "scope \"{s}\" is not declared in [scopes]"
            )));
        }
        if !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    Ok(out)
}

/// An operator's ceiling: `None` keeps the default; `Some("")` is a
/// ceiling of no scope at all; otherwise declared scopes.
fn parse_ceiling(cfg: &Config, ceiling: Option<&str>) -> Result<Option<Vec<String>>, StoreError> {
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
    })
}

/// A user's own ceiling must lie within its org's.
fn within_org(cfg: &Config, org: &Org, ceiling: &Option<Vec<String>>) -> Result<(), StoreError> {
    let bound = org_ceiling(cfg, org);
    if let Some(bad) = ceiling.iter().flatten().find(|s| !bound.contains(s)) {
        return Err(StoreError::Invalid(format!(
            "scope \"{bad}\" is beyond the scope ceiling of organization {} ({})",
            org.name,
            bound.join(" ")
        )));
    }
    Ok(())
}

pub use crate::store::check_name;

// ------------------------------------------------------------------ lookups

/// An organization by id or name.
pub async fn org(store: &Store, id_or_name: &str) -> Result<Org, StoreError> {
    check_name("organization", id_or_name)?;
    store
        .find_org(id_or_name)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no org {id_or_name}")))
}

/// A user by uid or username.
pub async fn user(store: &Store, uid_or_username: &str) -> Result<User, StoreError> {
    check_name("user", uid_or_username)?;
    store
        .find_user(uid_or_username)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no user {uid_or_username}")))
}

/// Organizations with their effective ceiling (`effective_scope_ceiling`).
pub async fn orgs_view(store: &Store, cfg: &Config) -> Result<Vec<serde_json::Value>, StoreError> {
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
) -> Result<Vec<serde_json::Value>, StoreError> {
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
        })
    });
    v["effective_scope_ceiling"] = ceiling.unwrap_or_default().join(" ").into();
    v
}

// ------------------------------------------------------------ orgs, users

/// A new organization, with its ceiling (`None`: the default) in the same write.
pub async fn create_org(op: &Op<'_>, name: &str, ceiling: Option<&str>) -> Result<Org, StoreError> {
    check_name("name", name)?;
    let ceiling = parse_ceiling(op.cfg, ceiling)?;
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
) -> Result<User, StoreError> {
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
pub async fn set_org_ceiling(op: &Op<'_>, org_ref: &str, ceiling: Option<&str>) -> Result<(Org, Revoked), StoreError> {
    let o = org(op.store, org_ref).await?;
    let ceiling = parse_ceiling(op.cfg, ceiling)?;
    let o = op
        .store
        .set_org_ceiling(&o.id, ceiling.as_deref())
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no org {org_ref}")))?;
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
) -> Result<(User, Revoked), StoreError> {
    let u = user(op.store, user_ref).await?;
    let ceiling = parse_ceiling(op.cfg, ceiling)?;
    let o = org(op.store, &u.org_id).await?;
    within_org(op.cfg, &o, &ceiling)?;
    let u = op
        .store
        .set_user_ceiling(&u.uid, ceiling.as_deref())
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no user {user_ref}")))?;
    op.limits_changed().await?;
    op.audit("user.ceiling_set", &u.uid, &ceiling_detail(&u.scope_ceiling))
        .await?;
    let revoked = enforce_ceiling(op, std::slice::from_ref(&u)).await?;
    Ok((u, revoked))
}

/// Revoke the active named tokens of `users` that carry a scope beyond
/// their user's ceiling as it is now.
async fn enforce_ceiling(op: &Op<'_>, users: &[User]) -> Result<Revoked, StoreError> {
    let mut revoked = Revoked::default();
    let now = now_unix();
    for u in users {
        let Some(limits) = op.store.principal_limits(&Principal::User(u.uid.clone())).await? else {
            continue;
        };
        let ceiling = op.cfg.ceiling(&limits);
        for t in op.store.list_named_tokens(Some(&u.uid)).await? {
            if t.is_active(now) && t.scopes.iter().any(|s| !ceiling.contains(s)) {
                revoke_named(op, &t.id).await?;
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
async fn end_logins(op: &Op<'_>, uid: &str, change: LoginChange<'_>) -> Result<String, StoreError> {
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
    Err(StoreError::Conflict(
        "the user's login kept changing meanwhile; try again".into(),
    ))
}

/// Disable a user: no password login, no new credentials, and everything
/// the user holds stops working on every replica at once: login tokens
/// (login id), the generator token and every named token it minted
/// (replaced by a new one the user can read after being enabled), the
/// user's clients and API keys (revoked for good). Idempotent.
pub async fn disable_user(op: &Op<'_>, user_ref: &str) -> Result<(User, Revoked), StoreError> {
    let u = user(op.store, user_ref).await?;
    let revoked = contain(op, &u, false).await?;
    op.limits_changed().await?;
    op.audit("user.disabled", &u.uid, &revoked.summary()).await?;
    Ok((user(op.store, &u.uid).await?, revoked))
}

/// Let a disabled user log in again. Credentials revoked by disabling
/// stay revoked: the user reads the new generator token, makes new
/// clients; API keys are the operator's to make again.
pub async fn enable_user(op: &Op<'_>, user_ref: &str) -> Result<User, StoreError> {
    let u = user(op.store, user_ref).await?;
    let u = op
        .store
        .enable_user(&u.uid)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no user {user_ref}")))?;
    op.limits_changed().await?;
    op.audit("user.enabled", &u.uid, "").await?;
    Ok(u)
}

/// Set a new password; the old one stops working and so does every login
/// token issued with it (the login id is revoked and replaced). Other
/// credentials are untouched: after a compromise, disable first.
pub async fn reset_password(op: &Op<'_>, user_ref: &str, password: &str) -> Result<(User, Revoked), StoreError> {
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > 1024 {
        return Err(StoreError::Invalid(format!(
            "the password needs {MIN_PASSWORD_CHARS} to 1024 characters"
        )));
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
pub async fn delete_user(op: &Op<'_>, user_ref: &str) -> Result<(User, Revoked), StoreError> {
    let u = user(op.store, user_ref).await?;
    let revoked = contain(op, &u, true).await?;
    if !op.store.delete_user(&u.uid).await? {
        return Err(StoreError::NotFound(format!("no user {user_ref}")));
    }
    op.limits_changed().await?;
    op.audit("user.deleted", &u.uid, &revoked.summary()).await?;
    Ok((u, revoked))
}

/// Disable `u` and revoke every credential it holds, each revocation
/// written before the record changes. `for_deletion`: the generator token
/// is revoked without a replacement.
async fn contain(op: &Op<'_>, u: &User, for_deletion: bool) -> Result<Revoked, StoreError> {
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

/// Delete a service account: its API keys are revoked (their tokens stop
/// on every replica), then it and its keys are deleted.
pub async fn delete_service_account(op: &Op<'_>, id: &str) -> Result<Revoked, StoreError> {
    check_name("service account", id)?;
    let sa = op
        .store
        .find_service_account(id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no service account {id}")))?;
    let mut revoked = Revoked::default();
    let mine = Principal::ServiceAccount(sa.id.clone());
    for k in op.store.list_api_keys(Some(&sa.org_id)).await? {
        if k.principal == mine && k.revoked_at.is_none() {
            revoke_api_key(op, &k.id).await?;
            revoked.credentials.push(k.id);
        }
    }
    if !op.store.delete_service_account(&sa.id).await? {
        return Err(StoreError::NotFound(format!("no service account {id}")));
    }
    op.audit("service_account.deleted", &sa.id, &revoked.summary()).await?;
    Ok(revoked)
}

/// Delete an organization and everything under it: every user
/// ([`delete_user`]) and service account ([`delete_service_account`]),
/// every API key of the org, then the org.
pub async fn delete_org(op: &Op<'_>, org_ref: &str) -> Result<(Org, Revoked), StoreError> {
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
        return Err(StoreError::NotFound(format!("no org {org_ref}")));
    }
    op.audit("org.deleted", &o.id, &revoked.summary()).await?;
    Ok((o, revoked))
}

// ----------------------------------------------------------------- clients

/// Clients of one user and/or organization (ids or names), or all.
pub async fn list_clients(
    store: &Store,
    user_ref: Option<&str>,
    org_ref: Option<&str>,
) -> Result<Vec<Client>, StoreError> {
    let uid = match user_ref {
        Some(u) => Some(user(store, u).await?.uid),
        None => None,
    };
    let org_id = match org_ref {
        Some(o) => Some(org(store, o).await?.id),
        None => None,
    };
    store.list_clients_in(uid.as_deref(), org_id.as_deref()).await
}

/// Delete an OAuth client (only `owner`'s when given: the user endpoint);
/// its tokens stop on every replica. The revocation is written first:
/// should the deletion fail, the tokens are already dead and a retry
/// finds the client to delete.
pub async fn delete_client(op: &Op<'_>, id: &str, owner: Option<&str>) -> Result<Client, StoreError> {
    let not_found = || StoreError::NotFound(format!("no client {id}"));
    if id.len() > 256 || !crate::store::valid_name(id) {
        return Err(not_found());
    }
    let c = op
        .store
        .list_clients(owner)
        .await?
        .into_iter()
        .find(|c| c.client_id == id)
        .ok_or_else(not_found)?;
    op.revoke(id, op.credential_until(), "client.deleted").await?;
    if !op.store.delete_client(id, owner).await? {
        return Err(not_found());
    }
    Ok(c)
}

// ---------------------------------------------------------------- API keys

pub async fn create_api_key(
    store: &Store,
    cfg: &Config,
    principal: &Principal,
    scope: &str,
    expires_in: Option<Duration>,
    actor: &str,
) -> Result<(ApiKey, String), StoreError> {
    let scopes = check_scopes(cfg, scope)?;
    let limits = store
        .principal_limits(principal)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no {} {}", principal.kind(), principal.id())))?;
    if limits.disabled {
        return Err(StoreError::Invalid(format!("user {} is disabled", limits.name)));
    }
    let ceiling = cfg.ceiling(&limits);
    if let Some(bad) = scopes.iter().find(|s| !ceiling.contains(s)) {
        return Err(StoreError::Invalid(format!(
            "scope \"{bad}\" is beyond the scope ceiling of {} {} ({})",
            principal.kind(),
            limits.name,
            ceiling.join(" ")
        )));
    }
    let now = now_unix();
    let expires_at = expires_in.map(|d| now + d.as_secs() as i64);
    let (key, text) = store.create_api_key(principal, &scopes, expires_at, now).await?;
    store
        .audit(actor, "api_key.created", &key.id, &scopes.join(" "), now)
        .await?;
    Ok((key, text))
}

/// Revoke a key; the revocation entry outlives every token it minted.
pub async fn revoke_api_key(op: &Op<'_>, id: &str) -> Result<ApiKey, StoreError> {
    let now = now_unix();
    if op.store.find_api_key(id).await?.is_none() {
        return Err(StoreError::NotFound(format!("no API key {id}")));
    }
    // The revocation entry first: should the second write fail, the key's
    // tokens are already dead everywhere (never the other way round).
    op.revoke(id, op.credential_until(), "api_key.revoked").await?;
    op.store
        .revoke_api_key(id, now)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no API key {id}")))
}

// ------------------------------------------------------------ signing keys

/// A new active signing key; the old ones stay in the JWKS for the grace.
pub async fn rotate_keys(store: &Store, cfg: &Config, actor: &str) -> Result<String, StoreError> {
    let k = keys::generate(cfg.tokens.algorithm, now_unix()).map_err(|e| StoreError::Internal(e.to_string()))?;
    store.insert_signing_key(&k).await?;
    store
        .audit(actor, "signing_key.rotated", &k.kid, &k.alg, now_unix())
        .await?;
    Ok(k.kid)
}

// ------------------------------------------------- generator, named tokens

/// Regenerate a user's generator token: the old one and every named token
/// it minted stop working.
pub async fn regenerate(op: &Op<'_>, uid: &str) -> Result<(crate::store::GeneratorToken, String), StoreError> {
    match op.gw {
        Some(gw) => crate::issue::regenerate(gw, uid, op.actor).await.map_err(|e| match e {
            crate::issue::IssueError::Store(s) => s,
            other => StoreError::Internal(other.to_string()),
        }),
        None => regenerate_generator(op.store, uid, op.actor).await,
    }
}

/// Regenerate a user's generator token from the store side (CLI).
pub async fn regenerate_generator(
    store: &Store,
    uid: &str,
    actor: &str,
) -> Result<(crate::store::GeneratorToken, String), StoreError> {
    let now = now_unix();
    // Revoke the current one first: its never-expiring named tokens must not
    // survive a failed second write.
    if let Some((current, _)) = store.generator_token(uid).await? {
        store.add_revocation(&current.id, None, now).await?;
    }
    let (g, text, old) = store.regenerate_generator_token(uid, now).await?;
    if let Some(old) = old {
        store.add_revocation(&old, None, now).await?;
        store.audit(actor, "generator_token.regenerated", &old, "", now).await?;
    }
    Ok((g, text))
}

/// Revoke a named token; its revocation entry lives until its expiry plus
/// the leeway (as long as it could still verify), for good if it never expires.
pub async fn revoke_named(op: &Op<'_>, id: &str) -> Result<NamedToken, StoreError> {
    let now = now_unix();
    let t = op
        .store
        .revoke_named_token(id, None, now)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no named token {id}")))?;
    let until = op.cfg.tokens.revoked_until(t.expires_at);
    op.revoke(&t.id, until, "named_token.revoked").await?;
    Ok(t)
}

/// `90d`, `12h`, … for `--expires-in`.
pub fn parse_expiry(s: &str) -> Result<Duration, StoreError> {
    crate::config::parse_duration(s).map_err(StoreError::Invalid)
}
