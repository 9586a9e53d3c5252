//! Gateway core: the real binary in front of a real upstream,
//! real signed JWTs from a test issuer the gateway trusts.

mod common;

use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use common::*;
use serde_json::json;

struct Env {
    issuer: Issuer,
    up: Upstream,
    gw: Gateway,
}

async fn env_with(extra: &str) -> Env {
    let issuer = Issuer::new();
    let up = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, issuer.jwks()).unwrap();
    // `http://UPSTREAM` in `extra` names the test's upstream.
    let toml = config(&up.url(), &jwks, &extra.replace("http://UPSTREAM", &up.url()));
    let gw = tokio::task::spawn_blocking(move || start_gateway_in(dir, &toml, &[]))
        .await
        .unwrap();
    Env { issuer, up, gw }
}

/// A public `/patient/` route whose upstream may take 10 s (for requests
/// kept in flight across a reload or a shutdown).
async fn patient_env() -> Env {
    env_with("[[upstreams]]\nname = \"patient\"\nbackends = [\"http://UPSTREAM\"]\nrequest_timeout = \"10s\"\n[[routes]]\nprefix = \"/patient/\"\nupstream = \"patient\"\npublic = true\n").await
}

async fn env() -> Env {
    env_with("").await
}

fn www(r: &reqwest::Response) -> String {
    r.headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

async fn get(url: &str, token: Option<&str>) -> reqwest::Response {
    let mut r = http().get(url);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    r.send().await.unwrap()
}

#[tokio::test]
async fn valid_token_gets_the_upstream_body() {
    let e = env().await;
    let r = get(&e.gw.url("/tiles/1/2/3.pbf"), Some(&e.issuer.token("tiles:read"))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "upstream:/tiles/1/2/3.pbf:0");
    assert_eq!(e.up.seen.count(), 1);
}

#[tokio::test]
async fn bad_tokens_are_401_and_never_reach_the_upstream() {
    let e = env().await;
    let url = e.gw.url("/tiles/1/2/3.pbf");
    let now = now();

    let r = get(&url, None).await;
    assert_eq!(r.status(), 401);
    let w = www(&r);
    assert!(w.starts_with("Bearer") && !w.contains("error="), "missing token: {w}");

    let forged = Issuer::new().token("tiles:read");
    let header_none = B64.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = B64.encode(Issuer::claims("tiles:read", 300).to_string());
    let alg_none = format!("{header_none}.{payload}.");
    let mut hs = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs.kid = Some(KID.into());
    let hs256_pub = jsonwebtoken::encode(
        &hs,
        &Issuer::claims("tiles:read", 300),
        &jsonwebtoken::EncodingKey::from_secret(&e.issuer.public_bytes()),
    )
    .unwrap();
    let mut expired = Issuer::claims("tiles:read", 300);
    expired["exp"] = json!(now - 3600);
    expired["iat"] = json!(now - 7200);
    let mut not_yet = Issuer::claims("tiles:read", 7200);
    not_yet["nbf"] = json!(now + 3600);
    let mut wrong_iss = Issuer::claims("tiles:read", 300);
    wrong_iss["iss"] = json!("https://evil.test");
    let mut wrong_aud = Issuer::claims("tiles:read", 300);
    wrong_aud["aud"] = json!("another-api");
    let valid = e.issuer.token("tiles:read");
    let (h, p, _) = {
        let mut it = valid.split('.');
        (it.next().unwrap(), it.next().unwrap(), it.next().unwrap())
    };
    let _ = p;
    let mut widened = Issuer::claims("tiles:read datasets:stream", 300);
    widened["sub"] = json!("admin");
    let tampered = format!(
        "{h}.{}.{}",
        B64.encode(widened.to_string()),
        valid.rsplit('.').next().unwrap()
    );

    let cases = [
        ("forged", forged),
        ("alg none", alg_none),
        ("HS256 signed with the public key", hs256_pub),
        ("expired", e.issuer.sign(&expired)),
        ("not yet valid", e.issuer.sign(&not_yet)),
        ("wrong iss", e.issuer.sign(&wrong_iss)),
        ("wrong aud", e.issuer.sign(&wrong_aud)),
        ("tampered payload", tampered),
        ("garbage", "not.a.jwt".to_string()),
    ];
    for (name, tok) in cases {
        let r = get(&url, Some(&tok)).await;
        assert_eq!(r.status(), 401, "{name}");
        assert!(www(&r).contains("error=\"invalid_token\""), "{name}: {}", www(&r));
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_token", "{name}");
        assert!(
            body["error_description"].as_str().is_some_and(|d| !d.is_empty()),
            "{name}"
        );
    }
    assert_eq!(e.up.seen.count(), 0, "no refused request reached the upstream");
    // The bad tokens never appear in the gateway's logs.
    assert!(!e.gw.logs().contains(&valid[..40]));
}

#[tokio::test]
async fn missing_scope_is_403_and_read_only_refuses_post() {
    // A read-only route. (An external issuer's `ro` claim means nothing to
    // the gateway, so the read-only side is the route's here; read-only
    // named tokens are tests/named.rs's.)
    let e = env_with(
        "[[routes]]\nprefix = \"/ro/\"\nupstream = \"tiles\"\nscopes = [\"datasets:stream\"]\nread_only = true\nissuers = [\"self\", \"idp\"]\n",
    )
    .await;
    let r = get(&e.gw.url("/tiles/1/2/3.pbf"), Some(&e.issuer.token("datasets:stream"))).await;
    assert_eq!(r.status(), 403);
    assert!(www(&r).contains("error=\"insufficient_scope\""));

    let tok = e.issuer.token("datasets:stream");
    let r = http()
        .post(e.gw.url("/ro/x"))
        .bearer_auth(&tok)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(www(&r).contains("insufficient_scope"));
    let r = get(&e.gw.url("/ro/x"), Some(&tok)).await;
    assert_eq!(r.status(), 200);
    // A read-write token may POST.
    let rw = e.issuer.token("datasets:stream");
    let r = http()
        .post(e.gw.url("/stream/x"))
        .bearer_auth(&rw)
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "upstream:/stream/x:5");
}

