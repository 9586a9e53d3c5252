//! Test helpers: start the real `tilegate` binary from a TOML string in a
//! temp dir, start real upstreams on loopback, sign real JWTs.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

pub const ISS: &str = "https://idp.test";
pub const AUD: &str = "tiles-api";
pub const KID: &str = "test-key-1";
/// The test issuer's `[[issuers]]` name; the routes of [`config`] accept it
/// (`issuers = ["self", "idp"]`), it may grant every scope of the config but
/// `clients:manage`, and its tokens go upstream with organization `org-7`.
pub const IDP: &str = "idp";

/// A running gateway process; killed on drop.
pub struct Gateway {
    pub child: Child,
    pub addr: SocketAddr,
    pub admin: Option<SocketAddr>,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Gateway {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin.expect("admin listener"))
    }
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status();
    }
    /// Everything the process logged so far.
    pub fn logs(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
    /// Run a CLI subcommand against this gateway's config.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        cli(&self.config_path, self.dir.path(), args, None)
    }
    pub fn cli_stdin(&self, args: &[&str], stdin: &str) -> std::process::Output {
        cli(&self.config_path, self.dir.path(), args, Some(stdin))
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tilegate")
}

pub fn cli(config: &Path, dir: &Path, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write;
    let mut c = Command::new(bin());
    c.arg("--config")
        .arg(config)
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn");
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn tilegate");
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    } else {
        drop(child.stdin.take());
    }
    child.wait_with_output().expect("wait")
}

/// Write `toml` to a temp dir and start `tilegate serve` on it; returns once
/// the gateway logged "ready". `{DIR}` in the TOML is replaced by the temp dir.
pub fn start_gateway(toml: &str) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    start_gateway_in(dir, toml, &[])
}

pub fn start_gateway_in(dir: tempfile::TempDir, toml: &str, env: &[(&str, &str)]) -> Gateway {
    spawn_gateway(dir, toml, env, None)
}

/// [`start_gateway_in`] with the process's umask set to `umask` first (a
/// shell sets it and execs the binary).
pub fn start_gateway_with_umask(dir: tempfile::TempDir, toml: &str, umask: u32) -> Gateway {
    spawn_gateway(dir, toml, &[], Some(umask))
}

/// `tilegate serve` on `toml` (in a temp dir) that must exit by itself
/// within `limit`: its exit code and what it wrote to stderr.
pub fn serve_until_exit(toml: &str, limit: Duration) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("tilegate.toml");
    std::fs::write(&config_path, toml.replace("{DIR}", dir.path().to_str().unwrap())).unwrap();
    let mut child = Command::new(bin())
        .arg("serve")
        .arg("--config")
        .arg(&config_path)
        .current_dir(dir.path())
        .env("RUST_LOG", "info")
        .env("TILEGATE_ADMIN_TOKEN", ADMIN_TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tilegate serve");
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tilegate serve still runs after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    (status.code(), err)
}

fn spawn_gateway(dir: tempfile::TempDir, toml: &str, env: &[(&str, &str)], umask: Option<u32>) -> Gateway {
    let config_path = dir.path().join("tilegate.toml");
    std::fs::write(&config_path, toml.replace("{DIR}", dir.path().to_str().unwrap())).unwrap();
    let mut c = match umask {
        None => Command::new(bin()),
        Some(m) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("umask {m:03o} && exec \"$0\" \"$@\""))
                .arg(bin());
            c
        }
    };
    c.arg("serve").arg("--config").arg(&config_path).current_dir(dir.path());
    c.env("RUST_LOG", "info").env("TILEGATE_ADMIN_TOKEN", ADMIN_TOKEN);
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn tilegate serve");
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let log = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("\"ready\"") {
                    let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                    if let Some(t) = tx.take() {
                        let _ = t.send((
                            v["addr"].as_str().map(String::from),
                            v["admin"].as_str().map(String::from),
                        ));
                    }
                }
                log.lock().unwrap().push(line);
            }
        });
    }
    let (addr, admin) = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(a) => a,
        Err(_) => {
            let _ = child.kill();
            panic!("gateway did not become ready:\n{}", log.lock().unwrap().join("\n"));
        }
    };
    Gateway {
        child,
        addr: addr.unwrap().parse().unwrap(),
        admin: admin.filter(|a| !a.is_empty()).map(|a| a.parse().unwrap()),
        dir,
        config_path,
        log,
    }
}

