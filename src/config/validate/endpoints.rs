//! `[endpoints]` and `[identity_headers]`: the inline endpoints' paths and
//! the names of the headers that carry the verified identity upstream.

use http::header::HeaderName;

use super::Problems;
use crate::config::file::{FileEndpoints, FileIdentityHeaders};
use crate::config::types::{Endpoints, IdentityHeaders};
use crate::routing::Origins;

pub(super) fn endpoints(e: &FileEndpoints, p: &mut Problems) -> Endpoints {
    Endpoints {
        api_key_exchange: p.path("endpoints.api_key_exchange", &e.api_key_exchange),
        oauth_token: p.path("endpoints.oauth_token", &e.oauth_token),
        clients: p.path("endpoints.clients", &e.clients),
        named_token: p.path("endpoints.named_token", &e.named_token),
        named_tokens: p.path("endpoints.named_tokens", &e.named_tokens),
        generator_token: p.path("endpoints.generator_token", &e.generator_token),
        me: p.path("endpoints.me", &e.me),
        introspect: p.path("endpoints.introspect", &e.introspect),
        revoke: p.path("endpoints.revoke", &e.revoke),
        jwks: p.path("endpoints.jwks", &e.jwks),
        metadata: p.path("endpoints.metadata", &e.metadata),
        cors_origins: Origins::new(&e.cors_origins),
    }
}

pub(super) fn identity_headers(h: &FileIdentityHeaders, p: &mut Problems) -> IdentityHeaders {
    let identity = IdentityHeaders {
        subject: p.header("identity_headers.subject", &h.subject),
        org: p.header("identity_headers.org", &h.org),
        scopes: p.header("identity_headers.scopes", &h.scopes),
        uid: p.header("identity_headers.uid", &h.uid),
        issuer: p.header("identity_headers.issuer", &h.issuer),
    };
    // Backends behind CGI-style stacks read `-` and `_` as the same
    // character: two identity headers must differ in that reading too.
    {
        let names = identity.all();
        let fold = |n: &HeaderName| n.as_str().replace('_', "-");
        for (i, a) in names.iter().enumerate() {
            if names[..i].iter().any(|b| fold(a) == fold(b)) {
                p.push(
                    "identity_headers",
                    format!("\"{a}\" is used twice (- and _ count as the same)"),
                );
            }
        }
    }
    identity
}
