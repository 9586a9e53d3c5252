mod common;

// Token issuance against the real `tilegate serve`
// binary, on both stores. Every case is an `async fn case_*(store_url)`
// run twice by `both_stores!`: once on SQLite (`sqlite::case_*`) and once
// on a fresh PostgreSQL database (`pg::case_*`, needs
// `TILEGATE_TEST_PG_URL`; skipped with a note when unset, failed when `CI`
// is set). Each case starts its own gateway, so cases run concurrently.
//
// JWKS verification uses an independent JWT library, Python's PyJWT
// (`scripts/ci-deps.sh` installs it); without it those checks are skipped
// with a note, or fail when `CI` is set.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use common::{now, rand_hex, start_gateway, start_upstream, Gateway, Upstream, ADMIN_TOKEN};
use serde_json::{json, Value};

const ISSUER: &str = "http://gateway.test";
const AUDIENCE: &str = "tilegate";
const TOKEN_ENDPOINT: &str = "http://gateway.test/oauth/token";
const SQLITE_URL: &str = "sqlite://{DIR}/tilegate.db";
const USERNAME: &str = "alice";
const PASSWORD: &str = "correct horse battery staple";
const SA_NAME: &str = "backend";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

// ---------------------------------------------------------------- stores

/// A fresh PostgreSQL database for one test, dropped (best effort) at the end.
struct PgDb {
    admin_url: String,
    name: String,
    url: String,
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = psql(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

fn psql(url: &str, sql: &str) -> std::process::Output {
    Command::new("psql")
        .args([url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .stdin(Stdio::null())
        .output()
        .expect("run psql")
}

/// `TILEGATE_TEST_PG_URL` with its database replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let authority_end = base[scheme_end..]
        .find('/')
        .map(|i| i + scheme_end)
        .unwrap_or(base.len());
    let mut out = format!("{}/{db}", &base[..authority_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// A fresh database, or `None` (with a note) when PostgreSQL is not
/// configured; with `CI` set a missing PostgreSQL is a failure.
fn pg_db() -> Option<PgDb> {
    let Ok(admin_url) = std::env::var("TILEGATE_TEST_PG_URL") else {
        if std::env::var_os("CI").is_some() {
            panic!("TILEGATE_TEST_PG_URL is not set but CI is: the PostgreSQL store must be tested (see .ci/pg.sh)");
        }
        eprintln!("note: TILEGATE_TEST_PG_URL is not set; skipping the PostgreSQL run of this case");
        return None;
    };
    let name = format!("tg_{}", rand_hex());
    // CREATE DATABASE fails while another session copies the same template
    // (concurrent tests), or while the server restarts: retry for a while.
    let mut last = String::new();
    for attempt in 0..40 {
        let out = psql(&admin_url, &format!("CREATE DATABASE {name}"));
        if out.status.success() {
            last.clear();
            break;
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
        if attempt < 39 {
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    assert!(last.is_empty(), "CREATE DATABASE {name} failed: {last}");
    let url = with_database(&admin_url, &name);
    Some(PgDb { admin_url, name, url })
}

macro_rules! both_stores {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::SQLITE_URL).await;
                }
            )*
        }
        mod pg {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(db) = super::pg_db() else { return };
                    super::$case(&db.url).await;
                    drop(db);
                }
            )*
        }
    };
}

both_stores!(
    case_api_key_exchange_shape,
    case_api_key_exchange_errors,
    case_revoked_and_expired_keys,
    case_secrets_never_shown_again,
    case_client_assertions_and_grant_errors,
    case_every_flow_opens_routes_and_me,
    case_jwks_verifies_with_pyjwt,
    case_admin_key_rotation,
    case_cli_key_rotation,
    case_oauth2_crate_client_credentials,
    case_metadata_introspection_revocation,
    case_client_management,
    case_failed_auth_throttled,
    case_store_failure_is_server_error,
    case_hostile_input_is_4xx_and_changes_nothing,
    case_a_revoked_token_stays_revoked_through_the_leeway,
    case_ceilings_bind_every_credential,
    case_named_token_valid_time_policy,
    case_operators_contain_a_user_and_delete_what_it_holds,
    case_authlib_client_secret_jwt,
    case_refusals_say_what_to_do,
);

// ---------------------------------------------------------------- fixture

/// A gateway config on `store_url` with a 200ms revocation resync.
fn gateway_config(store_url: &str, upstream: &str, tokens_extra: &str, limits_extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
shutdown_grace = "1s"
[admin]
listen = "127.0.0.1:0"
[store]
url = "{store_url}"
kek_file = "{{DIR}}/kek"
revocation_resync = "200ms"
[tokens]
issuer = "{ISSUER}"
audience = "{AUDIENCE}"
{tokens_extra}
[cache]
negative_ttl = "1s"
[limits]
{limits_extra}
[scopes]
"tiles:read" = "r"
"datasets:stream" = "s"
"datasets:refresh" = "f"
"projects:embed" = "e"
"clients:manage" = "m"
[[upstreams]]
name = "tiles"
backends = ["{upstream}"]
connect_timeout = "1s"
request_timeout = "2s"
[[routes]]
name = "tiles"
path = "/tiles/{{z}}/{{x}}/{{y}}.pbf"
methods = ["GET"]
upstream = "tiles"
scopes = ["tiles:read"]
[[routes]]
name = "stream"
prefix = "/stream/"
upstream = "tiles"
scopes = ["datasets:stream"]
[[routes]]
name = "public"
prefix = "/public/"
upstream = "tiles"
public = true
"#
    )
}

/// A running gateway with an org, a user (password login), a service
/// account and its API key (`tiles:read datasets:stream`), all made with the CLI.
struct Fx {
    gw: Gateway,
    up: Upstream,
    http: reqwest::Client,
    org_id: String,
    uid: String,
    sa_id: String,
    key: String,
    key_id: String,
}

async fn setup(store_url: &str) -> Fx {
    setup_with(store_url, "", "").await
}

async fn setup_with(store_url: &str, tokens_extra: &str, limits_extra: &str) -> Fx {
    let up = start_upstream().await;
    let cfg = gateway_config(store_url, &up.url(), tokens_extra, limits_extra);
    let gw = tokio::task::spawn_blocking(move || start_gateway(&cfg)).await.unwrap();
    let org = cli_json(&gw, &["--json", "org", "create", "acme"]);
    let org_id = str_of(&org, "id");
    assert_eq!(org["name"], "acme");
    let user = cli_json_stdin(
        &gw,
        &[
            "--json",
            "user",
            "create",
            "--org",
            "acme",
            "--username",
            USERNAME,
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(user["username"], USERNAME);
    assert_eq!(user["org_id"], org_id.as_str());
    let sa = cli_json(
        &gw,
        &[
            "--json",
            "service-account",
            "create",
            "--org",
            "acme",
            "--name",
            SA_NAME,
        ],
    );
    let sa_id = str_of(&sa, "id");
    let k = cli_json(
        &gw,
        &[
            "--json",
            "api-key",
            "create",
            "--service-account",
            &sa_id,
            "--scope",
            "tiles:read datasets:stream",
        ],
    );
    Fx {
        http: common::http(),
        org_id,
        uid: str_of(&user, "uid"),
        sa_id,
        key: str_of(&k, "api_key"),
        key_id: str_of(&k, "id"),
        gw,
        up,
    }
}

fn str_of(v: &Value, k: &str) -> String {
    v[k].as_str()
        .unwrap_or_else(|| panic!("no string {k} in {v}"))
        .to_owned()
}

fn cli_ok(out: std::process::Output, args: &[&str]) -> String {
    assert!(
        out.status.success(),
        "tilegate {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn cli_json(gw: &Gateway, args: &[&str]) -> Value {
    let s = cli_ok(gw.cli(args), args);
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("tilegate {args:?}: not JSON ({e}): {s}"))
}

fn cli_json_stdin(gw: &Gateway, args: &[&str], stdin: &str) -> Value {
    let s = cli_ok(gw.cli_stdin(args, stdin), args);
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("tilegate {args:?}: not JSON ({e}): {s}"))
}

/// A response, read whole.
struct R {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl R {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}), status {}: {}", self.status, self.body))
    }
    fn header(&self, n: &str) -> Option<&str> {
        self.headers.get(n).and_then(|v| v.to_str().ok())
    }
    fn ok_json(&self) -> Value {
        assert_eq!(self.status, 200, "{}", self.body);
        self.json()
    }
}

async fn send(rb: reqwest::RequestBuilder) -> R {
    let resp = rb.send().await.expect("request to the gateway");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.text().await.unwrap_or_default();
    R { status, headers, body }
}

fn keys_of(v: &Value) -> BTreeSet<&str> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect()
}

fn set(items: &[&'static str]) -> BTreeSet<&'static str> {
    items.iter().copied().collect()
}

/// An error answer: the status, `{"error","error_description"}` exactly,
/// JSON content type.
fn assert_error(r: &R, status: u16, code: &str) {
    assert_eq!(r.status, status, "expected {status} {code}, got: {}", r.body);
    let v = r.json();
    assert_eq!(v["error"], code, "{}", r.body);
    assert!(
        v["error_description"].as_str().is_some_and(|d| !d.is_empty()),
        "error_description missing: {}",
        r.body
    );
    assert_eq!(keys_of(&v), set(&["error", "error_description"]), "{}", r.body);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{:?}",
        r.headers
    );
}

/// RFC 6749 §5.2: `invalid_client` is a 401 with `WWW-Authenticate`.
fn assert_invalid_client(r: &R) {
    assert_error(r, 401, "invalid_client");
    assert!(
        r.header("www-authenticate").is_some(),
        "no WWW-Authenticate: {:?}",
        r.headers
    );
}

/// Header and claims of a JWT, decoded without verification.
fn jwt(token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "not a JWS compact token: {token}");
    let dec = |s: &str| -> Value { serde_json::from_slice(&B64.decode(s).expect("base64url")).expect("JSON") };
    (dec(parts[0]), dec(parts[1]))
}

fn kid_of(token: &str) -> String {
    str_of(&jwt(token).0, "kid")
}

/// Common claim checks of every token the gateway issues.
fn assert_common_claims(c: &Value, ttl: i64) {
    assert_eq!(c["iss"], ISSUER, "{c}");
    assert_eq!(c["aud"], AUDIENCE, "{c}");
    let iat = c["iat"].as_i64().expect("iat");
    let exp = c["exp"].as_i64().expect("exp");
    assert!((iat - now()).abs() <= 5, "iat {iat} is not now: {c}");
    assert_eq!(exp - iat, ttl, "exp - iat: {c}");
    assert!(c["jti"].as_str().is_some_and(|j| j.len() >= 16), "jti: {c}");
    assert!(c["sub"].as_str().is_some_and(|s| !s.is_empty()), "sub: {c}");
    assert!(c["scope"].as_str().is_some(), "scope: {c}");
    assert!(c["token_type"].as_str().is_some(), "token_type: {c}");
}

impl Fx {
    fn url(&self, p: &str) -> String {
        self.gw.url(p)
    }

    /// `POST /v1/auth/token` with `key` as bearer and `body` as JSON.
    async fn exchange(&self, key: Option<&str>, body: Option<&str>) -> R {
        let mut rb = self.http.post(self.url("/v1/auth/token"));
        if let Some(k) = key {
            rb = rb.bearer_auth(k);
        }
        if let Some(b) = body {
            rb = rb.header("content-type", "application/json").body(b.to_owned());
        }
        send(rb).await
    }

    async fn exchange_token(&self, key: &str, body: &str) -> String {
        let r = self.exchange(Some(key), Some(body)).await;
        str_of(&r.ok_json(), "access_token")
    }

    async fn tile(&self, token: &str) -> R {
        send(self.http.get(self.url("/tiles/3/4/5.pbf")).bearer_auth(token)).await
    }

    async fn assert_tile_ok(&self, token: &str) {
        let before = self.up.seen.count();
        let r = self.tile(token).await;
        assert_eq!(r.status, 200, "tile: {}", r.body);
        assert_eq!(r.body, "upstream:/tiles/3/4/5.pbf:0");
        assert_eq!(self.up.seen.count(), before + 1, "the upstream saw the request");
    }

    async fn assert_tile_refused(&self, token: &str) {
        let r = self.tile(token).await;
        assert_eq!(r.status, 401, "tile should be refused: {}", r.body);
        assert!(
            r.header("www-authenticate")
                .is_some_and(|w| w.contains("invalid_token")),
            "{:?}",
            r.headers
        );
    }

    async fn me(&self, token: &str) -> R {
        send(self.http.get(self.url("/me")).bearer_auth(token)).await
    }

    async fn form(&self, path: &str, pairs: &[(&str, &str)], basic: Option<(&str, &str)>) -> R {
        let body = serde_urlencoded::to_string(pairs).unwrap();
        let mut rb = self
            .http
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some((id, secret)) = basic {
            rb = rb.basic_auth(id, Some(secret));
        }
        send(rb).await
    }

    async fn password_grant(&self, username: &str, password: &str) -> R {
        self.form(
            "/oauth/token",
            &[
                ("grant_type", "password"),
                ("username", username),
                ("password", password),
            ],
            None,
        )
        .await
    }

    /// A temporary login token (password grant).
    async fn login(&self) -> String {
        str_of(&self.password_grant(USERNAME, PASSWORD).await.ok_json(), "access_token")
    }

    /// `POST /v1/clients` → (client_id, client_secret).
    async fn new_client(&self, login: &str, body: Value) -> (String, String) {
        let r = send(self.http.post(self.url("/v1/clients")).bearer_auth(login).json(&body)).await;
        assert_eq!(r.status, 201, "{}", r.body);
        let v = r.json();
        (str_of(&v, "client_id"), str_of(&v, "client_secret"))
    }

    async fn client_credentials_basic(&self, id: &str, secret: &str, scope: Option<&str>) -> R {
        let mut pairs = vec![("grant_type", "client_credentials")];
        if let Some(s) = scope {
            pairs.push(("scope", s));
        }
        self.form("/oauth/token", &pairs, Some((id, secret))).await
    }

    async fn client_token(&self, id: &str, secret: &str) -> String {
        str_of(
            &self.client_credentials_basic(id, secret, None).await.ok_json(),
            "access_token",
        )
    }

    async fn with_assertion(&self, assertion: &str) -> R {
        self.form(
            "/oauth/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", assertion),
            ],
            None,
        )
        .await
    }

    async fn jwks(&self) -> Value {
        let r = send(self.http.get(self.url("/.well-known/jwks.json"))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.header("content-type"), Some("application/jwk-set+json"));
        r.json()
    }

    async fn admin(&self, method: reqwest::Method, path: &str) -> R {
        send(
            self.http
                .request(method, self.gw.admin_url(path))
                .bearer_auth(ADMIN_TOKEN),
        )
        .await
    }

    /// Logs so far, after letting the log reader catch up.
    async fn logs(&self) -> String {
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.gw.logs()
    }
}

fn jwks_kids(jwks: &Value) -> BTreeSet<String> {
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| str_of(k, "kid"))
        .collect()
}

