//! Header rewrite on the way up and down: hop-by-hop headers (and those
//! named in `Connection`) removed, identity headers replaced, the consumed
//! bearer token removed, `X-Forwarded-*` set.

use http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONNECTION, HOST, TE, TRAILER, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, StatusCode};

use crate::auth::IdentityValues;
use crate::config::IdentityHeaders;

static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// What the forwarder needs to know of the request beyond its headers.
pub struct ForwardCtx<'a> {
    /// The client's address as a header value (computed once per
    /// connection, or derived from a trusted proxy's `X-Forwarded-For`):
    /// `X-Real-IP`, and `X-Forwarded-For` unless `forwarded_for` is set.
    pub client_ip: &'a HeaderValue,
    /// `X-Forwarded-For` of a request that came through a trusted proxy:
    /// the chain it sent with the proxy's address appended
    /// (`net::trusted`).
    pub forwarded_for: Option<&'a HeaderValue>,
    pub proto: &'a HeaderValue,
    pub names: &'a IdentityHeaders,
    pub identity: Option<&'a IdentityValues>,
    /// The bearer token was consumed by the gateway: don't pass it on.
    pub strip_authorization: bool,
    /// `Connection: upgrade` request (WebSocket): keep the upgrade headers.
    pub upgrade: bool,
    /// The request target's authority when there is no `Host` header
    /// (HTTP/2): the host the request was routed on.
    pub authority: Option<&'a HeaderValue>,
}

fn remove_hop_by_hop(h: &mut HeaderMap) {
    if let Some(conn) = h.get(CONNECTION) {
        // Names listed in Connection are hop-by-hop too (RFC 9110 §7.6.1).
        // The usual tokens (`keep-alive`, `close`, `upgrade`) name nothing
        // beyond the fixed list below: no allocation for them.
        let listed: Vec<HeaderName> = conn
            .to_str()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|n| {
                !["keep-alive", "close", "upgrade", "te", ""]
                    .iter()
                    .any(|k| n.eq_ignore_ascii_case(k))
            })
            .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
            .collect();
        for n in listed {
            h.remove(n);
        }
    }
    for n in [
        &CONNECTION,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &TE,
        &TRAILER,
        &TRANSFER_ENCODING,
        &UPGRADE,
    ] {
        h.remove(n);
    }
}

fn is_hop_by_hop(k: &HeaderName) -> bool {
    k == CONNECTION
        || k == KEEP_ALIVE
        || k == PROXY_CONNECTION
        || k == TE
        || k == TRAILER
        || k == TRANSFER_ENCODING
        || k == UPGRADE
}

/// Whether a client header is an identity header in another spelling:
/// CGI, WSGI, Rack and PHP-FPM turn `-` into `_`, so `x_tilegate_org` (or
/// `x-tilegate_org`) reaches a backend as the same variable as
/// `x-tilegate-org`. Header names are lower case already.
#[inline]
fn same_identity_name(client: &HeaderName, identity: &HeaderName) -> bool {
    let (a, b) = (client.as_str().as_bytes(), identity.as_str().as_bytes());
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x == y || (matches!(x, b'-' | b'_') && matches!(y, b'-' | b'_')))
}

fn is_identity(k: &HeaderName, names: &IdentityHeaders) -> bool {
    names.all().iter().any(|n| same_identity_name(k, n))
}

/// One pass over the request's header names (a handful, usually): is there
/// a hop-by-hop header, and did the client send an identity header (in any
/// spelling)? Most requests have neither, and then the removals (a hash and
/// a probe each) are skipped.
fn scan(h: &HeaderMap, names: &IdentityHeaders) -> (bool, bool) {
    let (mut hop, mut spoofed) = (false, false);
    for k in h.keys() {
        hop |= is_hop_by_hop(k);
        spoofed |= is_identity(k, names);
    }
    (hop, spoofed)
}

