//! `[[routes]]`: what is allowed where, with each route's `cors` table.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::header::{HeaderName, HeaderValue};
use http::Method;

use super::scopes::undeclared;
use super::Problems;
use crate::config::file::{FileCors, FileRoute};
use crate::config::types::{Endpoints, UpstreamConfig, SELF_ISSUER};
use crate::routing::{
    Cors, MethodSet, Origins, OutOfGrant, PathMatch, Policy, RouteSpec, RouteTable, TileRoute, TileScheme,
};

pub(super) fn routes(
    raw: &[FileRoute],
    endpoints: &Endpoints,
    upstreams: &[Arc<UpstreamConfig>],
    issuer_names: &[(String, u64)],
    scopes: &BTreeMap<String, String>,
    p: &mut Problems,
) -> Vec<RouteSpec> {
    let mut routes = Vec::new();
    // Every inline endpoint answers ahead of the routes: a route path one
    // of them matches would never be reached.
    let inline = endpoints.table();
    for (i, r) in raw.iter().enumerate() {
        let key = format!("routes[{i}]");
        let name: Arc<str> = r.name.clone().unwrap_or_else(|| key.clone()).into();
        let matcher = match (&r.path, &r.prefix) {
            (Some(t), None) => {
                if !t.starts_with('/') {
                    p.push(format!("{key}.path"), "must start with /");
                }
                if let Some(kind) = inline.kind(t) {
                    let (ep_key, ep_path, _) = endpoints
                        .targets()
                        .into_iter()
                        .find(|&(_, _, k)| k == kind)
                        .expect("every kind is listed");
                    p.push(
                        format!("{key}.path"),
                        format!(
                            "route \"{name}\": \"{t}\" is an inline endpoint ({ep_key} = \"{ep_path}\"); the route would never be reached"
                        ),
                    );
                }
                if let Err(e) = plain_pattern(t) {
                    p.push(format!("{key}.path"), e);
                }
                PathMatch::Template(t.clone())
            }
            (None, Some(pre)) => {
                if !pre.starts_with('/') {
                    p.push(format!("{key}.prefix"), "must start with /");
                } else if let Err(e) = plain_pattern(pre) {
                    p.push(format!("{key}.prefix"), e);
                }
                PathMatch::Prefix(pre.clone())
            }
            _ => {
                p.push(&key, "needs exactly one of path and prefix");
                continue;
            }
        };
        let mut methods = MethodSet::ANY;
        if !r.methods.is_empty() {
            methods = MethodSet::EMPTY;
            for m in &r.methods {
                match Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
                    Ok(m) => methods.insert(&m),
                    Err(_) => p.push(format!("{key}.methods"), format!("\"{m}\" is not a method")),
                }
            }
        }
        let Some(upstream) = upstreams.iter().position(|u| u.name == r.upstream) else {
            p.push(
                format!("{key}.upstream"),
                format!("no upstream named \"{}\"", r.upstream),
            );
            continue;
        };
        let policy = if r.public {
            if !r.scopes.is_empty() {
                p.push(format!("{key}.scopes"), "a public route requires no scopes");
            }
            if r.issuers.is_some() {
                p.push(format!("{key}.issuers"), "a public route reads no token");
            }
            Policy::Public
        } else {
            undeclared(p, &format!("{key}.scopes"), &r.scopes, scopes);
            // Default: the gateway's own tokens only, so adding an issuer
            // never opens an existing route to it.
            let issuers = match &r.issuers {
                None => crate::routing::IssuerSet::self_only(),
                Some(list) => {
                    if list.is_empty() {
                        p.push(
                            format!("{key}.issuers"),
                            "must name at least one issuer (\"self\" for the gateway's own tokens)",
                        );
                    }
                    let mut ids = Vec::new();
                    for n in list {
                        if n == SELF_ISSUER {
                            ids.push(crate::routing::IssuerSet::SELF);
                        } else if let Some((_, id)) = issuer_names.iter().find(|(x, _)| x == n) {
                            ids.push(*id);
                        } else {
                            p.push(
                                format!("{key}.issuers"),
                                format!("no issuer named \"{n}\" (\"self\" or an [[issuers]] name)"),
                            );
                        }
                    }
                    crate::routing::IssuerSet::new(ids)
                }
            };
            Policy::Token {
                scopes: r.scopes.iter().map(|s| Box::<str>::from(s.as_str())).collect(),
                read_only: r.read_only,
                issuers,
            }
        };
        let cors = r.cors.as_ref().map(cors).transpose();
        let cors = match cors {
            Ok(c) => c,
            Err(e) => {
                p.push(format!("{key}.cors"), e);
                None
            }
        };
        for (field, v) in [("strip_prefix", &r.strip_prefix), ("add_prefix", &r.add_prefix)] {
            if let Some(v) = v {
                if !v.starts_with('/') {
                    p.push(format!("{key}.{field}"), "must start with /");
                }
            }
        }
        if r.forward_tokens && !r.public {
            p.push(
                format!("{key}.forward_tokens"),
                "only public routes forward tokens (a consumed token is never forwarded)",
            );
        }
        if r.end_streams_with_token && r.public {
            p.push(
                format!("{key}.end_streams_with_token"),
                "only token routes end streams with their token (a public route has none)",
            );
        }
        let tiles = tile_route(r, &matcher, &key, p);
        if r.public && r.shared_cache {
            p.push(
                format!("{key}.shared_cache"),
                "a public route's responses are left as the upstream sends them already",
            );
        }
        let allow_missing_origin = match r.missing_origin.as_deref() {
            None | Some("refuse") => false,
            Some("allow") => true,
            Some(other) => {
                p.push(
                    format!("{key}.missing_origin"),
                    format!("\"{other}\" is not \"refuse\" or \"allow\""),
                );
                false
            }
        };
        if r.missing_origin.is_some() && !r.bind_origin {
            p.push(format!("{key}.missing_origin"), "needs bind_origin = true");
        }
        if r.public && r.bind_origin {
            p.push(
                format!("{key}.bind_origin"),
                "a public route reads no token, so no origins",
            );
        }
        routes.push(RouteSpec {
            name,
            host: r.host.as_ref().map(|h| h.to_ascii_lowercase().into()),
            matcher,
            methods,
            upstream,
            policy,
            token_query: r
                .token_query
                .clone()
                .unwrap_or_else(|| vec!["access_token".into()])
                .into_iter()
                .map(Box::from)
                .collect(),
            strip_prefix: r.strip_prefix.clone().map(Box::from),
            add_prefix: r.add_prefix.clone().map(Box::from),
            cors,
            rate_limit_per_subject: r.rate_limit_per_subject,
            forward_tokens: r.forward_tokens,
            end_streams_with_token: r.end_streams_with_token,
            tiles,
            shared_cache: r.shared_cache,
            bind_origin: r.bind_origin,
            allow_missing_origin,
        });
    }
    // Patterns that conflict: the table the runtime compiles from these
    // would be refused.
    if let Err(errs) = RouteTable::check(&routes) {
        p.0.extend(errs);
    }
    routes
}