/// An RFC 7523 client assertion, HS256 with `secret`.
fn assertion(client_id: &str, secret: &[u8], aud: &str, exp: i64, jti: Option<&str>) -> String {
    let mut c = json!({ "iss": client_id, "sub": client_id, "aud": aud, "exp": exp, "iat": now() });
    if let Some(j) = jti {
        c["jti"] = j.into();
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &c,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

// ---------------------------------------------------------------- PyJWT

/// Whether PyJWT + cryptography are importable; without them the check is
/// skipped with a note, or fails when `CI` is set.
fn pyjwt_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import jwt, cryptography"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var_os("CI").is_some() {
            panic!("python3 with PyJWT and cryptography is required in CI: run scripts/ci-deps.sh (pip install 'pyjwt[crypto]')");
        }
        eprintln!("note: python3 PyJWT/cryptography not installed (scripts/ci-deps.sh); skipping the independent JWKS verification");
    }
    ok
}

const PYJWT_VERIFY: &str = r#"
import json, sys, jwt
d = json.load(sys.stdin)
keys = {k["kid"]: jwt.PyJWK(k) for k in d["jwks"]["keys"]}
out = []
for t in d["tokens"]:
    try:
        kid = jwt.get_unverified_header(t)["kid"]
        claims = jwt.decode(t, keys[kid].key, algorithms=["ES256"], audience=d["audience"], issuer=d["issuer"],
                            options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]})
        out.append({"ok": True, "kid": kid, "claims": claims})
    except Exception as e:
        out.append({"ok": False, "error": type(e).__name__ + ": " + str(e)})
print(json.dumps(out))
"#;

