//! Credential actions: the only implementation of each, called by the CLI
//! (on the store directly), the admin API and the token endpoints (which
//! also update the running replica at once, through a [`Local`] handle).
//!
//! - [`principals`]: organizations, users, service accounts, ceilings.
//! - [`api_keys`], [`clients`], [`named`] (generator and named tokens):
//!   create, revoke, regenerate.
//! - [`signing`]: the one claims type, signing, key rotation.
//! - [`scopes`]: the scope subset check.
//! - [`ceilings`]: tile-grant ceilings and allowed origins of
//!   credentials, and the one rule that narrows them.
//! - [`secrets`]: the verified-secret caches the token endpoints read
//!   through and every revocation here clears.
//!
//! Errors are [`CredentialError`]: facts, mapped to statuses by the caller.

pub mod api_keys;
pub mod ceilings;
pub mod clients;
pub mod named;
pub mod principals;
pub mod scopes;
pub mod secrets;
pub mod signing;

use serde::Serialize;

use crate::auth::revocation::Revocations;
use crate::auth::Verifier;
use crate::clock::now_unix;
use crate::config::Config;
use crate::store::{Store, StoreError};

pub use secrets::{CachedKey, Secrets};

/// What a credential action refused, or the store's failure.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The named record does not exist (the message names it).
    #[error("{0}")]
    NotFound(String),
    /// The name is taken, or a concurrent change kept the action from
    /// completing (the message says which).
    #[error("{0}")]
    Conflict(String),
    /// A name or id with a forbidden length or characters.
    #[error("{what} must be 1-128 characters without control or bidirectional-override characters")]
    BadName { what: String },
    #[error("scope \"{scope}\" is not declared in [scopes]")]
    UndeclaredScope { scope: String },
    #[error("at least one scope is required")]
    NoScope,
    /// A scope beyond the ceiling of the credential's holder.
    #[error("scope \"{scope}\" is beyond the scope ceiling of {holder} ({ceiling})")]
    ScopeNotAllowed {
        scope: String,
        /// "user alice", "service account …", "organization acme".
        holder: String,
        /// The holder's ceiling, space-separated.
        ceiling: String,
    },
    #[error("user {name} is disabled")]
    Disabled { name: String },
    #[error("the password needs {min} to 1024 characters", min = principals::MIN_PASSWORD_CHARS)]
    PasswordLength,
    /// A tile grant that is not one (zoom out of range, a bad box…).
    #[error("tiles: {0}")]
    BadTiles(crate::grants::GrantError),
    /// An allowed origin that is not `scheme://host[:port]` (lower case,
    /// optionally `*.` for one label).
    #[error("allowed origin \"{0}\" must be scheme://host[:port] in lower case, such as https://app.example.com or https://*.example.com")]
    BadOrigin(String),
    /// An empty list of allowed origins where a limit is set: it would
    /// allow no origin (`null` removes the limit).
    #[error(
        "allowed_origins is an empty list, which would allow no origin: give origins, or null to remove the limit"
    )]
    NoOrigins,
    /// A credential's tile grant beyond the ceiling of its holder (an API
    /// key beyond its service account's).
    #[error("the tiles are beyond the tile-grant ceiling of {holder}: {why}")]
    TilesBeyondCeiling { holder: String, why: String },
    /// An allowed origin not covered by the ceiling of its holder.
    #[error("allowed origin \"{origin}\" is beyond the allowed origins of {holder}")]
    OriginsBeyondCeiling { origin: String, holder: String },
    /// An expiry such as `90d` that does not parse.
    #[error("{0}")]
    BadExpiry(String),
    /// A new signing key could not be generated.
    #[error("{0}")]
    KeyGeneration(String),
    #[error("no active signing key")]
    NoSigningKey,
    #[error("signing failed")]
    SigningFailed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CredentialError {
    /// A refusal of the request as given (the caller's fault, not the
    /// gateway's): a 4xx on the admin API, exit code 64 in the CLI.
    pub fn is_refusal(&self) -> bool {
        match self {
            CredentialError::NotFound(_)
            | CredentialError::Conflict(_)
            | CredentialError::BadName { .. }
            | CredentialError::UndeclaredScope { .. }
            | CredentialError::NoScope
            | CredentialError::ScopeNotAllowed { .. }
            | CredentialError::Disabled { .. }
            | CredentialError::PasswordLength
            | CredentialError::BadTiles(_)
            | CredentialError::BadOrigin(_)
            | CredentialError::NoOrigins
            | CredentialError::TilesBeyondCeiling { .. }
            | CredentialError::OriginsBeyondCeiling { .. }
            | CredentialError::BadExpiry(_) => true,
            CredentialError::KeyGeneration(_) | CredentialError::NoSigningKey | CredentialError::SigningFailed => false,
            CredentialError::Store(s) => matches!(
                s,
                StoreError::Invalid(_) | StoreError::NotFound(_) | StoreError::Conflict(_)
            ),
        }
    }
}

