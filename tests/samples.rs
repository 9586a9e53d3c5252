//! The app-backend samples of `examples/backends/` (Python, Node, Go), each
//! run as a real process against the real gateway on loopback: its `/token`
//! (GET and POST) hands out a token that opens a tile route (200), its
//! answers and its output never contain the API key, and a key the gateway
//! refuses becomes a 502 with an OAuth-style error body. A POST body's
//! `tiles` asks for a narrowed grant: within the key's ceiling the token
//! carries it, wider is the gateway's 403 `tiles_exceeded` passed on (no
//! token), and a body that is not JSON is the sample's own 400.
//!
//! A language whose toolchain is missing is skipped with a note, unless `CI`
//! is set (then it fails: scripts/test.sh installs Go from Debian's packages).

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use common::*;
use serde_json::{json, Value};

fn samples_dir(lang: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/backends")
        .join(lang)
}

/// Whether `program` runs; if not, a skip note, or a failure under `CI`.
fn toolchain(program: &str, version_arg: &str) -> bool {
    let ok = Command::new(program)
        .arg(version_arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but `{program}` is missing: scripts/test.sh installs it"
        );
        eprintln!("note: `{program}` is not installed; skipping this sample's test");
    }
    ok
}

/// A sample backend process; killed on drop.
struct Sample {
    child: Child,
    url: String,
    output: Arc<Mutex<String>>,
}

impl Drop for Sample {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sample {
    /// Everything the process wrote to stdout and stderr so far.
    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }
}

/// Start `program args` in `dir` against `gateway` with `api_key`, on a port
/// it picks (`PORT=0`); returns once it printed `listening on <url>`.
fn start_sample(program: &Path, args: &[&str], dir: &Path, gateway: &str, api_key: &str) -> Sample {
    let mut c = Command::new(program);
    c.args(args)
        .current_dir(dir)
        .env("TILEGATE_URL", gateway)
        .env("TILEGATE_API_KEY", api_key)
        .env("PORT", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Loopback is loopback: no proxy from the environment.
    for v in [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ] {
        c.env_remove(v);
    }
    let mut child = c.spawn().unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
    let output = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let out = output.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("listening on ") {
                let _ = tx.send(url.trim().to_owned());
            }
            let mut o = out.lock().unwrap();
            o.push_str(&line);
            o.push('\n');
        }
    });
    let mut stderr = child.stderr.take().unwrap();
    let err = output.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            err.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let mut sample = Sample {
        child,
        url: String::new(),
        output,
    };
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(url) => sample.url = url,
        Err(_) => panic!("{} did not start:\n{}", program.display(), sample.output()),
    }
    sample
}

async fn token_request(sample: &Sample, method: reqwest::Method) -> (u16, String, String, String) {
    let r = http()
        .request(method, format!("{}/token", sample.url))
        .send()
        .await
        .unwrap();
    let header = |h: &str| {
        r.headers()
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (ct, cc) = (header("content-type"), header("cache-control"));
    (r.status().as_u16(), ct, cc, r.text().await.unwrap())
}

/// POST `body` (raw) to the sample's `/token`: (status, parsed body).
async fn token_post(sample: &Sample, body: &str) -> (u16, Value) {
    let r = http()
        .post(format!("{}/token", sample.url))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status} {text:?}: {e}"));
    (status, v)
}

/// The payload of a JWT (the gateway signed it; the test only reads it).
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap()
}