pub const ADMIN_TOKEN: &str = "test-admin-credential-0123456789";

/// A test issuer: an ES256 key whose JWKS file the gateway trusts.
pub struct Issuer {
    pub pkcs8: Vec<u8>,
    pub x: String,
    pub y: String,
}

impl Issuer {
    pub fn new() -> Issuer {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref()).unwrap();
        let p = kp.public_key().as_ref().to_vec();
        Issuer {
            pkcs8: doc.as_ref().to_vec(),
            x: B64.encode(&p[1..33]),
            y: B64.encode(&p[33..65]),
        }
    }
    pub fn jwks(&self) -> String {
        serde_json::json!({"keys": [self.jwk_kid(KID)]}).to_string()
    }
    /// The public key as a JWK named `kid`.
    pub fn jwk_kid(&self, kid: &str) -> serde_json::Value {
        serde_json::json!({"kty": "EC", "crv": "P-256", "x": self.x, "y": self.y, "kid": kid, "alg": "ES256", "use": "sig"})
    }
    /// `claims` signed with this key under `kid`.
    pub fn sign_kid(&self, claims: &serde_json::Value, kid: &str) -> String {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        h.kid = Some(kid.into());
        jsonwebtoken::encode(&h, claims, &jsonwebtoken::EncodingKey::from_ec_der(&self.pkcs8)).unwrap()
    }
    /// The public key as a JWK JSON (for HS256-with-public-key attacks).
    pub fn public_bytes(&self) -> Vec<u8> {
        self.jwks().into_bytes()
    }
    pub fn sign(&self, claims: &serde_json::Value) -> String {
        self.sign_kid(claims, KID)
    }
    /// Valid claims for `scope`, living `ttl` seconds.
    pub fn claims(scope: &str, ttl: i64) -> serde_json::Value {
        let now = now();
        serde_json::json!({
            "iss": ISS, "aud": AUD, "sub": "user-42", "iat": now, "exp": now + ttl,
            "jti": format!("j-{}", rand_hex()), "org_id": "org-7", "scope": scope, "token_type": "access",
        })
    }
    pub fn token(&self, scope: &str) -> String {
        self.sign(&Self::claims(scope, 300))
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn rand_hex() -> String {
    let mut b = [0u8; 8];
    aws_lc_rs::rand::fill(&mut b).unwrap();
    hex::encode(b)
}

/// Everything an upstream saw.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    pub requests: Arc<Mutex<Vec<SeenRequest>>>,
}

#[derive(Clone, Debug)]
pub struct SeenRequest {
    pub version: String,
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, String)>,
}

impl SeenRequest {
    pub fn header(&self, n: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str())
    }
}

impl Seen {
    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
    pub fn last(&self) -> SeenRequest {
        self.requests
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("upstream saw a request")
    }
}

pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Seen,
    /// Releases the second chunk of `/chunked`.
    pub release: Arc<tokio::sync::Notify>,
    pub task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A real HTTP upstream on loopback:
/// - paths ending in `/slow` sleep 3 s; `/chunked` send one chunk, wait for `release`, send another;
/// - `/ws` upgrades to a WebSocket echo; anything else answers 200 `upstream:<path>`.
pub async fn start_upstream() -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Seen::default();
    let release = Arc::new(tokio::sync::Notify::new());
    let (s2, r2) = (seen.clone(), release.clone());
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let seen = s2.clone();
            let release = r2.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let seen = seen.clone();
                    let release = release.clone();
                    async move { Ok::<_, std::convert::Infallible>(upstream_handle(req, seen, release).await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Upstream {
        addr,
        seen,
        release,
        task,
    }
}

type UpBody = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

async fn upstream_handle(
    mut req: Request<Incoming>,
    seen: Seen,
    release: Arc<tokio::sync::Notify>,
) -> Response<UpBody> {
    seen.requests.lock().unwrap().push(SeenRequest {
        version: format!("{:?}", req.version()),
        method: req.method().to_string(),
        uri: req.uri().to_string(),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
    });
    let path = req.uri().path().to_string();
    let kind = path.rsplit('/').next().unwrap_or("");
    match kind {
        "slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Response::new(Full::new(Bytes::from_static(b"slow")).boxed())
        }
        "chunked" => {
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::convert::Infallible>>(2);
            tokio::spawn(async move {
                let _ = tx.send(Ok(Frame::data(Bytes::from_static(b"first-chunk;")))).await;
                release.notified().await;
                let _ = tx.send(Ok(Frame::data(Bytes::from_static(b"second-chunk")))).await;
            });
            let stream = tokio_stream_from(rx);
            Response::new(StreamBody::new(stream).boxed())
        }
        "ws" => {
            let key = req.headers().get("sec-websocket-key").cloned();
            let on = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                if let Ok(up) = on.await {
                    let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                        TokioIo::new(up),
                        tokio_tungstenite::tungstenite::protocol::Role::Server,
                        None,
                    )
                    .await;
                    use futures_util::{SinkExt, StreamExt};
                    let (mut tx, mut rx) = ws.split();
                    while let Some(Ok(m)) = rx.next().await {
                        if m.is_text() && tx.send(m).await.is_err() {
                            break;
                        }
                    }
                }
            });
            let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.unwrap().as_bytes());
            Response::builder()
                .status(101)
                .header("connection", "upgrade")
                .header("upgrade", "websocket")
                .header("sec-websocket-accept", accept)
                .body(Full::new(Bytes::new()).boxed())
                .unwrap()
        }
        _ => {
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let text = format!("upstream:{path}:{}", body.len());
            Response::new(Full::new(Bytes::from(text)).boxed())
        }
    }
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// A gateway config trusting the test issuer (JWKS file, named [`IDP`]) in
/// front of `upstream`.
pub fn config(upstream: &str, jwks_path: &Path, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
shutdown_grace = "10s"
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
"datasets:stream" = "s"
"datasets:refresh" = "f"
"projects:embed" = "e"
"clients:manage" = "m"
[[issuers]]
name = "{IDP}"
issuer = "{ISS}"
audiences = ["{AUD}"]
algorithms = ["ES256"]
jwks_file = "{jwks}"
scopes = ["tiles:read", "datasets:stream", "datasets:refresh", "projects:embed"]
org = "org-7"
[[upstreams]]
name = "tiles"
backends = ["{upstream}"]
connect_timeout = "1s"
request_timeout = "1s"
[[routes]]
name = "tiles"
path = "/tiles/{{z}}/{{x}}/{{y}}.pbf"
methods = ["GET"]
upstream = "tiles"
scopes = ["tiles:read"]
issuers = ["self", "{IDP}"]
cors = {{ origins = ["https://app.example"] }}
[[routes]]
name = "stream"
prefix = "/stream/"
upstream = "tiles"
scopes = ["datasets:stream"]
issuers = ["self", "{IDP}"]
[[routes]]
name = "public"
prefix = "/public/"
upstream = "tiles"
public = true
{extra}
"#,
        jwks = jwks_path.display()
    )
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// POST `body` to the admin API with the test credential; asserts a 2xx.
pub async fn admin_post(gw: &Gateway, path: &str, body: serde_json::Value) -> serde_json::Value {
    let r = http()
        .post(gw.admin_url(path))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap()
}