/// Rewrite the client's headers for the upstream. Every header the
/// backend may trust for who and where is set here, never passed from the
/// client: identity headers, `X-Forwarded-For`, `X-Real-IP`,
/// `X-Forwarded-Proto`, `X-Forwarded-Host` (the host routed on, read before
/// `Connection` can name `Host`); `Forwarded` is removed
/// (`docs/config.md` lists them).
pub fn prepare_request_headers(h: &mut HeaderMap, ctx: &ForwardCtx<'_>) {
    let (hop, spoofed) = scan(h, ctx.names);
    let host = match h.remove(HOST) {
        Some(v) => Some(v),
        None => ctx.authority.cloned(),
    };
    if hop {
        let upgrade = if ctx.upgrade { h.get(UPGRADE).cloned() } else { None };
        remove_hop_by_hop(h);
        if let Some(u) = upgrade {
            h.insert(CONNECTION, HeaderValue::from_static("upgrade"));
            h.insert(UPGRADE, u);
        }
    }
    // Identity headers come from the gateway only: whatever a client sent
    // under those names is dropped first.
    if spoofed {
        let gone: Vec<HeaderName> = h.keys().filter(|k| is_identity(k, ctx.names)).cloned().collect();
        for n in gone {
            h.remove(n);
        }
    }
    if let Some(id) = ctx.identity {
        h.insert(ctx.names.subject.clone(), id.subject.clone());
        h.insert(ctx.names.scopes.clone(), id.scopes.clone());
        h.insert(ctx.names.issuer.clone(), id.issuer.clone());
        if let Some(o) = &id.org {
            h.insert(ctx.names.org.clone(), o.clone());
        }
        if let Some(u) = &id.uid {
            h.insert(ctx.names.uid.clone(), u.clone());
        }
    }
    if ctx.strip_authorization {
        h.remove(AUTHORIZATION);
    }
    // A client's own X-Forwarded-For, X-Real-IP or Forwarded is no fact the
    // gateway can vouch for: replaced by the address it sees (a trusted
    // proxy's chain is kept, with the proxy appended).
    h.insert(
        X_FORWARDED_FOR.clone(),
        ctx.forwarded_for.unwrap_or(ctx.client_ip).clone(),
    );
    h.insert(X_REAL_IP.clone(), ctx.client_ip.clone());
    if h.contains_key(&FORWARDED) {
        h.remove(&FORWARDED);
    }
    h.insert(X_FORWARDED_PROTO.clone(), ctx.proto.clone());
    match host {
        Some(host) => {
            h.insert(X_FORWARDED_HOST.clone(), host);
        }
        None => {
            h.remove(&X_FORWARDED_HOST);
        }
    }
}

