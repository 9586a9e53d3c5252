//! Entry points of the fuzz targets in `fuzz/` (cargo-fuzz, libFuzzer).
//! `tests/fuzz_corpus.rs` replays the kept corpus through the same
//! functions in every test run, so an input that once found a bug stays a
//! regression test without a fuzzer installed.
//!
//! Each function takes arbitrary bytes, must never panic on them, and
//! panics (a finding) only when one of the invariants it states breaks.

use std::sync::{Arc, OnceLock};

use http::{HeaderMap, HeaderValue, Method};
use serde_json::Value;

use crate::auth::keys::{self, KeySet};
use crate::auth::revocation::Revocations;
use crate::auth::{extract, Verifier};
use crate::clock::now_unix;
use crate::config::Config;
use crate::routing::{normalize, PathMatch};
use crate::store::SigningKeyRecord;

const ISSUER: &str = "http://fuzz.test";
const AUDIENCE: &str = "tilegate";
const LEEWAY: i64 = 30;
/// The external issuer of the fuzz config: may grant `tiles:read`, maps its
/// `fz.stream` to `datasets:stream`, tokens live at most an hour.
const EXT_ISSUER: &str = "https://ext.fuzz.test";
const EXT_NAME: &str = "fz";
const EXT_KID: &str = "fuzz-ext";
const EXT_MAX_LIFETIME: i64 = 3600;

/// The external issuer's signing key, the temporary JWKS file the fuzz
/// config names, and its text (the file exists only while the verifier
/// loads it).
struct ExtKey {
    encoding: jsonwebtoken::EncodingKey,
    path: std::path::PathBuf,
    jwks: String,
}

fn ext_key() -> &'static ExtKey {
    static K: OnceLock<ExtKey> = OnceLock::new();
    K.get_or_init(|| {
        let k = keys::generate(jsonwebtoken::Algorithm::ES256, now_unix()).expect("key");
        let mut jwk: Value = serde_json::from_str(&k.public_jwk).expect("jwk");
        jwk["kid"] = EXT_KID.into();
        ExtKey {
            encoding: jsonwebtoken::EncodingKey::from_ec_der(&k.private_pkcs8_der),
            path: std::env::temp_dir().join(format!("tilegate-fuzz-{}.jwks", std::process::id())),
            jwks: serde_json::json!({ "keys": [jwk] }).to_string(),
        }
    })
}

fn config() -> &'static Config {
    static CFG: OnceLock<Config> = OnceLock::new();
    CFG.get_or_init(|| {
        let jwks = ext_key().path.display().to_string();
        let mut toml = format!(
            "[tokens]\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\nleeway = \"{LEEWAY}s\"\n\
             [scopes]\n\"tiles:read\" = \"r\"\n\"datasets:stream\" = \"s\"\n\"clients:manage\" = \"m\"\n\
             [[issuers]]\nname = \"{EXT_NAME}\"\nissuer = \"{EXT_ISSUER}\"\naudiences = [\"{AUDIENCE}\"]\n\
             algorithms = [\"ES256\"]\njwks_file = {jwks:?}\nscopes = [\"tiles:read\"]\n\
             scope_map = {{ \"fz.stream\" = [\"datasets:stream\"] }}\nmax_lifetime = \"{EXT_MAX_LIFETIME}s\"\n\
             [[upstreams]]\nname = \"t\"\nbackends = [\"http://127.0.0.1:1\"]\n"
        );
        toml.push_str(
            "[[routes]]\npath = \"/tiles/{z}/{x}/{y}.pbf\"\nmethods = [\"GET\"]\nupstream = \"t\"\nscopes = [\"tiles:read\"]\n\
             [[routes]]\nprefix = \"/ext/\"\nupstream = \"t\"\nissuers = [\"self\", \"fz\"]\n\
             [[routes]]\nprefix = \"/stream/\"\nupstream = \"t\"\nscopes = [\"datasets:stream\"]\n\
             [[routes]]\nhost = \"maps.example\"\nprefix = \"/private/\"\nupstream = \"t\"\nscopes = [\"tiles:read\"]\n\
             [[routes]]\nprefix = \"/public/\"\nupstream = \"t\"\npublic = true\n\
             [[routes]]\nprefix = \"/\"\nupstream = \"t\"\npublic = true\n",
        );
        crate::config::from_str(&toml).expect("the fuzz config is valid")
    })
}

