mod common;

// Named tokens against real `tilegate serve` processes: named tokens,
// access-generator tokens, and revocation that reaches every replica.
//
// SQLite tests run always. The PostgreSQL tests need
// `TILEGATE_TEST_PG_URL` (a role that may `CREATE DATABASE`; see
// `.ci/pg.sh`); without it they print a note and pass, unless `CI` is set.
// Each makes its own database, two gateways on it sharing one KEK, and
// drops the database at the end. One of them restarts the PostgreSQL
// cluster, so the PostgreSQL tests of this file run one at a time.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use common::{
    admin_api_key, admin_org_and_account, admin_post, admin_user_ana, exchange_token, http, now, password_grant_ana,
    rand_hex, serve_until_exit, start_gateway_in, start_upstream, tile_status, Gateway, Upstream, ADMIN_TOKEN,
};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

const NAMED: &str = "/oauth/v1/user/token";
const NAMED_LIST: &str = "/oauth/v1/user/tokens";
const GENERATOR: &str = "/oauth/v1/user/generator-token";
const PASSWORD: &str = "correct horse battery staple";
const SQLITE: &str = "sqlite://{DIR}/tilegate.db";

/// The five valid pairs with the scopes SPEC.md gives them by default for
/// the scopes declared in [`toml`], and whether they are read-only.
const PAIRS: [(&str, &str, &[&str], bool); 5] = [
    (
        "read_only",
        "all",
        &["tiles:read", "datasets:stream", "projects:embed"],
        true,
    ),
    (
        "read_write",
        "all",
        &["tiles:read", "datasets:stream", "datasets:refresh", "projects:embed"],
        false,
    ),
    ("read_only", "dataset_streaming", &["datasets:stream"], true),
    (
        "read_write",
        "dataset_streaming_refreshing",
        &["datasets:stream", "datasets:refresh"],
        false,
    ),
    ("read_only", "embedded_published_project", &["projects:embed"], true),
];

/// Proxy routes: (path, scope it requires). Any method.
const ROUTES: [(&str, &str); 5] = [
    ("/tiles/3/4/5.pbf", "tiles:read"),
    ("/stream/ds1/features", "datasets:stream"),
    ("/refresh/ds1", "datasets:refresh"),
    ("/embed/project-9", "projects:embed"),
    ("/manage/x", "clients:manage"),
];

/// A gateway config: one route per declared scope, the given store and
/// full-resync period.
fn toml(store_url: &str, upstream: &str, resync: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
shutdown_grace = "1s"
watch_config = false
[admin]
listen = "127.0.0.1:0"
[store]
url = "{store_url}"
kek_file = "{{DIR}}/kek"
revocation_resync = "{resync}"
[tokens]
issuer = "http://gateway.test"
audience = "tilegate"
keys_dir = "{{DIR}}/keys"
[cache]
negative_ttl = "1s"
[scopes]
"tiles:read" = "read tiles"
"datasets:stream" = "stream datasets"
"datasets:refresh" = "refresh the vector tiles of a dataset"
"projects:embed" = "embed published projects"
"clients:manage" = "manage one's credentials"
[[upstreams]]
name = "up"
backends = ["{upstream}"]
connect_timeout = "1s"
request_timeout = "5s"
[[routes]]
name = "tiles"
prefix = "/tiles/"
upstream = "up"
scopes = ["tiles:read"]
[[routes]]
name = "stream"
prefix = "/stream/"
upstream = "up"
scopes = ["datasets:stream"]
[[routes]]
name = "refresh"
prefix = "/refresh/"
upstream = "up"
scopes = ["datasets:refresh"]
[[routes]]
name = "embed"
prefix = "/embed/"
upstream = "up"
scopes = ["projects:embed"]
[[routes]]
name = "manage"
prefix = "/manage/"
upstream = "up"
scopes = ["clients:manage"]
[[routes]]
name = "live"
prefix = "/live/"
upstream = "up"
scopes = ["datasets:stream"]
end_streams_with_token = true
"#
    )
}

async fn sqlite_gateway(resync: &str) -> (Gateway, Upstream) {
    let up = start_upstream().await;
    let gw = start_gateway_in(tempfile::tempdir().unwrap(), &toml(SQLITE, &up.url(), resync), &[]);
    (gw, up)
}

// ------------------------------------------------------------------ helpers

struct User {
    uid: String,
    username: String,
    /// Current access-generator token.
    generator: String,
    /// Temporary login token (scope clients:manage).
    login: String,
}

fn cli_json(gw: &Gateway, args: &[&str], stdin: Option<&str>) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = match stdin {
        Some(s) => gw.cli_stdin(&all, s),
        None => gw.cli(&all),
    };
    assert!(
        out.status.success(),
        "tilegate {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("tilegate {args:?}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}")).to_owned()
}