/// A sample whose key has a tile-grant ceiling: it forwards the browser's
/// `tiles` and the gateway narrows or refuses.
async fn check_narrowing(gw: &Gateway, sa: &Value, start: &impl Fn(&str, &str) -> Sample) {
    let ceiling = json!({"maxzoom": 12, "bounds": [[-10.0, 35.0, 5.0, 44.0]], "layers": ["basemap"]});
    let key = admin_post(
        gw,
        "/admin/v1/api-keys",
        json!({"service_account": sa["id"], "scope": "tiles:read", "tiles": ceiling}),
    )
    .await["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let gateway = gw.url("");
    let sample = tokio::task::block_in_place(|| start(&gateway, &key));

    // No body, an empty object: the key's whole grant.
    for body in ["", "{}"] {
        let (status, v) = token_post(&sample, body).await;
        assert_eq!(status, 200, "{body:?}: {v}");
        assert_eq!(
            claims(v["access_token"].as_str().unwrap())["tiles"],
            ceiling,
            "{body:?}"
        );
    }
    // Narrower: the token carries the narrowed grant (layers from the key).
    let (status, v) = token_post(
        &sample,
        r#"{"tiles": {"minzoom": 2, "maxzoom": 8, "bounds": [[-9.5, 36, 3.5, 43.5]]}}"#,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let token = v["access_token"].as_str().unwrap();
    assert_eq!(
        claims(token)["tiles"],
        json!({"minzoom": 2, "maxzoom": 8, "bounds": [[-9.5, 36.0, 3.5, 43.5]], "layers": ["basemap"]})
    );
    assert!(!v.to_string().contains(&key));
    // Wider than the ceiling: the gateway's refusal, passed on; no token.
    for wider in [
        r#"{"tiles": {"maxzoom": 14}}"#,
        r#"{"tiles": {"bounds": [[-20, 35, 5, 44]]}}"#,
        r#"{"tiles": {"layers": ["basemap", "poi"]}}"#,
    ] {
        let (status, v) = token_post(&sample, wider).await;
        assert_eq!(status, 403, "{wider}: {v}");
        assert_eq!(v["error"], "tiles_exceeded", "{wider}: {v}");
        assert!(v.get("access_token").is_none(), "{v}");
    }
    // Not a grant: the gateway's 400 invalid_tiles; not JSON: the sample's 400.
    let (status, v) = token_post(&sample, r#"{"tiles": {"minzoom": 9, "maxzoom": 3}}"#).await;
    assert_eq!((status, v["error"].as_str()), (400, Some("invalid_tiles")), "{v}");
    for bad in ["not json", "[1]", r#"{"tiles": [1, 2]}"#] {
        let (status, v) = token_post(&sample, bad).await;
        assert_eq!(
            (status, v["error"].as_str()),
            (400, Some("invalid_request")),
            "{bad}: {v}"
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let out = sample.output();
    assert!(!out.contains(&key), "the API key was logged:\n{out}");
}

/// The whole check for one sample: `start(gateway, key)` starts it.
async fn check_sample(start: impl Fn(&str, &str) -> Sample) {
    let up = start_upstream().await;
    let gw = start_gateway_with(&up.url(), &Issuer::new(), "", "").await;
    let (_, sa) = admin_org_and_account(&gw).await;
    let key = admin_api_key(&gw, &sa, "tiles:read").await;
    let gateway = gw.url("");
    let sample = tokio::task::block_in_place(|| start(&gateway, &key));

    let mut tokens = Vec::new();
    for method in [reqwest::Method::GET, reqwest::Method::POST] {
        let (status, ct, cc, body) = token_request(&sample, method.clone()).await;
        assert_eq!(status, 200, "{method} /token: {body}");
        assert!(ct.starts_with("application/json"), "{ct}");
        assert_eq!(cc, "no-store");
        assert!(!body.contains(&key), "the API key reached the browser: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["token_type"], "Bearer", "{body}");
        let ttl = v["expires_in"].as_i64().unwrap();
        assert!((1..=600).contains(&ttl), "{body}");
        let token = v["access_token"].as_str().unwrap().to_owned();
        // The token opens the tile route; without it the route is closed.
        assert_eq!(tile_status(&gw, &token).await, 200, "{method}");
        let seen = up.seen.last();
        assert_eq!(seen.uri, "/tiles/1/2/3.pbf");
        assert!(seen.headers.iter().all(|(_, v)| !v.contains(&token)));
        tokens.push(token);
    }
    assert_ne!(tokens[0], tokens[1], "every /token call is a new exchange");
    assert_eq!(tile_status(&gw, "not-a-token").await, 401);
    let r = http().get(format!("{}/other", sample.url)).send().await.unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());

    // A key the gateway refuses: 502 with an error body, still no key in it.
    let bad_key = format!("{key}x");
    let refused = tokio::task::block_in_place(|| start(&gateway, &bad_key));
    let (status, ct, _, body) = token_request(&refused, reqwest::Method::POST).await;
    assert_eq!(status, 502, "{body}");
    assert!(ct.starts_with("application/json"), "{ct}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"], "token_unavailable", "{body}");
    assert_eq!(v["error_description"], "tilegate answered 401", "{body}");
    assert!(!body.contains(&key) && v.get("access_token").is_none(), "{body}");

    // Neither process wrote its key anywhere.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for (s, k) in [(&sample, &key), (&refused, &bad_key)] {
        let out = s.output();
        assert!(!out.contains(k.as_str()), "the API key was logged:\n{out}");
        assert!(!out.contains(&key), "the API key was logged:\n{out}");
    }

    check_narrowing(&gw, &sa, &start).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sample_trades_the_key_for_a_working_token() {
    if !toolchain("python3", "--version") {
        return;
    }
    check_sample(|gateway, key| {
        start_sample(
            Path::new("python3"),
            &["server.py"],
            &samples_dir("python"),
            gateway,
            key,
        )
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_sample_trades_the_key_for_a_working_token() {
    if !toolchain("node", "--version") {
        return;
    }
    check_sample(|gateway, key| start_sample(Path::new("node"), &["server.mjs"], &samples_dir("node"), gateway, key))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_sample_trades_the_key_for_a_working_token() {
    if !toolchain("go", "version") {
        return;
    }
    // Build once, offline (standard library only), then run the binary.
    let out = tempfile::tempdir().unwrap();
    let exe = out.path().join("backend");
    let build = tokio::task::spawn_blocking({
        let exe = exe.clone();
        move || {
            Command::new("go")
                .args(["build", "-o"])
                .arg(&exe)
                .arg(".")
                .current_dir(samples_dir("go"))
                .env("GOTOOLCHAIN", "local")
                .env("GOPROXY", "off")
                .env("GOFLAGS", "-mod=mod")
                .output()
                .expect("go build")
        }
    })
    .await
    .unwrap();
    assert!(
        build.status.success(),
        "go build: {}",
        String::from_utf8_lossy(&build.stderr)
    );
    check_sample(|gateway, key| start_sample(&exe, &[], &samples_dir("go"), gateway, key)).await;
}