/// The fuzz config's routes, compiled as the runtime compiles them.
fn routes() -> &'static crate::routing::RouteTable {
    static ROUTES: OnceLock<crate::routing::RouteTable> = OnceLock::new();
    ROUTES.get_or_init(|| crate::routing::RouteTable::build(&config().routes).expect("the fuzz routes compile"))
}

/// Path normalisation and route matching.
///
/// Invariants: a normalised path is absolute, free of dot segments, empty
/// segments and escapes that decode to a separator, and normalising it
/// again changes nothing; prefixing `/.` or `/x/..` (which resolve away)
/// gives the same result; the route found for it is one whose prefix it
/// really starts with; the route chosen for the forwarded (canonical) path
/// is the route chosen for the request; and every backend model in
/// [`backend_readings`] reads the forwarded path as one that the same route
/// covers, so no spelling is authorized under another rule than the one
/// the backend's reading falls under.
pub fn path(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (host, raw) = match text.split_once('\n') {
        Some((h, p)) => (Some(h), p),
        None => (None, text),
    };
    let Ok(p) = normalize(raw) else { return };
    assert!(p.starts_with('/'), "{raw:?} → {p:?}");
    for seg in p[1..].split('/') {
        assert!(seg != "." && seg != "..", "dot segment left in {p:?} from {raw:?}");
        let lower = seg.to_ascii_lowercase();
        assert!(
            !lower.contains("%2f") && !lower.contains("%5c") && !lower.contains("%00") && !seg.contains('\\'),
            "separator escape left in {p:?}"
        );
    }
    assert_eq!(normalize(&p).as_deref(), Ok(&*p), "not idempotent: {raw:?}");
    assert_eq!(
        normalize(&format!("/.{raw}")).as_deref(),
        Ok(&*p),
        "/. prefix of {raw:?}"
    );
    assert_eq!(
        normalize(&format!("/x/..{raw}")).as_deref(),
        Ok(&*p),
        "/x/.. prefix of {raw:?}"
    );
    let table = routes();
    for m in [Method::GET, Method::POST] {
        if let Ok(route) = table.find(host, &m, &p) {
            if let PathMatch::Prefix(prefix) = &route.matcher {
                assert!(p.starts_with(prefix.as_str()), "{p:?} matched prefix {prefix:?}");
            }
            if let Some(h) = &route.host {
                assert!(
                    host.is_some_and(|x| x.eq_ignore_ascii_case(h)),
                    "host rule {h} for {host:?}"
                );
            }
        }
        assert_same_rule_for_every_reading(table, host, &m, raw);
    }
}

/// The route-agreement property shared by the `path` fuzz target and the
/// routing proptest: a request accepted under route R is forwarded as a
/// path that routes to R again, and that every backend model reads as a
/// path under R (a case-insensitive model's reading is matched with letter
/// case ignored on both sides).
pub fn assert_same_rule_for_every_reading(
    table: &crate::routing::RouteTable,
    host: Option<&str>,
    m: &Method,
    raw: &str,
) {
    let Ok(p) = normalize(raw) else { return };
    let Ok(route) = table.resolve(host, m, &p) else { return };
    let again = table.resolve(host, m, &p).map(|r| r.name.clone());
    assert_eq!(again.as_deref(), Ok(&*route.name), "forwarded {p:?} routes elsewhere");
    for (model, reading, folded) in backend_readings(&p) {
        let Some(reading) = reading else { continue };
        let other = if folded {
            table.find_ignoring_case(host, m, &reading)
        } else {
            table.find(host, m, &reading)
        }
        .map(|r| r.name.clone());
        assert_eq!(
            other.as_deref(),
            Ok(&*route.name),
            "{raw:?} → {p:?} authorized under {} but {model} reads {reading:?}",
            route.name
        );
    }
}