/// The operator's way: org and user through the CLI (same config, same
/// store), generator token through `generator-token show`.
async fn cli_user(c: &Client, gw: &Gateway, username: &str) -> User {
    let org = cli_json(gw, &["org", "create", &format!("org-{username}")], None);
    let user = cli_json(
        gw,
        &[
            "user",
            "create",
            "--org",
            &s(&org["id"]),
            "--username",
            username,
            "--password-stdin",
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    let uid = s(&user["uid"]);
    let g = cli_json(gw, &["generator-token", "show", "--user", &uid], None);
    assert_eq!(g["uid"], uid.as_str());
    assert!(s(&g["token"]).starts_with("tgg_"), "{g}");
    User {
        login: login(c, gw, username).await,
        uid,
        username: username.to_owned(),
        generator: s(&g["token"]),
    }
}

async fn admin(c: &Client, gw: &Gateway, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut r = c.request(method, gw.admin_url(path)).bearer_auth(ADMIN_TOKEN);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let st = r.status();
    (st, r.json().await.unwrap_or(Value::Null))
}

/// The same through the admin API (PostgreSQL tests: the CLI would need the
/// KEK from the environment).
async fn admin_user(c: &Client, gw: &Gateway, username: &str) -> User {
    let (st, org) = admin(
        c,
        gw,
        Method::POST,
        "/admin/v1/orgs",
        Some(json!({"name": format!("org-{username}")})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{org}");
    let (st, user) = admin(
        c,
        gw,
        Method::POST,
        "/admin/v1/users",
        Some(json!({"org": org["id"], "username": username, "password": PASSWORD})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{user}");
    let uid = s(&user["uid"]);
    let (st, g) = admin(
        c,
        gw,
        Method::GET,
        &format!("/admin/v1/users/{uid}/generator-token"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{g}");
    User {
        login: login(c, gw, username).await,
        uid,
        username: username.to_owned(),
        generator: s(&g["token"]),
    }
}

async fn login(c: &Client, gw: &Gateway, username: &str) -> String {
    let r = c
        .post(gw.url("/oauth/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", username),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["scope"], "clients:manage", "{v}");
    s(&v["access_token"])
}

/// `POST /oauth/v1/user/token?…` with `generator` as the bearer (None: no header).
async fn mint_raw(c: &Client, gw: &Gateway, generator: Option<&str>, query: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut r = c.post(gw.url(NAMED)).query(query);
    if let Some(g) = generator {
        r = r.bearer_auth(g);
    }
    let r = r.send().await.unwrap();
    let st = r.status();
    (st, r.json().await.unwrap_or(Value::Null))
}

/// Mint a named token; panics unless 200. Returns the whole response.
async fn mint(c: &Client, gw: &Gateway, generator: &str, name: &str, valid: &str, action: &str, rt: &str) -> Value {
    let q = [
        ("name", name),
        ("validTime", valid),
        ("action", action),
        ("resourceType", rt),
    ];
    let (st, v) = mint_raw(c, gw, Some(generator), &q).await;
    assert_eq!(st, StatusCode::OK, "{q:?}: {v}");
    v
}

/// The JWT payload, not verified (the gateway does that).
fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn call(c: &Client, method: Method, url: &str, token: &str) -> StatusCode {
    c.request(method, url).bearer_auth(token).send().await.unwrap().status()
}

async fn get(c: &Client, url: &str, token: &str) -> StatusCode {
    call(c, Method::GET, url, token).await
}

/// Poll every 50 ms until every `url` answers `token` with 401; return the
/// time since `start`. Gives up (panics) after `limit`.
async fn refused_after(c: &Client, urls: &[String], token: &str, start: Instant, limit: Duration) -> Duration {
    loop {
        let mut all = true;
        for u in urls {
            let st = get(c, u, token).await;
            assert!(st == StatusCode::OK || st == StatusCode::UNAUTHORIZED, "{u}: {st}");
            all &= st == StatusCode::UNAUTHORIZED;
        }
        let elapsed = start.elapsed();
        if all {
            eprintln!("refused by {urls:?} {elapsed:?} after the revocation began");
            return elapsed;
        }
        assert!(elapsed < limit, "{urls:?} still accept the token after {elapsed:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Poll until a generator token is refused (401) on the named-token endpoint.
async fn generator_refused_after(
    c: &Client,
    gw: &Gateway,
    generator: &str,
    start: Instant,
    limit: Duration,
) -> Duration {
    let q = [
        ("name", "probe"),
        ("validTime", "5"),
        ("action", "read_only"),
        ("resourceType", "all"),
    ];
    loop {
        let (st, v) = mint_raw(c, gw, Some(generator), &q).await;
        let elapsed = start.elapsed();
        if st == StatusCode::UNAUTHORIZED {
            return elapsed;
        }
        assert_eq!(st, StatusCode::OK, "{v}");
        assert!(elapsed < limit, "old generator token still accepted after {elapsed:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn list(c: &Client, gw: &Gateway, bearer: &str) -> Vec<Value> {
    let r = c.get(gw.url(NAMED_LIST)).bearer_auth(bearer).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    v["tokens"].as_array().expect("tokens").clone()
}

fn scope_set(s: &str) -> BTreeSet<String> {
    s.split(' ').filter(|x| !x.is_empty()).map(String::from).collect()
}

fn parse_rfc3339(s: &str) -> i64 {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .unix_timestamp()
}

// ------------------------------------------------------------ validation

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_parameter_is_validated_and_named() {
    let (gw, _up) = sqlite_gateway("30s").await;
    let c = http();
    let alice = cli_user(&c, &gw, "alice").await;
    let g = Some(alice.generator.as_str());
    let good = [
        ("name", "t"),
        ("validTime", "60"),
        ("action", "read_only"),
        ("resourceType", "all"),
    ];
    let params = ["name", "validTime", "action", "resourceType"];

    let expect_400 = |q: Vec<(&'static str, String)>, names: &'static [&'static str]| {
        let c = c.clone();
        let gw = &gw;
        async move {
            let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let (st, v) = mint_raw(&c, gw, g, &q).await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "{q:?}: {v}");
            assert_eq!(v["error"], "invalid_request", "{q:?}: {v}");
            let d = s(&v["error_description"]);
            for p in params {
                assert_eq!(
                    d.contains(p),
                    names.contains(&p),
                    "{q:?}: {d:?} should name exactly {names:?}"
                );
            }
        }
    };
    let with = |k: &str, val: &str| -> Vec<(&'static str, String)> {
        good.iter()
            .map(|(n, v)| (*n, if *n == k { val.to_owned() } else { (*v).to_owned() }))
            .collect()
    };

    // Every parameter is mandatory.
    for (i, p) in params.iter().enumerate() {
        let q: Vec<_> = good
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, (n, v))| (*n, (*v).to_owned()))
            .collect();
        let names: &'static [&'static str] = match *p {
            "name" => &["name"],
            "validTime" => &["validTime"],
            "action" => &["action"],
            _ => &["resourceType"],
        };
        expect_400(q, names).await;
    }
    // name: 1-128 characters.
    expect_400(with("name", ""), &["name"]).await;
    expect_400(with("name", &"x".repeat(129)), &["name"]).await;
    expect_400(with("name", &"é".repeat(129)), &["name"]).await;
    // validTime: -1 or 1..9999 minutes, an integer.
    for bad in ["0", "-2", "10000", "abc", "", "1.5", "60m", "99999999999999999999"] {
        expect_400(with("validTime", bad), &["validTime"]).await;
    }
    // Unknown values.
    expect_400(with("action", "write"), &["action"]).await;
    expect_400(with("action", "READ_ONLY"), &["action"]).await;
    expect_400(with("resourceType", "everything"), &["resourceType"]).await;
    // Every pair but the five is refused, naming both parameters.
    let valid: BTreeSet<(&str, &str)> = PAIRS.iter().map(|p| (p.0, p.1)).collect();
    let mut refused = 0;
    for action in ["read_only", "read_write"] {
        for rt in [
            "all",
            "dataset_streaming",
            "dataset_streaming_refreshing",
            "embedded_published_project",
        ] {
            if valid.contains(&(action, rt)) {
                continue;
            }
            let q = vec![
                ("name", "t".to_owned()),
                ("validTime", "60".to_owned()),
                ("action", action.to_owned()),
                ("resourceType", rt.to_owned()),
            ];
            expect_400(q, &["action", "resourceType"]).await;
            refused += 1;
        }
    }
    assert_eq!(
        refused, 3,
        "read_write/dataset_streaming, read_only/dataset_streaming_refreshing, read_write/embedded_published_project"
    );

    // The bounds themselves are accepted.
    let max_name = "n".repeat(128);
    let wide_name = "é".repeat(128);
    for (name, valid) in [(max_name.as_str(), "1"), (wide_name.as_str(), "9999"), ("never", "-1")] {
        let v = mint(&c, &gw, &alice.generator, name, valid, "read_only", "all").await;
        assert_eq!(v["name"], name);
    }

    // The generator token: missing, unknown, malformed or not a generator
    // token -> 401 (checked before the parameters).
    let (st, v) = mint_raw(&c, &gw, None, &good).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(v["error"], "unauthorized");
    let (st, _) = mint_raw(&c, &gw, Some("tgg_0123456789abcdef0123456789abcdef"), &good).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = mint_raw(&c, &gw, Some(&alice.login), &good).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "a login token is not a generator token");
    let (st, _) = mint_raw(&c, &gw, None, &[("name", "t")]).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let r = c
        .post(gw.url(NAMED))
        .query(&good)
        .basic_auth("alice", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Refused requests stored nothing: only the three accepted tokens exist.
    let l = list(&c, &gw, &alice.generator).await;
    assert_eq!(l.len(), 3, "{l:?}");
}

// ------------------------------------------------------------ five pairs

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_pair_opens_exactly_its_routes_and_read_only_refuses_writes() {
    let (gw, up) = sqlite_gateway("30s").await;
    let c = http();
    let alice = cli_user(&c, &gw, "alice").await;
    let gen_id = s(&cli_json(&gw, &["generator-token", "show", "--user", &alice.uid], None)["id"]);

    for (action, rt, scopes, read_only) in PAIRS {
        let before = now();
        let v = mint(&c, &gw, &alice.generator, &format!("{action}-{rt}"), "60", action, rt).await;
        let what = format!("{action}/{rt}");
        assert_eq!(v["action"], action, "{v}");
        assert_eq!(v["resourceType"], rt, "{v}");
        assert_eq!(v["name"], format!("{action}-{rt}"));
        assert_eq!(v["revoked"], false);
        let want: BTreeSet<String> = scopes.iter().map(|s| s.to_string()).collect();
        assert_eq!(scope_set(&s(&v["scope"])), want, "{what}");
        let exp_at = parse_rfc3339(&s(&v["expiresAt"]));
        assert!((before + 3600..=now() + 3600).contains(&exp_at), "{what}: {v}");
        parse_rfc3339(&s(&v["createdAt"]));

        let token = s(&v["token"]);
        let cl = claims(&token);
        assert_eq!(cl["jti"], v["id"], "{what}: {cl}");
        assert_eq!(cl["exp"].as_i64(), Some(exp_at), "{cl}");
        assert_eq!(cl["token_type"], "named");
        assert_eq!(cl["sub"], alice.uid.as_str());
        assert_eq!(cl["uid"], alice.uid.as_str());
        assert_eq!(cl["cid"], gen_id.as_str(), "derived from the generator token");
        assert_eq!(scope_set(cl["scope"].as_str().unwrap()), want);

        for (path, scope) in ROUTES {
            let url = gw.url(path);
            let allowed = scopes.contains(&scope);
            for m in [Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::DELETE] {
                let write = !matches!(m, Method::GET | Method::HEAD);
                let seen = up.seen.count();
                let mut req = c.request(m.clone(), &url).bearer_auth(&token);
                if write {
                    req = req.body("x");
                }
                let r = req.send().await.unwrap();
                let want = if allowed && !(write && read_only) {
                    StatusCode::OK
                } else {
                    StatusCode::FORBIDDEN
                };
                assert_eq!(r.status(), want, "{what} {m} {path}");
                if want == StatusCode::FORBIDDEN {
                    let www = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
                    assert!(www.contains("insufficient_scope"), "{www}");
                    assert_eq!(up.seen.count(), seen, "{what} {m} {path} reached the upstream");
                } else {
                    assert_eq!(up.seen.count(), seen + 1);
                    assert_eq!(up.seen.last().method, m.as_str());
                }
            }
        }
        // The token names its user.
        let r = c.get(gw.url("/me")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let me: Value = r.json().await.unwrap();
        assert_eq!(me["uid"], alice.uid.as_str());
        assert_eq!(me["username"], alice.username.as_str());
    }
    // No token at all is 401, not 403.
    assert_eq!(
        c.get(gw.url(ROUTES[0].0)).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}

// --------------------------------------------- never-expiring and revocation

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_expiring_token_has_no_exp_and_works_until_revoked_by_each_path() {
    // Resync every second: the CLI writes to the store only.
    let (gw, _up) = sqlite_gateway("1s").await;
    let c = http();
    let alice = cli_user(&c, &gw, "alice").await;
    let bob = cli_user(&c, &gw, "bob").await;
    let tiles = gw.url(ROUTES[0].0);

    // A timed token does carry exp.
    let timed = mint(&c, &gw, &alice.generator, "timed", "1", "read_only", "all").await;
    let exp = claims(&s(&timed["token"]))["exp"].as_i64().expect("exp");
    assert!((now() + 50..=now() + 60).contains(&exp), "{exp}");

    let paths = ["user-delete", "generator-delete", "rfc7009", "admin-api", "cli", "kept"];
    let mut tokens = Vec::new();
    for p in paths {
        let v = mint(&c, &gw, &alice.generator, p, "-1", "read_write", "all").await;
        assert!(v["expiresAt"].is_null(), "{v}");
        let token = s(&v["token"]);
        let cl = claims(&token);
        assert!(cl.get("exp").is_none(), "a never-expiring token has no exp: {cl}");
        assert_eq!(cl["jti"], v["id"]);
        // Works, and again from the verification cache.
        assert_eq!(get(&c, &tiles, &token).await, StatusCode::OK);
        assert_eq!(get(&c, &tiles, &token).await, StatusCode::OK);
        assert_eq!(
            call(&c, Method::POST, &gw.url("/stream/x"), &token).await,
            StatusCode::OK
        );
        tokens.push((s(&v["id"]), token));
    }
    let token_of = |p: &str| tokens[paths.iter().position(|x| *x == p).unwrap()].clone();

    // Listed for its user (login or generator token), not for another.
    let l = list(&c, &gw, &alice.login).await;
    assert_eq!(l.len(), paths.len() + 1);
    assert!(
        l.iter().all(|t| t["revoked"] == false && t.get("token").is_none()),
        "{l:?}"
    );
    assert_eq!(list(&c, &gw, &alice.generator).await.len(), l.len());
    assert!(list(&c, &gw, &bob.login).await.is_empty());

    // Another user can neither delete nor revoke it.
    let (id, token) = token_of("user-delete");
    let r = c
        .delete(gw.url(&format!("{NAMED_LIST}/{id}")))
        .bearer_auth(&bob.login)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = c
        .post(gw.url("/oauth/revoke"))
        .bearer_auth(&bob.login)
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "RFC 7009: 200 whatever the token");
    assert_eq!(
        get(&c, &tiles, &token).await,
        StatusCode::OK,
        "bob revoked alice's token"
    );

    // 1. The user, with a login token.
    let r = c
        .delete(gw.url(&format!("{NAMED_LIST}/{id}")))
        .bearer_auth(&alice.login)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(get(&c, &tiles, &token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(get(&c, &gw.url("/me"), &token).await, StatusCode::UNAUTHORIZED);

    // 2. The user, with the generator token.
    let (id, token) = token_of("generator-delete");
    let r = c
        .delete(gw.url(&format!("{NAMED_LIST}/{id}")))
        .bearer_auth(&alice.generator)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(get(&c, &tiles, &token).await, StatusCode::UNAUTHORIZED);

    // 3. RFC 7009 with the owner's login token.
    let (_, token) = token_of("rfc7009");
    let r = c
        .post(gw.url("/oauth/revoke"))
        .bearer_auth(&alice.login)
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(get(&c, &tiles, &token).await, StatusCode::UNAUTHORIZED);

    // 4. The admin API.
    let (id, token) = token_of("admin-api");
    let (st, v) = admin(&c, &gw, Method::DELETE, &format!("/admin/v1/named-tokens/{id}"), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(get(&c, &tiles, &token).await, StatusCode::UNAUTHORIZED);

    // 5. The CLI, on the store: the running gateway learns it at the resync.
    let (id, token) = token_of("cli");
    let start = Instant::now();
    let v = cli_json(&gw, &["named-token", "revoke", &id], None);
    assert_eq!(v["id"], id.as_str());
    let took = refused_after(&c, std::slice::from_ref(&tiles), &token, start, Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(3), "resync every 1s, took {took:?}");

    // The one nobody revoked still works; the listing tells which are revoked.
    let (kept_id, kept) = token_of("kept");
    assert_eq!(get(&c, &tiles, &kept).await, StatusCode::OK);
    for t in list(&c, &gw, &alice.login).await {
        let revoked = t["id"] != kept_id.as_str() && t["name"] != "timed";
        assert_eq!(t["revoked"], revoked, "{t}");
    }
    let cli_list = cli_json(&gw, &["named-token", "list", "--user", &alice.uid], None);
    assert_eq!(cli_list.as_array().unwrap().len(), paths.len() + 1);
    // Revoked tokens stay refused at introspection too.
    let r = c
        .post(gw.url("/oauth/introspect"))
        .bearer_auth(&alice.login)
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    if r.status() == StatusCode::OK {
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["active"], false, "{v}");
    }
}

// ------------------------------------------------------------- regenerate

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regenerating_the_generator_token_kills_it_and_what_it_minted() {
    let (gw, _up) = sqlite_gateway("1s").await;
    let c = http();
    let alice = cli_user(&c, &gw, "alice").await;
    let bob = cli_user(&c, &gw, "bob").await;
    let tiles = gw.url(ROUTES[0].0);
    let bobs = s(&mint(&c, &gw, &bob.generator, "bob", "-1", "read_only", "all").await["token"]);

    // The user reads the same generator token as the operator.
    let r = c.get(gw.url(GENERATOR)).bearer_auth(&alice.login).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let shown: Value = r.json().await.unwrap();
    assert_eq!(shown["token"], alice.generator.as_str());
    // Only with a login token.
    let r = c
        .get(gw.url(GENERATOR))
        .bearer_auth(&alice.generator)
        .send()
        .await
        .unwrap();
    assert!(
        matches!(r.status(), StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN),
        "{}",
        r.status()
    );

    let g1 = alice.generator.clone();
    let t1 = s(&mint(&c, &gw, &g1, "t1", "-1", "read_write", "all").await["token"]);
    let t1b = s(&mint(&c, &gw, &g1, "t1b", "60", "read_only", "dataset_streaming").await["token"]);
    assert_eq!(get(&c, &tiles, &t1).await, StatusCode::OK);
    assert_eq!(get(&c, &gw.url("/stream/a"), &t1b).await, StatusCode::OK);

    // 1. The user regenerates (login token): at once, the old generator
    // token is 401 everywhere it is used and what it minted is 401.
    let r = c
        .post(gw.url(GENERATOR))
        .bearer_auth(&alice.login)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    let g2 = s(&v["token"]);
    assert_ne!(g2, g1);
    let (st, _) = mint_raw(
        &c,
        &gw,
        Some(&g1),
        &[
            ("name", "x"),
            ("validTime", "5"),
            ("action", "read_only"),
            ("resourceType", "all"),
        ],
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let r = c.get(gw.url(NAMED_LIST)).bearer_auth(&g1).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(get(&c, &tiles, &t1).await, StatusCode::UNAUTHORIZED);
    assert_eq!(get(&c, &gw.url("/stream/a"), &t1b).await, StatusCode::UNAUTHORIZED);
    let r = c.get(gw.url(GENERATOR)).bearer_auth(&alice.login).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["token"], g2.as_str());
    let shown = cli_json(&gw, &["generator-token", "show", "--user", &alice.uid], None);
    assert_eq!(shown["token"], g2.as_str());
    // The new one works.
    let t2 = s(&mint(&c, &gw, &g2, "t2", "-1", "read_write", "all").await["token"]);
    assert_eq!(get(&c, &tiles, &t2).await, StatusCode::OK);

    // 2. The operator regenerates with the CLI (on the store): the running
    // gateway learns it at its resync.
    let start = Instant::now();
    let g3 = s(&cli_json(&gw, &["generator-token", "regenerate", "--user", &alice.uid], None)["token"]);
    assert_ne!(g3, g2);
    let took = generator_refused_after(&c, &gw, &g2, start, Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(3), "{took:?}");
    let took = refused_after(&c, std::slice::from_ref(&tiles), &t2, start, Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(3), "{took:?}");
    let t3 = s(&mint(&c, &gw, &g3, "t3", "-1", "read_only", "all").await["token"]);
    assert_eq!(get(&c, &tiles, &t3).await, StatusCode::OK);

    // 3. The operator regenerates through the admin API: at once.
    let (st, v) = admin(
        &c,
        &gw,
        Method::POST,
        &format!("/admin/v1/users/{}/generator-token", alice.uid),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let g4 = s(&v["token"]);
    assert_ne!(g4, g3);
    let (st, _) = mint_raw(
        &c,
        &gw,
        Some(&g3),
        &[
            ("name", "x"),
            ("validTime", "5"),
            ("action", "read_only"),
            ("resourceType", "all"),
        ],
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(get(&c, &tiles, &t3).await, StatusCode::UNAUTHORIZED);
    mint(&c, &gw, &g4, "t4", "5", "read_only", "all").await;

    // Another user's generator token and tokens are untouched.
    assert_eq!(get(&c, &tiles, &bobs).await, StatusCode::OK);
    mint(&c, &gw, &bob.generator, "bob2", "5", "read_only", "all").await;
}

// ------------------------------------------------------------- PostgreSQL

/// PostgreSQL tests run one at a time: one of them restarts the cluster.
static PG_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn pg_base_url() -> Option<String> {
    match std::env::var("TILEGATE_TEST_PG_URL") {
        Ok(u) if !u.trim().is_empty() => Some(u.trim().to_owned()),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but TILEGATE_TEST_PG_URL is not: PostgreSQL tests must run in CI"
            );
            eprintln!("note: TILEGATE_TEST_PG_URL is unset; skipping this PostgreSQL test");
            None
        }
    }
}

fn psql(url: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .arg(url)
        .args(["-v", "ON_ERROR_STOP=1", "-tAX", "-c", sql])
        .env("PGCONNECT_TIMEOUT", "3")
        .output()
        .map_err(|e| format!("psql: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A fresh database for one test; dropped (best effort) on drop.
struct PgDb {
    base: String,
    name: String,
    url: String,
}

impl PgDb {
    fn create(base: &str) -> PgDb {
        let name = format!("tg_{}", rand_hex());
        let mut last = String::new();
        for _ in 0..20 {
            // CREATE DATABASE fails while another session uses the template.
            match psql(base, &format!("CREATE DATABASE {name}")) {
                Ok(_) => {
                    let (head, _) = base.rsplit_once('/').expect("a database URL");
                    let query = base.split_once('?').map(|(_, q)| format!("?{q}")).unwrap_or_default();
                    return PgDb {
                        base: base.to_owned(),
                        url: format!("{head}/{name}{query}"),
                        name,
                    };
                }
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("CREATE DATABASE {name}: {last}");
    }

    /// Sessions of this database whose last statement was `LISTEN …`: the
    /// replicas' revocation listeners.
    fn listeners(&self) -> usize {
        psql(
            &self.url,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND pid <> pg_backend_pid() AND query ILIKE 'LISTEN%tilegate_revocations%'",
        )
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
    }

    /// Wait until `n` revocation listeners are connected.
    async fn wait_listeners(&self, n: usize, limit: Duration) {
        let start = Instant::now();
        while self.listeners() < n {
            assert!(
                start.elapsed() < limit,
                "{n} revocation listeners not connected after {limit:?} (have {})",
                self.listeners()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = psql(
            &self.base,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// Two gateway processes on one database with one KEK; the second starts
/// once the first has migrated the store and made the signing key.
async fn two_replicas(db: &PgDb, up: &Upstream) -> (Gateway, Gateway) {
    let mut kek = [0u8; 32];
    aws_lc_rs::rand::fill(&mut kek).unwrap();
    let kek = STANDARD.encode(kek);
    let cfg = toml(&db.url, &up.url(), "30s");
    let env = [("TILEGATE_KEK", kek.as_str())];
    let a = start_gateway_in(tempfile::tempdir().unwrap(), &cfg, &env);
    let b = start_gateway_in(tempfile::tempdir().unwrap(), &cfg, &env);
    db.wait_listeners(2, Duration::from_secs(10)).await;
    (a, b)
}

fn postgres_ctl(base: &str, action: &str) {
    let out = Command::new("pg_lsclusters").arg("-h").output().expect("pg_lsclusters");
    let text = String::from_utf8_lossy(&out.stdout);
    let port = base
        .rsplit_once('@')
        .and_then(|(_, hp)| hp.split('/').next())
        .and_then(|hp| hp.rsplit_once(':'))
        .map(|(_, p)| p.to_owned())
        .unwrap_or_else(|| "5432".into());
    let line = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[2] == port)
        .unwrap_or_else(|| panic!("no cluster on port {port}:\n{text}"));
    let st = Command::new("pg_ctlcluster")
        .args([line[0], line[1], action])
        .status()
        .expect("pg_ctlcluster");
    assert!(st.success(), "pg_ctlcluster {} {} {action}", line[0], line[1]);
    if action == "stop" {
        return;
    }
    let start = Instant::now();
    while psql(base, "SELECT 1").is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "PostgreSQL did not come back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

const ONE_SECOND: Duration = Duration::from_secs(1);
/// How long a poll goes on before giving up (to report the real time).
const POLL_LIMIT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_named_token_revoked_on_one_replica_is_refused_by_the_other_within_a_second() {
    let Some(base) = pg_base_url() else { return };
    let _serial = PG_LOCK.lock().await;
    let db = PgDb::create(&base);
    let up = start_upstream().await;
    let (a, b) = two_replicas(&db, &up).await;
    let c = http();
    let alice = admin_user(&c, &a, "alice").await;
    // Both replicas verify each other's tokens (one signing key, from the store).
    let login_b = login(&c, &b, "alice").await;
    let tiles = |gw: &Gateway| gw.url(ROUTES[0].0);
    let both = [tiles(&a), tiles(&b)];

    let t1 = mint(&c, &a, &alice.generator, "never", "-1", "read_only", "all").await;
    let t2 = mint(
        &c,
        &a,
        &alice.generator,
        "hour",
        "60",
        "read_write",
        "dataset_streaming_refreshing",
    )
    .await;
    let t3 = mint(&c, &b, &alice.generator, "on-b", "-1", "read_write", "all").await;
    let t4 = mint(&c, &b, &alice.generator, "from-old-generator", "60", "read_only", "all").await;
    let stream_b = b.url("/stream/x");
    for t in [&t1, &t3, &t4] {
        for u in &both {
            // Twice: the second answer comes from the verification cache.
            assert_eq!(get(&c, u, &s(&t["token"])).await, StatusCode::OK);
            assert_eq!(get(&c, u, &s(&t["token"])).await, StatusCode::OK);
        }
    }
    assert_eq!(
        call(&c, Method::POST, &stream_b, &s(&t2["token"])).await,
        StatusCode::OK
    );

    // The user revokes through A (login token from A).
    let start = Instant::now();
    let r = c
        .delete(a.url(&format!("{NAMED_LIST}/{}", s(&t1["id"]))))
        .bearer_auth(&alice.login)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let took = refused_after(&c, &both, &s(&t1["token"]), start, POLL_LIMIT).await;
    assert!(took < ONE_SECOND, "user revocation on A reached B after {took:?}");

    // The operator revokes through A's admin API.
    let start = Instant::now();
    let (st, _) = admin(
        &c,
        &a,
        Method::DELETE,
        &format!("/admin/v1/named-tokens/{}", s(&t2["id"])),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let took = refused_after(
        &c,
        &[a.url("/stream/x"), stream_b.clone()],
        &s(&t2["token"]),
        start,
        POLL_LIMIT,
    )
    .await;
    assert!(took < ONE_SECOND, "admin revocation on A reached B after {took:?}");

    // RFC 7009 on A, for a token minted on B, with a login token from B.
    let start = Instant::now();
    let r = c
        .post(a.url("/oauth/revoke"))
        .bearer_auth(&login_b)
        .form(&[("token", s(&t3["token"]))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let took = refused_after(&c, &both, &s(&t3["token"]), start, POLL_LIMIT).await;
    assert!(took < ONE_SECOND, "RFC 7009 revocation on A reached B after {took:?}");

    // Regenerating the generator token on A: B refuses the old generator
    // token and what it minted, within a second.
    let start = Instant::now();
    let r = c.post(a.url(GENERATOR)).bearer_auth(&alice.login).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let g2 = s(&r.json::<Value>().await.unwrap()["token"]);
    let took = refused_after(&c, &both, &s(&t4["token"]), start, POLL_LIMIT).await;
    assert!(took < ONE_SECOND, "regeneration on A reached B's proxy after {took:?}");
    let took = generator_refused_after(&c, &b, &alice.generator, start, POLL_LIMIT).await;
    assert!(
        took < ONE_SECOND,
        "regeneration on A reached B's named-token endpoint after {took:?}"
    );
    let t5 = mint(&c, &b, &g2, "new", "-1", "read_only", "all").await;
    assert_eq!(get(&c, &tiles(&a), &s(&t5["token"])).await, StatusCode::OK);

    // The listing on either replica tells the same.
    let l = list(&c, &b, &login_b).await;
    let revoked: BTreeSet<String> = l
        .iter()
        .filter(|t| t["revoked"] == true)
        .map(|t| s(&t["name"]))
        .collect();
    assert_eq!(
        revoked,
        ["never", "hour", "on-b"].iter().map(|x| x.to_string()).collect()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_revocation_reaches_the_other_replica_after_postgres_restarts() {
    let Some(base) = pg_base_url() else { return };
    let _serial = PG_LOCK.lock().await;
    let db = PgDb::create(&base);
    let up = start_upstream().await;
    let (a, b) = two_replicas(&db, &up).await;
    let c = http();
    let alice = admin_user(&c, &a, "alice").await;
    let both = [a.url(ROUTES[0].0), b.url(ROUTES[0].0)];
    let t1 = mint(&c, &a, &alice.generator, "before-restart", "-1", "read_only", "all").await;
    let t2 = mint(&c, &b, &alice.generator, "before-restart-2", "60", "read_only", "all").await;
    for t in [&t1, &t2] {
        for u in &both {
            assert_eq!(get(&c, u, &s(&t["token"])).await, StatusCode::OK);
        }
    }

    postgres_ctl(&base, "restart");
    // Verification needs no database: tokens keep working meanwhile.
    for u in &both {
        assert_eq!(get(&c, u, &s(&t1["token"])).await, StatusCode::OK);
    }
    // Grace for the listeners to reconnect (both replicas), then the bound holds.
    let back = Instant::now();
    db.wait_listeners(2, Duration::from_secs(20)).await;
    eprintln!(
        "listeners reconnected {:?} after PostgreSQL accepted connections again",
        back.elapsed()
    );

    let start = Instant::now();
    let r = c
        .delete(a.url(&format!("{NAMED_LIST}/{}", s(&t1["id"]))))
        .bearer_auth(&alice.login)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::NO_CONTENT,
        "revocation through A after the restart"
    );
    let took = refused_after(&c, &both, &s(&t1["token"]), start, POLL_LIMIT).await;
    assert!(
        took < ONE_SECOND,
        "after a PostgreSQL restart, revocation on A reached B after {took:?}"
    );

    // And the other way round, through B's admin API.
    let start = Instant::now();
    let (st, _) = admin(
        &c,
        &b,
        Method::DELETE,
        &format!("/admin/v1/named-tokens/{}", s(&t2["id"])),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let took = refused_after(&c, &both, &s(&t2["token"]), start, POLL_LIMIT).await;
    assert!(
        took < ONE_SECOND,
        "after a PostgreSQL restart, revocation on B reached A after {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_revoking_an_api_key_kills_tokens_minted_from_it_on_both_replicas_within_a_second() {
    let Some(base) = pg_base_url() else { return };
    let _serial = PG_LOCK.lock().await;
    let db = PgDb::create(&base);
    let up = start_upstream().await;
    let (a, b) = two_replicas(&db, &up).await;
    let c = http();
    let (st, org) = admin(&c, &a, Method::POST, "/admin/v1/orgs", Some(json!({"name": "acme"}))).await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, sa) = admin(
        &c,
        &a,
        Method::POST,
        "/admin/v1/service-accounts",
        Some(json!({"org": org["id"], "name": "tile-backend"})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{sa}");
    let mut keys = Vec::new();
    for _ in 0..2 {
        let (st, key) = admin(
            &c,
            &a,
            Method::POST,
            "/admin/v1/api-keys",
            Some(json!({"service_account": sa["id"], "scope": "tiles:read datasets:stream"})),
        )
        .await;
        assert_eq!(st, StatusCode::CREATED, "{key}");
        keys.push((s(&key["id"]), s(&key["api_key"])));
    }
    let exchange = |gw: &Gateway, key: String| {
        let r = c
            .post(gw.url("/v1/auth/token"))
            .bearer_auth(key)
            .json(&json!({"ttl": 600}))
            .send();
        async move {
            let r = r.await.unwrap();
            let st = r.status();
            (st, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    // Short-lived tokens minted on B from each key.
    let (st, v) = exchange(&b, keys[0].1.clone()).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let doomed = s(&v["access_token"]);
    assert_eq!(claims(&doomed)["cid"], keys[0].0.as_str());
    let (st, v) = exchange(&b, keys[1].1.clone()).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let other = s(&v["access_token"]);
    let both = [a.url(ROUTES[0].0), b.url(ROUTES[0].0)];
    for u in &both {
        assert_eq!(get(&c, u, &doomed).await, StatusCode::OK);
        assert_eq!(get(&c, u, &doomed).await, StatusCode::OK);
        assert_eq!(get(&c, u, &other).await, StatusCode::OK);
    }

    let start = Instant::now();
    let (st, v) = admin(
        &c,
        &a,
        Method::DELETE,
        &format!("/admin/v1/api-keys/{}", keys[0].0),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let took = refused_after(&c, &both, &doomed, start, POLL_LIMIT).await;
    assert!(
        took < ONE_SECOND,
        "API key revoked on A: its token still accepted after {took:?}"
    );
    // B no longer exchanges the key either (its secret cache notwithstanding).
    let (st, _) = exchange(&b, keys[0].1.clone()).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    // The other key and its token are untouched.
    for u in &both {
        assert_eq!(get(&c, u, &other).await, StatusCode::OK);
    }
    let (st, _) = exchange(&b, keys[1].1.clone()).await;
    assert_eq!(st, StatusCode::OK);
}

/// The periodic resync runs concurrently with revocations made through the
/// same replica; it must never bring a revoked token back, not even for a
/// moment. (Resync every 200 ms, 300 revocations 16 at a time, each token
/// tried for a resync period after its revocation: before the fix in
/// `resync_revocations`, a few tokens were accepted again each run.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_is_never_undone_by_a_concurrent_resync() {
    let (gw, _up) = sqlite_gateway("200ms").await;
    let c = http();
    let alice = cli_user(&c, &gw, "alice").await;
    let mut tokens = Vec::new();
    for i in 0..300 {
        let v = mint(&c, &gw, &alice.generator, &format!("t{i}"), "60", "read_only", "all").await;
        tokens.push((s(&v["id"]), s(&v["token"])));
    }
    let gw = std::sync::Arc::new(gw);
    let limit = std::sync::Arc::new(tokio::sync::Semaphore::new(16));
    let mut tasks = Vec::new();
    for (id, token) in tokens {
        let (c, gw, login, limit) = (c.clone(), gw.clone(), alice.login.clone(), limit.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire().await.unwrap();
            let r = c
                .delete(gw.url(&format!("{NAMED_LIST}/{id}")))
                .bearer_auth(&login)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::NO_CONTENT);
            let url = gw.url(ROUTES[0].0);
            let mut accepted = 0;
            for _ in 0..15 {
                if get(&c, &url, &token).await != StatusCode::UNAUTHORIZED {
                    accepted += 1;
                }
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            accepted
        }));
    }
    let (mut tokens_back, mut requests) = (0, 0);
    for t in tasks {
        let n = t.await.unwrap();
        requests += n;
        tokens_back += usize::from(n > 0);
    }
    assert_eq!(
        (tokens_back, requests),
        (0, 0),
        "revoked tokens accepted again after their revocation (tokens, requests)"
    );
}

// ------------------------------------------------- TLS to PostgreSQL
//
// `.ci/pg.sh` switches TLS on in the test cluster with a certificate for
// 127.0.0.1, ::1 and localhost from a test CA; `TILEGATE_TEST_PG_CA` names
// the CA file (default: where pg.sh writes it). The cluster still accepts
// plaintext: the other PostgreSQL tests use `TILEGATE_TEST_PG_URL` as it
// is (no sslmode: TLS when offered, unverified, which loopback allows).

/// The test CA of the cluster's certificate, or `None` (with a note) when
/// pg.sh has not made one; with `CI` set a missing CA is a failure.
fn pg_ca() -> Option<String> {
    let path = std::env::var("TILEGATE_TEST_PG_CA")
        .ok()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| "/var/lib/tilegate-test-pg-tls/ca.pem".to_owned());
    if std::path::Path::new(&path).is_file() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set but the PostgreSQL test CA {path} is missing: run .ci/pg.sh"
    );
    eprintln!("note: no PostgreSQL test CA at {path} (.ci/pg.sh makes it); skipping this TLS test");
    None
}

/// `url` with `params` added to its query.
fn with_params(url: &str, params: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{params}")
}

/// (host, port) of a `postgres://user:pw@host:port/db` URL.
fn pg_host_port(url: &str) -> (String, u16) {
    let hp = url
        .rsplit_once('@')
        .and_then(|(_, rest)| rest.split('/').next())
        .expect("host:port in the URL");
    let (h, p) = hp.rsplit_once(':').unwrap_or((hp, "5432"));
    (h.to_owned(), p.parse().unwrap())
}

/// How many of this database's sessions (other than the asking one) use
/// TLS, and how many there are, from `pg_stat_ssl`.
fn ssl_sessions(db: &PgDb) -> (usize, usize) {
    let out = psql(
        &db.url,
        "SELECT count(*) FILTER (WHERE s.ssl AND s.version IN ('TLSv1.2', 'TLSv1.3')) || ' ' || count(*) \
         FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
         WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()",
    )
    .expect("pg_stat_ssl");
    let (tls, all) = out.split_once(' ').expect("two counts");
    (tls.parse().unwrap(), all.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_tls_verify_full_with_the_ca_works_end_to_end_and_every_connection_is_tls() {
    let Some(base) = pg_base_url() else { return };
    let Some(ca) = pg_ca() else { return };
    let _serial = PG_LOCK.lock().await;
    let up = start_upstream().await;
    // The gateway on verify-full, by IP (the certificate's IP name) and by
    // host name (its DNS name); a plaintext one beside it, on loopback,
    // shows that pg_stat_ssl tells the two apart.
    let tls_db = PgDb::create(&base);
    let plain_db = PgDb::create(&base);
    let verify = format!("sslmode=verify-full&sslrootcert={ca}");
    let by_ip = with_params(&tls_db.url, &verify);
    let (host, port) = pg_host_port(&tls_db.url);
    assert_eq!(host, "127.0.0.1", "the test cluster listens on 127.0.0.1");
    let by_name = by_ip.replacen(&format!("@{host}:{port}/"), &format!("@localhost:{port}/"), 1);
    assert_ne!(by_name, by_ip);
    let mut kek = [0u8; 32];
    aws_lc_rs::rand::fill(&mut kek).unwrap();
    let kek = STANDARD.encode(kek);
    let env = [("TILEGATE_KEK", kek.as_str())];
    let a = start_gateway_in(tempfile::tempdir().unwrap(), &toml(&by_ip, &up.url(), "30s"), &env);
    let b = start_gateway_in(tempfile::tempdir().unwrap(), &toml(&by_name, &up.url(), "30s"), &env);
    let plain = start_gateway_in(
        tempfile::tempdir().unwrap(),
        &toml(&with_params(&plain_db.url, "sslmode=disable"), &up.url(), "30s"),
        &[],
    );
    tls_db.wait_listeners(2, Duration::from_secs(10)).await;
    plain_db.wait_listeners(1, Duration::from_secs(10)).await;

    // End to end through the store: credentials made on A, a token
    // exchanged on B opens a route on both; a revocation on A reaches B by
    // its (TLS) listener.
    let (_org, sa) = admin_org_and_account(&a).await;
    let key = admin_api_key(&a, &sa, "tiles:read").await;
    let token = exchange_token(&b, &key).await;
    assert_eq!(tile_status(&a, &token).await, 200);
    assert_eq!(tile_status(&b, &token).await, 200);
    let c = http();
    let r = c
        .post(a.url("/oauth/revoke"))
        .bearer_auth(&token)
        .form(&[("token", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    refused_after(&c, &[b.url("/tiles/x")], &token, Instant::now(), POLL_LIMIT).await;

    // Every session of the gateways' database is TLS (pool and listeners);
    // the plaintext gateway's are not.
    let (tls, all) = ssl_sessions(&tls_db);
    assert!(all >= 4, "two pools and two listeners, have {all} sessions");
    assert_eq!(tls, all, "sessions without TLS on the verify-full database");
    let (tls, all) = ssl_sessions(&plain_db);
    assert!(all >= 2, "a pool and a listener, have {all} sessions");
    assert_eq!(tls, 0, "sslmode=disable sessions are plaintext");
    drop(plain);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_tls_verify_full_refuses_a_wrong_ca_a_wrong_name_and_remote_plaintext() {
    let Some(base) = pg_base_url() else { return };
    let Some(ca) = pg_ca() else { return };
    let _serial = PG_LOCK.lock().await;
    let db = PgDb::create(&base);
    let up = start_upstream().await;
    let start_fails = |url: &str, want: &[&str], code: i32| {
        let cfg = toml(url, &up.url(), "30s");
        // Blocking wait; the forwarder below runs on the other worker.
        let (exit, err) = tokio::task::block_in_place(|| serve_until_exit(&cfg, Duration::from_secs(60)));
        assert_eq!(exit, Some(code), "exit code; stderr:\n{err}");
        for w in want {
            assert!(err.contains(w), "no {w:?} in the error:\n{err}");
        }
        assert!(!err.contains("\"ready\""), "started:\n{err}");
        eprintln!("refused as expected: {}", err.lines().last().unwrap_or(""));
        err
    };

    // Another CA (a self-signed certificate the cluster's is not issued by).
    let other = tempfile::tempdir().unwrap();
    let (wrong_ca, _) = common::self_signed(other.path());
    start_fails(
        &with_params(
            &db.url,
            &format!("sslmode=verify-full&sslrootcert={}", wrong_ca.display()),
        ),
        &["TLS with the database failed", "certificate"],
        1,
    );

    // The right CA, but a name the certificate is not for: a forwarder on
    // 127.0.0.2 (loopback, so the config allows any mode) to the cluster
    // stands for an on-path attacker replaying the real certificate chain.
    let (host, port) = pg_host_port(&db.url);
    let fwd = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
    let fwd_port = fwd.local_addr().unwrap().port();
    let target = format!("{host}:{port}");
    let forwarder = tokio::spawn(async move {
        while let Ok((mut inbound, _)) = fwd.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut out) = tokio::net::TcpStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                }
            });
        }
    });
    let via = db
        .url
        .replacen(&format!("@{host}:{port}/"), &format!("@127.0.0.2:{fwd_port}/"), 1);
    assert_ne!(via, db.url);
    start_fails(
        &with_params(&via, &format!("sslmode=verify-full&sslrootcert={ca}")),
        &["TLS with the database failed", "certificate"],
        1,
    );
    // The same path with sslmode=require (no verification) connects: only
    // verify-full told the impostor apart.
    let gw = start_gateway_in(
        tempfile::tempdir().unwrap(),
        &toml(&with_params(&via, "sslmode=require"), &up.url(), "30s"),
        &[],
    );
    drop(gw);
    forwarder.abort();

    // A host other than this machine without verify-full is a config error
    // (exit 64), before any connection; the opt-in is named. `.invalid`
    // never resolves, so nothing leaves the machine either way.
    for mode in [
        "",
        "?sslmode=prefer",
        "?sslmode=require",
        "?sslmode=verify-ca",
        "?sslmode=disable",
    ] {
        let err = start_fails(
            &format!("postgres://tilegate:s3cret-pw@db.invalid:5432/tg{mode}"),
            &["store.url", "verify-full", "allow_insecure_transport"],
            64,
        );
        assert!(!err.contains("s3cret-pw"), "the password leaked:\n{err}");
    }
    // A CA file that is not there is named in a config error too.
    start_fails(
        &with_params(&db.url, "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"),
        &["store.url", "/nonexistent/ca.pem"],
        64,
    );
}

// ------------------------------------------------- replicas share keys

fn kid_of(jwt: &str) -> String {
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt.split('.').next().unwrap()).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

/// Two replicas like [`two_replicas`], with a periodic refresh (keys and
/// revocations) far longer than any wait of the test: what they learn
/// within seconds comes from notifications. The KEK is also in A's
/// `kek_file`, for the CLI.
async fn two_replicas_slow_refresh(db: &PgDb, up: &Upstream) -> (Gateway, Gateway) {
    let mut kek = [0u8; 32];
    aws_lc_rs::rand::fill(&mut kek).unwrap();
    let kek = STANDARD.encode(kek);
    let cfg = toml(&db.url, &up.url(), "10m");
    let env = [("TILEGATE_KEK", kek.as_str())];
    let a = start_gateway_in(tempfile::tempdir().unwrap(), &cfg, &env);
    std::fs::write(a.dir.path().join("kek"), &kek).unwrap();
    let b = start_gateway_in(tempfile::tempdir().unwrap(), &cfg, &env);
    db.wait_listeners(2, Duration::from_secs(10)).await;
    (a, b)
}

/// The kids of a replica's JWKS.
async fn jwks_kids(gw: &Gateway) -> BTreeSet<String> {
    let jwks: Value = http()
        .get(gw.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// Poll until `gw` signs with `kid` (a token exchanged there carries it) and
/// publishes it; only the exchange and the JWKS are asked, never a token
/// signed with `kid`, which would make the replica re-read the keys.
async fn signs_with_after(gw: &Gateway, key: &str, kid: &str, start: Instant) -> Duration {
    loop {
        let t = exchange_token(gw, key).await;
        if kid_of(&t) == kid && jwks_kids(gw).await.contains(kid) {
            let took = start.elapsed();
            eprintln!("{} signs with {kid} {took:?} after the rotation", gw.addr);
            return took;
        }
        assert!(
            start.elapsed() < POLL_LIMIT,
            "{} still signs with {} {:?} after a rotation to {kid}",
            gw.addr,
            kid_of(&t),
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_a_token_from_one_replica_opens_the_other_and_a_rotation_on_one_is_honoured_by_both() {
    let Some(base) = pg_base_url() else { return };
    let _guard = PG_LOCK.lock().await;
    let db = PgDb::create(&base);
    let up = start_upstream().await;
    let (a, b) = two_replicas_slow_refresh(&db, &up).await;

    let (_org, sa) = admin_org_and_account(&a).await;
    let key = admin_api_key(&b, &sa, "tiles:read").await;

    // Issued by A, accepted by B (and the other way round).
    let from_a = exchange_token(&a, &key).await;
    let from_b = exchange_token(&b, &key).await;
    let first_kid = kid_of(&from_a);
    assert_eq!(first_kid, kid_of(&from_b), "one signing key for both replicas");
    assert_eq!(tile_status(&b, &from_a).await, 200);
    assert_eq!(tile_status(&a, &from_b).await, 200);

    // Rotate on A (admin API): A signs with the new key at once, and B,
    // told by the store's notification, signs with it and publishes it
    // within seconds, before it has seen any token of the new key.
    let rotated = admin_post(&a, "/admin/v1/keys/rotate", json!({})).await;
    let started = Instant::now();
    let new_kid = rotated["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, first_kid);
    let new_from_a = exchange_token(&a, &key).await;
    assert_eq!(kid_of(&new_from_a), new_kid);
    signs_with_after(&b, &key, &new_kid, started).await;
    let new_from_b = exchange_token(&b, &key).await;
    assert_eq!(kid_of(&new_from_b), new_kid);
    // Both verify both: the old key's tokens (inside its grace) and the new.
    for gw in [&a, &b] {
        for t in [&from_a, &from_b, &new_from_a, &new_from_b] {
            assert_eq!(tile_status(gw, t).await, 200, "{}: kid {}", gw.addr, kid_of(t));
        }
        let kids = jwks_kids(gw).await;
        assert!(kids.contains(&new_kid) && kids.contains(&first_kid), "{kids:?}");
    }

    // Rotate with the CLI, which no running replica serves: both switch
    // within seconds all the same.
    let third_kid = s(&cli_json(&a, &["keys", "rotate"], None)["kid"]);
    let started = Instant::now();
    assert!(third_kid != new_kid && third_kid != first_kid, "{third_kid}");
    signs_with_after(&a, &key, &third_kid, started).await;
    signs_with_after(&b, &key, &third_kid, started).await;
    let last_a = exchange_token(&a, &key).await;
    let last_b = exchange_token(&b, &key).await;
    for gw in [&a, &b] {
        for t in [&from_a, &new_from_b, &last_a, &last_b] {
            assert_eq!(tile_status(gw, t).await, 200, "{}: kid {}", gw.addr, kid_of(t));
        }
    }
}

// ------------------------------------------------- the store goes away

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_with_the_store_down_proxying_goes_on_and_token_endpoints_answer_503_then_recover() {
    let Some(base) = pg_base_url() else { return };
    let _guard = PG_LOCK.lock().await;
    let db = PgDb::create(&base);
    let up = start_upstream().await;
    let (a, _b) = two_replicas(&db, &up).await;
    let (org, sa) = admin_org_and_account(&a).await;
    admin_user_ana(&a, &org).await;
    let key = admin_api_key(&a, &sa, "tiles:read").await;
    let token = exchange_token(&a, &key).await;
    assert_eq!(tile_status(&a, &token).await, 200);
    assert_eq!(password_grant_ana(&a).await.unwrap().status(), 200);

    /// Starts PostgreSQL again however this test leaves the scope.
    struct StartOnDrop<'a>(&'a str);
    impl Drop for StartOnDrop<'_> {
        fn drop(&mut self) {
            postgres_ctl(self.0, "start");
        }
    }
    {
        postgres_ctl(&base, "stop");
        let _restart = StartOnDrop(&base);
        // Verification is local: the token keeps opening routes.
        assert_eq!(tile_status(&a, &token).await, 200);
        // An endpoint that needs the store answers 503 JSON with Retry-After,
        // without waiting out sqlx's old 5 s acquire timeout: the first call
        // waits at most `store.acquire_timeout` (1 s), the later ones fail at
        // once while the store is known to be down (the bound is generous:
        // it tells the setting apart, not the speed).
        for attempt in 0..3 {
            let asked = Instant::now();
            let r = password_grant_ana(&a).await.unwrap();
            let took = asked.elapsed();
            assert_eq!(r.status(), 503);
            assert!(
                took < Duration::from_secs(3),
                "503 number {attempt} after {took:?} (sqlx's old acquire timeout was 5 s)"
            );
            assert!(r.headers().get("retry-after").is_some());
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"], "temporarily_unavailable");
            eprintln!("503 number {attempt} after {took:?}");
        }
        // Other token endpoints too: the exchange of a key the gateway has
        // not cached (a cached one is still exchanged without the store).
        let asked = Instant::now();
        let r = common::exchange(&a, &format!("tgk_{}", rand_hex())).await;
        assert_eq!(r.status(), 503);
        assert!(asked.elapsed() < Duration::from_secs(3), "{:?}", asked.elapsed());
        let r = http().get(a.admin_url("/readyz")).send().await.unwrap();
        assert_eq!(r.status(), 503);
    }
    // Everything recovers once the store is back.
    let start = Instant::now();
    loop {
        if password_grant_ana(&a).await.map(|r| r.status() == 200).unwrap_or(false) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "token endpoint did not recover"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(http().get(a.admin_url("/readyz")).send().await.unwrap().status(), 200);
    assert_eq!(tile_status(&a, &exchange_token(&a, &key).await).await, 200);
}

/// The revocation set of another replica: `tilegate_revocations` from its
/// admin `/metrics`.
async fn revocation_count(c: &reqwest::Client, gw: &Gateway) -> u64 {
    let text = c
        .get(gw.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("tilegate_revocations "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .unwrap_or_else(|| panic!("no tilegate_revocations in {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_a_revocation_learned_by_notification_expires_on_the_other_replica() {
    let Some(base) = pg_base_url() else { return };
    let _serial = PG_LOCK.lock().await;
    let db = PgDb::create(&base);
    let up = start_upstream().await;
    let mut kek = [0u8; 32];
    aws_lc_rs::rand::fill(&mut kek).unwrap();
    let kek = STANDARD.encode(kek);
    // Resync every second; a 1 s leeway.
    let cfg = toml(&db.url, &up.url(), "1s").replace(
        "audience = \"tilegate\"\n",
        "audience = \"tilegate\"\nleeway = \"1s\"\n",
    );
    let env = [("TILEGATE_KEK", kek.as_str())];
    let a = start_gateway_in(tempfile::tempdir().unwrap(), &cfg, &env);
    let b = start_gateway_in(tempfile::tempdir().unwrap(), &cfg, &env);
    db.wait_listeners(2, Duration::from_secs(10)).await;
    let c = http();
    let (_, org) = admin(&c, &a, Method::POST, "/admin/v1/orgs", Some(json!({"name": "acme"}))).await;
    let (_, sa) = admin(
        &c,
        &a,
        Method::POST,
        "/admin/v1/service-accounts",
        Some(json!({"org": org["id"], "name": "tile-backend"})),
    )
    .await;
    let (st, key) = admin(
        &c,
        &a,
        Method::POST,
        "/admin/v1/api-keys",
        Some(json!({"service_account": sa["id"], "scope": "tiles:read"})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{key}");
    let r = c
        .post(a.url("/v1/auth/token"))
        .bearer_auth(s(&key["api_key"]))
        .json(&json!({"ttl": 2}))
        .send()
        .await
        .unwrap();
    let t = s(&r.json::<Value>().await.unwrap()["access_token"]);
    let exp = claims(&t)["exp"].as_i64().unwrap();
    assert_eq!(get(&c, &b.url("/tiles/x"), &t).await, StatusCode::OK);
    assert_eq!(revocation_count(&c, &b).await, 0);
    // The token revokes itself on A; B learns it by notification.
    let r = c
        .post(a.url("/oauth/revoke"))
        .bearer_auth(&t)
        .form(&[("token", &t)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let start = Instant::now();
    refused_after(&c, &[b.url("/tiles/x")], &t, start, POLL_LIMIT).await;
    assert_eq!(revocation_count(&c, &b).await, 1);
    // Once the token can no longer verify (exp + leeway), B forgets the
    // entry at its next resync, as the store does.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = revocation_count(&c, &b).await;
        if n == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B still holds the entry {} s past exp + leeway",
            now() - exp - 1
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(now() > exp + 1, "forgotten only once the token cannot verify");
    assert_eq!(get(&c, &b.url("/tiles/x"), &t).await, StatusCode::UNAUTHORIZED);
}

/// Poll every 50 ms until `probe` answers `want`; return the time since
/// `start`. Gives up (panics) after `limit`.
async fn answers_after<F, Fut>(what: &str, want: StatusCode, start: Instant, limit: Duration, probe: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = StatusCode>,
{
    loop {
        let st = probe().await;
        let elapsed = start.elapsed();
        if st == want {
            return elapsed;
        }
        assert!(elapsed < limit, "{what}: still {st} after {elapsed:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Scope ceilings on two replicas: an operator disables a user through A's
/// admin API; within a second B refuses the user's login token, generator
/// token, named tokens (minted on either), client tokens, the client
/// itself, API-key tokens and the key itself, and the password. Enabling
/// on A lets the user log in on B again; revoked credentials stay revoked.
/// A ceiling lowered on A reaches the API key B holds in its secret cache
/// within a second too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_disabling_a_user_on_one_replica_stops_everything_on_both_within_a_second() {
    let Some(base) = pg_base_url() else { return };
    let _serial = PG_LOCK.lock().await;
    let db = PgDb::create(&base);
    let up = start_upstream().await;
    let (a, b) = two_replicas(&db, &up).await;
    let c = http();
    let alice = admin_user(&c, &a, "alice").await;
    let login_b = login(&c, &b, "alice").await;
    let n_a = s(&mint(&c, &a, &alice.generator, "on-a", "-1", "read_only", "all").await["token"]);
    let n_b = s(&mint(&c, &b, &alice.generator, "on-b", "60", "read_only", "all").await["token"]);
    // A client made on B, and its token.
    let r = c
        .post(b.url("/v1/clients"))
        .bearer_auth(&login_b)
        .json(&json!({"name": "app"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let client: Value = r.json().await.unwrap();
    let (cid, secret) = (s(&client["client_id"]), s(&client["client_secret"]));
    let client_credentials = |gw: &Gateway| {
        c.post(gw.url("/oauth/token"))
            .basic_auth(&cid, Some(&secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    let r = client_credentials(&b).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let client_tok = s(&r.json::<Value>().await.unwrap()["access_token"]);
    // An API key of alice's (the operator's), exchanged on B: B caches it.
    let (st, key) = admin(
        &c,
        &a,
        Method::POST,
        "/admin/v1/api-keys",
        Some(json!({"user": alice.uid, "scope": "tiles:read"})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{key}");
    let key = s(&key["api_key"]);
    let key_tok = exchange_token(&b, &key).await;
    let both = [a.url(ROUTES[0].0), b.url(ROUTES[0].0)];
    for t in [&n_a, &n_b, &client_tok, &key_tok] {
        for u in &both {
            assert_eq!(get(&c, u, t).await, StatusCode::OK);
            assert_eq!(get(&c, u, t).await, StatusCode::OK);
        }
    }
    assert_eq!(get(&c, &b.url("/me"), &login_b).await, StatusCode::OK);

    let start = Instant::now();
    let (st, v) = admin(&c, &a, Method::POST, "/admin/v1/users/alice/disable", None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    for t in [&n_a, &n_b, &client_tok, &key_tok] {
        let took = refused_after(&c, &both, t, start, POLL_LIMIT).await;
        assert!(
            took < ONE_SECOND,
            "disabled on A: a token still accepted after {took:?}"
        );
    }
    let took = refused_after(&c, &[b.url("/me")], &login_b, start, POLL_LIMIT).await;
    assert!(took < ONE_SECOND, "B took {took:?} to refuse the login token");
    let took = generator_refused_after(&c, &b, &alice.generator, start, POLL_LIMIT).await;
    assert!(took < ONE_SECOND, "B took {took:?} to refuse the generator token");
    let took = answers_after(
        "B exchanges the key",
        StatusCode::UNAUTHORIZED,
        start,
        POLL_LIMIT,
        || async { common::exchange(&b, &key).await.status() },
    )
    .await;
    assert!(took < ONE_SECOND, "B exchanged the key for {took:?}");
    assert_eq!(client_credentials(&b).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let r = c
        .post(b.url("/oauth/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Enabled on A: alice logs in on B again; what was revoked stays so.
    let (st, v) = admin(&c, &a, Method::POST, "/admin/v1/users/alice/enable", None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let login_b2 = login(&c, &b, "alice").await;
    assert_eq!(get(&c, &b.url("/me"), &login_b2).await, StatusCode::OK);
    for u in &both {
        assert_eq!(get(&c, u, &n_a).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(client_credentials(&b).await.unwrap().status(), StatusCode::UNAUTHORIZED);

    // A ceiling lowered on A reaches B's secret cache within a second.
    let (st, sa) = admin(
        &c,
        &a,
        Method::POST,
        "/admin/v1/service-accounts",
        Some(json!({"org": "org-alice", "name": "robot"})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{sa}");
    let (st, sa_key) = admin(
        &c,
        &a,
        Method::POST,
        "/admin/v1/api-keys",
        Some(json!({"service_account": sa["id"], "scope": "tiles:read datasets:stream"})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{sa_key}");
    let sa_key = s(&sa_key["api_key"]);
    let scope_on_b = || async {
        let t = exchange_token(&b, &sa_key).await;
        scope_set(claims(&t)["scope"].as_str().unwrap())
    };
    assert_eq!(scope_on_b().await, scope_set("tiles:read datasets:stream"));
    let start = Instant::now();
    let (st, v) = admin(
        &c,
        &a,
        Method::PATCH,
        "/admin/v1/orgs/org-alice",
        Some(json!({"scope_ceiling": "tiles:read"})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    loop {
        let got = scope_on_b().await;
        let took = start.elapsed();
        if got == scope_set("tiles:read") {
            assert!(took < ONE_SECOND, "B narrowed the cached key after {took:?}");
            break;
        }
        assert!(took < POLL_LIMIT, "B still grants {got:?} after {took:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A revocation made on one replica closes a WebSocket opened through the
/// other (route `end_streams_with_token`) with 1008 "token revoked": the
/// other replica learns it through the store's notification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_revoking_an_api_key_on_one_replica_closes_a_websocket_on_the_other() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::Message;
    let Some(base) = pg_base_url() else { return };
    let _serial = PG_LOCK.lock().await;
    let db = PgDb::create(&base);
    let up = start_upstream().await;
    let (a, b) = two_replicas(&db, &up).await;
    let c = http();
    let (st, org) = admin(&c, &a, Method::POST, "/admin/v1/orgs", Some(json!({"name": "acme"}))).await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, sa) = admin(
        &c,
        &a,
        Method::POST,
        "/admin/v1/service-accounts",
        Some(json!({"org": org["id"], "name": "live-feed"})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{sa}");
    let (st, key) = admin(
        &c,
        &a,
        Method::POST,
        "/admin/v1/api-keys",
        Some(json!({"service_account": sa["id"], "scope": "datasets:stream"})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{key}");
    let token = exchange_token(&b, &s(&key["api_key"])).await;

    let mut req = format!("ws://{}/live/ws", b.addr).into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket through B");
    assert_eq!(resp.status(), 101);
    ws.send(Message::text("hello")).await.unwrap();
    let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(m.into_text().unwrap().as_str(), "hello");

    let (st, v) = admin(
        &c,
        &a,
        Method::DELETE,
        &format!("/admin/v1/api-keys/{}", s(&key["id"])),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let close = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(m) = ws.next().await {
            match m {
                Ok(Message::Close(Some(f))) => return Some((f.code, f.reason.to_string())),
                Ok(Message::Close(None)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
        None
    })
    .await
    .expect("B closes the WebSocket within 2 s of the revocation on A");
    assert_eq!(close, Some((CloseCode::Policy, "token revoked".to_owned())));
}