#[tokio::test]
async fn query_token_is_stripped_and_identity_headers_replace_spoofed_ones() {
    let e = env().await;
    let tok = e.issuer.token("tiles:read");
    let r = http()
        .get(e.gw.url(&format!("/tiles/1/2/3.pbf?style=dark&access_token={tok}&v=2")))
        .header("x-tilegate-subject", "admin")
        .header("x-tilegate-scope", "everything")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = e.up.seen.last();
    assert_eq!(seen.uri, "/tiles/1/2/3.pbf?style=dark&v=2");
    assert!(!seen.uri.contains("access_token"));
    // The test issuer's subject, in its namespace; its configured org.
    assert_eq!(seen.header("x-tilegate-subject"), Some("idp|user-42"));
    assert_eq!(seen.header("x-tilegate-org"), Some("org-7"));
    assert_eq!(seen.header("x-tilegate-scope"), Some("tiles:read"));
    assert_eq!(seen.header("x-tilegate-issuer"), Some("idp"));
    assert!(seen.header("x-forwarded-for").is_some());
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert!(seen.header("authorization").is_none());
    assert!(!e.gw.logs().contains(&tok[..40]), "query token must not be logged");

    // Header token: also not forwarded; public route: client headers pass but identity ones are dropped.
    let r = http()
        .get(e.gw.url("/public/a"))
        .header("x-tilegate-subject", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(e.up.seen.last().header("x-tilegate-subject").is_none());

    // Token in header and query at once: refused.
    let r = http()
        .get(e.gw.url(&format!("/tiles/1/2/3.pbf?access_token={tok}")))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn chunked_response_streams_before_the_upstream_finishes() {
    let e = env().await;
    let tok = e.issuer.token("datasets:stream");
    let mut r = get(&e.gw.url("/stream/chunked"), Some(&tok)).await;
    assert_eq!(r.status(), 200);
    let first = tokio::time::timeout(Duration::from_secs(5), r.chunk())
        .await
        .expect("first chunk in time")
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"first-chunk;");
    // Only now may the upstream finish.
    e.up.release.notify_one();
    let mut rest = Vec::new();
    while let Some(c) = r.chunk().await.unwrap() {
        rest.extend_from_slice(&c);
    }
    assert_eq!(rest, b"second-chunk");
}

#[tokio::test]
async fn websocket_upgrade_passes_through() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let e = env().await;
    let tok = e.issuer.token("datasets:stream");
    let mut req = format!("ws://{}/stream/ws", e.gw.addr).into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {tok}").parse().unwrap());
    let (mut ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket through the gateway");
    assert_eq!(resp.status(), 101);
    ws.send(tokio_tungstenite::tungstenite::Message::text("ping-1"))
        .await
        .unwrap();
    let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(m.into_text().unwrap().as_str(), "ping-1");
    // Without a token the upgrade is refused.
    let req = format!("ws://{}/stream/ws", e.gw.addr).into_client_request().unwrap();
    assert!(tokio_tungstenite::connect_async(req).await.is_err());
}

#[tokio::test]
async fn upstream_down_is_502_and_slow_is_504() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let e = env_with(&format!(
        "[[upstreams]]\nname = \"dead\"\nbackends = [\"http://{dead}\"]\nconnect_timeout = \"1s\"\n[[routes]]\nprefix = \"/dead/\"\nupstream = \"dead\"\npublic = true\n"
    ))
    .await;
    let r = get(&e.gw.url("/dead/x"), None).await;
    assert_eq!(r.status(), 502);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "upstream_unreachable"
    );
    let started = Instant::now();
    let r = get(&e.gw.url("/public/slow"), None).await;
    assert_eq!(r.status(), 504);
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "answered within the 1s timeout"
    );
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "upstream_timeout"
    );
}