/// How common backends read a forwarded path: a reference model of each,
/// written independently of `routing::path` (its decoder is the
/// `percent-encoding` crate's). `None` where that backend would refuse the
/// path; `true` for models that ignore letter case.
pub fn backend_readings(forwarded: &str) -> Vec<(&'static str, Option<String>, bool)> {
    fn decode(s: &str) -> String {
        percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
    }
    fn dots(s: &str) -> Option<String> {
        let mut out: Vec<&str> = Vec::new();
        let segs: Vec<&str> = s.split('/').collect();
        for seg in segs.iter().skip(1) {
            match *seg {
                "." | "" => {}
                ".." => {
                    out.pop()?;
                }
                x => out.push(x),
            }
        }
        let ends_dir = matches!(segs.last(), Some(&"" | &"." | &".."));
        let mut r = format!("/{}", out.join("/"));
        if ends_dir && r.len() > 1 {
            r.push('/');
        }
        Some(r)
    }
    let decoded = dots(&decode(forwarded));
    let tomcat = {
        let stripped: Vec<&str> = forwarded
            .split('/')
            .map(|s| s.split(';').next().unwrap_or(""))
            .collect();
        dots(&stripped.join("/")).map(|p| decode(&p))
    };
    let twice = dots(&decode(&decode(forwarded)));
    let windows = decoded.as_ref().and_then(|d| {
        let trimmed: Vec<&str> = d
            .split('/')
            .map(|s| s.split(':').next().unwrap_or("").trim_end_matches(['.', ' ']))
            .collect();
        dots(&trimmed.join("/"))
    });
    vec![
        ("a decoding server (nginx, Go, Python, Node)", decoded.clone(), false),
        ("a servlet container (Tomcat, Jetty)", tomcat, false),
        ("a server that decodes twice", twice, false),
        ("a case-insensitive file system", decoded, true),
        ("a Windows file system", windows, true),
    ]
}

struct TokenFixture {
    rt: tokio::runtime::Runtime,
    verifier: Verifier,
    keys: KeySet,
}

fn token_fixture() -> &'static TokenFixture {
    static F: OnceLock<TokenFixture> = OnceLock::new();
    F.get_or_init(|| {
        let keyset = || {
            let k = keys::generate(jsonwebtoken::Algorithm::ES256, now_unix()).expect("key");
            let rec = SigningKeyRecord {
                kid: "fuzz-key".into(),
                alg: k.alg,
                private_pkcs8_der: k.private_pkcs8_der,
                public_jwk: k.public_jwk,
                created_at: k.created_at,
                retired_at: None,
            };
            KeySet::from_records(&[rec], now_unix(), 3600).expect("key set")
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let ext = ext_key();
        std::fs::write(&ext.path, &ext.jwks).expect("jwks file");
        let verifier = Verifier::new(config(), keyset(), None, Arc::new(Revocations::new()));
        let _ = std::fs::remove_file(&ext.path);
        TokenFixture {
            rt,
            verifier,
            keys: keyset(),
        }
    })
}

/// Token extraction and verification. The first byte picks the mode:
///
/// - even: the rest is a token as received (an `Authorization` header and
///   a query string). Nothing random can carry a valid signature of a key
///   the fuzzer does not have: verification must fail, and a token found in
///   the query is cut out of the query that would be forwarded.
/// - 1 (mod 4): the rest is a JSON claims set that the harness signs with
///   the gateway's own key (under the verifier's kid), so claim validation
///   itself is fuzzed: whatever verifies has the right `iss` and `aud`, an
///   `exp` not past the leeway (or is a named token with a `jti`), and an
///   `nbf` not in the future.
/// - 3 (mod 4): the claims (integer `exp`, `iat`, `nbf` as seconds from
///   now) are signed by the external issuer `fz`:
///   whatever verifies is `fz`'s, under the subject `fz|<sub>`, with no
///   local identity or credential semantics whatever it claims, only scopes
///   `fz` may grant (never `clients:manage`), a lifetime within its
///   `max_lifetime`, and is refused by a route that does not list `fz`.
pub fn token(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let f = token_fixture();
    if mode % 2 == 0 {
        let Ok(text) = std::str::from_utf8(rest) else { return };
        let (header, query) = text.split_once('\n').unwrap_or((text, ""));
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(header) {
            headers.insert(http::header::AUTHORIZATION, v);
        }
        let params: [Box<str>; 2] = ["access_token".into(), "token".into()];
        if let Ok(Some(found)) = extract::extract(&headers, Some(query), &params) {
            if let Some(q) = &found.new_query {
                for pair in q.split('&') {
                    let name = pair.split_once('=').map_or(pair, |(n, _)| n);
                    assert!(!params.iter().any(|p| **p == *name), "token parameter forwarded: {q:?}");
                }
            }
            let r = f.rt.block_on(f.verifier.verify(&found.token));
            assert!(r.is_err(), "a forged token verified: {:?}", found.token);
        }
        let r = f.rt.block_on(f.verifier.verify(text));
        assert!(r.is_err(), "a forged token verified: {text:?}");
        return;
    }
    let Ok(claims) = serde_json::from_slice::<Value>(rest) else {
        return;
    };
    if mode % 4 == 3 {
        return external_token(f, &claims);
    }
    let key = f.keys.active.as_ref().expect("active key");
    let mut h = jsonwebtoken::Header::new(key.alg);
    h.kid = Some("fuzz-key".into());
    let Ok(token) = jsonwebtoken::encode(&h, &claims, &key.encoding) else {
        return;
    };
    let Ok(v) = f.rt.block_on(f.verifier.verify_uncached(&token)) else {
        return;
    };
    let now = now_unix();
    assert_eq!(claims["iss"], ISSUER, "{claims}");
    let aud_ok = match &claims["aud"] {
        Value::String(a) => a == AUDIENCE,
        Value::Array(a) => a.iter().any(|x| x == AUDIENCE),
        _ => false,
    };
    assert!(aud_ok, "audience: {claims}");
    assert_eq!(claims["sub"].as_str(), Some(v.sub()), "{claims}");
    match v.exp {
        Some(exp) => assert!(exp >= now - LEEWAY - 5, "expired token verified: {claims}"),
        None => assert!(
            v.token_type() == "named" && v.jti().is_some(),
            "no exp, yet not a named token: {claims}"
        ),
    }
    if let Some(nbf) = claims.get("nbf").and_then(Value::as_f64) {
        assert!(
            nbf <= (now + LEEWAY + 5) as f64,
            "not-yet-valid token verified: {claims}"
        );
    }
}

