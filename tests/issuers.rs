//! External issuers stay in their lane (audit H2 and M4): the
//! real binary, real HS256 tokens from a "partner" identity provider and
//! real ES256 tokens from a JWKS issuer served on loopback.
//!
//! A partner token that claims a local organization, user, credential,
//! token type and any scope gets only what the operator granted its issuer,
//! under its own namespaced subject, on the routes that accept it; `/me`,
//! introspection and the credential endpoints never take it for a local
//! user; its cached verdicts end with its issuer's key and within the
//! issuer's cache bound.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const PARTNER_ISS: &str = "https://partner-idp.example";
const PARTNER_SECRET: &str = "partner-shared-secret-0123456789abcdef";
const KEYED_ISS: &str = "https://keyed-idp.example";

/// A gateway with two external issuers and routes that accept them or not:
///
/// - `partner` (HS256): may grant `tiles:read`, maps its own
///   `partner.stream` to `datasets:stream`, organization `org_partner`,
///   tokens live at most an hour;
/// - `keyed` (ES256, JWKS URL `jwks`): may grant `tiles:read`; refresh and
///   cache bound as given.
///
/// Routes: `/tiles/premium/` (tiles:premium; self, partner), `/tiles/`
/// (tiles:read; self, partner, keyed), `/own/` (tiles:read; default: self
/// only), `/stream/` (datasets:stream; partner only), `/keyed/`
/// (tiles:read; keyed only).
fn toml(upstream: &str, jwks: std::net::SocketAddr, refresh: &str, keyed_cache_ttl: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
[store]
url = "sqlite://{{DIR}}/tilegate.db"
kek_file = "{{DIR}}/kek"
[tokens]
issuer = "http://gateway.test"
audience = "tilegate"
[cache]
negative_ttl = "1s"
[scopes]
"tiles:read" = "r"
"tiles:premium" = "p"
"datasets:stream" = "s"
"clients:manage" = "m"
[[issuers]]
name = "partner"
issuer = "{PARTNER_ISS}"
audiences = ["tilegate"]
algorithms = ["HS256"]
hmac_secret_env = "PARTNER_SECRET"
scopes = ["tiles:read"]
scope_map = {{ "partner.stream" = ["datasets:stream"] }}
org = "org_partner"
max_lifetime = "1h"
[[issuers]]
name = "keyed"
issuer = "{KEYED_ISS}"
audiences = ["tilegate"]
algorithms = ["ES256"]
jwks_url = "http://{jwks}/jwks"
jwks_refresh = "{refresh}"
scopes = ["tiles:read"]
cache_ttl = "{keyed_cache_ttl}"
[[upstreams]]
name = "tiles"
backends = ["{upstream}"]
connect_timeout = "1s"
request_timeout = "2s"
[[routes]]
name = "premium"
prefix = "/tiles/premium/"
upstream = "tiles"
scopes = ["tiles:premium"]
issuers = ["self", "partner"]
[[routes]]
name = "tiles"
prefix = "/tiles/"
upstream = "tiles"
scopes = ["tiles:read"]
issuers = ["self", "partner", "keyed"]
[[routes]]
name = "own"
prefix = "/own/"
upstream = "tiles"
scopes = ["tiles:read"]
[[routes]]
name = "stream"
prefix = "/stream/"
upstream = "tiles"
scopes = ["datasets:stream"]
issuers = ["partner"]
[[routes]]
name = "keyed"
prefix = "/keyed/"
upstream = "tiles"
scopes = ["tiles:read"]
issuers = ["keyed"]
"#
    )
}

/// `toml` without the `keyed` issuer and the routes that name it.
fn without_keyed(full: &str) -> String {
    let issuer = full.find("[[issuers]]\nname = \"keyed\"").unwrap();
    let upstreams = full.find("[[upstreams]]").unwrap();
    let route = full.find("[[routes]]\nname = \"keyed\"").unwrap();
    format!("{}{}", &full[..issuer], &full[upstreams..route]).replace(
        "issuers = [\"self\", \"partner\", \"keyed\"]",
        "issuers = [\"self\", \"partner\"]",
    )
}

