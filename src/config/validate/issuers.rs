//! `[[issuers]]`: the external token issuers.

use std::collections::BTreeMap;
use std::time::Duration;

use http::Uri;
use jsonwebtoken::Algorithm;

use super::scopes::undeclared;
use super::{parse_algorithm, Problems};
use crate::config::file::FileIssuer;
use crate::config::types::{credential_scope, valid_issuer_name, ExternalIssuer, IssuerKeySource};

/// The issuers, and the name and id of every entry (even one with other
/// problems, so that routes naming it are not reported as well).
pub(super) fn issuers(
    raw: &[FileIssuer],
    own_issuer: &str,
    scopes: &BTreeMap<String, String>,
    p: &mut Problems,
) -> (Vec<ExternalIssuer>, Vec<(String, u64)>) {
    let mut issuers = Vec::new();
    // Names of every issuer entry, even one with other problems, so routes
    // naming it are not reported as well.
    let mut issuer_names: Vec<(String, u64)> = Vec::new();
    for (i, f) in raw.iter().enumerate() {
        let key = format!("issuers[{i}]");
        if f.issuer == own_issuer {
            p.push(format!("{key}.issuer"), "is the gateway's own issuer");
        }
        if raw[..i].iter().any(|o| o.issuer == f.issuer) {
            p.push(format!("{key}.issuer"), format!("\"{}\" is listed twice", f.issuer));
        }
        let name = match &f.name {
            None => {
                p.push(
                    format!("{key}.name"),
                    "is required: routes accept an issuer by name (issuers = [\"self\", \"<name>\"])",
                );
                String::new()
            }
            Some(n) if !valid_issuer_name(n) => {
                p.push(
                    format!("{key}.name"),
                    format!("\"{n}\" must be 1-64 of A-Z a-z 0-9 . _ - and not \"self\""),
                );
                n.clone()
            }
            Some(n) => n.clone(),
        };
        let id = crate::routing::IssuerSet::id_of(&name);
        if !name.is_empty() {
            if issuer_names.iter().any(|(n, _)| *n == name) {
                p.push(format!("{key}.name"), format!("\"{name}\" is used twice"));
            } else if issuer_names.iter().any(|(_, x)| *x == id) {
                p.push(
                    format!("{key}.name"),
                    format!("\"{name}\": pick another name (id collision)"),
                );
            }
            issuer_names.push((name.clone(), id));
        }
        // What the issuer may grant: declared scopes, never a
        // credential-management one.
        let grantable = |p: &mut Problems, k: String, list: &[String]| {
            undeclared(p, &k, list, scopes);
            for s in list.iter().filter(|s| credential_scope(s)) {
                p.push(&k, format!("\"{s}\" is never granted by an external issuer"));
            }
        };
        grantable(p, format!("{key}.scopes"), &f.scopes);
        for (from, to) in &f.scope_map {
            if from.is_empty() || from.chars().any(|c| c.is_whitespace() || c.is_control()) {
                p.push(
                    format!("{key}.scope_map"),
                    format!("\"{from}\": a claim value has no spaces or control characters"),
                );
            }
            grantable(p, format!("{key}.scope_map.\"{from}\""), to);
        }
        if let Some(o) = &f.org {
            if o.is_empty()
                || o.len() > 128
                || !o
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'))
            {
                p.push(
                    format!("{key}.org"),
                    format!("\"{o}\" must be an organization id (1-128 of A-Z a-z 0-9 . _ - :)"),
                );
            }
        }
        let max_lifetime = f.max_lifetime.as_ref().map(|m| {
            let d = p.duration(&format!("{key}.max_lifetime"), m);
            if d < Duration::from_secs(1) {
                p.push(format!("{key}.max_lifetime"), "must be at least 1s");
            }
            d
        });
        let cache_ttl = p.duration(&format!("{key}.cache_ttl"), &f.cache_ttl);
        if f.audiences.is_empty() {
            p.push(format!("{key}.audiences"), "needs at least one audience");
        }
        let mut algorithms = Vec::new();
        for a in &f.algorithms {
            match parse_algorithm(a) {
                Some(alg) => algorithms.push(alg),
                None => p.push(format!("{key}.algorithms"), format!("unknown algorithm \"{a}\"")),
            }
        }
        if algorithms.is_empty() {
            p.push(format!("{key}.algorithms"), "needs at least one algorithm");
        }
        let sources = [
            f.jwks_url.is_some(),
            f.jwks_file.is_some(),
            f.pem_file.is_some(),
            f.hmac_secret_env.is_some(),
        ];
        if sources.iter().filter(|b| **b).count() != 1 {
            p.push(
                &key,
                "needs exactly one of jwks_url, jwks_file, pem_file, hmac_secret_env",
            );
            continue;
        }
        let is_hmac = algorithms
            .iter()
            .any(|a| matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512));
        if is_hmac != f.hmac_secret_env.is_some()
            || (is_hmac
                && algorithms.len()
                    != algorithms
                        .iter()
                        .filter(|a| matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
                        .count())
        {
            p.push(
                format!("{key}.algorithms"),
                "HS* algorithms go with hmac_secret_env only, and only with each other",
            );
        }
        let source = if let Some(u) = &f.jwks_url {
            match u.parse::<Uri>() {
                Ok(uri) if matches!(uri.scheme_str(), Some("http" | "https")) => {
                    // Over plain http anyone on the path can serve their own
                    // keys and forge this issuer's tokens (loopback excepted).
                    let host = uri.host().unwrap_or("");
                    if uri.scheme_str() == Some("http")
                        && !f.allow_insecure_http
                        && !crate::store::is_loopback_host(host)
                    {
                        p.push(
                            format!("{key}.jwks_url"),
                            "plain http lets anyone on the network path replace the issuer's keys and forge \
                             its tokens; use https, or set allow_insecure_http = true on this issuer",
                        );
                    }
                    IssuerKeySource::JwksUrl(uri)
                }
                _ => {
                    p.push(format!("{key}.jwks_url"), format!("\"{u}\" is not an http(s) URL"));
                    continue;
                }
            }
        } else if let Some(f) = &f.jwks_file {
            IssuerKeySource::JwksFile(f.into())
        } else if let Some(path) = &f.pem_file {
            IssuerKeySource::Pem {
                path: path.into(),
                kid: f.kid.clone(),
            }
        } else {
            IssuerKeySource::HmacEnv(f.hmac_secret_env.clone().unwrap_or_default())
        };
        issuers.push(ExternalIssuer {
            issuer: f.issuer.clone(),
            audiences: f.audiences.clone(),
            algorithms,
            source,
            jwks_refresh: p.duration(&format!("{key}.jwks_refresh"), &f.jwks_refresh),
            name,
            id,
            scopes: f.scopes.clone(),
            scope_map: f.scope_map.clone(),
            org: f.org.clone(),
            max_lifetime,
            cache_ttl,
        });
    }
    (issuers, issuer_names)
}