fn external_token(f: &TokenFixture, claims: &Value) {
    // Integer `exp`, `iat` and `nbf` count from now (so a kept input stays
    // within `max_lifetime` of the present in every later run).
    let mut claims = claims.clone();
    let now = now_unix();
    for k in ["exp", "iat", "nbf"] {
        if let Some(off) = claims.get(k).and_then(Value::as_i64) {
            claims[k] = off.saturating_add(now).into();
        }
    }
    let claims = &claims;
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    h.kid = Some(EXT_KID.into());
    let Ok(token) = jsonwebtoken::encode(&h, claims, &ext_key().encoding) else {
        return;
    };
    let Ok(v) = f.rt.block_on(f.verifier.verify_uncached(&token)) else {
        return;
    };
    assert_eq!(claims["iss"], EXT_ISSUER, "{claims}");
    assert!(!v.own, "{claims}");
    assert_eq!(v.issuer_id, crate::routing::IssuerSet::id_of(EXT_NAME));
    assert_eq!(v.issuer_name(), EXT_NAME);
    assert_eq!(
        Some(v.sub()),
        claims["sub"].as_str().map(|s| format!("{EXT_NAME}|{s}")).as_deref(),
        "{claims}"
    );
    assert!(
        v.uid().is_none() && v.org_id().is_none() && v.username().is_none() && v.jti().is_none() && v.cid().is_none(),
        "a claimed local identity or credential reached the verdict: {claims}"
    );
    assert!(!v.read_only && v.token_type() == "external", "{claims}");
    let identity = v.identity();
    assert!(identity.uid.is_none() && identity.org.is_none(), "{claims}");
    for s in v.scopes() {
        assert!(
            s == "tiles:read" || s == "datasets:stream",
            "scope {s} granted: {claims}"
        );
    }
    let (exp, iat) = (v.exp.expect("exp"), v.iat.expect("iat under max_lifetime"));
    assert!(exp - iat <= EXT_MAX_LIFETIME, "lives too long: {claims}");
    assert!(exp >= now_unix() - LEEWAY - 5, "expired token verified: {claims}");
    let routes = routes();
    let own_only = routes.find(None, &Method::GET, "/tiles/1/2/3.pbf").expect("route");
    assert!(
        crate::auth::check_rule(&own_only.policy, &Method::GET, &v).is_err(),
        "a self-only route took an external token: {claims}"
    );
    let ext = routes.find(None, &Method::GET, "/ext/x").expect("route");
    assert!(
        crate::auth::check_rule(&ext.policy, &Method::GET, &v).is_ok(),
        "{claims}"
    );
}

/// Config parsing and validation: any text is either a typed `Config` or
/// a list of problems, each naming something; never a panic.
pub fn config_text(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match crate::config::from_str(text) {
        Ok(cfg) => {
            for r in &cfg.routes {
                assert!(r.upstream < cfg.upstreams.len(), "route upstream index out of range");
                if let crate::routing::Policy::Token { issuers, .. } = &r.policy {
                    for id in issuers.ids() {
                        assert!(
                            *id == crate::routing::IssuerSet::SELF || cfg.issuers.iter().any(|i| i.id == *id),
                            "route {} accepts an issuer that is not configured",
                            r.name
                        );
                    }
                }
            }
            for i in &cfg.issuers {
                let grants = i.scopes.iter().chain(i.scope_map.values().flatten());
                for s in grants {
                    assert!(cfg.scopes.contains_key(s), "issuer {} grants undeclared {s}", i.name);
                    assert!(!crate::config::credential_scope(s), "issuer {} grants {s}", i.name);
                }
            }
        }
        Err(e) => {
            let problems = e.problems();
            assert!(!problems.is_empty(), "refused without a problem: {e}");
            assert!(
                problems.iter().all(|p| !p.trim().is_empty()),
                "an empty problem: {problems:?}"
            );
        }
    }
}