/// A route's `tiles` table and `out_of_grant`, checked against its path.
fn tile_route(r: &FileRoute, matcher: &PathMatch, key: &str, p: &mut Problems) -> Option<Arc<TileRoute>> {
    let out_of_grant = match r.out_of_grant.as_deref() {
        None | Some("not_found") => OutOfGrant::NotFound,
        Some("forbidden") => OutOfGrant::Forbidden,
        Some("no_content") => OutOfGrant::NoContent,
        Some("empty") => OutOfGrant::Empty,
        Some(other) => {
            p.push(
                format!("{key}.out_of_grant"),
                format!("\"{other}\" is not one of \"not_found\", \"forbidden\", \"no_content\", \"empty\""),
            );
            OutOfGrant::NotFound
        }
    };
    let Some(t) = &r.tiles else {
        if r.out_of_grant.is_some() {
            p.push(
                format!("{key}.out_of_grant"),
                "needs a tiles table (the route names no tile to check)",
            );
        }
        return None;
    };
    if r.public {
        p.push(format!("{key}.tiles"), "a public route reads no token, so no grant");
    }
    let scheme = match t.scheme.as_deref() {
        None | Some("xyz") => TileScheme::Xyz,
        Some("tms") => TileScheme::Tms,
        Some(other) => {
            p.push(
                format!("{key}.tiles.scheme"),
                format!("\"{other}\" is not \"xyz\" or \"tms\""),
            );
            TileScheme::Xyz
        }
    };
    let PathMatch::Template(template) = matcher else {
        p.push(
            format!("{key}.tiles"),
            "needs a path template with the tile parameters (not a prefix)",
        );
        return None;
    };
    match TileRoute::new(template, &t.z, &t.x, &t.y, t.layer.as_deref(), scheme, out_of_grant) {
        Ok(tr) => Some(Arc::new(tr)),
        Err(e) => {
            p.push(format!("{key}.tiles"), e);
            None
        }
    }
}

/// A route pattern must be spelled the way requests are routed: in the
/// canonical path form (no dot segments, no `//`) and without characters
/// that backends read in more than one way (escapes, `;`, `\\`), so that a
/// request matches it exactly when every backend reading does.
fn plain_pattern(p: &str) -> Result<(), String> {
    if let Some(c) = p
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-._~/!$&'()*+,=:@{}".contains(*c)))
    {
        return Err(format!(
            "\"{p}\" has '{c}': use letters, digits and -._~!$&'()*+,=:@ only"
        ));
    }
    match crate::routing::normalize(p) {
        Ok(n) if n == p => Ok(()),
        _ => Err(format!(
            "\"{p}\" is not a canonical path (no \"//\", \".\" or \"..\" segments)"
        )),
    }
}

/// A route's `cors` table, checked, with its header values computed.
fn cors(f: &FileCors) -> Result<Cors, String> {
    if f.origins.is_empty() {
        return Err("origins must list at least one origin or \"*\"".into());
    }
    let origins = Origins::new(&f.origins);
    if origins.any() && f.allow_credentials {
        return Err("allow_credentials cannot go with origin \"*\"".into());
    }
    let mut allow = vec!["authorization".to_string(), "content-type".to_string()];
    allow.extend(f.allow_headers.iter().map(|h| h.to_ascii_lowercase()));
    let mut expose = vec!["www-authenticate".to_string()];
    expose.extend(f.expose_headers.iter().map(|h| h.to_ascii_lowercase()));
    for h in allow.iter().chain(expose.iter()) {
        HeaderName::from_bytes(h.as_bytes()).map_err(|_| format!("\"{h}\" is not a header name"))?;
    }
    Ok(Cors {
        origins,
        allow_headers: HeaderValue::from_str(&allow.join(", ")).map_err(|e| e.to_string())?,
        expose_headers: HeaderValue::from_str(&expose.join(", ")).map_err(|e| e.to_string())?,
        max_age: HeaderValue::from(f.max_age),
        allow_credentials: f.allow_credentials,
    })
}