/// Organisation "acme" and its service account "web" (admin API).
pub async fn admin_org_and_account(gw: &Gateway) -> (serde_json::Value, serde_json::Value) {
    let org = admin_post(gw, "/admin/v1/orgs", serde_json::json!({"name": "acme"})).await;
    let sa = admin_post(
        gw,
        "/admin/v1/service-accounts",
        serde_json::json!({"org": org["id"], "name": "web"}),
    )
    .await;
    (org, sa)
}

/// User "ana" (password "correct horse") in `org` (admin API).
pub async fn admin_user_ana(gw: &Gateway, org: &serde_json::Value) -> serde_json::Value {
    admin_post(
        gw,
        "/admin/v1/users",
        serde_json::json!({"org": org["id"], "username": "ana", "password": "correct horse"}),
    )
    .await
}

/// `POST /oauth/token`, the password grant for "ana".
pub async fn password_grant_ana(gw: &Gateway) -> reqwest::Result<reqwest::Response> {
    http()
        .post(gw.url("/oauth/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "ana"),
            ("password", "correct horse"),
        ])
        .send()
        .await
}

/// A new API key with `scope` for the service account `sa` (admin API).
pub async fn admin_api_key(gw: &Gateway, sa: &serde_json::Value, scope: &str) -> String {
    let key = admin_post(
        gw,
        "/admin/v1/api-keys",
        serde_json::json!({"service_account": sa["id"], "scope": scope}),
    )
    .await;
    key["api_key"].as_str().unwrap().to_owned()
}