/// The token endpoints' request parsing. The first byte picks the parser:
/// form/query pairs (what decodes re-encodes to the same pairs), the
/// `/v1/auth/token` JSON body, the named-token query, or the OAuth form
/// (accepted exactly when its pairs decode and no name repeats). Whatever
/// parses must satisfy the endpoint's rules.
pub fn token_request(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            if let Ok(pairs) = crate::issue::form_pairs(rest) {
                let again = serde_urlencoded::to_string(&pairs).expect("pairs encode");
                assert_eq!(
                    crate::issue::form_pairs(again.as_bytes()).ok().as_ref(),
                    Some(&pairs),
                    "round trip of {again:?}"
                );
            }
        }
        1 => {
            let map = if rest.iter().all(u8::is_ascii_whitespace) {
                None
            } else {
                match crate::issue::parse_object(rest) {
                    Ok(m) => Some(m),
                    Err(_) => return,
                }
            };
            if let Ok(crate::issue::exchange::ExchangeRequest { ttl, .. }) =
                crate::issue::exchange::parse_request(map, 3600, 14400)
            {
                assert!((1..=14400).contains(&ttl), "ttl {ttl}");
            }
        }
        2 => {
            let Ok(q) = std::str::from_utf8(rest) else { return };
            if let Ok(r) = crate::issue::named::parse_query(Some(q)) {
                assert!(crate::store::valid_name(&r.name), "name {:?}", r.name);
                assert!(r.valid_minutes.is_none_or(|m| (1..=9999).contains(&m)));
                assert!(matches!(r.action.as_str(), "read_only" | "read_write"));
            }
        }
        _ => {
            let unique = crate::issue::form_pairs(rest).ok().map(|pairs| {
                pairs
                    .iter()
                    .enumerate()
                    .all(|(i, (k, _))| pairs[..i].iter().all(|(k2, _)| k2 != k))
            });
            let parsed = crate::issue::oauth::Form::parse(rest).is_ok();
            assert_eq!(parsed, unique == Some(true), "Form::parse disagrees with its rule");
        }
    }
}

/// What the gateway reads from a trusted load balancer: a PROXY protocol
/// header (v2 or v1) at the start of a connection, and the
/// `X-Forwarded-For` walk. Never a panic; the reader consumes no more than
/// the header it accepts (the byte after it stays for TLS or HTTP); the
/// forwarded chain ends with the hop; and whatever a client writes into
/// `X-Forwarded-For`, once a trusted proxy appends an untrusted address,
/// that address is the client.
pub fn forwarding(data: &[u8]) {
    use futures_util::FutureExt as _;

    use crate::net::trusted::{client_of, forwarded, TrustedProxies};

    let mut rest = data;
    let read = crate::server::proxy_protocol::read(&mut rest)
        .now_or_never()
        .expect("reading a slice never waits");
    if read.is_ok() {
        assert!(rest.len() < data.len(), "a header was accepted without reading it");
    }
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    static TRUSTED: OnceLock<TrustedProxies> = OnceLock::new();
    let trusted = TRUSTED.get_or_init(|| {
        TrustedProxies::parse(&["127.0.0.0/8".into(), "10.0.0.0/8".into(), "2001:db8::/32".into()]).expect("nets")
    });
    let hop: std::net::IpAddr = "127.0.0.1".parse().expect("ip");
    let hop_value = HeaderValue::from_static("127.0.0.1");
    let mut h = HeaderMap::new();
    h.insert("x-forwarded-for", value);
    let f = forwarded(trusted, hop, &hop_value, &h);
    assert_eq!(f.client, client_of(trusted, hop, &h));
    assert!(f.chain.as_bytes().ends_with(b"127.0.0.1"), "the hop is appended");
    h.append("x-forwarded-for", HeaderValue::from_static("198.51.100.1"));
    assert_eq!(
        client_of(trusted, hop, &h),
        "198.51.100.1".parse::<std::net::IpAddr>().expect("ip"),
        "a client chose its address"
    );
}