struct Env {
    up: Upstream,
    gw: Gateway,
    jwks: JwksServer,
    k1: Issuer,
}

async fn env_with(refresh: &str, keyed_cache_ttl: &str) -> Env {
    let k1 = Issuer::new();
    let jwks = jwks_server("127.0.0.1:0", Some(json!({"keys": [k1.jwk_kid("k1")]}).to_string())).await;
    let up = start_upstream().await;
    let text = toml(&up.url(), jwks.addr, refresh, keyed_cache_ttl);
    let gw = tokio::task::spawn_blocking(move || {
        start_gateway_in(
            tempfile::tempdir().unwrap(),
            &text,
            &[("PARTNER_SECRET", PARTNER_SECRET)],
        )
    })
    .await
    .unwrap();
    Env { up, gw, jwks, k1 }
}

async fn env() -> Env {
    env_with("1h", "5m").await
}

fn partner_claims(scope: &str) -> Value {
    let now = now();
    json!({
        "iss": PARTNER_ISS, "aud": "tilegate", "sub": "partner-user-7", "iat": now, "exp": now + 600,
        "scope": scope,
    })
}

fn partner_sign(claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(PARTNER_SECRET.as_bytes()),
    )
    .unwrap()
}

fn keyed_claims(sub: &str) -> Value {
    let now = now();
    // Ten years: the token's own expiry is not what ends its verdict.
    json!({"iss": KEYED_ISS, "aud": "tilegate", "sub": sub, "iat": now, "exp": now + 10 * 365 * 86400, "scope": "tiles:read"})
}

/// The local victim: organization "acme", user "ana" (uid), her login
/// token, a client of hers, and the organization's service account.
struct Victim {
    org_id: String,
    uid: String,
    login: String,
    client_id: String,
    client_secret: String,
    /// The organization's service account.
    sa: Value,
}