/// Verify `tokens` against `jwks` with PyJWT; one result per token.
fn pyjwt_verify(jwks: &Value, tokens: &[&str]) -> Vec<Value> {
    use std::io::Write;
    let mut child = Command::new("python3")
        .args(["-c", PYJWT_VERIFY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let input = json!({ "jwks": jwks, "tokens": tokens, "issuer": ISSUER, "audience": AUDIENCE });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array().unwrap().clone()
}

fn assert_pyjwt_ok(jwks: &Value, tokens: &[&str]) {
    for (t, r) in tokens.iter().zip(pyjwt_verify(jwks, tokens)) {
        assert_eq!(r["ok"], true, "PyJWT refused a gateway token: {r}");
        assert_eq!(r["claims"], jwt(t).1, "PyJWT decoded other claims");
        assert_eq!(r["kid"], kid_of(t).as_str());
    }
}

// ---------------------------------------------------------------- authlib

/// Whether authlib (with requests) is importable; without it the check is
/// skipped with a note, or fails when `CI` is set.
fn authlib_available() -> bool {
    let ok = Command::new("python3")
        .args([
            "-c",
            "import authlib.integrations.requests_client, authlib.oauth2.rfc7523",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var_os("CI").is_some() {
            panic!("python3 with authlib and requests is required in CI: run scripts/ci-deps.sh (pip install authlib requests)");
        }
        eprintln!("note: python3 authlib not installed (scripts/ci-deps.sh); skipping the authlib client");
    }
    ok
}

/// authlib's requests client doing client_credentials with
/// client_secret_jwt as its documentation shows, its assertion left as
/// authlib makes it (one hour; `aud` is the token endpoint by the issuer's
/// URL, which is not the address the request goes to).
const AUTHLIB_CLIENT: &str = r#"
import json, sys
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import ClientSecretJWT
from authlib.common.errors import AuthlibBaseError
d = json.load(sys.stdin)
s = OAuth2Session(d["client_id"], d["client_secret"], token_endpoint_auth_method="client_secret_jwt", scope=d["scope"])
s.trust_env = False
s.register_client_auth_method(ClientSecretJWT(d["aud"]))
try:
    tok = s.fetch_token(d["url"], grant_type="client_credentials")
    print(json.dumps({"ok": True, "token": tok}))
except AuthlibBaseError as e:
    print(json.dumps({"ok": False, "error": e.error, "description": e.description}))
"#;

/// Run [`AUTHLIB_CLIENT`] against the gateway: `{"ok": true, "token": …}`
/// or `{"ok": false, "error": …, "description": …}`.
fn authlib_client_credentials(token_url: &str, client_id: &str, secret: &str, scope: &str) -> Value {
    use std::io::Write;
    let mut child = Command::new("python3")
        .args(["-c", AUTHLIB_CLIENT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let input = json!({ "url": token_url, "aud": TOKEN_ENDPOINT, "client_id": client_id,
                        "client_secret": secret, "scope": scope });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "authlib failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "authlib printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

// ---------------------------------------------------------------- cases

/// `POST /v1/auth/token`: the exact success shape and the JWT claims.
async fn case_api_key_exchange_shape(store_url: &str) {
    let fx = setup(store_url).await;
    let jwks = fx.jwks().await;

    let r = fx
        .exchange(Some(&fx.key), Some(r#"{"ttl": 600, "scope": "tiles:read"}"#))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/json")));
    assert_eq!(r.header("cache-control"), Some("no-store"), "RFC 6749 §5.1");
    let v = r.json();
    assert_eq!(
        keys_of(&v),
        set(&["access_token", "token_type", "expires_in", "expires_at", "scope"]),
        "{v}"
    );
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 600);
    assert_eq!(v["scope"], "tiles:read");
    let token = str_of(&v, "access_token");
    let (h, c) = jwt(&token);
    assert_eq!(h["alg"], "ES256", "{h}");
    assert_eq!(h["typ"], "JWT", "{h}");
    assert!(jwks_kids(&jwks).contains(&str_of(&h, "kid")), "kid {h} not in {jwks}");
    assert_common_claims(&c, 600);
    assert!(str_of(&c, "sub").starts_with("tok_short_"), "{c}");
    assert_eq!(c["org_id"], fx.org_id.as_str());
    assert_eq!(c["scope"], "tiles:read");
    assert_eq!(c["token_type"], "api_token");
    assert_eq!(c["uid"], fx.sa_id.as_str());
    // expires_at: RFC 3339 UTC ("…Z"), the token's exp, consistent with expires_in.
    let at = str_of(&v, "expires_at");
    assert!(at.ends_with('Z') && at.len() == 20, "expires_at {at}");
    let parsed = time::OffsetDateTime::parse(&at, &time::format_description::well_known::Rfc3339).unwrap();
    assert_eq!(parsed.offset(), time::UtcOffset::UTC);
    assert_eq!(parsed.unix_timestamp(), c["exp"].as_i64().unwrap(), "expires_at is exp");
    assert!(
        (parsed.unix_timestamp() - now() - 600).abs() <= 5,
        "expires_at {at} vs expires_in"
    );

    // Defaults: no body → ttl 3600 and every scope of the key; each jti/sub unique.
    let d = fx.exchange(Some(&fx.key), None).await.ok_json();
    assert_eq!(d["expires_in"], 3600);
    assert_eq!(d["scope"], "tiles:read datasets:stream");
    let (_, c2) = jwt(&str_of(&d, "access_token"));
    assert_common_claims(&c2, 3600);
    assert_eq!(c2["scope"], "tiles:read datasets:stream");
    assert_ne!(c2["jti"], c["jti"]);
    assert_ne!(c2["sub"], c["sub"]);
    // `{}` and the bounds 1 and max (14400).
    assert_eq!(
        fx.exchange(Some(&fx.key), Some("{}")).await.ok_json()["expires_in"],
        3600
    );
    for ttl in [1, 14400] {
        let v = fx
            .exchange(Some(&fx.key), Some(&format!(r#"{{"ttl":{ttl}}}"#)))
            .await
            .ok_json();
        assert_eq!(v["expires_in"], ttl);
        assert_common_claims(&jwt(&str_of(&v, "access_token")).1, ttl);
    }

    // The token opens exactly the routes of its scopes.
    fx.assert_tile_ok(&token).await;
    let r = send(fx.http.get(fx.url("/stream/feed")).bearer_auth(&token)).await;
    assert_eq!(r.status, 403, "tiles:read only: {}", r.body);
    assert!(r
        .header("www-authenticate")
        .is_some_and(|w| w.contains("insufficient_scope")));
    let r = send(
        fx.http
            .get(fx.url("/stream/feed"))
            .bearer_auth(str_of(&d, "access_token")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// `POST /v1/auth/token`: every error code of SPEC.md item 1.
async fn case_api_key_exchange_errors(store_url: &str) {
    let fx = setup(store_url).await;
    for body in [
        r#"{"ttl":0}"#,
        r#"{"ttl":14401}"#,
        r#"{"ttl":"60"}"#,
        r#"{"ttl":1.5}"#,
        r#"{"ttl":-1}"#,
        r#"{"ttl":true}"#,
        r#"{"ttl":1e10}"#,
        r#"{"ttl":99999999999999999999999}"#,
    ] {
        let r = fx.exchange(Some(&fx.key), Some(body)).await;
        assert_error(&r, 400, "invalid_ttl");
        assert!(
            r.json()["error_description"].as_str().unwrap().contains("14400"),
            "{}",
            r.body
        );
    }
    for body in [
        "{",
        "not json",
        "[1]",
        "\"x\"",
        r#"{"scope":5}"#,
        r#"{"scope":["tiles:read"]}"#,
        "\u{feff}{}",
    ] {
        let r = fx.exchange(Some(&fx.key), Some(body)).await;
        assert_error(&r, 400, "invalid_request");
    }
    // 401 unauthorized: missing, unknown, malformed, wrong scheme.
    let r = fx.exchange(None, Some(r#"{"ttl":60}"#)).await;
    assert_error(&r, 401, "unauthorized");
    assert!(r.header("www-authenticate").is_some());
    let unknown = format!("tgk_{}", "A".repeat(43));
    assert_error(
        &fx.exchange(Some(&unknown), Some(r#"{"ttl":60}"#)).await,
        401,
        "unauthorized",
    );
    assert_error(&fx.exchange(Some("garbage"), None).await, 401, "unauthorized");
    let r = send(
        fx.http
            .post(fx.url("/v1/auth/token"))
            .basic_auth(&fx.key, Some("x"))
            .header("content-type", "application/json")
            .body("{}"),
    )
    .await;
    assert_error(&r, 401, "unauthorized");
    // A key's own plaintext with one character changed.
    let mut tampered = fx.key.clone().into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    assert_error(
        &fx.exchange(Some(std::str::from_utf8(&tampered).unwrap()), None).await,
        401,
        "unauthorized",
    );
    // 403 invalid_scope: more than the key's scopes, or an undeclared one.
    for scope in [
        "tiles:read datasets:refresh",
        "projects:embed",
        "clients:manage",
        "admin:all",
    ] {
        let r = fx
            .exchange(Some(&fx.key), Some(&json!({ "scope": scope }).to_string()))
            .await;
        assert_error(&r, 403, "invalid_scope");
    }
    // An oversized body (raw: the 413 comes before the body is read, and a
    // client library still uploading could see the close first).
    let r = raw(
        fx.gw.addr,
        format!(
            "POST /v1/auth/token HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: 1048576\r\n\r\n{{\"scope\":\"",
            fx.key
        )
        .as_bytes(),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    assert!(r.contains("\"error\":\"invalid_request\""), "{r}");
    // Wrong method.
    let r = send(fx.http.get(fx.url("/v1/auth/token")).bearer_auth(&fx.key)).await;
    assert_eq!(r.status, 405, "{}", r.body);
    // After all that the key still works (nothing changed in the store).
    assert_eq!(fx.exchange(Some(&fx.key), None).await.status, 200);
}

/// A revoked (admin API: at once; CLI: within a resync) or expired API key → 401.
async fn case_revoked_and_expired_keys(store_url: &str) {
    let fx = setup(store_url).await;
    let new_key = |scope: &str, extra: &[&str]| {
        let mut args = vec![
            "--json",
            "api-key",
            "create",
            "--service-account",
            &fx.sa_id,
            "--scope",
            scope,
        ];
        args.extend_from_slice(extra);
        let v = cli_json(&fx.gw, &args);
        (str_of(&v, "api_key"), str_of(&v, "id"), v)
    };

    // Admin API revocation: the exchange and the tokens it minted fail at once.
    let token = fx.exchange_token(&fx.key, "{}").await;
    fx.assert_tile_ok(&token).await;
    let r = fx
        .admin(reqwest::Method::DELETE, &format!("/admin/v1/api-keys/{}", fx.key_id))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["revoked_at"].as_i64().is_some(), "{}", r.body);
    assert!(!r.body.contains(&fx.key));
    assert_error(&fx.exchange(Some(&fx.key), None).await, 401, "unauthorized");
    let r = send(
        fx.http
            .post(fx.url("/oauth/token"))
            .json(&json!({"grantType": "exchange_api_key_access_token", "apiKey": fx.key})),
    )
    .await;
    assert_error(&r, 400, "invalid_grant");
    fx.assert_tile_refused(&token).await;

    // CLI revocation (store only): effective within the 200ms resync.
    let (key2, id2, _) = new_key("tiles:read", &[]);
    let token2 = fx.exchange_token(&key2, "{}").await; // the key is now in the secret cache
    fx.assert_tile_ok(&token2).await;
    let out = cli_json(&fx.gw, &["--json", "api-key", "revoke", &id2]);
    assert_eq!(out["id"], id2.as_str());
    let t0 = Instant::now();
    loop {
        let r = fx.exchange(Some(&key2), None).await;
        if r.status == 401 {
            assert_error(&r, 401, "unauthorized");
            break;
        }
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(
            t0.elapsed() < Duration::from_millis(1500),
            "CLI revocation not seen after 1.5s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("CLI revocation effective after {:?}", t0.elapsed());
    fx.assert_tile_refused(&token2).await;

    // Expired key: a token never outlives its key, and after expiry → 401.
    let (key3, _, v3) = new_key("tiles:read", &["--expires-in", "2s"]);
    let exp3 = v3["expires_at"].as_i64().expect("expires_at");
    let r = fx.exchange(Some(&key3), Some(r#"{"ttl":3600}"#)).await;
    if r.status == 200 {
        let v = r.json();
        assert!(v["expires_in"].as_i64().unwrap() <= 2, "token outlives its key: {v}");
        assert!(jwt(&str_of(&v, "access_token")).1["exp"].as_i64().unwrap() <= exp3);
    } else {
        assert_error(&r, 401, "unauthorized");
    }
    let wait = (exp3 + 1 - now()).max(0) as u64;
    tokio::time::sleep(Duration::from_millis(wait * 1000 + 100)).await;
    assert_error(&fx.exchange(Some(&key3), None).await, 401, "unauthorized");
    let r = send(
        fx.http
            .post(fx.url("/oauth/token"))
            .json(&json!({"grantType": "exchange_api_key_access_token", "apiKey": key3})),
    )
    .await;
    assert_error(&r, 400, "invalid_grant");
}

/// Plain-text secrets are shown once; never in listings, logs or the store.
async fn case_secrets_never_shown_again(store_url: &str) {
    let fx = setup(store_url).await;
    let login = fx.login().await;
    let (client_id, secret) = fx.new_client(&login, json!({"name": "tile-backend"})).await;
    let t_key = fx.exchange_token(&fx.key, r#"{"scope":"tiles:read"}"#).await;
    let t_json = str_of(
        &send(
            fx.http
                .post(fx.url("/oauth/token"))
                .json(&json!({"grantType": "exchange_api_key_access_token", "apiKey": fx.key})),
        )
        .await
        .ok_json(),
        "accessToken",
    );
    let t_client = fx.client_token(&client_id, &secret).await;
    fx.assert_tile_ok(&t_key).await;
    fx.assert_tile_ok(&t_client).await;
    assert_eq!(fx.me(&t_json).await.status, 200);
    // Failed attempts with the secrets in them are not logged either.
    let _ = fx
        .client_credentials_basic(&client_id, &format!("{secret}x"), None)
        .await;
    let _ = fx.password_grant(USERNAME, &format!("{PASSWORD}x")).await;

    let secrets: Vec<(&str, &str)> = vec![
        ("API key", &fx.key),
        ("client secret", &secret),
        ("password", PASSWORD),
        ("login token", &login),
        ("exchanged token", &t_key),
        ("JSON-grant token", &t_json),
        ("client token", &t_client),
    ];
    let check = |what: &str, text: &str| {
        for (name, s) in &secrets {
            assert!(!text.contains(s), "the {name} appears in {what}");
        }
    };
    // Listings: CLI (JSON and text), admin API, GET /v1/clients.
    let list = cli_ok(fx.gw.cli(&["--json", "api-key", "list"]), &["api-key", "list"]);
    let lv: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(lv.as_array().unwrap().len(), 1, "{lv}");
    assert_eq!(lv[0]["id"], fx.key_id.as_str());
    assert!(
        fx.key.contains(lv[0]["prefix"].as_str().unwrap()),
        "prefix identifies the key"
    );
    check("api-key list --json", &list);
    check(
        "api-key list",
        &cli_ok(fx.gw.cli(&["api-key", "list"]), &["api-key", "list"]),
    );
    let r = fx.admin(reqwest::Method::GET, "/admin/v1/api-keys").await;
    assert_eq!(r.status, 200);
    check("GET /admin/v1/api-keys", &r.body);
    let r = send(fx.http.get(fx.url("/v1/clients")).bearer_auth(&login)).await;
    let v = r.ok_json();
    assert_eq!(v["clients"][0]["client_id"], client_id.as_str());
    assert!(!r.body.contains("client_secret"), "{}", r.body);
    check("GET /v1/clients", &r.body);
    check("audit", &cli_ok(fx.gw.cli(&["--json", "audit"]), &["audit"]));
    // Logs.
    let logs = fx.logs().await;
    assert!(
        logs.contains("/v1/auth/token"),
        "the access log covers the token endpoints"
    );
    check("the gateway logs", &logs);
    // At rest: only hashes (API key) and ciphertext (client secret).
    let dump = if store_url.starts_with("sqlite:") {
        let mut all = Vec::new();
        for e in std::fs::read_dir(fx.gw.dir.path()).unwrap() {
            let p = e.unwrap().path();
            if p.file_name().unwrap().to_string_lossy().starts_with("tilegate.db") {
                all.extend(std::fs::read(&p).unwrap());
            }
        }
        String::from_utf8_lossy(&all).into_owned()
    } else {
        let out = Command::new("pg_dump")
            .args(["--data-only", "-d", store_url])
            .output()
            .expect("pg_dump");
        assert!(
            out.status.success(),
            "pg_dump: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(dump.len() > 1000, "store dump looks empty");
    assert!(dump.contains(&fx.key_id));
    for (name, s) in &secrets[..3] {
        assert!(!dump.contains(s), "the {name} is stored in plain text");
    }
}

/// RFC 7523 client assertions: valid once; replayed, wrong aud, expired,
/// another secret → 401 invalid_client; password and other grant errors.
async fn case_client_assertions_and_grant_errors(store_url: &str) {
    let fx = setup(store_url).await;
    let login = fx.login().await;
    let (id, secret) = fx
        .new_client(&login, json!({"scope": "tiles:read datasets:stream"}))
        .await;
    let s = secret.as_bytes();

    let a = assertion(&id, s, TOKEN_ENDPOINT, now() + 120, Some(&rand_hex()));
    let r = fx.with_assertion(&a).await;
    let v = r.ok_json();
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(
        keys_of(&v),
        set(&["access_token", "token_type", "expires_in", "scope"]),
        "{v}"
    );
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 3600);
    assert_eq!(v["scope"], "tiles:read datasets:stream");
    let (_, c) = jwt(&str_of(&v, "access_token"));
    assert_common_claims(&c, 3600);
    assert_eq!(c["sub"], id.as_str());
    assert_eq!(c["uid"], fx.uid.as_str());
    assert_eq!(c["org_id"], fx.org_id.as_str());
    fx.assert_tile_ok(&str_of(&v, "access_token")).await;

    // Replayed.
    assert_invalid_client(&fx.with_assertion(&a).await);
    // Wrong audience (another endpoint, another host).
    for aud in ["http://gateway.test/oauth/introspect", "http://other.test/oauth/token"] {
        let bad = assertion(&id, s, aud, now() + 120, Some(&rand_hex()));
        assert_invalid_client(&fx.with_assertion(&bad).await);
    }
    // Expired (beyond the 30 s leeway).
    let bad = assertion(&id, s, TOKEN_ENDPOINT, now() - 120, Some(&rand_hex()));
    assert_invalid_client(&fx.with_assertion(&bad).await);
    // Lives too long: beyond tokens.max_assertion_lifetime (1h) plus the
    // 30 s leeway; an hour itself is fine (authlib's default, see
    // case_authlib_client_secret_jwt).
    let bad = assertion(&id, s, TOKEN_ENDPOINT, now() + 3600 + 120, Some(&rand_hex()));
    assert_invalid_client(&fx.with_assertion(&bad).await);
    let hour = assertion(&id, s, TOKEN_ENDPOINT, now() + 3600, Some(&rand_hex()));
    assert_eq!(fx.with_assertion(&hour).await.status, 200);
    // Signed with another secret.
    let bad = assertion(
        &id,
        b"not-the-client-secret-at-all-0123456789",
        TOKEN_ENDPOINT,
        now() + 120,
        Some(&rand_hex()),
    );
    assert_invalid_client(&fx.with_assertion(&bad).await);
    // Another algorithm with the right secret (HS384), and `alg: none`.
    let c = json!({"iss": id, "sub": id, "aud": TOKEN_ENDPOINT, "exp": now() + 60, "jti": rand_hex()});
    let hs384 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS384),
        &c,
        &jsonwebtoken::EncodingKey::from_secret(s),
    )
    .unwrap();
    assert_invalid_client(&fx.with_assertion(&hs384).await);
    let none = format!(
        "{}.{}.",
        B64.encode(r#"{"alg":"none","typ":"JWT"}"#),
        B64.encode(c.to_string())
    );
    assert_invalid_client(&fx.with_assertion(&none).await);
    // No jti; unknown client; garbage.
    let bad = assertion(&id, s, TOKEN_ENDPOINT, now() + 120, None);
    assert_invalid_client(&fx.with_assertion(&bad).await);
    let bad = assertion("tgc_unknown", s, TOKEN_ENDPOINT, now() + 120, Some(&rand_hex()));
    assert_invalid_client(&fx.with_assertion(&bad).await);
    assert_invalid_client(&fx.with_assertion("not.a.jwt").await);
    // A valid one still works afterwards (a fresh jti).
    let ok = assertion(&id, s, TOKEN_ENDPOINT, now() + 60, Some(&rand_hex()));
    assert_eq!(fx.with_assertion(&ok).await.status, 200);
    // Wrong assertion type → invalid_request.
    let other = assertion(&id, s, TOKEN_ENDPOINT, now() + 60, Some(&rand_hex()));
    let r = fx
        .form(
            "/oauth/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", "urn:example:other"),
                ("client_assertion", &other),
            ],
            None,
        )
        .await;
    assert_error(&r, 400, "invalid_request");

    // client_secret_basic / client_secret_post with a wrong secret; none at all.
    assert_invalid_client(&fx.client_credentials_basic(&id, "wrong", None).await);
    let r = fx
        .form(
            "/oauth/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", "wrong"),
            ],
            None,
        )
        .await;
    assert_invalid_client(&r);
    assert_invalid_client(
        &fx.form("/oauth/token", &[("grant_type", "client_credentials")], None)
            .await,
    );
    // Two methods at once.
    let r = fx
        .form(
            "/oauth/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", &secret),
            ],
            Some((&id, &secret)),
        )
        .await;
    assert_error(&r, 400, "invalid_request");
    // Scope beyond the client's → 400 invalid_scope (RFC 6749).
    assert_error(
        &fx.client_credentials_basic(&id, &secret, Some("tiles:read datasets:refresh"))
            .await,
        400,
        "invalid_scope",
    );

    // Password grant errors.
    assert_error(
        &fx.password_grant(USERNAME, "wrong password").await,
        400,
        "invalid_grant",
    );
    assert_error(&fx.password_grant("nobody", PASSWORD).await, 400, "invalid_grant");
    assert_error(
        &fx.form(
            "/oauth/token",
            &[("grant_type", "password"), ("username", USERNAME)],
            None,
        )
        .await,
        400,
        "invalid_request",
    );
    // Other grant types, no grant type, repeated parameters, wrong media type.
    assert_error(
        &fx.form(
            "/oauth/token",
            &[("grant_type", "authorization_code"), ("code", "x")],
            None,
        )
        .await,
        400,
        "unsupported_grant_type",
    );
    assert_error(
        &fx.form("/oauth/token", &[("scope", "tiles:read")], None).await,
        400,
        "invalid_request",
    );
    assert_error(
        &fx.form(
            "/oauth/token",
            &[
                ("grant_type", "password"),
                ("grant_type", "password"),
                ("username", USERNAME),
                ("password", PASSWORD),
            ],
            None,
        )
        .await,
        400,
        "invalid_request",
    );
    let r = send(
        fx.http
            .post(fx.url("/oauth/token"))
            .header("content-type", "text/plain")
            .body("x"),
    )
    .await;
    assert_error(&r, 400, "invalid_request");
    // The JSON grant: bad grantType / apiKey shapes.
    let r = send(
        fx.http
            .post(fx.url("/oauth/token"))
            .json(&json!({"grantType": "something_else", "apiKey": fx.key})),
    )
    .await;
    assert_error(&r, 400, "unsupported_grant_type");
    let r = send(
        fx.http
            .post(fx.url("/oauth/token"))
            .json(&json!({"grantType": "exchange_api_key_access_token", "apiKey": 5})),
    )
    .await;
    assert_error(&r, 400, "invalid_request");
    let r = send(
        fx.http
            .post(fx.url("/oauth/token"))
            .header("content-type", "application/json")
            .body("{"),
    )
    .await;
    assert_error(&r, 400, "invalid_request");
}

/// A token from every flow opens its scoped proxy route, and `GET /me`
/// names the principal; `uid` is stable for a user across flows.
async fn case_every_flow_opens_routes_and_me(store_url: &str) {
    let fx = setup(store_url).await;

    // 1. API-key exchange (service account).
    let t1 = fx.exchange_token(&fx.key, "{}").await;
    fx.assert_tile_ok(&t1).await;
    let seen = fx.up.seen.last();
    assert!(
        seen.header("authorization").is_none(),
        "the token does not reach the upstream"
    );
    let me = fx.me(&t1).await.ok_json();
    assert_eq!(me["uid"], fx.sa_id.as_str());
    assert_eq!(me["username"], SA_NAME);

    // 2. The JSON grant: exactly {accessToken, expiresAt (unix seconds)}.
    let r = send(
        fx.http
            .post(fx.url("/oauth/token"))
            .json(&json!({"grantType": "exchange_api_key_access_token", "apiKey": fx.key})),
    )
    .await;
    let v = r.ok_json();
    assert_eq!(keys_of(&v), set(&["accessToken", "expiresAt"]), "{v}");
    let t2 = str_of(&v, "accessToken");
    let (_, c2) = jwt(&t2);
    assert_common_claims(&c2, 3600);
    assert_eq!(v["expiresAt"].as_i64(), c2["exp"].as_i64(), "{v}");
    assert!(str_of(&c2, "sub").starts_with("tok_short_"));
    assert_eq!(c2["org_id"], fx.org_id.as_str());
    assert_eq!(c2["uid"], fx.sa_id.as_str());
    assert_eq!(c2["scope"], "tiles:read datasets:stream");
    fx.assert_tile_ok(&t2).await;
    let r = send(fx.http.get(fx.url("/stream/events")).bearer_auth(&t2)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let me = fx.me(&t2).await.ok_json();
    assert_eq!(me["uid"], fx.sa_id.as_str());
    assert_eq!(me["username"], SA_NAME);

    // 3. Password grant: a ~15-minute login token, good for /me and
    //    /v1/clients but not for tiles.
    let r = fx.password_grant(USERNAME, PASSWORD).await;
    let v = r.ok_json();
    assert_eq!(
        keys_of(&v),
        set(&["access_token", "token_type", "expires_in", "scope"]),
        "{v}"
    );
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 900);
    assert_eq!(v["scope"], "clients:manage");
    let login = str_of(&v, "access_token");
    let (_, cl) = jwt(&login);
    assert_common_claims(&cl, 900);
    assert_eq!(cl["uid"], fx.uid.as_str());
    assert_eq!(cl["org_id"], fx.org_id.as_str());
    assert_eq!(cl["token_type"], "login");
    let me = fx.me(&login).await.ok_json();
    assert_eq!(me["uid"], fx.uid.as_str());
    assert_eq!(me["username"], USERNAME);
    let r = fx.tile(&login).await;
    assert_eq!(r.status, 403, "a login token has no tiles:read: {}", r.body);

    // 4. client_credentials (basic and post) from a client of that user.
    let (id, secret) = fx.new_client(&login, json!({"scope": "tiles:read"})).await;
    let r = fx.client_credentials_basic(&id, &secret, Some("tiles:read")).await;
    let v = r.ok_json();
    assert_eq!(
        keys_of(&v),
        set(&["access_token", "token_type", "expires_in", "scope"]),
        "{v}"
    );
    assert_eq!(v["scope"], "tiles:read");
    let t4 = str_of(&v, "access_token");
    fx.assert_tile_ok(&t4).await;
    let me = fx.me(&t4).await.ok_json();
    assert_eq!(me["uid"], fx.uid.as_str(), "a client's token names its owner");
    assert_eq!(me["username"], USERNAME, "{me}");
    let r = fx
        .form(
            "/oauth/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", &secret),
            ],
            None,
        )
        .await;
    fx.assert_tile_ok(&str_of(&r.ok_json(), "access_token")).await;

    // 5. An API key of the user: the same uid as the login token.
    let k = cli_json(
        &fx.gw,
        &[
            "--json",
            "api-key",
            "create",
            "--user",
            &fx.uid,
            "--scope",
            "tiles:read",
        ],
    );
    let t5 = fx.exchange_token(&str_of(&k, "api_key"), "{}").await;
    fx.assert_tile_ok(&t5).await;
    let me = fx.me(&t5).await.ok_json();
    assert_eq!(me["uid"], fx.uid.as_str());
    assert_eq!(me["username"], USERNAME);

    // 6. `tilegate token mint` (an operator test token).
    let m = cli_json(
        &fx.gw,
        &["--json", "token", "mint", "--scope", "tiles:read", "--ttl", "10m"],
    );
    fx.assert_tile_ok(&str_of(&m, "access_token")).await;

    // /me refuses anything else with 401.
    let r = send(fx.http.get(fx.url("/me"))).await;
    assert_eq!(r.status, 401, "{}", r.body);
    for bad in [
        "garbage",
        "a.b.c",
        &format!("{}x", &t1[..t1.len() - 1]),
        fx.key.as_str(),
    ] {
        let r = fx.me(bad).await;
        assert_error(&r, 401, "invalid_token");
        assert!(r
            .header("www-authenticate")
            .is_some_and(|w| w.contains("invalid_token")));
    }
    // A token tampered in its payload (scope widened).
    let parts: Vec<&str> = t5.split('.').collect();
    let mut claims = jwt(&t5).1;
    claims["scope"] = "tiles:read datasets:refresh".into();
    let forged = format!("{}.{}.{}", parts[0], B64.encode(claims.to_string()), parts[2]);
    assert_eq!(fx.me(&forged).await.status, 401);
    fx.assert_tile_refused(&forged).await;
}

/// JWKS verifies every flow's tokens with an independent library (PyJWT).
async fn case_jwks_verifies_with_pyjwt(store_url: &str) {
    let fx = setup(store_url).await;
    let jwks = fx.jwks().await;
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{jwks}");
    let k = &keys[0];
    assert_eq!(
        keys_of(k),
        set(&["kty", "crv", "x", "y", "kid", "alg", "use"]),
        "public parts only: {k}"
    );
    assert_eq!(k["kty"], "EC");
    assert_eq!(k["crv"], "P-256");
    assert_eq!(k["alg"], "ES256");
    assert_eq!(k["use"], "sig");
    for c in ["x", "y"] {
        assert_eq!(B64.decode(str_of(k, c)).unwrap().len(), 32, "{c}");
    }

    let login = fx.login().await;
    let (id, secret) = fx.new_client(&login, json!({})).await;
    let t_exchange = fx.exchange_token(&fx.key, r#"{"ttl":120}"#).await;
    let t_json = str_of(
        &send(
            fx.http
                .post(fx.url("/oauth/token"))
                .json(&json!({"grantType": "exchange_api_key_access_token", "apiKey": fx.key})),
        )
        .await
        .ok_json(),
        "accessToken",
    );
    let t_client = fx.client_token(&id, &secret).await;
    let mint = str_of(
        &cli_json(
            &fx.gw,
            &["--json", "token", "mint", "--scope", "tiles:read", "--ttl", "5m"],
        ),
        "access_token",
    );
    if !pyjwt_available() {
        return;
    }
    assert_pyjwt_ok(&jwks, &[&t_exchange, &t_json, &t_client, &login, &mint]);
    // Negative controls: the same library refuses a tampered payload and a
    // token of another issuer.
    let parts: Vec<&str> = t_exchange.split('.').collect();
    let mut claims = jwt(&t_exchange).1;
    claims["scope"] = "tiles:read datasets:refresh".into();
    let forged = format!("{}.{}.{}", parts[0], B64.encode(claims.to_string()), parts[2]);
    let r = pyjwt_verify(&jwks, &[&forged]);
    assert_eq!(r[0]["ok"], false, "{}", r[0]);
    assert!(r[0]["error"].as_str().unwrap().contains("Signature"), "{}", r[0]);
}

/// Admin API rotation: new tokens carry the new kid at once, old ones keep
/// verifying, JWKS lists both.
async fn case_admin_key_rotation(store_url: &str) {
    let fx = setup(store_url).await;
    let old_kid = str_of(&fx.jwks().await["keys"][0], "kid");
    // Issued before the rotation, first presented after it.
    let old_token = fx.exchange_token(&fx.key, "{}").await;
    let login = fx.login().await;
    assert_eq!(kid_of(&old_token), old_kid);

    let r = fx.admin(reqwest::Method::POST, "/admin/v1/keys/rotate").await;
    let new_kid = str_of(&r.ok_json(), "kid");
    assert_ne!(new_kid, old_kid);
    // Unauthenticated admin calls are refused.
    let r = send(fx.http.post(fx.gw.admin_url("/admin/v1/keys/rotate"))).await;
    assert_eq!(r.status, 401, "{}", r.body);

    let new_token = fx.exchange_token(&fx.key, "{}").await;
    assert_eq!(kid_of(&new_token), new_kid, "new tokens carry the new kid");
    let jwks = fx.jwks().await;
    assert_eq!(
        jwks_kids(&jwks),
        [old_kid.clone(), new_kid.clone()].into_iter().collect()
    );
    fx.assert_tile_ok(&old_token).await;
    fx.assert_tile_ok(&new_token).await;
    assert_eq!(fx.me(&old_token).await.status, 200);
    assert_eq!(fx.me(&login).await.status, 200);
    let keys = cli_json(&fx.gw, &["--json", "keys", "list"]);
    let find = |kid: &str| {
        keys.as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid)
            .unwrap_or_else(|| panic!("{kid} not in {keys}"))
            .clone()
    };
    assert!(find(&old_kid)["retired_at"].is_i64(), "{keys}");
    assert!(find(&new_kid)["retired_at"].is_null(), "{keys}");
    if pyjwt_available() {
        assert_pyjwt_ok(&jwks, &[&old_token, &new_token, &login]);
    }
}

/// CLI rotation (store only): the running gateway signs with the new key
/// soon after, old tokens keep verifying, JWKS lists both.
async fn case_cli_key_rotation(store_url: &str) {
    let fx = setup(store_url).await;
    let old_kid = str_of(&fx.jwks().await["keys"][0], "kid");
    let old_token = fx.exchange_token(&fx.key, "{}").await;
    let rotated = cli_json(&fx.gw, &["--json", "keys", "rotate"]);
    let new_kid = str_of(&rotated, "kid");
    assert_ne!(new_kid, old_kid);
    let listed = cli_json(&fx.gw, &["--json", "keys", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");

    let t0 = Instant::now();
    let new_token = loop {
        let t = fx.exchange_token(&fx.key, "{}").await;
        if kid_of(&t) == new_kid {
            break t;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "5s after `tilegate keys rotate` the running gateway still signs with the old key {old_kid} (new: {new_kid})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let jwks = fx.jwks().await;
    assert!(
        jwks_kids(&jwks).contains(&old_kid) && jwks_kids(&jwks).contains(&new_kid),
        "{jwks}"
    );
    fx.assert_tile_ok(&old_token).await;
    fx.assert_tile_ok(&new_token).await;
    if pyjwt_available() {
        assert_pyjwt_ok(&jwks, &[&old_token, &new_token]);
    }
}

/// The `oauth2` crate as a client: client credentials (basic and post),
/// error responses and introspection.
async fn case_oauth2_crate_client_credentials(store_url: &str) {
    use oauth2::basic::{BasicClient, BasicTokenType};
    use oauth2::{
        AuthType, ClientId, ClientSecret, IntrospectionUrl, Scope, TokenIntrospectionResponse, TokenResponse, TokenUrl,
    };
    let fx = setup(store_url).await;
    let login = fx.login().await;
    let (id, secret) = fx
        .new_client(&login, json!({"scope": "tiles:read datasets:stream"}))
        .await;
    let http = oauth2::reqwest::ClientBuilder::new()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    let client = BasicClient::new(ClientId::new(id.clone()))
        .set_client_secret(ClientSecret::new(secret.clone()))
        .set_token_uri(TokenUrl::new(fx.url("/oauth/token")).unwrap())
        .set_introspection_url(IntrospectionUrl::new(fx.url("/oauth/introspect")).unwrap());

    let tok = client
        .exchange_client_credentials()
        .add_scope(Scope::new("tiles:read".into()))
        .request_async(&http)
        .await
        .expect("client_credentials with the oauth2 crate");
    assert_eq!(*tok.token_type(), BasicTokenType::Bearer);
    assert_eq!(tok.expires_in(), Some(Duration::from_secs(3600)));
    assert_eq!(tok.scopes(), Some(&vec![Scope::new("tiles:read".into())]));
    let access = tok.access_token().clone();
    fx.assert_tile_ok(access.secret()).await;

    // client_secret_post.
    let post = client.clone().set_auth_type(AuthType::RequestBody);
    let tok2 = post.exchange_client_credentials().request_async(&http).await.unwrap();
    assert_eq!(
        tok2.scopes(),
        Some(&vec![
            Scope::new("tiles:read".into()),
            Scope::new("datasets:stream".into())
        ])
    );
    fx.assert_tile_ok(tok2.access_token().secret()).await;

    // A wrong secret: the library sees the RFC 6749 error.
    let wrong = BasicClient::new(ClientId::new(id.clone()))
        .set_client_secret(ClientSecret::new("wrong".into()))
        .set_token_uri(TokenUrl::new(fx.url("/oauth/token")).unwrap());
    match wrong.exchange_client_credentials().request_async(&http).await {
        Err(oauth2::RequestTokenError::ServerResponse(e)) => {
            assert_eq!(*e.error(), oauth2::basic::BasicErrorResponseType::InvalidClient)
        }
        other => panic!("expected invalid_client, got {other:?}"),
    }

    // Introspection (RFC 7662), then revocation (RFC 7009).
    let i = client.introspect(&access).request_async(&http).await.unwrap();
    assert!(i.active());
    assert_eq!(i.scopes(), Some(&vec![Scope::new("tiles:read".into())]));
    assert_eq!(i.client_id().map(|c| c.as_str()), Some(id.as_str()));
    assert_eq!(i.sub(), Some(id.as_str()));
    assert_eq!(i.iss(), Some(ISSUER));
    // (The crate refuses a revocation URL that is not https, so revocation
    // goes through a plain form POST here.)
    let r = fx
        .form(
            "/oauth/revoke",
            &[("token", access.secret()), ("token_type_hint", "access_token")],
            Some((&id, &secret)),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    fx.assert_tile_refused(access.secret()).await;
    let i = client.introspect(&access).request_async(&http).await.unwrap();
    assert!(!i.active());
    // The other token of the same client is untouched.
    fx.assert_tile_ok(tok2.access_token().secret()).await;
}

/// RFC 8414 metadata lists only what is served; RFC 7662 introspection;
/// RFC 7009 revocation makes a token 401 on the proxy.
/// A token verifies until `exp + leeway`, so its revocation entry must live
/// as long: past `exp` (within the leeway) a revoked token stays refused,
/// across the periodic resync that prunes expired entries.
async fn case_a_revoked_token_stays_revoked_through_the_leeway(store_url: &str) {
    let fx = setup_with(store_url, "leeway = \"5s\"", "").await;
    let t = fx.exchange_token(&fx.key, r#"{"ttl": 1, "scope": "tiles:read"}"#).await;
    fx.assert_tile_ok(&t).await;
    let (_, c) = jwt(&t);
    let r = send(
        fx.http
            .post(fx.url("/oauth/revoke"))
            .bearer_auth(&t)
            .form(&[("token", &t)]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    fx.assert_tile_refused(&t).await;
    // Past `exp` by two seconds, within the 5 s leeway; several resyncs
    // (every 200 ms) have run meanwhile.
    let exp = c["exp"].as_i64().unwrap();
    while now() < exp + 2 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    fx.assert_tile_refused(&t).await;
    assert_eq!(fx.me(&t).await.status, 401);
}

async fn case_metadata_introspection_revocation(store_url: &str) {
    let fx = setup(store_url).await;
    let r = send(fx.http.get(fx.url("/.well-known/oauth-authorization-server"))).await;
    let m = r.ok_json();
    assert_eq!(m["issuer"], ISSUER);
    assert_eq!(m["token_endpoint"], TOKEN_ENDPOINT);
    assert_eq!(m["jwks_uri"], format!("{ISSUER}/.well-known/jwks.json").as_str());
    assert_eq!(
        m["introspection_endpoint"],
        format!("{ISSUER}/oauth/introspect").as_str()
    );
    assert_eq!(m["revocation_endpoint"], format!("{ISSUER}/oauth/revoke").as_str());
    let strings = |k: &str| -> BTreeSet<String> {
        m[k].as_array()
            .unwrap_or_else(|| panic!("{k}: {m}"))
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    let owned = |v: &[&str]| -> BTreeSet<String> { v.iter().map(|s| s.to_string()).collect() };
    assert_eq!(
        strings("grant_types_supported"),
        owned(&["client_credentials", "password"])
    );
    assert_eq!(
        strings("token_endpoint_auth_methods_supported"),
        owned(&["client_secret_basic", "client_secret_post", "client_secret_jwt"])
    );
    assert_eq!(
        strings("token_endpoint_auth_signing_alg_values_supported"),
        owned(&["HS256"])
    );
    assert!(strings("scopes_supported").contains("tiles:read"));
    for absent in [
        "authorization_endpoint",
        "registration_endpoint",
        "device_authorization_endpoint",
    ] {
        assert!(m.get(absent).is_none(), "{absent} is not served: {m}");
    }
    // Every advertised endpoint is really served here (same paths).
    for k in [
        "jwks_uri",
        "introspection_endpoint",
        "revocation_endpoint",
        "token_endpoint",
    ] {
        let path = str_of(&m, k).strip_prefix(ISSUER).unwrap().to_owned();
        let r = if k == "jwks_uri" {
            send(fx.http.get(fx.url(&path))).await
        } else {
            fx.form(&path, &[], None).await
        };
        assert_ne!(r.status, 404, "{k} {path} is not served");
    }

    let login = fx.login().await;
    let (id, secret) = fx.new_client(&login, json!({"scope": "tiles:read"})).await;
    let t = fx.client_token(&id, &secret).await;
    let t_sa = fx.exchange_token(&fx.key, "{}").await;

    // Introspection needs client authentication or a bearer token.
    assert_invalid_client(&fx.form("/oauth/introspect", &[("token", &t)], None).await);
    assert_invalid_client(
        &fx.form("/oauth/introspect", &[("token", &t)], Some((&id, "wrong")))
            .await,
    );
    let r = fx
        .form("/oauth/introspect", &[("token", &t)], Some((&id, &secret)))
        .await;
    let i = r.ok_json();
    let (_, c) = jwt(&t);
    assert_eq!(i["active"], true);
    assert_eq!(i["scope"], "tiles:read");
    assert_eq!(i["sub"], id.as_str());
    assert_eq!(i["client_id"], id.as_str());
    assert_eq!(i["iss"], ISSUER);
    assert_eq!(i["exp"], c["exp"]);
    assert_eq!(i["iat"], c["iat"]);
    assert_eq!(i["jti"], c["jti"]);
    assert_eq!(i["org_id"], fx.org_id.as_str());
    // Bearer-authenticated caller, another principal's token.
    let r = send(
        fx.http
            .post(fx.url("/oauth/introspect"))
            .bearer_auth(&login)
            .form(&[("token", &t_sa)]),
    )
    .await;
    assert_eq!(r.ok_json()["active"], true);
    // Any bad token → exactly {"active": false}.
    let mut forged = t.clone();
    forged.push('x');
    for bad in ["garbage", forged.as_str(), fx.key.as_str(), secret.as_str()] {
        let r = fx
            .form("/oauth/introspect", &[("token", bad)], Some((&id, &secret)))
            .await;
        assert_eq!(r.ok_json(), json!({"active": false}), "{bad}");
    }
    assert_error(
        &fx.form("/oauth/introspect", &[], Some((&id, &secret))).await,
        400,
        "invalid_request",
    );

    // Revocation: someone else's token is left alone (200 anyway, RFC 7009).
    let r = fx
        .form("/oauth/revoke", &[("token", &t_sa)], Some((&id, &secret)))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    fx.assert_tile_ok(&t_sa).await;
    // Unknown tokens → 200.
    assert_eq!(
        fx.form("/oauth/revoke", &[("token", "garbage")], Some((&id, &secret)))
            .await
            .status,
        200
    );
    assert_invalid_client(&fx.form("/oauth/revoke", &[("token", &t)], None).await);
    // The client's own token: 401 on the proxy at once, inactive, /me 401.
    fx.assert_tile_ok(&t).await; // cached as valid first
    let r = fx
        .form(
            "/oauth/revoke",
            &[("token", &t), ("token_type_hint", "access_token")],
            Some((&id, &secret)),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    fx.assert_tile_refused(&t).await;
    assert_eq!(fx.me(&t).await.status, 401);
    let r = fx
        .form("/oauth/introspect", &[("token", &t)], Some((&id, &secret)))
        .await;
    assert_eq!(r.ok_json(), json!({"active": false}));
    // A token revoked by its bearer (the login token revoking itself).
    let r = send(
        fx.http
            .post(fx.url("/oauth/revoke"))
            .bearer_auth(&login)
            .form(&[("token", &login)]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(fx.me(&login).await.status, 401);
    // A fresh client token still works.
    fx.assert_tile_ok(&fx.client_token(&id, &secret).await).await;

    // With the password grant switched off, neither metadata nor the endpoint offer it.
    let (url2, db2) = second_store(store_url);
    let fx2 = setup_with(&url2, "password_grant = false", "").await;
    let m = send(fx2.http.get(fx2.url("/.well-known/oauth-authorization-server")))
        .await
        .ok_json();
    assert_eq!(m["grant_types_supported"], json!(["client_credentials"]));
    assert_error(
        &fx2.password_grant(USERNAME, PASSWORD).await,
        400,
        "unsupported_grant_type",
    );
    drop(fx2);
    drop(db2);
}

/// Another store of the same kind for a second gateway within a case: a
/// fresh temp-dir SQLite file, or a fresh PostgreSQL database (dropped with
/// the guard).
fn second_store(store_url: &str) -> (String, Option<PgDb>) {
    if store_url.starts_with("sqlite:") {
        return (SQLITE_URL.to_owned(), None);
    }
    let db = pg_db().expect("TILEGATE_TEST_PG_URL is set");
    (db.url.clone(), Some(db))
}

/// `POST /v1/clients` (201 shape), list without secrets, delete (its
/// tokens die with it), and who may call them.
async fn case_client_management(store_url: &str) {
    let fx = setup(store_url).await;
    let login = fx.login().await;
    let r = send(
        fx.http
            .post(fx.url("/v1/clients"))
            .bearer_auth(&login)
            .json(&json!({"name": "tile backend", "scope": "tiles:read"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let v = r.json();
    assert_eq!(
        keys_of(&v),
        set(&["client_id", "client_secret", "name", "scope", "created_at"]),
        "{v}"
    );
    let id = str_of(&v, "client_id");
    let secret = str_of(&v, "client_secret");
    assert!(id.starts_with("tgc_"), "{id}");
    assert!(secret.len() >= 43, "at least 32 random bytes: {secret}");
    assert_eq!(v["name"], "tile backend");
    assert_eq!(v["scope"], "tiles:read");
    assert!((v["created_at"].as_i64().unwrap() - now()).abs() <= 5);
    // Defaults: every declared scope but clients:manage.
    let (id2, secret2) = fx.new_client(&login, json!({})).await;
    let r = fx.client_credentials_basic(&id2, &secret2, None).await;
    assert_eq!(
        r.ok_json()["scope"],
        "datasets:refresh datasets:stream projects:embed tiles:read"
    );
    // Empty body works too.
    let r = send(fx.http.post(fx.url("/v1/clients")).bearer_auth(&login)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id3 = str_of(&r.json(), "client_id");

    // List: no secrets.
    let r = send(fx.http.get(fx.url("/v1/clients")).bearer_auth(&login)).await;
    let l = r.ok_json();
    assert_eq!(keys_of(&l), set(&["clients"]));
    let ids: BTreeSet<String> = l["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| str_of(c, "client_id"))
        .collect();
    assert_eq!(ids, [id.clone(), id2.clone(), id3.clone()].into_iter().collect());
    for c in l["clients"].as_array().unwrap() {
        assert!(c.get("client_secret").is_none(), "{c}");
    }
    assert!(!r.body.contains(&secret) && !r.body.contains(&secret2));

    // Errors: bad bodies, no token, a token without clients:manage, a scope not offered.
    for body in ["{", r#"{"name":5}"#, r#"{"scope":["tiles:read"]}"#, r#"{"name":""}"#] {
        let r = send(
            fx.http
                .post(fx.url("/v1/clients"))
                .bearer_auth(&login)
                .header("content-type", "application/json")
                .body(body),
        )
        .await;
        assert_error(&r, 400, "invalid_request");
    }
    for scope in ["clients:manage", "admin:all"] {
        let r = send(
            fx.http
                .post(fx.url("/v1/clients"))
                .bearer_auth(&login)
                .json(&json!({ "scope": scope })),
        )
        .await;
        assert_error(&r, 400, "invalid_scope");
    }
    let r = send(fx.http.post(fx.url("/v1/clients")).json(&json!({}))).await;
    assert_error(&r, 401, "invalid_token");
    let sa_token = fx.exchange_token(&fx.key, "{}").await;
    let r = send(
        fx.http
            .post(fx.url("/v1/clients"))
            .bearer_auth(&sa_token)
            .json(&json!({})),
    )
    .await;
    assert_error(&r, 403, "insufficient_scope");
    let client_tok = fx.client_token(&id, &secret).await;
    let r = send(fx.http.get(fx.url("/v1/clients")).bearer_auth(&client_tok)).await;
    assert_error(&r, 403, "insufficient_scope");

    // Another user cannot see or delete alice's clients.
    cli_json_stdin(
        &fx.gw,
        &[
            "--json",
            "user",
            "create",
            "--org",
            "acme",
            "--username",
            "bob",
            "--password-stdin",
        ],
        "bob-password-123\n",
    );
    let bob = str_of(
        &fx.password_grant("bob", "bob-password-123").await.ok_json(),
        "access_token",
    );
    let r = send(fx.http.get(fx.url("/v1/clients")).bearer_auth(&bob)).await;
    assert_eq!(r.ok_json(), json!({"clients": []}));
    let r = send(fx.http.delete(fx.url(&format!("/v1/clients/{id}"))).bearer_auth(&bob)).await;
    assert_error(&r, 404, "not_found");

    // Delete: 204; the client can no longer authenticate and its tokens die.
    fx.assert_tile_ok(&client_tok).await;
    let r = send(fx.http.delete(fx.url(&format!("/v1/clients/{id}"))).bearer_auth(&login)).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert!(r.body.is_empty());
    fx.assert_tile_refused(&client_tok).await;
    assert_invalid_client(&fx.client_credentials_basic(&id, &secret, None).await);
    let r = send(fx.http.delete(fx.url(&format!("/v1/clients/{id}"))).bearer_auth(&login)).await;
    assert_error(&r, 404, "not_found");
    let r = send(fx.http.get(fx.url("/v1/clients")).bearer_auth(&login)).await;
    assert_eq!(r.ok_json()["clients"].as_array().unwrap().len(), 2);
    // The other clients are untouched.
    assert_eq!(fx.client_credentials_basic(&id2, &secret2, None).await.status, 200);
}

/// Repeated failed authentications from one address → 429 + Retry-After,
/// also for a correct secret while blocked.
async fn case_failed_auth_throttled(store_url: &str) {
    let fx = setup_with(store_url, "", "auth_failures_per_minute = 3").await;
    let login = fx.login().await;
    let (id, secret) = fx.new_client(&login, json!({})).await;
    let client_tok = fx.client_token(&id, &secret).await;
    let unknown = format!("tgk_{}", "B".repeat(43));
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let r = fx.exchange(Some(&unknown), None).await;
        statuses.push(r.status);
        if r.status == 429 {
            assert_error(&r, 429, "too_many_requests");
            let ra: u64 = r.header("retry-after").expect("Retry-After").parse().unwrap();
            assert!((1..=60).contains(&ra), "{ra}");
        }
    }
    assert_eq!(statuses, vec![401, 401, 401, 429, 429], "{statuses:?}");
    // While blocked, correct credentials get 429 too, on every endpoint
    // that authenticates a long-lived secret.
    let r = fx.exchange(Some(&fx.key), None).await;
    assert_eq!(r.status, 429, "blocked addresses are refused before the key is checked");
    let r = fx.password_grant(USERNAME, PASSWORD).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.header("retry-after").is_some());
    assert_eq!(fx.client_credentials_basic(&id, &secret, None).await.status, 429);
    let r = fx
        .form("/oauth/introspect", &[("token", &client_tok)], Some((&id, &secret)))
        .await;
    assert_eq!(r.status, 429, "introspection authenticates clients too: {}", r.body);
    let r = fx
        .form("/oauth/revoke", &[("token", &client_tok)], Some((&id, &secret)))
        .await;
    assert_eq!(r.status, 429, "revocation authenticates clients too: {}", r.body);
    // Short-lived tokens keep working on the proxy.
    fx.assert_tile_ok(&client_tok).await;
}

/// Run one SQL statement on the case's store, behind the gateway's back.
fn store_sql(fx: &Fx, store_url: &str, sql: &str) {
    let out = if store_url.starts_with("sqlite:") {
        let db = fx.gw.dir.path().join("tilegate.db");
        Command::new("python3")
            .args([
                "-c",
                "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], timeout=10); c.execute(sys.argv[2]); c.commit()",
            ])
            .arg(&db)
            .arg(sql)
            .output()
            .expect("python3 sqlite3")
    } else {
        psql(store_url, sql)
    };
    assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A store failure on a token endpoint → 500 `server_error`, with nothing
/// of the failure in the answer; the endpoint recovers with the store.
async fn case_store_failure_is_server_error(store_url: &str) {
    let fx = setup(store_url).await;
    store_sql(&fx, store_url, "ALTER TABLE api_keys RENAME TO api_keys_gone");
    let r = fx.exchange(Some(&fx.key), Some(r#"{"ttl":60}"#)).await;
    assert_error(&r, 500, "server_error");
    assert!(!r.body.contains("api_keys"), "{}", r.body);
    let r = send(
        fx.http
            .post(fx.url("/oauth/token"))
            .json(&json!({"grantType": "exchange_api_key_access_token", "apiKey": fx.key})),
    )
    .await;
    assert_error(&r, 500, "server_error");
    store_sql(&fx, store_url, "ALTER TABLE api_keys_gone RENAME TO api_keys");
    let r = fx.exchange(Some(&fx.key), Some(r#"{"ttl":60}"#)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!fx.logs().await.contains(&fx.key));
}

/// Every stored row, as text, table by table (`last_used_at` left out: a
/// successful exchange may move it).
fn store_snapshot(fx: &Fx, store_url: &str) -> String {
    let out = if store_url.starts_with("sqlite:") {
        let db = fx.gw.dir.path().join("tilegate.db");
        Command::new("python3")
            .args([
                "-c",
                r#"
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], timeout=10)
c.row_factory = sqlite3.Row
for (t,) in c.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").fetchall():
    rows = [sorted((k, repr(r[k])) for k in r.keys() if k != 'last_used_at') for r in c.execute(f'SELECT * FROM "{t}"')]
    print(t, sorted(rows))
"#,
            ])
            .arg(&db)
            .output()
            .expect("python3 sqlite3")
    } else {
        psql(
            store_url,
            "SELECT table_name, query_to_xml(format('SELECT (to_jsonb(x) - ''last_used_at'')::text AS r \
             FROM %I x ORDER BY 1', table_name), false, true, '') FROM information_schema.tables \
             WHERE table_schema = 'public' ORDER BY 1",
        )
    };
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("api_keys") && text.contains("named_tokens"), "{text}");
    text
}

/// The token endpoints under hostile input. Every request below
/// gets a clear 4xx with a JSON error (never a 5xx), and the store is
/// byte-for-byte what it was. SQL-ish and unusual-but-valid names are data:
/// stored verbatim, listed back exactly.
async fn case_hostile_input_is_4xx_and_changes_nothing(store_url: &str) {
    let fx = setup_with(store_url, "", "auth_failures_per_minute = 100000").await;
    let login = fx.login().await;
    let (client_id, client_secret) = fx.new_client(&login, json!({"name": "existing"})).await;
    let client_tok = fx.client_token(&client_id, &client_secret).await;
    let generator = str_of(
        &cli_json(&fx.gw, &["--json", "generator-token", "show", "--user", &fx.uid]),
        "token",
    );
    let before = store_snapshot(&fx, store_url);

    let deep = "[".repeat(20_000);
    let key = fx.key.as_str();
    let mut cases: Vec<(String, reqwest::RequestBuilder)> = Vec::new();
    let post = |path: &str| fx.http.post(fx.url(path));
    let json_post = |path: &str, bearer: &str, body: &str| {
        fx.http
            .post(fx.url(path))
            .bearer_auth(bearer)
            .header("content-type", "application/json")
            .body(body.to_owned())
    };
    let form_post = |path: &str, body: &str| {
        fx.http
            .post(fx.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned())
    };

    // POST /v1/auth/token
    for body in [
        r#"{"ttl":60,"ttl":61}"#.to_owned(),
        r#"{"scope":"tiles:read","scope":"datasets:refresh"}"#.to_owned(),
        json!({"scope": "tiles:read\u{0}"}).to_string(),
        json!({"scope": "tiles:read' OR '1'='1"}).to_string(),
        json!({"scope": "tiles:read\u{202e}"}).to_string(),
        json!({"scope": "clients:manage"}).to_string(),
        deep.clone(),
    ] {
        cases.push((
            format!("/v1/auth/token {:.60}", body),
            json_post("/v1/auth/token", key, &body),
        ));
    }
    cases.push((
        "/v1/auth/token invalid UTF-8".into(),
        post("/v1/auth/token")
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(vec![b'{', 0xff, 0xfe, b'}']),
    ));
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        cases.push((
            format!("/v1/auth/token as {ct}"),
            post("/v1/auth/token")
                .bearer_auth(key)
                .header("content-type", ct)
                .body(r#"{"ttl":60}"#),
        ));
    }
    cases.push((
        "/v1/auth/token without Content-Type".into(),
        post("/v1/auth/token").bearer_auth(key).body(r#"{"ttl":60}"#),
    ));

    // POST /oauth/token, the service-account JSON grant
    for body in [
        json!({"grantType": "exchange_api_key_access_token", "apiKey": 5}).to_string(),
        json!({"grantType": "exchange_api_key_access_token"}).to_string(),
        json!({"grantType": ["exchange_api_key_access_token"], "apiKey": key}).to_string(),
        json!({"grantType": "urn:evil", "apiKey": key}).to_string(),
        json!({"grantType": "exchange_api_key_access_token", "apiKey": "tgk_' OR 1=1 --"}).to_string(),
        json!({"grantType": "exchange_api_key_access_token", "apiKey": "tgk_\u{7}\u{0}"}).to_string(),
        format!(r#"{{"grantType":"exchange_api_key_access_token","apiKey":"{key}","apiKey":"{key}"}}"#),
        format!(r#"{{"grantType":"exchange_api_key_access_token","grantType":"password","apiKey":"{key}"}}"#),
        deep.clone(),
    ] {
        cases.push((
            format!("/oauth/token JSON {:.60}", body),
            post("/oauth/token")
                .header("content-type", "application/json")
                .body(body),
        ));
    }
    // POST /oauth/token, form
    let basic = |rb: reqwest::RequestBuilder| rb.basic_auth(&client_id, Some(&client_secret));
    for body in [
        "grant_type=client_credentials&grant_type=client_credentials".to_owned(),
        "grant_type=client_credentials&scope=tiles:read&scope=datasets:stream".to_owned(),
        "grant_type=client_credentials&scope=clients:manage".to_owned(),
        "grant_type=client_credentials&scope=tiles:read%00".to_owned(),
        "grant_type=urn%3Aevil".to_owned(),
        "grant_type=client_credentials%00".to_owned(),
        "scope=tiles:read".to_owned(),
    ] {
        cases.push((
            format!("/oauth/token form {body:.60}"),
            basic(form_post("/oauth/token", &body)),
        ));
    }
    let alice = serde_urlencoded::to_string([("username", USERNAME), ("password", PASSWORD)]).unwrap();
    for body in [
        format!("grant_type=password&{alice}&username={USERNAME}"),
        format!("grant_type=password&{alice}&password=x"),
        "grant_type=password&username=alice'%20--&password=x".to_owned(),
        "grant_type=password&username=ali%07ce&password=x".to_owned(),
        "grant_type=password&username=%00&password=%00".to_owned(),
        format!("grant_type=password&username={}&password=x", "a".repeat(10_000)),
    ] {
        cases.push((
            format!("/oauth/token form {body:.60}"),
            form_post("/oauth/token", &body),
        ));
    }
    for ct in ["text/plain", "multipart/form-data; boundary=x", "application/xml"] {
        cases.push((
            format!("/oauth/token as {ct}"),
            basic(
                post("/oauth/token")
                    .header("content-type", ct)
                    .body("grant_type=client_credentials"),
            ),
        ));
    }
    // /oauth/introspect and /oauth/revoke: repeated parameters.
    for path in ["/oauth/introspect", "/oauth/revoke"] {
        for body in [
            format!("token={client_tok}&token={client_tok}"),
            format!("token={client_tok}&token_type_hint=access_token&token_type_hint=refresh_token"),
        ] {
            cases.push((format!("{path} {body:.40}"), basic(form_post(path, &body))));
        }
    }

    // POST /v1/clients (login token), DELETE /v1/clients/{id}
    for body in [
        json!({"name": "a\u{7}b"}).to_string(),
        json!({"name": "nul\u{0}"}).to_string(),
        json!({"name": "line\nbreak"}).to_string(),
        json!({"name": "evil\u{202e}gpj.exe"}).to_string(),
        json!({"name": "isolate\u{2066}x"}).to_string(),
        json!({"name": "x".repeat(129)}).to_string(),
        json!({"name": 5}).to_string(),
        r#"{"name":"a","name":"b"}"#.to_owned(),
        json!({"scope": "tiles:read clients:manage"}).to_string(),
        json!({"scope": "tiles:read' OR '1'='1"}).to_string(),
        deep.clone(),
    ] {
        cases.push((
            format!("/v1/clients {body:.60}"),
            json_post("/v1/clients", &login, &body),
        ));
    }
    cases.push((
        "/v1/clients as form".into(),
        post("/v1/clients")
            .bearer_auth(&login)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("name=x"),
    ));
    for id in ["'%20OR%201=1%20--", "%00", "tgc_%E2%80%AE", &"9".repeat(5000)] {
        cases.push((
            format!("DELETE /v1/clients/{id:.40}"),
            fx.http.delete(fx.url(&format!("/v1/clients/{id}"))).bearer_auth(&login),
        ));
    }

    // POST /oauth/v1/user/token (generator token)
    let ok = "validTime=5&action=read_only&resourceType=all";
    for q in [
        format!("name=%07bell&{ok}"),
        format!("name=a%00b&{ok}"),
        format!("name=line%0Abreak&{ok}"),
        format!("name=evil%E2%80%AEgpj&{ok}"),
        format!("name={}&{ok}", "n".repeat(129)),
        format!("name=a&name=b&{ok}"),
        format!("name=a&{ok}&action=read_only"),
        "name=a&validTime=%2B5&action=read_only&resourceType=all".to_owned(),
        "name=a&validTime=5.0&action=read_only&resourceType=all".to_owned(),
        "name=a&validTime=0x10&action=read_only&resourceType=all".to_owned(),
        "name=a&validTime=%D9%A5&action=read_only&resourceType=all".to_owned(),
        "name=a&validTime=%205&action=read_only&resourceType=all".to_owned(),
        "name=a&validTime=5&action=read_only'%20OR%201=1&resourceType=all".to_owned(),
        "name=a&validTime=5&action=read_only&resourceType=all%00".to_owned(),
        "name=%FF&validTime=5&action=read_only&resourceType=all".to_owned(),
    ] {
        cases.push((
            format!("/oauth/v1/user/token?{q:.60}"),
            fx.http
                .post(fx.url(&format!("/oauth/v1/user/token?{q}")))
                .bearer_auth(&generator),
        ));
    }
    for id in ["'%20OR%201=1%20--", "%00", &"9".repeat(5000)] {
        cases.push((
            format!("DELETE /oauth/v1/user/tokens/{id:.40}"),
            fx.http
                .delete(fx.url(&format!("/oauth/v1/user/tokens/{id}")))
                .bearer_auth(&generator),
        ));
    }

    assert!(cases.len() >= 70, "{}", cases.len());
    for (label, rb) in cases {
        let r = send(rb).await;
        assert!(
            (400..500).contains(&r.status),
            "{label}: expected a 4xx, got {}: {}",
            r.status,
            r.body
        );
        let v = r.json();
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{label}: no error code: {}",
            r.body
        );
    }
    // Bodies over `limits.token_body_bytes` (64 KiB): declared, 413 before
    // anything is read; chunked, 413 once the limit is passed. Raw requests:
    // a client library still uploading might see the close before the answer.
    for (path, bearer, ct) in [
        ("/v1/auth/token", key, "application/json"),
        ("/oauth/token", "", "application/x-www-form-urlencoded"),
        ("/v1/clients", login.as_str(), "application/json"),
        ("/oauth/revoke", "", "application/x-www-form-urlencoded"),
    ] {
        let head = |framing: &str| {
            format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {bearer}\r\n\
                 Content-Type: {ct}\r\n{framing}\r\n"
            )
        };
        let r = raw(fx.gw.addr, head("Content-Length: 2097152\r\n").as_bytes()).await;
        assert!(r.starts_with("HTTP/1.1 413"), "{path} declared: {r}");
        assert!(r.contains("\"error\""), "{r}");
        let mut chunked = head("Transfer-Encoding: chunked\r\n").into_bytes();
        chunked.extend_from_slice(format!("{:x}\r\n", 70_000).as_bytes());
        chunked.extend(std::iter::repeat_n(b'a', 70_000));
        chunked.extend_from_slice(b"\r\n0\r\n\r\n");
        let r = raw(fx.gw.addr, &chunked).await;
        assert!(r.starts_with("HTTP/1.1 413"), "{path} chunked: {r}");
    }
    assert_eq!(
        store_snapshot(&fx, store_url),
        before,
        "a refused request changed the store"
    );

    // Unusual but valid names are data: stored verbatim, listed back exactly.
    let hostile = "x'); DROP TABLE clients; -- 🗺️ Ñandú \\ \"q\" %00";
    let r = send(json_post(
        "/v1/clients",
        &login,
        &json!({ "name": hostile }).to_string(),
    ))
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["name"], hostile);
    let r = send(fx.http.get(fx.url("/v1/clients")).bearer_auth(&login)).await;
    let names: Vec<Value> = r.ok_json()["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    assert!(
        names.contains(&json!(hostile)) && names.contains(&json!("existing")),
        "{names:?}"
    );
    let named = "Robert'); DROP TABLE named_tokens;-- 名前";
    let q = serde_urlencoded::to_string([
        ("name", named),
        ("validTime", "5"),
        ("action", "read_only"),
        ("resourceType", "all"),
    ])
    .unwrap();
    let r = send(
        fx.http
            .post(fx.url(&format!("/oauth/v1/user/token?{q}")))
            .bearer_auth(&generator),
    )
    .await;
    assert_eq!(r.ok_json()["name"], named);
    let r = send(fx.http.get(fx.url("/oauth/v1/user/tokens")).bearer_auth(&generator)).await;
    assert!(r.body.contains(&serde_json::to_string(named).unwrap()), "{}", r.body);
    // The credentials used above all still work.
    assert_eq!(fx.exchange(Some(&fx.key), None).await.status, 200);
    assert_eq!(
        fx.client_credentials_basic(&client_id, &client_secret, None)
            .await
            .status,
        200
    );
    assert!(!fx.logs().await.contains(&fx.key));
}

/// Sends `request` on a fresh connection (ignoring a write cut short by the
/// server) and returns what came back.
async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(request).await;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("an answer within 10 s")
        .unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

// ------------------------------------------- ceilings and containment

impl Fx {
    async fn admin_json(&self, method: reqwest::Method, path: &str, body: &str) -> R {
        send(
            self.http
                .request(method, self.gw.admin_url(path))
                .bearer_auth(ADMIN_TOKEN)
                .header("content-type", "application/json")
                .body(body.to_owned()),
        )
        .await
    }

    /// The user's access-generator token, read with a login token.
    async fn generator(&self, login: &str) -> String {
        let r = send(
            self.http
                .get(self.url("/oauth/v1/user/generator-token"))
                .bearer_auth(login),
        )
        .await;
        str_of(&r.ok_json(), "token")
    }

    /// `POST /oauth/v1/user/token?…` with a generator token.
    async fn named(&self, generator: &str, name: &str, valid: &str, action: &str, resource: &str) -> R {
        let q = serde_urlencoded::to_string([
            ("name", name),
            ("validTime", valid),
            ("action", action),
            ("resourceType", resource),
        ])
        .unwrap();
        send(
            self.http
                .post(self.url(&format!("/oauth/v1/user/token?{q}")))
                .bearer_auth(generator),
        )
        .await
    }

    async fn stream_status(&self, token: &str) -> u16 {
        send(self.http.get(self.url("/stream/x")).bearer_auth(token))
            .await
            .status
    }

    /// Poll (every 50 ms, at most 5 s) until `token` is refused with 401
    /// on the tiles route: what the CLI revokes reaches the running gateway
    /// by notification (PostgreSQL) or its resync (200 ms here).
    async fn assert_refused_soon(&self, token: &str) {
        let start = Instant::now();
        loop {
            let r = self.tile(token).await;
            if r.status == 401 {
                return;
            }
            assert_eq!(r.status, 200, "{}", r.body);
            assert!(start.elapsed() < Duration::from_secs(5), "still accepted after 5 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// As [`Fx::assert_refused_soon`], for a login token on `/me`.
    async fn assert_login_refused_soon(&self, login: &str) {
        let start = Instant::now();
        loop {
            let r = self.me(login).await;
            if r.status == 401 {
                return;
            }
            assert_eq!(r.status, 200, "{}", r.body);
            assert!(start.elapsed() < Duration::from_secs(5), "still accepted after 5 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn scope_of(token: &str) -> BTreeSet<String> {
    scopes(&str_of(&jwt(token).1, "scope"))
}

fn scopes(s: &str) -> BTreeSet<String> {
    s.split(' ').filter(|x| !x.is_empty()).map(String::from).collect()
}

fn cli_fails(gw: &Gateway, args: &[&str], stdin: Option<&str>, code: i32) -> String {
    let out = match stdin {
        Some(s) => gw.cli_stdin(args, s),
        None => gw.cli(args),
    };
    assert_eq!(
        out.status.code(),
        Some(code),
        "tilegate {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The audit's reproduction (M1) and the ceilings that stop it: a user
/// holding only a password logs in, then asks for a client and for named
/// tokens with more than the operator allows; a lowered ceiling binds the
/// credentials made before it, at exchange; bad input changes nothing.
async fn case_ceilings_bind_every_credential(store_url: &str) {
    let fx = setup_with(store_url, "", "auth_failures_per_minute = 100000").await;
    use reqwest::Method;
    // The defaults keep an existing deployment working: every declared
    // scope but clients:manage.
    let login = fx.login().await;
    let (old_id, old_secret) = fx
        .new_client(&login, json!({"scope": "tiles:read datasets:refresh"}))
        .await;
    assert_eq!(
        scope_of(&fx.client_token(&old_id, &old_secret).await),
        scopes("tiles:read datasets:refresh")
    );
    let generator = fx.generator(&login).await;
    let users = fx.admin(Method::GET, "/admin/v1/users").await.ok_json();
    assert_eq!(users[0]["scope_ceiling"], Value::Null, "{users}");
    assert_eq!(
        users[0]["effective_scope_ceiling"], "datasets:refresh datasets:stream projects:embed tiles:read",
        "{users}"
    );

    // The operator sets alice's ceiling (CLI).
    let v = cli_json(
        &fx.gw,
        &[
            "--json",
            "user",
            "set-ceiling",
            USERNAME,
            "--scope",
            "tiles:read datasets:stream projects:embed",
        ],
    );
    assert_eq!(
        v["effective_scope_ceiling"], "datasets:stream projects:embed tiles:read",
        "{v}"
    );

    // The audit's reproduction: refused, nothing stored.
    let before = store_snapshot(&fx, store_url);
    let r = send(
        fx.http
            .post(fx.url("/v1/clients"))
            .bearer_auth(&login)
            .json(&json!({"scope": "tiles:read datasets:refresh"})),
    )
    .await;
    assert_error(&r, 400, "invalid_scope");
    for (action, resource) in [("read_write", "all"), ("read_write", "dataset_streaming_refreshing")] {
        for valid in ["-1", "60"] {
            let r = fx.named(&generator, "escalate", valid, action, resource).await;
            assert_error(&r, 403, "invalid_scope");
        }
    }
    assert_eq!(
        store_snapshot(&fx, store_url),
        before,
        "a refused request changed the store"
    );

    // Within the ceiling: works.
    let r = send(fx.http.post(fx.url("/v1/clients")).bearer_auth(&login).json(&json!({}))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let new_client = r.json();
    assert_eq!(
        scopes(new_client["scope"].as_str().unwrap()),
        scopes("tiles:read datasets:stream projects:embed")
    );
    let (new_id, new_secret) = (str_of(&new_client, "client_id"), str_of(&new_client, "client_secret"));
    let ro = fx.named(&generator, "ro", "-1", "read_only", "all").await.ok_json();
    assert_eq!(
        scopes(ro["scope"].as_str().unwrap()),
        scopes("tiles:read datasets:stream projects:embed")
    );
    let ro_token = str_of(&ro, "token");
    fx.assert_tile_ok(&ro_token).await;
    assert_eq!(fx.stream_status(&ro_token).await, 200);
    // The client made before the ceiling is bound at exchange: its
    // default narrowed, more refused.
    let t = fx.client_token(&old_id, &old_secret).await;
    assert_eq!(scope_of(&t), scopes("tiles:read"));
    assert_error(
        &fx.client_credentials_basic(&old_id, &old_secret, Some("datasets:refresh"))
            .await,
        400,
        "invalid_scope",
    );

    // The org's ceiling, lowered through the admin API, binds the service
    // account's key made before it, at once (the key is in the secret cache).
    assert_eq!(
        scope_of(&fx.exchange_token(&fx.key, "{}").await),
        scopes("tiles:read datasets:stream")
    );
    let r = fx
        .admin_json(
            Method::PATCH,
            "/admin/v1/orgs/acme",
            r#"{"scope_ceiling": "tiles:read"}"#,
        )
        .await;
    let v = r.ok_json();
    assert_eq!(v["effective_scope_ceiling"], "tiles:read", "{v}");
    // Alice's named token carries scopes beyond it now: revoked.
    assert_eq!(v["revoked"]["named_tokens"], json!([ro["id"]]), "{v}");
    fx.assert_tile_refused(&ro_token).await;
    let t = fx.exchange_token(&fx.key, "{}").await;
    assert_eq!(scope_of(&t), scopes("tiles:read"));
    assert_eq!(fx.stream_status(&t).await, 403);
    assert_error(
        &fx.exchange(Some(&fx.key), Some(r#"{"scope": "tiles:read datasets:stream"}"#))
            .await,
        403,
        "invalid_scope",
    );
    let r = send(
        fx.http
            .post(fx.url("/oauth/token"))
            .json(&json!({"grantType": "exchange_api_key_access_token", "apiKey": fx.key})),
    )
    .await;
    assert_eq!(scope_of(&str_of(&r.ok_json(), "accessToken")), scopes("tiles:read"));
    for (id, secret) in [(&old_id, &old_secret), (&new_id, &new_secret)] {
        assert_eq!(scope_of(&fx.client_token(id, secret).await), scopes("tiles:read"));
    }
    let r = fx.named(&generator, "ro2", "60", "read_only", "all").await;
    assert_error(&r, 403, "invalid_scope");

    // Beyond the ceiling or malformed: a 4xx JSON error, nothing changed.
    let before = store_snapshot(&fx, store_url);
    let sa_key = json!({"service_account": fx.sa_id, "scope": "tiles:read datasets:stream"}).to_string();
    let user_key = json!({"user": fx.uid, "scope": "datasets:stream"}).to_string();
    for (method, path, body, status, code) in [
        (
            Method::POST,
            "/admin/v1/api-keys",
            sa_key.as_str(),
            400,
            "invalid_request",
        ),
        (
            Method::POST,
            "/admin/v1/api-keys",
            user_key.as_str(),
            400,
            "invalid_request",
        ),
        (
            Method::PATCH,
            "/admin/v1/users/alice",
            r#"{"scope_ceiling": "datasets:stream"}"#,
            400,
            "invalid_request",
        ),
        (
            Method::PATCH,
            "/admin/v1/orgs/acme",
            r#"{"scope_ceiling": "nope:x"}"#,
            400,
            "invalid_request",
        ),
        (
            Method::PATCH,
            "/admin/v1/orgs/acme",
            r#"{"scope_ceiling": 5}"#,
            400,
            "invalid_request",
        ),
        (Method::PATCH, "/admin/v1/orgs/acme", r#"{}"#, 400, "invalid_request"),
        (
            Method::PATCH,
            "/admin/v1/orgs/acme",
            r#"{"scope_ceiling": null, "x": 1}"#,
            400,
            "invalid_request",
        ),
        (
            Method::PATCH,
            "/admin/v1/orgs/acme",
            r#"{"scope_ceiling": null, "scope_ceiling": null}"#,
            400,
            "invalid_request",
        ),
        (Method::PATCH, "/admin/v1/orgs/acme", "[", 400, "invalid_request"),
        (
            Method::PATCH,
            "/admin/v1/orgs/acme",
            r#"{"scope_ceiling": "tiles:read\u0000"}"#,
            400,
            "invalid_request",
        ),
        (
            Method::PATCH,
            "/admin/v1/orgs/nowhere",
            r#"{"scope_ceiling": null}"#,
            404,
            "not_found",
        ),
        (
            Method::PATCH,
            "/admin/v1/users/%FF",
            r#"{"scope_ceiling": null}"#,
            400,
            "invalid_request",
        ),
        (
            Method::PATCH,
            "/admin/v1/users/a%00b",
            r#"{"scope_ceiling": null}"#,
            400,
            "invalid_request",
        ),
        (
            Method::POST,
            "/admin/v1/orgs",
            r#"{"name": "zeta", "scope_ceiling": "admin:all"}"#,
            400,
            "invalid_request",
        ),
        (
            Method::POST,
            "/admin/v1/users",
            r#"{"org": "acme", "username": "zed", "scope_ceiling": "datasets:refresh"}"#,
            400,
            "invalid_request",
        ),
    ] {
        let r = fx.admin_json(method.clone(), path, body).await;
        assert_error(&r, status, code);
    }
    cli_fails(
        &fx.gw,
        &[
            "api-key",
            "create",
            "--service-account",
            &fx.sa_id,
            "--scope",
            "datasets:stream",
        ],
        None,
        64,
    );
    cli_fails(&fx.gw, &["org", "set-ceiling", "acme"], None, 2);
    cli_fails(
        &fx.gw,
        &["org", "set-ceiling", "acme", "--scope", "tiles:read", "--default"],
        None,
        2,
    );
    cli_fails(
        &fx.gw,
        &["user", "set-ceiling", USERNAME, "--scope", "admin:all"],
        None,
        64,
    );
    assert_eq!(
        store_snapshot(&fx, store_url),
        before,
        "a refused request changed the store"
    );

    // Back to the default.
    let v = fx
        .admin_json(Method::PATCH, "/admin/v1/orgs/acme", r#"{"scope_ceiling": null}"#)
        .await
        .ok_json();
    assert_eq!(v["scope_ceiling"], Value::Null);
    assert_eq!(
        scope_of(&fx.exchange_token(&fx.key, "{}").await),
        scopes("tiles:read datasets:stream")
    );
    let audit = fx.admin(Method::GET, "/admin/v1/audit").await.ok_json();
    let actions: BTreeSet<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["action"].as_str())
        .collect();
    for a in ["org.ceiling_set", "user.ceiling_set", "named_token.revoked"] {
        assert!(actions.contains(a), "{a} not audited: {actions:?}");
    }
}

/// `named_tokens.max_valid_time` and `named_tokens.allow_never_expiring`.
async fn case_named_token_valid_time_policy(store_url: &str) {
    let fx = setup_with(
        store_url,
        "",
        "auth_failures_per_minute = 100000\n[named_tokens]\nmax_valid_time = \"60m\"\nallow_never_expiring = false",
    )
    .await;
    let login = fx.login().await;
    let generator = fx.generator(&login).await;
    let before = store_snapshot(&fx, store_url);
    for valid in ["-1", "61", "9999"] {
        let r = fx.named(&generator, "t", valid, "read_only", "all").await;
        assert_error(&r, 400, "invalid_request");
        assert!(r.body.contains("validTime"), "{}", r.body);
    }
    assert_eq!(
        store_snapshot(&fx, store_url),
        before,
        "a refused request changed the store"
    );
    let v = fx.named(&generator, "hour", "60", "read_only", "all").await.ok_json();
    assert!(v["expiresAt"].is_string(), "{v}");
    let c = jwt(&str_of(&v, "token")).1;
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 3600);
}

/// Disable, enable, password reset and deletion of users, clients,
/// service accounts and organizations: each stops what was derived from
/// the credential, updates the listings, is audited; bad input is a 4xx
/// JSON error and changes nothing.
async fn case_operators_contain_a_user_and_delete_what_it_holds(store_url: &str) {
    let fx = setup_with(store_url, "", "auth_failures_per_minute = 100000").await;
    use reqwest::Method;
    let login = fx.login().await;
    let generator = fx.generator(&login).await;
    let named = fx
        .named(&generator, "forever", "-1", "read_only", "all")
        .await
        .ok_json();
    let named_tok = str_of(&named, "token");
    let (cid, csecret) = fx.new_client(&login, json!({"name": "app"})).await;
    let client_tok = fx.client_token(&cid, &csecret).await;
    let uk = cli_json(
        &fx.gw,
        &[
            "--json",
            "api-key",
            "create",
            "--user",
            &fx.uid,
            "--scope",
            "tiles:read",
        ],
    );
    let (user_key, user_key_id) = (str_of(&uk, "api_key"), str_of(&uk, "id"));
    let key_tok = fx.exchange_token(&user_key, "{}").await;
    for t in [&named_tok, &client_tok, &key_tok] {
        fx.assert_tile_ok(t).await;
    }
    assert_eq!(fx.me(&login).await.status, 200);

    // Disable (admin API): everything alice holds is refused at once.
    let v = fx.admin(Method::POST, "/admin/v1/users/alice/disable").await.ok_json();
    assert!(v["user"]["disabled_at"].is_i64(), "{v}");
    let revoked: BTreeSet<String> = v["revoked"]["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert!(revoked.contains(&cid) && revoked.contains(&user_key_id), "{v}");
    assert!(
        revoked.iter().any(|c| c.starts_with("lgn_")) && revoked.iter().any(|c| c.starts_with("gen_")),
        "{v}"
    );
    assert_error(&fx.password_grant(USERNAME, PASSWORD).await, 400, "invalid_grant");
    assert_eq!(fx.me(&login).await.status, 401);
    assert_error(
        &fx.named(&generator, "n", "5", "read_only", "all").await,
        401,
        "unauthorized",
    );
    for t in [&named_tok, &client_tok, &key_tok] {
        fx.assert_tile_refused(t).await;
    }
    assert_invalid_client(&fx.client_credentials_basic(&cid, &csecret, None).await);
    assert_error(&fx.exchange(Some(&user_key), None).await, 401, "unauthorized");
    // The listings say so.
    let users = fx.admin(Method::GET, "/admin/v1/users?org=acme").await.ok_json();
    assert!(users[0]["disabled_at"].is_i64(), "{users}");
    let clients = fx.admin(Method::GET, "/admin/v1/clients?user=alice").await.ok_json();
    assert_eq!(clients.as_array().unwrap().len(), 1);
    assert!(clients[0]["revoked_at"].is_i64(), "{clients}");
    let named_list = fx
        .admin(Method::GET, &format!("/admin/v1/named-tokens?user={}", fx.uid))
        .await
        .ok_json();
    assert!(named_list[0]["revoked_at"].is_i64(), "{named_list}");
    let keys = fx.admin(Method::GET, "/admin/v1/api-keys").await.ok_json();
    let k = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == user_key_id.as_str())
        .unwrap();
    assert!(k["revoked_at"].is_i64(), "{k}");
    // No new credential for a disabled user.
    let r = fx
        .admin_json(
            Method::POST,
            "/admin/v1/api-keys",
            &json!({"user": fx.uid, "scope": "tiles:read"}).to_string(),
        )
        .await;
    assert_error(&r, 400, "invalid_request");

    // Enable (CLI): login again; revoked credentials stay revoked; the
    // generator token is a new one.
    let v = cli_json(&fx.gw, &["--json", "user", "enable", USERNAME]);
    assert!(v["disabled_at"].is_null(), "{v}");
    let login2 = fx.login().await;
    let g2 = fx.generator(&login2).await;
    assert_ne!(g2, generator);
    fx.assert_tile_ok(&str_of(
        &fx.named(&g2, "again", "5", "read_only", "all").await.ok_json(),
        "token",
    ))
    .await;
    assert_error(
        &fx.named(&generator, "n", "5", "read_only", "all").await,
        401,
        "unauthorized",
    );
    assert_invalid_client(&fx.client_credentials_basic(&cid, &csecret, None).await);
    assert_error(&fx.exchange(Some(&user_key), None).await, 401, "unauthorized");
    fx.assert_tile_refused(&named_tok).await;

    // Password reset (CLI): the old password and the login tokens from
    // before stop; the new password works; too short is refused.
    let new_password = "a brand new passphrase";
    let v: Value = serde_json::from_str(&cli_ok(
        fx.gw.cli_stdin(
            &["--json", "user", "reset-password", USERNAME, "--password-stdin"],
            &format!("{new_password}\n"),
        ),
        &["user", "reset-password"],
    ))
    .unwrap();
    assert!(
        v["revoked"]["credentials"][0].as_str().unwrap().starts_with("lgn_"),
        "{v}"
    );
    assert_error(&fx.password_grant(USERNAME, PASSWORD).await, 400, "invalid_grant");
    fx.assert_login_refused_soon(&login2).await;
    let login3 = str_of(
        &fx.password_grant(USERNAME, new_password).await.ok_json(),
        "access_token",
    );
    assert_eq!(fx.me(&login3).await.status, 200);
    cli_fails(
        &fx.gw,
        &["user", "reset-password", USERNAME, "--password-stdin"],
        Some("short\n"),
        64,
    );
    cli_fails(&fx.gw, &["user", "reset-password", USERNAME], None, 2);
    assert_eq!(fx.password_grant(USERNAME, new_password).await.status, 200);

    // Client deletion by the operator (CLI): its tokens stop, the listing drops it.
    let (c2, s2) = fx.new_client(&login3, json!({"name": "second"})).await;
    let t2 = fx.client_token(&c2, &s2).await;
    let listed = cli_json(&fx.gw, &["--json", "client", "list", "--user", USERNAME]);
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    cli_json(&fx.gw, &["--json", "client", "delete", &c2]);
    fx.assert_refused_soon(&t2).await;
    assert_invalid_client(&fx.client_credentials_basic(&c2, &s2, None).await);
    let listed = cli_json(&fx.gw, &["--json", "client", "list", "--org", "acme"]);
    assert!(!listed.to_string().contains(&c2), "{listed}");

    // Deleting the user (admin API).
    let g3 = fx.generator(&login3).await;
    let n3 = str_of(&fx.named(&g3, "n3", "-1", "read_only", "all").await.ok_json(), "token");
    let v = fx.admin(Method::DELETE, "/admin/v1/users/alice").await.ok_json();
    assert_eq!(v["deleted"], fx.uid.as_str(), "{v}");
    fx.assert_tile_refused(&n3).await;
    assert_eq!(fx.me(&login3).await.status, 401);
    assert_error(&fx.password_grant(USERNAME, new_password).await, 400, "invalid_grant");
    let users = fx.admin(Method::GET, "/admin/v1/users").await.ok_json();
    assert!(!users.to_string().contains(USERNAME), "{users}");
    assert_error(
        &fx.admin(Method::GET, "/admin/v1/clients?user=alice").await,
        404,
        "not_found",
    );
    let named_list = fx
        .admin(Method::GET, &format!("/admin/v1/named-tokens?user={}", fx.uid))
        .await
        .ok_json();
    assert_eq!(named_list, json!([]));

    // Deleting the service account (CLI): its key and the key's tokens stop.
    let sa_tok = fx.exchange_token(&fx.key, "{}").await;
    let v = cli_json(&fx.gw, &["--json", "service-account", "delete", &fx.sa_id]);
    assert_eq!(v["revoked"]["credentials"], json!([fx.key_id]), "{v}");
    fx.assert_refused_soon(&sa_tok).await;
    let start = Instant::now();
    while fx.exchange(Some(&fx.key), None).await.status != 401 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the deleted account's key still exchanges"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sas = cli_json(&fx.gw, &["--json", "service-account", "list"]);
    assert_eq!(sas, json!([]));

    // Deleting an organization (admin API) takes everything under it.
    let admin_post = |path: &'static str, body: Value| {
        let fx = &fx;
        async move {
            let r = fx.admin_json(Method::POST, path, &body.to_string()).await;
            assert_eq!(r.status, 201, "{path}: {}", r.body);
            r.json()
        }
    };
    admin_post("/admin/v1/orgs", json!({"name": "beta"})).await;
    admin_post(
        "/admin/v1/users",
        json!({"org": "beta", "username": "bo", "password": "bo's password"}),
    )
    .await;
    let sa = admin_post("/admin/v1/service-accounts", json!({"org": "beta", "name": "robot"})).await;
    let key = admin_post(
        "/admin/v1/api-keys",
        json!({"service_account": sa["id"], "scope": "tiles:read"}),
    )
    .await;
    let beta_key_tok = fx.exchange_token(key["api_key"].as_str().unwrap(), "{}").await;
    let bo_login = str_of(
        &fx.password_grant("bo", "bo's password").await.ok_json(),
        "access_token",
    );
    let (bc, bs) = fx.new_client(&bo_login, json!({})).await;
    let bo_client_tok = fx.client_token(&bc, &bs).await;
    let bo_named = str_of(
        &fx.named(&fx.generator(&bo_login).await, "bo", "-1", "read_only", "all")
            .await
            .ok_json(),
        "token",
    );
    let v = fx.admin(Method::DELETE, "/admin/v1/orgs/beta").await.ok_json();
    assert!(v["deleted"].as_str().unwrap().starts_with("org_"), "{v}");
    for t in [&beta_key_tok, &bo_client_tok, &bo_named] {
        fx.assert_tile_refused(t).await;
    }
    assert_eq!(fx.me(&bo_login).await.status, 401);
    assert_error(&fx.password_grant("bo", "bo's password").await, 400, "invalid_grant");
    assert_invalid_client(&fx.client_credentials_basic(&bc, &bs, None).await);
    let orgs = fx.admin(Method::GET, "/admin/v1/orgs").await.ok_json();
    assert!(!orgs.to_string().contains("beta"), "{orgs}");
    assert_error(
        &fx.admin(Method::GET, "/admin/v1/users?org=beta").await,
        404,
        "not_found",
    );

    // Every action is in the audit log.
    let audit = fx.admin(Method::GET, "/admin/v1/audit").await.ok_json();
    let actions: BTreeSet<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["action"].as_str())
        .collect();
    for a in [
        "user.disabled",
        "user.enabled",
        "user.password_reset",
        "user.logins_ended",
        "user.deleted",
        "client.revoked",
        "client.deleted",
        "api_key.revoked",
        "generator_token.regenerated",
        "generator_token.revoked",
        "service_account.deleted",
        "org.deleted",
    ] {
        assert!(actions.contains(a), "{a} not audited: {actions:?}");
    }
    assert!(!audit.to_string().contains(new_password));

    // Bad input: a 4xx JSON error each, and nothing changes.
    cli_json_stdin(
        &fx.gw,
        &[
            "--json",
            "user",
            "create",
            "--org",
            "acme",
            "--username",
            "cy",
            "--password-stdin",
        ],
        "cy's password\n",
    );
    let before = store_snapshot(&fx, store_url);
    for (method, path, body, status, code) in [
        (Method::DELETE, "/admin/v1/users/nobody", "", 404, "not_found"),
        (Method::POST, "/admin/v1/users/nobody/disable", "", 404, "not_found"),
        (Method::POST, "/admin/v1/users/nobody/enable", "", 404, "not_found"),
        (Method::POST, "/admin/v1/users/%FF/disable", "", 400, "invalid_request"),
        (
            Method::POST,
            "/admin/v1/users/cy/password",
            r#"{"password": "short"}"#,
            400,
            "invalid_request",
        ),
        (
            Method::POST,
            "/admin/v1/users/cy/password",
            r#"{"password": 12345678}"#,
            400,
            "invalid_request",
        ),
        (
            Method::POST,
            "/admin/v1/users/cy/password",
            r#"{}"#,
            400,
            "invalid_request",
        ),
        (Method::POST, "/admin/v1/users/cy/password", "", 400, "invalid_request"),
        (
            Method::POST,
            "/admin/v1/users/cy/password",
            r#"{"password": "long enough", "x": 1}"#,
            400,
            "invalid_request",
        ),
        (
            Method::POST,
            "/admin/v1/users/nobody/password",
            r#"{"password": "long enough"}"#,
            404,
            "not_found",
        ),
        (Method::DELETE, "/admin/v1/clients/tgc_missing", "", 404, "not_found"),
        (Method::DELETE, "/admin/v1/clients/%00", "", 404, "not_found"),
        (
            Method::DELETE,
            "/admin/v1/service-accounts/sa_missing",
            "",
            404,
            "not_found",
        ),
        (Method::DELETE, "/admin/v1/orgs/nowhere", "", 404, "not_found"),
        (Method::DELETE, "/admin/v1/orgs/a%0Ab", "", 400, "invalid_request"),
        (Method::GET, "/admin/v1/clients?org=nowhere", "", 404, "not_found"),
        (
            Method::GET,
            "/admin/v1/service-accounts?org=nowhere",
            "",
            404,
            "not_found",
        ),
    ] {
        let r = fx.admin_json(method.clone(), path, body).await;
        assert_error(&r, status, code);
    }
    cli_fails(&fx.gw, &["user", "disable", "nobody"], None, 64);
    cli_fails(&fx.gw, &["user", "delete", "nobody"], None, 64);
    cli_fails(&fx.gw, &["client", "delete", "tgc_missing"], None, 64);
    cli_fails(&fx.gw, &["service-account", "delete", "sa_missing"], None, 64);
    cli_fails(&fx.gw, &["org", "delete", "nowhere"], None, 64);
    assert_eq!(
        store_snapshot(&fx, store_url),
        before,
        "a refused request changed the store"
    );
    assert_eq!(fx.password_grant("cy", "cy's password").await.status, 200);
}

/// A real authlib client (the most used Python OAuth client) does
/// client_credentials with client_secret_jwt: its one-hour assertion is
/// accepted by default (it was refused over ten minutes), the token opens a
/// tile route, and a gateway with `tokens.max_assertion_lifetime = "10m"`
/// refuses the same client with `invalid_client`.
async fn case_authlib_client_secret_jwt(store_url: &str) {
    if !authlib_available() {
        return;
    }
    let fx = setup(store_url).await;
    let login = fx.login().await;
    let (id, secret) = fx.new_client(&login, json!({"scope": "tiles:read"})).await;
    let url = fx.url("/oauth/token");
    let (u, i, s) = (url.clone(), id.clone(), secret.clone());
    let r = tokio::task::spawn_blocking(move || authlib_client_credentials(&u, &i, &s, "tiles:read"))
        .await
        .unwrap();
    assert_eq!(r["ok"], true, "authlib: {r}");
    assert_eq!(r["token"]["token_type"], "Bearer", "{r}");
    assert_eq!(r["token"]["scope"], "tiles:read", "{r}");
    let token = str_of(&r["token"], "access_token");
    assert_eq!(jwt(&token).1["sub"], id.as_str());
    fx.assert_tile_ok(&token).await;
    // Again: authlib makes a fresh jti each time, so the single-use check
    // lets it through.
    let (u, i, s) = (url, id.clone(), secret.clone());
    let r = tokio::task::spawn_blocking(move || authlib_client_credentials(&u, &i, &s, "tiles:read"))
        .await
        .unwrap();
    assert_eq!(r["ok"], true, "authlib, second time: {r}");

    // The bound is the operator's (a reload applies it): at 10 minutes
    // authlib's hour is too long.
    let cfg = std::fs::read_to_string(&fx.gw.config_path).unwrap();
    let cfg = cfg.replacen(
        &format!("audience = \"{AUDIENCE}\"\n"),
        &format!("audience = \"{AUDIENCE}\"\nmax_assertion_lifetime = \"10m\"\n"),
        1,
    );
    assert!(cfg.contains("max_assertion_lifetime"));
    std::fs::write(&fx.gw.config_path, cfg).unwrap();
    fx.gw.signal("HUP");
    let start = Instant::now();
    while fx.gw.logs().matches("config reloaded").count() == 0 {
        assert!(start.elapsed() < Duration::from_secs(20), "no reload: {}", fx.gw.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let u = fx.url("/oauth/token");
    let r = tokio::task::spawn_blocking(move || authlib_client_credentials(&u, &id, &secret, "tiles:read"))
        .await
        .unwrap();
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["error"], "invalid_client", "{r}");
    assert_eq!(r["description"], "the client assertion lives too long", "{r}");
}

/// Refusals that teach: an API key sent as a token is named as one, with
/// the endpoint that exchanges it; a missing scope is named (body and
/// `WWW-Authenticate`); `/me` without a token answers as a proxied route
/// does; a wrong method on a token endpoint gets `Allow`; an org name is
/// taken once (CLI and admin API).
async fn case_refusals_say_what_to_do(store_url: &str) {
    let fx = setup(store_url).await;
    let seen = fx.up.seen.count();
    let api_key_hint = "this is an API key, not a token; exchange it at POST /v1/auth/token";

    // The API key as a bearer token and as the query token, on a tile route
    // and on /me: 401 invalid_token, the hint, never the key.
    let by_query = send(
        fx.http
            .get(fx.url(&format!("/tiles/3/4/5.pbf?access_token={}", fx.key))),
    )
    .await;
    for (what, r) in [
        ("bearer", fx.tile(&fx.key).await),
        ("query", by_query),
        ("/me", fx.me(&fx.key).await),
    ] {
        assert_error(&r, 401, "invalid_token");
        assert_eq!(r.json()["error_description"], api_key_hint, "{what}: {}", r.body);
        assert!(
            r.header("www-authenticate")
                .is_some_and(|w| w.contains("error=\"invalid_token\"")),
            "{what}: {:?}",
            r.headers
        );
        assert!(!r.body.contains(&fx.key), "{what}: the key is echoed: {}", r.body);
    }
    assert_eq!(fx.up.seen.count(), seen, "nothing reached the upstream");
    // The hint holds: the same key, exchanged, opens the tile route.
    fx.assert_tile_ok(&fx.exchange_token(&fx.key, r#"{"scope":"tiles:read"}"#).await)
        .await;

    // A token without the route's scope: 403 naming it, in the body and
    // as RFC 6750's scope attribute.
    let tiles_only = fx.exchange_token(&fx.key, r#"{"scope":"tiles:read"}"#).await;
    let r = send(fx.http.get(fx.url("/stream/x")).bearer_auth(&tiles_only)).await;
    assert_error(&r, 403, "insufficient_scope");
    assert_eq!(
        r.json()["error_description"],
        "the token lacks the scope datasets:stream this route requires",
        "{}",
        r.body
    );
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"tilegate\", error=\"insufficient_scope\", scope=\"datasets:stream\""),
        "{:?}",
        r.headers
    );

    // /me without a token: as a tile route without one.
    let me = send(fx.http.get(fx.url("/me"))).await;
    let tile = send(fx.http.get(fx.url("/tiles/3/4/5.pbf"))).await;
    for (what, r) in [("/me", &me), ("tile", &tile)] {
        assert_error(r, 401, "invalid_request");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer realm=\"tilegate\""),
            "{what}"
        );
    }

    // A wrong method on a token endpoint: 405 with Allow.
    for (method, path, allow) in [
        (reqwest::Method::GET, "/v1/auth/token", "POST"),
        (reqwest::Method::GET, "/oauth/token", "POST"),
        (reqwest::Method::PUT, "/oauth/introspect", "POST"),
        (reqwest::Method::DELETE, "/me", "GET, HEAD"),
        (reqwest::Method::POST, "/.well-known/jwks.json", "GET, HEAD"),
    ] {
        let r = send(fx.http.request(method.clone(), fx.url(path))).await;
        assert_error(&r, 405, "method_not_allowed");
        assert_eq!(r.header("allow"), Some(allow), "{method} {path}: {:?}", r.headers);
    }

    // An org name is taken once: the CLI refuses (exit 64) and says so, the
    // admin API answers 409; a name that is another org's id is refused too.
    let out = fx.gw.cli(&["org", "create", "acme"]);
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("conflict: an organization named acme already exists"),
        "{err}"
    );
    let out = fx.gw.cli(&["org", "create", &fx.org_id]);
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("is the id of the organization acme"));
    let r = fx
        .admin_json(reqwest::Method::POST, "/admin/v1/orgs", r#"{"name":"acme"}"#)
        .await;
    assert_error(&r, 409, "conflict");
    let orgs = cli_json(&fx.gw, &["org", "list", "--json"]);
    let acmes = orgs.as_array().unwrap().iter().filter(|o| o["name"] == "acme").count();
    assert_eq!(acmes, 1, "{orgs}");
}
