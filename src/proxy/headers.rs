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

/// The fixed hop-by-hop names (RFC 9110 §7.6.1), each with its bit in the
/// mask [`scan`] and [`hop_mask`] build.
static HOP_BY_HOP: [&HeaderName; 7] = [
    &CONNECTION,
    &KEEP_ALIVE,
    &PROXY_CONNECTION,
    &TE,
    &TRAILER,
    &TRANSFER_ENCODING,
    &UPGRADE,
];
const CONNECTION_BIT: u8 = 1;

/// The bit of a fixed hop-by-hop name, 0 for any other name. Standard
/// names compare as an enum; only `keep-alive` and `proxy-connection` are
/// compared as bytes, and only with a name of their length.
#[inline]
fn hop_bit(k: &HeaderName) -> u8 {
    let mut bit = 1;
    for n in HOP_BY_HOP {
        if k == n {
            return bit;
        }
        bit <<= 1;
    }
    0
}

/// Which fixed hop-by-hop names a header map holds, one bit each.
fn hop_mask(h: &HeaderMap) -> u8 {
    h.keys().fold(0, |m, k| m | hop_bit(k))
}

/// Remove the hop-by-hop headers: the names `Connection` lists, then the
/// fixed ones, of which `mask` says which are present (one pass over the
/// names found them; a removal is a hash and a probe, so absent names are
/// not looked up).
fn remove_hop_by_hop(h: &mut HeaderMap, mask: u8) {
    if mask & CONNECTION_BIT != 0 {
        // Read as bytes: a value with a byte that is not visible ASCII
        // (which hyper accepts) must not hide the names beside it.
        let listed: Vec<HeaderName> = h
            .get_all(CONNECTION)
            .iter()
            .flat_map(|conn| conn.as_bytes().split(|b| *b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|n| {
                // The usual tokens name nothing beyond the fixed list: no
                // allocation for them.
                ![&b"keep-alive"[..], b"close", b"upgrade", b"te", b""]
                    .iter()
                    .any(|k| n.eq_ignore_ascii_case(k))
            })
            .filter_map(|n| HeaderName::from_bytes(n).ok())
            .collect();
        for n in listed {
            h.remove(n);
        }
    }
    let mut bit = 1;
    for n in HOP_BY_HOP {
        if mask & bit != 0 {
            h.remove(n);
        }
        bit <<= 1;
    }
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

/// What one pass over the request's header names (a handful, usually)
/// found: which fixed hop-by-hop headers are there, whether the client
/// sent an identity header (in any spelling), and whether it sent
/// `Forwarded`. Most requests have none of them, and then no removal (a
/// hash and a probe each) is made.
struct Scan {
    hop: u8,
    spoofed: bool,
    forwarded: bool,
}

fn scan(h: &HeaderMap, names: &IdentityHeaders) -> Scan {
    let mut s = Scan {
        hop: 0,
        spoofed: false,
        forwarded: false,
    };
    for k in h.keys() {
        s.hop |= hop_bit(k);
        s.spoofed |= is_identity(k, names);
        s.forwarded |= k == FORWARDED;
    }
    s
}

/// Rewrite the client's headers for the upstream. Every header the
/// backend may trust for who and where is set here, never passed from the
/// client: identity headers, `X-Forwarded-For`, `X-Real-IP`,
/// `X-Forwarded-Proto`, `X-Forwarded-Host` (the host routed on, read before
/// `Connection` can name `Host`); `Forwarded` is removed
/// (`docs/config.md` lists them).
pub fn prepare_request_headers(h: &mut HeaderMap, ctx: &ForwardCtx<'_>) {
    let found = scan(h, ctx.names);
    let host = match h.remove(HOST) {
        Some(v) => Some(v),
        None => ctx.authority.cloned(),
    };
    if found.hop != 0 {
        let upgrade = if ctx.upgrade { h.get(UPGRADE).cloned() } else { None };
        remove_hop_by_hop(h, found.hop);
        if let Some(u) = upgrade {
            h.insert(CONNECTION, HeaderValue::from_static("upgrade"));
            h.insert(UPGRADE, u);
        }
    }
    // Identity headers come from the gateway only: whatever a client sent
    // under those names is dropped first.
    if found.spoofed {
        let gone: Vec<HeaderName> = h.keys().filter(|k| is_identity(k, ctx.names)).cloned().collect();
        for n in gone {
            h.remove(n);
        }
    }
    // Room for what is inserted below, made once (a parsed request's map
    // is sized to its own headers and would otherwise grow twice).
    let inserts = 3
        + usize::from(host.is_some())
        + ctx.identity.map_or(0, |id| {
            3 + usize::from(id.org.is_some()) + usize::from(id.uid.is_some())
        });
    h.reserve(inserts);
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
    if found.forwarded {
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
    let mask = hop_mask(h);
    if mask != 0 {
        remove_hop_by_hop(h, mask);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request from 127.0.0.1 with no verified identity.
    fn anonymous<'a>(ip: &'a HeaderValue, names: &'a IdentityHeaders) -> ForwardCtx<'a> {
        ForwardCtx {
            client_ip: ip,
            forwarded_for: None,
            proto: ip,
            names,
            identity: None,
            strip_authorization: false,
            upgrade: false,
            authority: None,
        }
    }

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
        let (ip, n) = (HeaderValue::from_static("127.0.0.1"), names());
        let ctx = anonymous(&ip, &n);
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

    /// The removal as the RFC states it, with no shortcut: every fixed
    /// hop-by-hop name and every name any `Connection` header lists (but
    /// `close`, an option that names no field: RFC 9110 reserves the
    /// field name `Close`).
    fn remove_hop_by_hop_plainly(h: &mut HeaderMap) {
        let mut listed: Vec<HeaderName> = Vec::new();
        for v in h.get_all(CONNECTION) {
            // Byte by byte, independent of the code under test.
            for part in String::from_utf8_lossy(v.as_bytes()).split(',') {
                let n = part.trim_matches(|c| c == ' ' || c == '\t').to_ascii_lowercase();
                if n != "close" {
                    if let Ok(n) = HeaderName::from_bytes(n.as_bytes()) {
                        listed.push(n);
                    }
                }
            }
        }
        let fixed = [
            "connection",
            "keep-alive",
            "proxy-connection",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
        ]
        .map(HeaderName::from_static);
        for n in listed.iter().chain(&fixed) {
            h.remove(n);
        }
    }

    fn sorted(h: &HeaderMap) -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<_> = h.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect();
        v.sort();
        v
    }

    proptest::proptest! {
        /// The mask only skips lookups: whatever a request or response
        /// holds (hop-by-hop names in any number, repeated `Connection`
        /// headers listing any names, the usual tokens), what is left is
        /// what the plain removal leaves.
        #[test]
        fn the_masked_removal_leaves_what_the_plain_one_leaves(
            headers in proptest::collection::vec((0usize..14, 0usize..10), 0..12),
        ) {
            let names = [
                "connection", "keep-alive", "proxy-connection", "te", "trailer",
                "transfer-encoding", "upgrade", "x-secret", "accept", "host",
                "x-forwarded-for", "forwarded", "cookie", "close",
            ];
            let values = [
                "close", "keep-alive, x-secret", "Upgrade", "x-secret, accept", "te, trailer",
                " cookie ,, host", "1", "Keep-Alive", "x-forwarded-for,Forwarded",
            ];
            // And one with a byte that is not visible ASCII beside a name.
            let odd = HeaderValue::from_bytes(b"x-secret, caf\xc3\xa9").unwrap();
            let mut h = HeaderMap::new();
            for (n, v) in headers {
                let value = values.get(v).map_or_else(|| odd.clone(), |v| HeaderValue::from_static(v));
                h.append(HeaderName::from_static(names[n]), value);
            }
            let mut fast = h.clone();
            let mask = hop_mask(&fast);
            if mask != 0 {
                remove_hop_by_hop(&mut fast, mask);
            }
            let mut plain = h.clone();
            remove_hop_by_hop_plainly(&mut plain);
            proptest::prop_assert_eq!(sorted(&fast), sorted(&plain));
            let mut resp = h;
            strip_response_hop_headers(&mut resp, StatusCode::OK);
            proptest::prop_assert_eq!(sorted(&resp), sorted(&plain));
        }
    }

    #[test]
    fn a_connection_header_with_a_non_ascii_byte_still_has_its_names_removed() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_bytes(b"x-secret, caf\xc3\xa9").unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert(HOST, "maps.example".parse().unwrap());
        let (ip, n) = (HeaderValue::from_static("127.0.0.1"), names());
        let ctx = anonymous(&ip, &n);
        prepare_request_headers(&mut h, &ctx);
        assert!(h.get("x-secret").is_none(), "listed beside a non-ASCII token");
        assert!(h.get(CONNECTION).is_none());
        let mut r = HeaderMap::new();
        r.insert(CONNECTION, HeaderValue::from_bytes(b"\xff, x-secret").unwrap());
        r.insert("x-secret", "1".parse().unwrap());
        strip_response_hop_headers(&mut r, StatusCode::OK);
        assert!(r.get("x-secret").is_none(), "the same on a response");
    }

    #[test]
    fn names_listed_in_any_connection_header_go() {
        let mut h = HeaderMap::new();
        h.append(CONNECTION, "keep-alive".parse().unwrap());
        h.append(CONNECTION, "x-secret".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert("accept", "*/*".parse().unwrap());
        strip_response_hop_headers(&mut h, StatusCode::OK);
        assert!(h.get("x-secret").is_none(), "listed in the second Connection header");
        assert!(h.get(CONNECTION).is_none());
        assert_eq!(h["accept"], "*/*");
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