/// `POST /v1/auth/token` with `key`, whatever the answer.
pub async fn exchange(gw: &Gateway, key: &str) -> reqwest::Response {
    http()
        .post(gw.url("/v1/auth/token"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

/// `POST /v1/auth/token` with `key`: the access token (asserts 200).
pub async fn exchange_token(gw: &Gateway, key: &str) -> String {
    let r = exchange(gw, key).await;
    assert_eq!(r.status(), 200);
    r.json::<serde_json::Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The status of `GET /tiles/1/2/3.pbf` with `token`.
pub async fn tile_status(gw: &Gateway, token: &str) -> u16 {
    http()
        .get(gw.url("/tiles/1/2/3.pbf"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A self-signed certificate for localhost and 127.0.0.1 (openssl CLI).
pub fn self_signed(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let st = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args([
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ])
        .args(["-addext", "extendedKeyUsage=serverAuth", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    (cert, key)
}

/// A gateway listening with TLS (a self-signed certificate for localhost)
/// in front of `upstream`, trusting `issuer`; and the certificate's path.
pub async fn start_tls_gateway(upstream: &str, issuer: &Issuer) -> (Gateway, std::path::PathBuf) {
    start_tls_gateway_with(upstream, issuer, "").await
}

/// [`start_tls_gateway`] with `server_extra` added to its `[server]` section.
pub async fn start_tls_gateway_with(
    upstream: &str,
    issuer: &Issuer,
    server_extra: &str,
) -> (Gateway, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, issuer.jwks()).unwrap();
    let (cert, key) = self_signed(dir.path());
    let toml = config(upstream, &jwks, "").replacen(
        "[server]\n",
        &format!(
            "[server]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n{server_extra}",
            cert.display(),
            key.display()
        ),
        1,
    );
    let gw = tokio::task::spawn_blocking(move || start_gateway_in(dir, &toml, &[]))
        .await
        .unwrap();
    (gw, cert)
}

/// A real decoding static file server: Python's `http.server` (it decodes
/// the path and resolves dot segments before it opens the file, as nginx
/// and most tile servers do), serving `files` (relative path → contents).
pub struct StaticServer {
    child: std::process::Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl StaticServer {
    pub fn start(files: &[(&str, &str)]) -> StaticServer {
        let dir = tempfile::tempdir().unwrap();
        for (path, body) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 runs");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "http.server did not start");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        StaticServer { child, port, _dir: dir }
    }
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A JWKS endpoint on loopback whose answer the test changes: `Some(jwks)`
/// serves it, `None` answers 503. Counts requests.
pub struct JwksServer {
    pub addr: std::net::SocketAddr,
    pub body: Arc<Mutex<Option<String>>>,
    pub hits: Arc<std::sync::atomic::AtomicUsize>,
    pub task: tokio::task::JoinHandle<()>,
}

pub async fn jwks_server(addr: &str, body: Option<String>) -> JwksServer {
    let l = tokio::net::TcpListener::bind(addr).await.unwrap();
    let addr = l.local_addr().unwrap();
    let body = Arc::new(Mutex::new(body));
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (b, h) = (body.clone(), hits.clone());
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else { return };
            let (b, h) = (b.clone(), h.clone());
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = tokio::io::AsyncReadExt::read(&mut s, &mut buf).await;
                h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let current = b.lock().unwrap().clone();
                let resp = match current {
                    Some(j) => format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{j}",
                        j.len()
                    ),
                    None => "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".into(),
                };
                let _ = tokio::io::AsyncWriteExt::write_all(&mut s, resp.as_bytes()).await;
                let _ = tokio::io::AsyncWriteExt::shutdown(&mut s).await;
            });
        }
    });
    JwksServer { addr, body, hits, task }
}

/// A gateway from [`config`] in front of `upstream`, trusting `issuer`,
/// with `server_extra` added to `[server]` and `extra` appended (more
/// tables, e.g. `[limits]`).
pub async fn start_gateway_with(upstream: &str, issuer: &Issuer, server_extra: &str, extra: &str) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, issuer.jwks()).unwrap();
    let toml = config(upstream, &jwks, extra).replacen("[server]\n", &format!("[server]\n{server_extra}"), 1);
    tokio::task::spawn_blocking(move || start_gateway_in(dir, &toml, &[]))
        .await
        .unwrap()
}

/// The gateway's `/metrics` text.
pub async fn metrics_text(gw: &Gateway) -> String {
    http()
        .get(gw.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A gateway from [`config`] in front of `upstream` with `server_extra`
/// and `admin_extra` added to its `[server]` and `[admin]` sections.
pub async fn start_gateway_with_sections(upstream: &str, server_extra: &str, admin_extra: &str) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, Issuer::new().jwks()).unwrap();
    let toml = config(upstream, &jwks, "")
        .replacen("[server]\n", &format!("[server]\n{server_extra}"), 1)
        .replacen("[admin]\n", &format!("[admin]\n{admin_extra}"), 1);
    tokio::task::spawn_blocking(move || start_gateway_in(dir, &toml, &[]))
        .await
        .unwrap()
}

/// The value of one series on the admin listener's `/metrics` (`name`
/// with its labels, as exported), or 0 when it is absent.
pub async fn metric(gw: &Gateway, series: &str) -> f64 {
    let text = http()
        .get(gw.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// A client whose connections come from `ip` (another loopback address,
/// such as 127.0.0.2: a distinct client to the gateway).
pub fn http_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .local_address(ip.parse::<std::net::IpAddr>().unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Connect to `addr` from `from` (a loopback address), write `bytes` and
/// read until the gateway closes the connection (10 s at most); the bytes
/// read, empty when it closed without answering.
pub async fn raw_request_from(addr: SocketAddr, from: &str, bytes: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from.parse().unwrap(), 0)).unwrap();
    let mut s = socket.connect(addr).await.unwrap();
    // The gateway may close before reading everything (a refused
    // connection): a failed write is an answer too.
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 8192];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the gateway neither answered nor closed in 10 s");
    out
}

/// The status code of a raw HTTP/1.1 response, `None` when there is none.
pub fn raw_response_status(response: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(response).ok()?;
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}
