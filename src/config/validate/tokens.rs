//! `[tokens]`, `[cache]` and `[limits]`: the gateway's own tokens, the
//! verification caches and the token endpoints' limits.

use std::time::Duration;

use jsonwebtoken::Algorithm;

use super::Problems;
use crate::config::file::{FileCache, FileLimits, FileTokens};
use crate::config::types::{CacheConfig, LimitsConfig, TokenConfig};

pub(super) fn tokens(t: &FileTokens, p: &mut Problems) -> TokenConfig {
    let algorithm = match t.algorithm.as_str() {
        "ES256" => Algorithm::ES256,
        "EdDSA" => Algorithm::EdDSA,
        "RS256" => Algorithm::RS256,
        other => {
            p.push(
                "tokens.algorithm",
                format!("\"{other}\" is not one of ES256, EdDSA, RS256"),
            );
            Algorithm::ES256
        }
    };
    let default_ttl = p.duration("tokens.default_ttl", &t.default_ttl);
    let max_ttl = p.duration("tokens.max_ttl", &t.max_ttl);
    if max_ttl.is_zero() {
        p.push("tokens.max_ttl", "must be at least 1s");
    }
    if default_ttl.is_zero() || default_ttl > max_ttl {
        p.push("tokens.default_ttl", "must be between 1s and tokens.max_ttl");
    }
    if t.issuer.is_empty() {
        p.push("tokens.issuer", "must not be empty");
    }
    if t.audience.is_empty() {
        p.push("tokens.audience", "must not be empty");
    }
    let rotation_grace = match &t.rotation_grace {
        Some(g) => p.duration("tokens.rotation_grace", g),
        None => max_ttl,
    };
    TokenConfig {
        issuer: t.issuer.as_str().into(),
        audience: t.audience.as_str().into(),
        algorithm,
        default_ttl,
        max_ttl,
        leeway: {
            let l = p.duration("tokens.leeway", &t.leeway);
            // Single-use client-assertion ids are kept 5 minutes past
            // their `exp` (store::JTI_RETENTION_SECS): a longer leeway
            // would accept a replay after its id was purged.
            if l > Duration::from_secs(300) {
                p.push("tokens.leeway", "must be at most 5m (clock skew, not token lifetime)");
            }
            l
        },
        login_ttl: p.duration("tokens.login_ttl", &t.login_ttl),
        password_grant: t.password_grant,
        max_token_bytes: t.max_token_bytes,
        rotation_grace,
        max_assertion_lifetime: {
            let m = p.duration("tokens.max_assertion_lifetime", &t.max_assertion_lifetime);
            // The assertion's jti is kept until its exp + 5 minutes, so
            // any lifetime is covered; the bound only keeps a captured,
            // unused assertion from being good for days.
            if m < Duration::from_secs(1) || m > Duration::from_secs(86_400) {
                p.push("tokens.max_assertion_lifetime", "must be between 1s and 24h");
            }
            m
        },
    }
}

pub(super) fn cache(c: &FileCache, p: &mut Problems) -> CacheConfig {
    CacheConfig {
        max_entries: c.max_entries,
        negative_max_entries: c.negative_max_entries,
        negative_ttl: p.duration("cache.negative_ttl", &c.negative_ttl),
        secret_ttl: p.duration("cache.secret_ttl", &c.secret_ttl),
    }
}

/// Every value is accepted as it is.
pub(super) fn limits(l: &FileLimits) -> LimitsConfig {
    LimitsConfig {
        token_body_bytes: l.token_body_bytes,
        auth_failures_per_minute: l.auth_failures_per_minute,
        auth_failures_per_credential: l.auth_failures_per_credential,
    }
}