#[tokio::test]
async fn path_tricks_cannot_reach_a_route_under_another_rule() {
    let e = env().await;
    // Raw requests: HTTP client libraries resolve `..` and `%2e` themselves,
    // which would hide what the gateway does with them.
    // /public/ is open, /stream/ needs a token: dot segments resolve first.
    for p in [
        "/public/../stream/x",
        "/public/%2e%2e/stream/x",
        "/public/%2E%2e/stream/x",
        "/public/./../stream/x",
        "/public//..//stream/x",
    ] {
        assert_eq!(raw_status(e.gw.addr, p, None).await, 401, "{p}");
    }
    for p in [
        "/public/..%2fstream/x",
        "/public/%2e%2e%2fstream/x",
        "/public/..%5cstream/x",
        "/../../etc/passwd",
        "/public/%00",
    ] {
        assert_eq!(raw_status(e.gw.addr, p, None).await, 400, "{p}");
    }
    assert_eq!(e.up.seen.count(), 0);
    // With a token, the normalised path is what the upstream is asked for.
    let tok = e.issuer.token("datasets:stream");
    assert_eq!(raw_status(e.gw.addr, "/public/%2e%2e/stream/x", Some(&tok)).await, 200);
    assert_eq!(e.up.seen.last().uri, "/stream/x");
}