/// Remove hop-by-hop headers from an upstream response (keeping the
/// upgrade headers of a 101).
pub fn strip_response_hop_headers(h: &mut HeaderMap, status: StatusCode) {
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return;
    }
    if h.keys().any(is_hop_by_hop) {
        remove_hop_by_hop(h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> IdentityHeaders {
        IdentityHeaders {
            subject: HeaderName::from_static("x-sub"),
            org: HeaderName::from_static("x-org"),
            scopes: HeaderName::from_static("x-scope"),
            uid: HeaderName::from_static("x-uid"),
            issuer: HeaderName::from_static("x-issuer"),
        }
    }

    #[test]
    fn hop_by_hop_and_spoofed_identity_go() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, "close, x-secret".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert("keep-alive", "5".parse().unwrap());
        h.insert("x-sub", "admin".parse().unwrap());
        h.insert(AUTHORIZATION, "Bearer t".parse().unwrap());
        h.insert(HOST, "maps.example".parse().unwrap());
        h.insert(X_FORWARDED_FOR.clone(), "10.0.0.1".parse().unwrap());
        let ip = HeaderValue::from_static("127.0.0.1");
        let proto = HeaderValue::from_static("http");
        let n = names();
        let id = IdentityValues {
            subject: "user-1".parse().unwrap(),
            org: Some("org-1".parse().unwrap()),
            scopes: "tiles:read".parse().unwrap(),
            uid: None,
            issuer: "partner".parse().unwrap(),
        };
        let ctx = ForwardCtx {
            client_ip: &ip,
            forwarded_for: None,
            proto: &proto,
            names: &n,
            identity: Some(&id),
            strip_authorization: true,
            upgrade: false,
            authority: None,
        };
        prepare_request_headers(&mut h, &ctx);
        assert!(h.get("x-secret").is_none());
        assert!(h.get("keep-alive").is_none());
        assert!(h.get(CONNECTION).is_none());
        assert!(h.get(AUTHORIZATION).is_none());
        assert_eq!(h["x-sub"], "user-1");
        assert_eq!(h["x-org"], "org-1");
        assert_eq!(h["x-issuer"], "partner");
        assert!(h.get("x-uid").is_none());
        assert_eq!(
            h[&X_FORWARDED_FOR], "127.0.0.1",
            "a client's own list is not vouched for"
        );
        assert_eq!(h[&X_REAL_IP], "127.0.0.1");
        assert_eq!(h[&X_FORWARDED_HOST], "maps.example");
        assert_eq!(h[&X_FORWARDED_PROTO], "http");
    }

    #[test]
    fn spoofed_identity_and_lone_hop_headers_go_on_a_public_route_too() {
        let mut h = HeaderMap::new();
        h.insert("x-uid", "42".parse().unwrap());
        h.insert("x-org", "org-9".parse().unwrap());
        h.insert("x_uid", "43".parse().unwrap());
        h.insert("x_issuer", "self".parse().unwrap());
        h.insert("x-issuer", "self".parse().unwrap());
        h.insert("x_sub", "admin".parse().unwrap());
        h.insert("x-subx", "kept".parse().unwrap());
        h.insert(TE, "trailers".parse().unwrap());
        h.insert("proxy-connection", "keep-alive".parse().unwrap());
        h.insert("accept", "*/*".parse().unwrap());
        let ip = HeaderValue::from_static("127.0.0.1");
        let n = names();
        let ctx = ForwardCtx {
            client_ip: &ip,
            forwarded_for: None,
            proto: &ip,
            names: &n,
            identity: None,
            strip_authorization: false,
            upgrade: false,
            authority: None,
        };
        prepare_request_headers(&mut h, &ctx);
        for gone in [
            "x-uid",
            "x-org",
            "x_uid",
            "x_issuer",
            "x-issuer",
            "x_sub",
            "te",
            "proxy-connection",
        ] {
            assert!(h.get(gone).is_none(), "{gone} must not reach the upstream");
        }
        assert_eq!(h["x-subx"], "kept", "only identity names in another spelling go");
        assert_eq!(h["accept"], "*/*");
        assert_eq!(h[&X_FORWARDED_FOR], "127.0.0.1");
    }

    #[test]
    fn upgrade_headers_survive_for_websockets() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, "Upgrade".parse().unwrap());
        h.insert(UPGRADE, "websocket".parse().unwrap());
        let ip = HeaderValue::from_static("127.0.0.1");
        let n = names();
        let ctx = ForwardCtx {
            client_ip: &ip,
            forwarded_for: None,
            proto: &ip,
            names: &n,
            identity: None,
            strip_authorization: false,
            upgrade: true,
            authority: None,
        };
        prepare_request_headers(&mut h, &ctx);
        assert_eq!(h[UPGRADE], "websocket");
        assert_eq!(h[CONNECTION], "upgrade");
    }

    #[test]
    fn where_headers_come_from_the_gateway_whatever_connection_names() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, "host, x-forwarded-host".parse().unwrap());
        h.insert(HOST, "maps.example".parse().unwrap());
        h.insert(X_FORWARDED_HOST.clone(), "evil.example".parse().unwrap());
        h.insert(FORWARDED.clone(), "for=6.6.6.6;host=evil.example".parse().unwrap());
        h.insert(X_REAL_IP.clone(), "6.6.6.6".parse().unwrap());
        h.insert(X_FORWARDED_PROTO.clone(), "https".parse().unwrap());
        let ip = HeaderValue::from_static("127.0.0.1");
        let proto = HeaderValue::from_static("http");
        let n = names();
        let ctx = ForwardCtx {
            client_ip: &ip,
            forwarded_for: None,
            proto: &proto,
            names: &n,
            identity: None,
            strip_authorization: false,
            upgrade: false,
            authority: None,
        };
        prepare_request_headers(&mut h, &ctx);
        assert_eq!(h[&X_FORWARDED_HOST], "maps.example");
        assert!(h.get(&FORWARDED).is_none());
        assert_eq!(h[&X_REAL_IP], "127.0.0.1");
        assert_eq!(h[&X_FORWARDED_PROTO], "http");
        assert!(h.get(HOST).is_none());
        // HTTP/2: no Host header, the authority routed on.
        let mut h = HeaderMap::new();
        h.insert(X_FORWARDED_HOST.clone(), "evil.example".parse().unwrap());
        let auth = HeaderValue::from_static("tiles.example:8443");
        let ctx = ForwardCtx {
            authority: Some(&auth),
            ..ctx
        };
        prepare_request_headers(&mut h, &ctx);
        assert_eq!(h[&X_FORWARDED_HOST], "tiles.example:8443");
    }

    #[test]
    fn a_trusted_proxys_chain_is_kept_with_the_proxy_appended() {
        let mut h = HeaderMap::new();
        h.insert(X_FORWARDED_FOR.clone(), "203.0.113.7".parse().unwrap());
        h.insert(X_REAL_IP.clone(), "6.6.6.6".parse().unwrap());
        let client = HeaderValue::from_static("203.0.113.7");
        let chain = HeaderValue::from_static("203.0.113.7, 127.0.0.1");
        let proto = HeaderValue::from_static("https");
        let n = names();
        let ctx = ForwardCtx {
            client_ip: &client,
            forwarded_for: Some(&chain),
            proto: &proto,
            names: &n,
            identity: None,
            strip_authorization: false,
            upgrade: false,
            authority: None,
        };
        prepare_request_headers(&mut h, &ctx);
        assert_eq!(h[&X_FORWARDED_FOR], "203.0.113.7, 127.0.0.1");
        assert_eq!(h[&X_REAL_IP], "203.0.113.7");
        assert_eq!(h[&X_FORWARDED_PROTO], "https");
    }
}