/// `value` as a name or id of `what` (1-128 characters, no control or
/// bidirectional-override characters).
pub fn check_name(what: &str, value: &str) -> Result<(), CredentialError> {
    if crate::store::valid_name(value) {
        Ok(())
    } else {
        Err(CredentialError::BadName { what: what.to_owned() })
    }
}

/// The running replica's state a credential action updates at once: its
/// revocation set, its verified-secret caches, its signing keys.
#[derive(Clone, Copy)]
pub struct Local<'a> {
    pub revocations: &'a Revocations,
    pub secrets: &'a Secrets,
    /// Re-reads the signing keys after a rotation.
    pub verifier: &'a Verifier,
}

/// Who runs a credential action, and where its effects go.
pub struct Op<'a> {
    pub store: &'a Store,
    pub cfg: &'a Config,
    /// The replica the action runs in (admin API, the token endpoints): its
    /// revocation set and secret caches are updated at once as well. `None`
    /// for the CLI: running replicas learn a revocation by notification
    /// (PostgreSQL, within a second) or their periodic resync
    /// (`store.revocation_resync`), and re-read ceilings with the secrets
    /// they cache (`cache.secret_ttl`).
    pub local: Option<Local<'a>>,
    /// Who the audit log names.
    pub actor: &'a str,
}

impl<'a> Op<'a> {
    /// The CLI: the store only.
    pub fn cli(store: &'a Store, cfg: &'a Config, actor: &'a str) -> Op<'a> {
        Op {
            store,
            cfg,
            local: None,
            actor,
        }
    }

    /// Inside a running replica.
    pub fn on(store: &'a Store, cfg: &'a Config, local: Local<'a>, actor: &'a str) -> Op<'a> {
        Op {
            store,
            cfg,
            local: Some(local),
            actor,
        }
    }

    /// Revoke a token (`jti`) or a credential id everywhere: the store
    /// (which notifies other PostgreSQL replicas), this replica's set with
    /// the same `until`, and its secret caches; audited as `action`.
    pub async fn revoke(&self, id: &str, until: Option<i64>, action: &str) -> Result<(), StoreError> {
        let now = now_unix();
        self.revocation(id, until, now).await?;
        if let Some(l) = &self.local {
            l.secrets.forget();
        }
        self.store.audit(self.actor, action, id, "", now).await
    }

    /// The revocation entry alone (store and this replica's set), without
    /// an audit record.
    async fn revocation(&self, id: &str, until: Option<i64>, now: i64) -> Result<(), StoreError> {
        self.store.add_revocation(id, until, now).await?;
        if let Some(l) = &self.local {
            l.revocations.insert(id, until);
        }
        Ok(())
    }

    async fn audit(&self, action: &str, target: &str, detail: &str) -> Result<(), StoreError> {
        self.store.audit(self.actor, action, target, detail, now_unix()).await
    }

    /// An audit entry to write in the transaction of the change it records.
    fn audit_note<'n>(&'n self, action: &'n str, detail: &'n str) -> crate::store::AuditNote<'n> {
        crate::store::AuditNote {
            actor: self.actor,
            action,
            detail,
            now: now_unix(),
        }
    }

    /// Cached API keys carry their principal's limits: this replica
    /// re-reads them at once, other PostgreSQL replicas on the notification.
    async fn limits_changed(&self) -> Result<(), StoreError> {
        if let Some(l) = &self.local {
            l.secrets.forget();
        }
        self.store.announce_limits_changed().await
    }

    /// How long a revoked credential's entry is kept: until every token it
    /// could have minted has expired.
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

#[cfg(test)]
pub(crate) mod tests;