/// A raw request's status and body.
async fn raw_get(addr: std::net::SocketAddr, target: &str, token: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!(
            "GET {target} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Nested prefixes under different scopes (`/x/` needs tiles:read,
/// `/x/premium/` needs datasets:stream) in front of a real decoding file
/// server: no spelling of the premium tile reaches it with a tiles:read
/// token, whatever the escape, case, `;` parameter, Windows name or
/// double encoding; the plain spellings still work.
#[tokio::test]
async fn no_spelling_of_a_nested_prefix_reaches_it_under_the_outer_rule() {
    let files = StaticServer::start(&[("x/premium/secret.pbf", "PREMIUM-SECRET"), ("x/open.pbf", "OPEN-TILE")]);
    let e = env_with(&format!(
        "[[upstreams]]\nname = \"files\"\nbackends = [\"{}\"]\n\
         [[routes]]\nname = \"x\"\nprefix = \"/x/\"\nupstream = \"files\"\nscopes = [\"tiles:read\"]\nissuers = [\"{IDP}\"]\n\
         [[routes]]\nname = \"premium\"\nprefix = \"/x/premium/\"\nupstream = \"files\"\nscopes = [\"datasets:stream\"]\nissuers = [\"{IDP}\"]\n",
        files.url()
    ))
    .await;
    let reader = e.issuer.token("tiles:read");
    let premium = e.issuer.token("datasets:stream");
    // The controls: each token reaches what its rule covers.
    assert_eq!(
        raw_get(e.gw.addr, "/x/premium/secret.pbf", &premium).await,
        (200, "PREMIUM-SECRET".into())
    );
    assert_eq!(
        raw_get(e.gw.addr, "/x/open.pbf", &reader).await,
        (200, "OPEN-TILE".into())
    );
    assert_eq!(raw_get(e.gw.addr, "/x/premium/secret.pbf", &reader).await.0, 403);
    // Unreserved escapes are decoded before routing and forwarded decoded.
    assert_eq!(
        raw_get(e.gw.addr, "/x/%6Fpen.pbf", &reader).await,
        (200, "OPEN-TILE".into())
    );
    assert_eq!(
        raw_get(e.gw.addr, "/x/%70remium/secret.pbf", &premium).await,
        (200, "PREMIUM-SECRET".into())
    );
    for (p, want) in [
        ("/x/%70remium/secret.pbf", 403),
        ("/x/%70%72%65%6d%69%75%6d/secret.pbf", 403),
        ("/x/premiu%6D/secret.pbf", 403),
        ("/x//premium/secret.pbf", 403),
        ("/x/./premium/secret.pbf", 403),
        ("/x/open/../premium/secret.pbf", 403),
        ("/x/open/%2e%2e/premium/secret.pbf", 403),
        ("/x/Premium/secret.pbf", 400),
        ("/x/PREMIUM/secret.pbf", 400),
        ("/x/%50remium/secret.pbf", 400),
        ("/x/premium;v=1/secret.pbf", 400),
        ("/x/..;/x/premium/secret.pbf", 400),
        ("/x/premium./secret.pbf", 400),
        ("/x/premium%20/secret.pbf", 400),
        ("/x/premium::$DATA/secret.pbf", 400),
        ("/x/%2570remium/secret.pbf", 400),
        ("/x/%25%37%30remium/secret.pbf", 400),
        ("/x/%C0%AE%C0%AE/x/premium/secret.pbf", 400),
        ("/x/premium%2fsecret.pbf", 400),
        ("/x/premium%5csecret.pbf", 400),
        ("/x/premium\\secret.pbf", 400),
    ] {
        let (status, body) = raw_get(e.gw.addr, p, &reader).await;
        assert_eq!(status, want, "{p}: {body}");
        assert!(!body.contains("PREMIUM-SECRET"), "{p} leaked the premium tile");
    }
    // Escapes of reserved characters stay escaped: the file server reads
    // them as literal names, under the outer rule, and has no such file.
    let (status, body) = raw_get(e.gw.addr, "/x/premium%3B/secret.pbf", &reader).await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn cors_preflight_and_refusals_carry_cors_headers() {
    let e = env().await;
    let r = http()
        .request(reqwest::Method::OPTIONS, e.gw.url("/tiles/1/2/3.pbf"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["access-control-allow-origin"], "https://app.example");
    assert!(r.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("authorization"));
    let r = http()
        .get(e.gw.url("/tiles/1/2/3.pbf"))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["access-control-allow-origin"], "https://app.example");
    assert!(r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .contains("www-authenticate"));
    let r = http()
        .get(e.gw.url("/tiles/1/2/3.pbf"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    assert_eq!(e.up.seen.count(), 0);
}

/// One origin rule for routes and token endpoints: a configured origin
/// with a trailing `/` and upper case allows the browser's lower-case
/// `Origin` on both (the token endpoints once compared it unnormalised).
#[tokio::test]
async fn configured_origins_are_normalised_alike_for_routes_and_token_endpoints() {
    let e = env_with(
        "[[routes]]\nname = \"shared\"\nprefix = \"/shared/\"\nupstream = \"tiles\"\npublic = true\ncors = { origins = [\"https://App.Example/\"] }\n[endpoints]\ncors_origins = [\"https://App.Example/\"]\n",
    )
    .await;
    let preflight = |path: &str| {
        http()
            .request(reqwest::Method::OPTIONS, e.gw.url(path))
            .header("origin", "https://app.example")
            .header("access-control-request-method", "GET")
            .send()
    };
    let route = preflight("/shared/a.txt").await.unwrap();
    assert_eq!(route.status(), 204);
    assert_eq!(route.headers()["access-control-allow-origin"], "https://app.example");
    let endpoint = preflight("/.well-known/jwks.json").await.unwrap();
    assert_eq!(endpoint.status(), 204);
    assert_eq!(endpoint.headers()["access-control-allow-origin"], "https://app.example");
    let jwks = http()
        .get(e.gw.url("/.well-known/jwks.json"))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(jwks.status(), 200);
    assert_eq!(jwks.headers()["access-control-allow-origin"], "https://app.example");
    // The browser's value is compared as sent: another origin is refused.
    let other = http()
        .request(reqwest::Method::OPTIONS, e.gw.url("/.well-known/jwks.json"))
        .header("origin", "https://app.example.evil")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 403);
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn h2_over_tls() {
    let issuer = Issuer::new();
    let up = start_upstream().await;
    let (gw, cert) = start_tls_gateway(&up.url(), &issuer).await;
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let r = client
        .get(format!("https://localhost:{}/tiles/1/2/3.pbf", gw.addr.port()))
        .bearer_auth(issuer.token("tiles:read"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "upstream:/tiles/1/2/3.pbf:0");
    let seen = up.seen.last();
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
}

#[tokio::test]
async fn reload_changes_routing_without_dropping_requests_and_refuses_bad_config() {
    let e = patient_env().await;
    let text = std::fs::read_to_string(&e.gw.config_path).unwrap();

    // A slow request is in flight while the routing changes.
    let slow = tokio::spawn({
        let url = e.gw.url("/patient/slow");
        async move { get(&url, None).await.status() }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(get(&e.gw.url("/extra/x"), None).await.status(), 404);
    let with_new = format!("{text}\n[[routes]]\nprefix = \"/extra/\"\nupstream = \"tiles\"\npublic = true\n");
    std::fs::write(&e.gw.config_path, &with_new).unwrap();
    e.gw.signal("HUP");
    wait_for(|| async { get(&e.gw.url("/extra/x"), None).await.status() == 200 }).await;
    assert_eq!(slow.await.unwrap(), 200, "the in-flight request survived the reload");

    // An invalid config is refused and the running one kept.
    std::fs::write(
        &e.gw.config_path,
        format!("{with_new}\n[[routes]]\nprefix = \"/bad/\"\nupstream = \"nope\"\n"),
    )
    .unwrap();
    e.gw.signal("HUP");
    wait_for(|| async { e.gw.logs().contains("config reload refused") }).await;
    assert!(e.gw.logs().contains("no upstream named"));
    assert_eq!(get(&e.gw.url("/extra/x"), None).await.status(), 200);
    assert_eq!(
        get(&e.gw.url("/tiles/1/2/3.pbf"), Some(&e.issuer.token("tiles:read")))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn sigterm_lets_the_in_flight_request_finish() {
    let e = patient_env().await;
    let slow = tokio::spawn({
        let url = e.gw.url("/patient/slow");
        async move { http().get(&url).send().await.map(|r| r.status().as_u16()) }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    e.gw.signal("TERM");
    assert_eq!(slow.await.unwrap().expect("request completed"), 200);
    // New connections are refused once draining started.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(http().get(e.gw.url("/public/x")).send().await.is_err());
}

#[tokio::test]
async fn metrics_and_health_on_the_admin_listener() {
    let e = env().await;
    let tok = e.issuer.token("tiles:read");
    for _ in 0..3 {
        assert_eq!(get(&e.gw.url("/tiles/1/2/3.pbf"), Some(&tok)).await.status(), 200);
    }
    assert_eq!(get(&e.gw.admin_url("/healthz"), None).await.status(), 200);
    assert_eq!(get(&e.gw.admin_url("/readyz"), None).await.status(), 200);
    let m = get(&e.gw.admin_url("/metrics"), None).await.text().await.unwrap();
    assert!(
        m.contains("tilegate_requests_total{route=\"tiles\",status=\"200\",auth=\"allowed\"} 3"),
        "{m}"
    );
    assert!(m.contains("tilegate_auth_cache_total{result=\"hit\"} 2"), "{m}");
    assert!(m.contains("tilegate_auth_cache_total{result=\"miss\"} 1"), "{m}");
    assert!(m.contains("tilegate_upstream_duration_seconds_bucket"), "{m}");
    assert!(m.contains("tilegate_auth_cache_entries 1"), "{m}");
}

async fn wait_for<F, Fut>(mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("condition not met in 10s");
}

/// Send one HTTP/1.1 request with the target exactly as given; return the status.
async fn raw_status(addr: std::net::SocketAddr, target: &str, token: Option<&str>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    s.write_all(format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf);
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text}"))
}

#[tokio::test]
async fn per_subject_rate_limit_answers_429_with_retry_after() {
    let e = env_with("[[routes]]\nprefix = \"/limited/\"\nupstream = \"tiles\"\nscopes = [\"datasets:stream\"]\nissuers = [\"self\", \"idp\"]\nrate_limit_per_subject = 2\n").await;
    let tok = e.issuer.token("datasets:stream");
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(get(&e.gw.url("/limited/x"), Some(&tok)).await);
    }
    assert_eq!(statuses[0].status(), 200);
    assert_eq!(statuses[1].status(), 200);
    assert_eq!(statuses[2].status(), 429);
    assert!(statuses[2].headers().get("retry-after").is_some());
    // Another subject has its own quota.
    let mut other = Issuer::claims("datasets:stream", 300);
    other["sub"] = json!("user-43");
    assert_eq!(
        get(&e.gw.url("/limited/x"), Some(&e.issuer.sign(&other)))
            .await
            .status(),
        200
    );
    // Routes without a limit are not limited.
    for _ in 0..5 {
        assert_eq!(get(&e.gw.url("/stream/x"), Some(&tok)).await.status(), 200);
    }
}

#[tokio::test]
async fn a_dead_backend_is_skipped_and_bodies_over_the_limit_are_413() {
    let live = start_upstream().await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let e = env_with(&format!(
        "[[upstreams]]\nname = \"pair\"\nbackends = [\"http://{dead}\", \"{}\"]\nconnect_timeout = \"1s\"\n[[routes]]\nprefix = \"/pair/\"\nupstream = \"pair\"\npublic = true\n",
        live.url()
    ))
    .await;
    for i in 0..6 {
        let r = get(&e.gw.url(&format!("/pair/{i}")), None).await;
        assert_eq!(r.status(), 200, "request {i} went to the live backend");
    }
    assert_eq!(live.seen.count(), 6);

    // server.max_body_bytes defaults to 10 MiB: a declared larger body is
    // refused before anything is read or forwarded. (Raw request: a client
    // still uploading when the 413 arrives may see a broken pipe instead.)
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tok = e.issuer.token("datasets:stream");
    let mut s = tokio::net::TcpStream::connect(e.gw.addr).await.unwrap();
    s.write_all(format!("POST /stream/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\nContent-Length: 10485761\r\n\r\n").as_bytes()).await.unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).await.unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 413"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    assert_eq!(e.up.seen.count(), 0);
}

#[tokio::test]
async fn h2c_prior_knowledge_works() {
    let e = env().await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let r = client
        .get(e.gw.url("/tiles/1/2/3.pbf"))
        .bearer_auth(e.issuer.token("tiles:read"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
}

/// Serve `body` as JSON at any path until dropped; counts requests.
async fn json_server(body: String) -> (std::net::SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let h2 = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let body = body.clone();
            let hits = h2.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req| {
                    hits.fetch_add(1, Ordering::SeqCst);
                    let b = body.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(
                            bytes::Bytes::from(b),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    (addr, hits)
}

#[tokio::test]
async fn external_issuer_keys_from_a_jwks_url() {
    let other = Issuer::new();
    let (jwks_addr, hits) = json_server(other.jwks()).await;
    let e = env_with(&format!(
        "[[issuers]]\nname = \"partner\"\nissuer = \"https://partner.test\"\naudiences = [\"{AUD}\"]\nalgorithms = [\"ES256\"]\njwks_url = \"http://{jwks_addr}/jwks.json\"\njwks_refresh = \"1h\"\nscopes = [\"tiles:read\"]\n[[routes]]\nprefix = \"/partner/\"\nupstream = \"tiles\"\nscopes = [\"tiles:read\"]\nissuers = [\"partner\"]\n"
    ))
    .await;
    let mut claims = Issuer::claims("tiles:read", 300);
    claims["iss"] = json!("https://partner.test");
    let r = get(&e.gw.url("/partner/x"), Some(&other.sign(&claims))).await;
    assert_eq!(r.status(), 200, "{}", e.gw.logs());
    assert!(hits.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    // A key of that issuer that the JWKS does not list is refused.
    let r = get(&e.gw.url("/partner/x"), Some(&Issuer::new().sign(&claims))).await;
    assert_eq!(r.status(), 401);
}

/// A raw request; the whole answer as text.
async fn raw_exchange(addr: std::net::SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

/// Every header a backend may trust for who and where comes from the
/// gateway: a client's X-Forwarded-*, X-Real-IP, Forwarded and identity
/// headers in any spelling are replaced or dropped, also when `Connection`
/// names `Host` and over HTTP/2 (no Host header).
#[tokio::test]
async fn where_and_who_headers_reach_the_backend_only_from_the_gateway() {
    let e = env().await;
    let port = e.gw.addr.port();
    let spoof = "X-Forwarded-Host: evil.example\r\nX-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\n\
                 Forwarded: for=6.6.6.6;host=evil.example\r\nX-Forwarded-Proto: https\r\nx_tilegate_org: org_victim\r\n";
    for conn in ["close", "host, close", "X-Forwarded-Host, close"] {
        let r = raw_exchange(
            e.gw.addr,
            &format!("GET /public/h HTTP/1.1\r\nHost: localhost:{port}\r\n{spoof}Connection: {conn}\r\n\r\n"),
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        let seen = e.up.seen.last();
        assert_eq!(
            seen.header("x-forwarded-host"),
            Some(format!("localhost:{port}").as_str()),
            "{conn}"
        );
        assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
        assert_eq!(seen.header("x-real-ip"), Some("127.0.0.1"));
        assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
        assert_eq!(seen.header("forwarded"), None);
        assert_eq!(seen.header("x_tilegate_org"), None);
    }
    // HTTP/2 (h2c prior knowledge): the authority routed on.
    let h2 = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let r = h2
        .get(e.gw.url("/public/h2"))
        .header("x-forwarded-host", "evil.example")
        .header("x_tilegate_uid", "usr_admin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = e.up.seen.last();
    assert_eq!(
        seen.header("x-forwarded-host"),
        Some(format!("127.0.0.1:{port}").as_str())
    );
    assert_eq!(seen.header("x_tilegate_uid"), None);
    // A Host that differs from the request target is refused, not routed
    // on one and forwarded as the other.
    let r = raw_exchange(
        e.gw.addr,
        "GET http://other.example/public/h HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    let before = e.up.seen.count();
    let r = raw_exchange(
        e.gw.addr,
        "GET /public/h HTTP/1.1\r\nHost: localhost\r\nHost: other.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    assert_eq!(e.up.seen.count(), before);
}

/// A token sent to a public route is not consumed and not forwarded
/// either: no upstream log sees it. Other Authorization schemes pass.
#[tokio::test]
async fn tokens_sent_to_a_public_route_do_not_reach_the_backend() {
    let e = env().await;
    let r = http()
        .get(e.gw.url("/public/p?access_token=secret-token&b=1&acc%65ss_token=other"))
        .bearer_auth("another-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = e.up.seen.last();
    assert_eq!(seen.uri, "/public/p?b=1");
    assert_eq!(seen.header("authorization"), None);
    let r = http()
        .get(e.gw.url("/public/p"))
        .basic_auth("backend-user", Some("pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(e.up.seen.last().header("authorization").unwrap().starts_with("Basic "));
}

/// Only a WebSocket upgrade becomes a tunnel: `Upgrade: h2c` is not passed
/// on, and a backend that answers 101 to anything else gets the client a
/// 502, never a raw connection to the backend.
#[tokio::test]
async fn only_websocket_upgrades_become_tunnels() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A backend that switches protocols whatever it is asked, and says
    // what it was asked.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let a2 = asked.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let a2 = a2.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_lowercase();
                a2.lock().unwrap().push(req.clone());
                let _ = s
                    .write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
                    .await;
                let _ = s.write_all(b"RAW-BACKEND-BYTES").await;
                tokio::time::sleep(Duration::from_secs(2)).await;
            });
        }
    });
    let e = env_with(&format!(
        "[[upstreams]]\nname = \"switcher\"\nbackends = [\"http://{addr}\"]\n[[routes]]\nprefix = \"/sw/\"\nupstream = \"switcher\"\npublic = true\n"
    ))
    .await;
    // h2c upgrade request: forwarded as a plain request.
    let r = raw_exchange(
        e.gw.addr,
        "GET /sw/x HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n",
    )
    .await;
    let req = asked.lock().unwrap().last().cloned().unwrap();
    assert!(!req.contains("upgrade:"), "the h2c upgrade reached the backend: {req}");
    assert!(!req.contains("http2-settings"), "{req}");
    assert!(
        r.starts_with("HTTP/1.1 502"),
        "a 101 nobody agreed to must not become a tunnel: {r}"
    );
    assert!(!r.contains("RAW-BACKEND-BYTES"), "{r}");
    // A WebSocket request answered with a switch to another protocol.
    let r = raw_exchange(
        e.gw.addr,
        "GET /sw/x HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 502"), "{r}");
    assert!(!r.contains("RAW-BACKEND-BYTES"), "{r}");
}

/// HTTP/2 with a `host` header that differs from `:authority` (sent with
/// the h2 crate, which passes headers as given): refused, not routed on
/// one and read by the backend as the other. The same `host` equal to the
/// authority is served.
#[tokio::test]
async fn an_http2_host_unlike_the_authority_is_refused() {
    let e = env().await;
    let tcp = tokio::net::TcpStream::connect(e.gw.addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let authority = format!("127.0.0.1:{}", e.gw.addr.port());
    let mut status = Vec::new();
    for host in ["other.example", authority.as_str()] {
        let mut client = client.clone().ready().await.unwrap();
        let req = http::Request::get(format!("http://{authority}/public/h2host"))
            .header("host", host)
            .body(())
            .unwrap();
        let (resp, _) = client.send_request(req, true).unwrap();
        status.push(resp.await.unwrap().status().as_u16());
    }
    assert_eq!(status, [400, 200]);
    assert_eq!(e.up.seen.count(), 1);
    assert_eq!(e.up.seen.last().header("x-forwarded-host"), Some(authority.as_str()));
}