async fn victim(gw: &Gateway) -> Victim {
    let (org, sa) = admin_org_and_account(gw).await;
    let user = admin_user_ana(gw, &org).await;
    let r = password_grant_ana(gw).await.unwrap();
    assert_eq!(r.status(), 200);
    let login = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = http()
        .post(gw.url("/v1/clients"))
        .bearer_auth(&login)
        .json(&json!({"name": "ana's app", "scope": "tiles:read"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let c: Value = r.json().await.unwrap();
    Victim {
        org_id: org["id"].as_str().unwrap().to_owned(),
        uid: user["uid"].as_str().unwrap().to_owned(),
        login,
        client_id: c["client_id"].as_str().unwrap().to_owned(),
        client_secret: c["client_secret"].as_str().unwrap().to_owned(),
        sa,
    }
}

/// A partner token claiming to be ana, in her organization, through her
/// client, as a login token with every scope, read-only and named.
fn impostor_claims(v: &Victim, scope: &str) -> Value {
    let mut c = partner_claims(scope);
    let o = c.as_object_mut().unwrap();
    o.insert("org_id".into(), json!(v.org_id));
    o.insert("uid".into(), json!(v.uid));
    o.insert("username".into(), json!("ana"));
    o.insert("token_type".into(), json!("login"));
    o.insert("cid".into(), json!(v.client_id));
    o.insert("jti".into(), json!(format!("j-{}", rand_hex())));
    c
}

async fn get(gw: &Gateway, path: &str, token: &str) -> reqwest::Response {
    http().get(gw.url(path)).bearer_auth(token).send().await.unwrap()
}

async fn status(gw: &Gateway, path: &str, token: &str) -> u16 {
    get(gw, path, token).await.status().as_u16()
}

/// A counter of the admin listener's `/metrics`, by its full name and labels.
async fn metric(gw: &Gateway, series: &str) -> u64 {
    let m = http()
        .get(gw.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    m.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or(0)
}

const HITS: &str = "tilegate_auth_cache_total{result=\"hit\"}";
const MISSES: &str = "tilegate_auth_cache_total{result=\"miss\"}";

async fn wait_for<F, Fut>(what: &str, mut f: F)
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
    panic!("{what}: not within 10 s");
}

#[tokio::test]
async fn partner_claims_never_become_tilegate_identity_or_scope() {
    let e = env().await;
    let v = victim(&e.gw).await;
    let tok = partner_sign(&impostor_claims(&v, "tiles:read tiles:premium clients:manage"));

    // A route that accepts the partner: the upstream sees the partner's
    // namespaced subject, the configured organization, only the scopes
    // the partner may grant, who vouched, and none of the claimed identity,
    // whatever the client sent under identity names in any spelling.
    let r = http()
        .get(e.gw.url("/tiles/1/2/3.pbf"))
        .bearer_auth(&tok)
        .header("x-tilegate-issuer", "self")
        .header("x_tilegate_uid", &v.uid)
        .header("X-Tilegate_Org", &v.org_id)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = e.up.seen.last();
    assert_eq!(seen.header("x-tilegate-subject"), Some("partner|partner-user-7"));
    assert_eq!(seen.header("x-tilegate-issuer"), Some("partner"));
    assert_eq!(seen.header("x-tilegate-org"), Some("org_partner"));
    assert_eq!(seen.header("x-tilegate-scope"), Some("tiles:read"));
    assert_eq!(seen.header("x-tilegate-uid"), None);
    assert_eq!(seen.header("x_tilegate_uid"), None);
    assert_eq!(seen.header("x-tilegate_org"), None);
    for (k, val) in &seen.headers {
        assert!(!val.contains(&v.uid) && !val.contains(&v.org_id), "{k}: {val}");
    }

    // The scope ceiling: premium is claimed, not granted.
    let r = get(&e.gw, "/tiles/premium/secret.pbf", &tok).await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "insufficient_scope");

    // A route that does not list the partner (the default: self only)
    // refuses the token as invalid for it, and names no issuer.
    let r = get(&e.gw, "/own/x", &tok).await;
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_token"));
    let body = r.text().await.unwrap();
    assert!(
        !body.contains("self") && !body.contains("partner") && !body.contains("keyed"),
        "{body}"
    );
    // Also when the token is cached already (it is, from the first request).
    assert_eq!(status(&e.gw, "/own/x", &tok).await, 401);
    // A route of another issuer refuses it too.
    assert_eq!(status(&e.gw, "/keyed/x", &tok).await, 401);

    // The mapping: the partner's own value grants the mapped scope on the
    // partner-only route, where the gateway's own tokens are refused.
    let mapped = partner_sign(&partner_claims("partner.stream"));
    let r = get(&e.gw, "/stream/x", &mapped).await;
    assert_eq!(r.status(), 200);
    assert_eq!(e.up.seen.last().header("x-tilegate-scope"), Some("datasets:stream"));
    let own = exchange_token(&e.gw, &admin_api_key(&e.gw, &v.sa, "tiles:read").await).await;
    assert_eq!(status(&e.gw, "/own/x", &own).await, 200);
    assert_eq!(e.up.seen.last().header("x-tilegate-issuer"), Some("self"));
    assert_eq!(status(&e.gw, "/stream/x", &own).await, 401);
    // A partner token that names no scope gets none.
    assert_eq!(
        status(&e.gw, "/tiles/1/2/3.pbf", &partner_sign(&partner_claims(""))).await,
        403
    );

    // No credential semantics: its `ro` claim does not make it read-only,
    // the revocation of the client it names (`cid`) does not touch it, and
    // as a "named" token without `exp` it is refused.
    let mut ro = partner_claims("partner.stream");
    ro["ro"] = json!(true);
    let r = http()
        .post(e.gw.url("/stream/upload"))
        .bearer_auth(partner_sign(&ro))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "an issuer's `ro` claim is not the gateway's read-only flag"
    );
    let r = http()
        .delete(e.gw.url(&format!("/v1/clients/{}", v.client_id)))
        .bearer_auth(&v.login)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(status(&e.gw, "/tiles/1/2/3.pbf", &tok).await, 200);
    let fresh = partner_sign(&impostor_claims(&v, "tiles:read"));
    assert_eq!(status(&e.gw, "/tiles/1/2/3.pbf", &fresh).await, 200);
    let mut named = impostor_claims(&v, "tiles:read");
    named["token_type"] = json!("named");
    named.as_object_mut().unwrap().remove("exp");
    assert_eq!(status(&e.gw, "/tiles/1/2/3.pbf", &partner_sign(&named)).await, 401);
}

#[tokio::test]
async fn me_and_introspection_show_a_partner_token_as_external() {
    let e = env().await;
    let v = victim(&e.gw).await;
    let tok = partner_sign(&impostor_claims(&v, "tiles:read tiles:premium clients:manage"));

    let me: Value = get(&e.gw, "/me", &tok).await.json().await.unwrap();
    assert_eq!(me["external"], true, "{me}");
    assert_eq!(me["issuer"], "partner");
    assert_eq!(me["sub"], "partner|partner-user-7");
    assert_eq!(me["scope"], "tiles:read");
    assert_eq!(me["token_type"], "external");
    for k in ["uid", "username", "org_id"] {
        assert_eq!(me[k], Value::Null, "{k}: {me}");
    }
    let own: Value = get(&e.gw, "/me", &v.login).await.json().await.unwrap();
    assert_eq!(own["uid"], v.uid.as_str());
    assert_eq!(own["issuer"], "self");
    assert_eq!(own["external"], false);

    // A tilegate client introspecting the partner token: active, as what
    // the gateway grants it, no local user.
    let r = http()
        .post(e.gw.url("/oauth/introspect"))
        .basic_auth(&v.client_id, Some(&v.client_secret))
        .form(&[("token", tok.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let i: Value = r.json().await.unwrap();
    assert_eq!(i["active"], true, "{i}");
    assert_eq!(i["external"], true);
    assert_eq!(i["issuer"], "partner");
    assert_eq!(i["iss"], PARTNER_ISS);
    assert_eq!(i["sub"], "partner|partner-user-7");
    assert_eq!(i["scope"], "tiles:read");
    for k in ["uid", "username", "org_id", "jti", "client_id"] {
        assert!(i[k].is_null(), "{k}: {i}");
    }

    // The partner token is no caller of introspection or revocation: it
    // cannot revoke ana's login token although it claims her uid.
    for ep in ["/oauth/introspect", "/oauth/revoke"] {
        let r = http()
            .post(e.gw.url(ep))
            .bearer_auth(&tok)
            .form(&[("token", v.login.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{ep}");
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client", "{ep}");
    }
    assert_eq!(status(&e.gw, "/me", &v.login).await, 200, "ana's login token lives");
}

#[tokio::test]
async fn credential_endpoints_refuse_partner_tokens() {
    let e = env().await;
    let v = victim(&e.gw).await;
    let tok = partner_sign(&impostor_claims(&v, "clients:manage tiles:read"));
    let c = http();
    let b = |r: reqwest::RequestBuilder| r.bearer_auth(&tok);
    let named = "/oauth/v1/user/token?name=t&validTime=60&action=read_only&resourceType=all";
    let cases: Vec<(&str, reqwest::RequestBuilder, u16)> = vec![
        (
            "create a client",
            b(c.post(e.gw.url("/v1/clients")).json(&json!({}))),
            403,
        ),
        ("list clients", b(c.get(e.gw.url("/v1/clients"))), 403),
        (
            "delete ana's client",
            b(c.delete(e.gw.url(&format!("/v1/clients/{}", v.client_id)))),
            403,
        ),
        (
            "read the generator token",
            b(c.get(e.gw.url("/oauth/v1/user/generator-token"))),
            403,
        ),
        (
            "regenerate the generator token",
            b(c.post(e.gw.url("/oauth/v1/user/generator-token"))),
            403,
        ),
        ("list named tokens", b(c.get(e.gw.url("/oauth/v1/user/tokens"))), 403),
        (
            "revoke a named token",
            b(c.delete(e.gw.url("/oauth/v1/user/tokens/ntk_x"))),
            403,
        ),
        ("create a named token", b(c.post(e.gw.url(named))), 401),
        ("exchange as an API key", b(c.post(e.gw.url("/v1/auth/token"))), 401),
    ];
    for (what, req, want) in cases {
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), want, "{what}");
        let body: Value = r.json().await.unwrap();
        assert!(body["error"].is_string(), "{what}: {body}");
        assert!(
            body.get("client_secret").is_none() && body.get("token").is_none(),
            "{what}"
        );
    }
    // Nothing changed for ana.
    let list: Value = get(&e.gw, "/v1/clients", &v.login).await.json().await.unwrap();
    assert_eq!(list["clients"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["clients"][0]["client_id"], v.client_id.as_str());
    let named: Value = get(&e.gw, "/oauth/v1/user/tokens", &v.login)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(named["tokens"].as_array().unwrap().len(), 0, "{named}");
}

#[tokio::test]
async fn max_lifetime_refuses_tokens_that_live_too_long() {
    let e = env().await;
    let now = now();
    let with = |iat: Option<i64>, exp: i64| {
        let mut c = partner_claims("tiles:read");
        c["exp"] = json!(exp);
        match iat {
            Some(i) => c["iat"] = json!(i),
            None => {
                c.as_object_mut().unwrap().remove("iat");
            }
        }
        partner_sign(&c)
    };
    let cases = [
        ("two hours", with(Some(now), now + 7200), "lives longer"),
        ("no iat", with(None, now + 600), "lacks a required claim"),
        (
            "an iat in the future hides a long life",
            with(Some(now + 7200), now + 7260),
            "not valid yet",
        ),
    ];
    for (what, tok, why) in cases {
        let r = get(&e.gw, "/tiles/1/2/3.pbf", &tok).await;
        assert_eq!(r.status(), 401, "{what}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["error_description"].as_str().unwrap().contains(why),
            "{what}: {body}"
        );
    }
    assert_eq!(
        status(&e.gw, "/tiles/1/2/3.pbf", &with(Some(now - 3000), now + 540)).await,
        200,
        "59 minutes is within the hour"
    );
    assert_eq!(e.up.seen.count(), 1);
}

#[tokio::test]
async fn cached_verdicts_live_no_longer_than_the_issuers_cache_ttl() {
    // `keyed` caches for 1 s, `partner` for the default 5 min.
    let e = env_with("1h", "1s").await;
    let keyed = e.k1.sign_kid(&keyed_claims("k-user"), "k1");
    let partner = partner_sign(&partner_claims("tiles:read"));
    for t in [&keyed, &partner] {
        assert_eq!(status(&e.gw, "/tiles/a", t).await, 200);
    }
    let (hits, misses) = (metric(&e.gw, HITS).await, metric(&e.gw, MISSES).await);
    assert_eq!(status(&e.gw, "/tiles/a", &keyed).await, 200);
    assert_eq!(metric(&e.gw, HITS).await, hits + 1, "cached within its bound");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let misses_before = metric(&e.gw, MISSES).await;
    assert_eq!(misses_before, misses);
    assert_eq!(status(&e.gw, "/tiles/a", &keyed).await, 200);
    assert_eq!(
        metric(&e.gw, MISSES).await,
        misses + 1,
        "verified again after its issuer's cache bound, though it expires in ten years"
    );
    let hits = metric(&e.gw, HITS).await;
    assert_eq!(status(&e.gw, "/tiles/a", &partner).await, 200);
    assert_eq!(
        metric(&e.gw, HITS).await,
        hits + 1,
        "the other issuer's bound is longer"
    );
    assert_eq!(metric(&e.gw, MISSES).await, misses + 1);
}

#[tokio::test]
async fn a_jwks_refresh_that_drops_a_key_drops_the_verdicts_it_signed() {
    let e = env_with("1s", "5m").await;
    let t1 = e.k1.sign_kid(&keyed_claims("k-user"), "k1");
    assert_eq!(status(&e.gw, "/keyed/x", &t1).await, 200);
    let hits = metric(&e.gw, HITS).await;
    assert_eq!(status(&e.gw, "/keyed/x", &t1).await, 200);
    assert_eq!(metric(&e.gw, HITS).await, hits + 1, "t1's verdict is cached");

    // The issuer retires k1 (compromised, say) and publishes k2.
    let k2 = Issuer::new();
    *e.jwks.body.lock().unwrap() = Some(json!({"keys": [k2.jwk_kid("k2")]}).to_string());
    let fetched = e.jwks.hits.load(std::sync::atomic::Ordering::SeqCst);
    wait_for("a refresh after the change", || async {
        e.jwks.hits.load(std::sync::atomic::Ordering::SeqCst) > fetched
    })
    .await;
    // Until a token signed by k1 that was never seen is refused: then the
    // gateway's keys no longer hold k1.
    wait_for("k1 gone from the gateway's keys", || async {
        status(&e.gw, "/keyed/x", &e.k1.sign_kid(&keyed_claims(&rand_hex()), "k1")).await == 401
    })
    .await;
    // The very next request with t1, cached a moment ago for five minutes,
    // is refused too.
    let r = get(&e.gw, "/keyed/x", &t1).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error_description"],
        "the token was signed by an unknown key"
    );
    assert_eq!(
        status(&e.gw, "/keyed/x", &k2.sign_kid(&keyed_claims("k-user"), "k2")).await,
        200
    );
}

#[tokio::test]
async fn a_jwks_issuer_added_by_a_reload_is_fetched_at_once() {
    let up = start_upstream().await;
    let k1 = Issuer::new();
    let jwks = jwks_server("127.0.0.1:0", Some(json!({"keys": [k1.jwk_kid("k1")]}).to_string())).await;
    let full = toml(&up.url(), jwks.addr, "1h", "5m");
    // Start without the JWKS issuer (nor its routes).
    let without = without_keyed(&full);
    assert!(!without.contains("jwks_url") && !without.contains("keyed"));
    let gw = tokio::task::spawn_blocking(move || {
        start_gateway_in(
            tempfile::tempdir().unwrap(),
            &without,
            &[("PARTNER_SECRET", PARTNER_SECRET)],
        )
    })
    .await
    .unwrap();
    // Let the refresh loop go to sleep with no JWKS issuer (a long sleep).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(jwks.hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    std::fs::write(&gw.config_path, full.replace("{DIR}", gw.dir.path().to_str().unwrap())).unwrap();
    gw.signal("HUP");
    wait_for("the reload", || async { gw.logs().contains("config reloaded") }).await;
    // Fetched in the background, with no token asking for it.
    wait_for("the new issuer's JWKS fetched", || async {
        jwks.hits.load(std::sync::atomic::Ordering::SeqCst) >= 1
    })
    .await;
    let t = k1.sign_kid(&keyed_claims("k-user"), "k1");
    assert_eq!(status(&gw, "/keyed/x", &t).await, 200);
}

#[test]
fn check_config_refuses_issuers_beyond_their_lane() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.toml");
    let base = toml("http://127.0.0.1:9", "127.0.0.1:9".parse().unwrap(), "1h", "5m");
    std::fs::write(&path, &base).unwrap();
    let ok = cli(&path, dir.path(), &["check-config"], None);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));

    let bad = base
        .replace(
            "issuers = [\"self\", \"partner\"]\n[[routes]]\nname = \"tiles\"",
            "issuers = [\"self\", \"partnr\"]\n[[routes]]\nname = \"tiles\"",
        )
        .replace(
            "scopes = [\"tiles:read\"]\nscope_map",
            "scopes = [\"tiles:read\", \"tiles:everything\"]\nscope_map",
        )
        .replace(
            "\"partner.stream\" = [\"datasets:stream\"]",
            "\"partner.admin\" = [\"clients:manage\"]",
        );
    std::fs::write(&path, &bad).unwrap();
    let out = cli(&path, dir.path(), &["check-config"], None);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "routes[0].issuers: no issuer named \"partnr\"",
        "issuers[0].scopes: scope \"tiles:everything\" is not declared in [scopes]",
        "issuers[0].scope_map.\"partner.admin\": \"clients:manage\" is never granted by an external issuer",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}
