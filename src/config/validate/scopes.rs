//! `[scopes]` and `[named_tokens]`: the declared scopes, and the scopes
//! each kind of named token grants.

use std::collections::BTreeMap;

use super::Problems;
use crate::config::file::FileNamedTokens;
use crate::config::types::{NamedTokenScopes, MANAGE_SCOPE};

pub(super) fn scopes(declared: &BTreeMap<String, String>, p: &mut Problems) -> BTreeMap<String, String> {
    let scopes = declared.clone();
    for name in scopes.keys() {
        if name.is_empty()
            || name
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\\')
        {
            p.push(
                format!("scopes.\"{name}\""),
                "a scope name has no spaces, quotes or control characters",
            );
        }
    }
    scopes
}

/// Report each scope of `list` that `[scopes]` does not declare.
pub(super) fn undeclared(p: &mut Problems, key: &str, list: &[String], scopes: &BTreeMap<String, String>) {
    for s in list {
        if !scopes.contains_key(s) {
            p.push(key, format!("scope \"{s}\" is not declared in [scopes]"));
        }
    }
}

/// Default scopes of the named-token kinds that name theirs (kept only
/// when declared).
const DEFAULT_DATASET_STREAMING: &[&str] = &["datasets:stream"];
const DEFAULT_DATASET_STREAMING_REFRESHING: &[&str] = &["datasets:stream", "datasets:refresh"];
const DEFAULT_EMBEDDED_PUBLISHED_PROJECT: &[&str] = &["projects:embed"];

pub(super) fn named_tokens(
    n: &FileNamedTokens,
    scopes: &BTreeMap<String, String>,
    p: &mut Problems,
) -> NamedTokenScopes {
    // The credential-management scope is never part of a named token.
    let all: Vec<String> = scopes.keys().filter(|s| *s != MANAGE_SCOPE).cloned().collect();
    let read_default: Vec<String> = all
        .iter()
        .filter(|s| s.ends_with(":read") || *s == "datasets:stream" || *s == "projects:embed")
        .cloned()
        .collect();
    // An explicit list must name declared scopes and never the
    // credential-management one; a default list keeps only the scopes
    // the config declares (so a config without dataset scopes loads).
    let mut pick = |key: &str, explicit: &Option<Vec<String>>, default: Vec<String>| -> Vec<String> {
        match explicit {
            Some(list) => {
                undeclared(p, &format!("named_tokens.{key}"), list, scopes);
                if list.iter().any(|s| s == MANAGE_SCOPE) {
                    p.push(
                        format!("named_tokens.{key}"),
                        "clients:manage is never granted to a named token",
                    );
                }
                list.clone()
            }
            None => default.into_iter().filter(|s| scopes.contains_key(s)).collect(),
        }
    };
    NamedTokenScopes {
        read_only_all: pick("read_only_all", &n.read_only_all, read_default),
        read_write_all: pick("read_write_all", &n.read_write_all, all),
        read_only_dataset_streaming: pick(
            "read_only_dataset_streaming",
            &n.read_only_dataset_streaming,
            DEFAULT_DATASET_STREAMING.iter().map(|s| s.to_string()).collect(),
        ),
        read_write_dataset_streaming_refreshing: pick(
            "read_write_dataset_streaming_refreshing",
            &n.read_write_dataset_streaming_refreshing,
            DEFAULT_DATASET_STREAMING_REFRESHING
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ),
        read_only_embedded_published_project: pick(
            "read_only_embedded_published_project",
            &n.read_only_embedded_published_project,
            DEFAULT_EMBEDDED_PUBLISHED_PROJECT
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ),
        max_valid_minutes: match &n.max_valid_time {
            None => 9999,
            Some(v) => {
                let d = p.duration("named_tokens.max_valid_time", v);
                let minutes = (d.as_secs() / 60) as i64;
                if !(1..=9999).contains(&minutes) || !d.as_secs().is_multiple_of(60) || d.subsec_nanos() != 0 {
                    p.push(
                        "named_tokens.max_valid_time",
                        "must be whole minutes from 1m to 9999m (validTime is given in minutes, at most 9999)",
                    );
                }
                minutes.clamp(1, 9999)
            }
        },
        allow_never_expiring: n.allow_never_expiring.unwrap_or(true),
    }
}
