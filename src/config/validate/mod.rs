//! Raw file config -> typed [`Config`], one function per section. Every
//! section's function pushes its problems into the shared [`Problems`], so
//! all of them are reported at once, each naming its key
//! (`routes[3].upstream: no upstream named "tile"`).

mod endpoints;
mod issuers;
mod routes;
mod scopes;
mod server;
mod store;
mod tokens;
mod upstreams;

use std::net::SocketAddr;
use std::time::Duration;

use http::header::HeaderName;
use jsonwebtoken::Algorithm;

use super::file::FileConfig;
use super::types::*;

/// Validate the raw config into a typed [`Config`], or list every problem.
pub(crate) fn validate(raw: FileConfig) -> Result<Config, Vec<String>> {
    let mut p = Problems(Vec::new());
    let server = server::server(&raw.server, &mut p);
    let admin = server::admin(&raw.admin, &mut p);
    let store = store::store(&raw.store, &mut p);
    let tokens = tokens::tokens(&raw.tokens, &mut p);
    let cache = tokens::cache(&raw.cache, &mut p);
    let endpoints = endpoints::endpoints(&raw.endpoints, &mut p);
    let limits = tokens::limits(&raw.limits);
    let scopes = scopes::scopes(&raw.scopes, &mut p);
    let named_tokens = scopes::named_tokens(&raw.named_tokens, &scopes, &mut p);
    let identity = endpoints::identity_headers(&raw.identity_headers, &mut p);
    let (issuers, issuer_names) = issuers::issuers(&raw.issuers, &tokens.issuer, &scopes, &mut p);
    let upstreams = upstreams::upstreams(&raw.upstreams, &mut p);
    let routes = routes::routes(&raw.routes, &endpoints, &upstreams, &issuer_names, &scopes, &mut p);
    if !p.0.is_empty() {
        return Err(p.0);
    }
    Ok(Config {
        server,
        admin,
        store,
        tokens,
        cache,
        endpoints,
        limits,
        scopes,
        named_tokens,
        identity,
        issuers,
        upstreams,
        routes,
    })
}

/// Parse `500ms`, `30s`, `15m`, `4h`, `90d` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("\"{s}\" is not a duration (e.g. 30s, 15m, 4h, 90d)"))?;
    let secs = match unit.trim() {
        "ms" => return Ok(Duration::from_millis(n)),
        "" | "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86400),
        _ => None,
    };
    secs.map(Duration::from_secs)
        .ok_or_else(|| format!("\"{s}\" is not a duration (e.g. 30s, 15m, 4h, 90d)"))
}

pub fn parse_algorithm(s: &str) -> Option<Algorithm> {
    Some(match s {
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        _ => return None,
    })
}

/// Collects problems with their key paths.
struct Problems(Vec<String>);

impl Problems {
    fn push(&mut self, key: impl std::fmt::Display, msg: impl std::fmt::Display) {
        self.0.push(format!("{key}: {msg}"));
    }
    fn duration(&mut self, key: &str, v: &str) -> Duration {
        parse_duration(v).unwrap_or_else(|e| {
            self.push(key, e);
            Duration::ZERO
        })
    }
    /// A duration that must be more than zero.
    fn positive_duration(&mut self, key: &str, v: &str) -> Duration {
        match parse_duration(v) {
            Ok(d) if d.is_zero() => {
                self.push(key, "must be more than 0");
                d
            }
            Ok(d) => d,
            Err(e) => {
                self.push(key, e);
                Duration::ZERO
            }
        }
    }
    /// A count that must be at least 1.
    fn at_least_one(&mut self, key: &str, v: usize) -> usize {
        if v == 0 {
            self.push(key, "must be at least 1");
        }
        v
    }
    fn addr(&mut self, key: &str, v: &str) -> SocketAddr {
        v.parse().unwrap_or_else(|_| {
            self.push(key, format!("\"{v}\" is not an address like 127.0.0.1:8080"));
            SocketAddr::from(([127, 0, 0, 1], 0))
        })
    }
    fn header(&mut self, key: &str, v: &str) -> HeaderName {
        HeaderName::from_bytes(v.as_bytes()).unwrap_or_else(|_| {
            self.push(key, format!("\"{v}\" is not a valid header name"));
            HeaderName::from_static("x-invalid")
        })
    }
    fn path(&mut self, key: &str, v: &str) -> String {
        if !v.starts_with('/') {
            self.push(key, format!("\"{v}\" must start with /"));
        }
        v.to_owned()
    }
}

#[cfg(test)]
mod tests;
