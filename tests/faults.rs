//! Faults: an upstream that dies mid-response, clients that send headers
//! slowly, more connections than the configured maximum, an SQLite store
//! that becomes unreadable, an external issuer's JWKS endpoint going down.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn gateway_with(extra_server: &str, upstream: &str) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, Issuer::new().jwks()).unwrap();
    let toml = config(upstream, &jwks, "").replacen("[server]\n", &format!("[server]\n{extra_server}"), 1);
    tokio::task::spawn_blocking(move || start_gateway_in(dir, &toml, &[]))
        .await
        .unwrap()
}

#[tokio::test]
async fn an_upstream_dying_mid_response_cuts_that_response_only() {
    // A raw upstream: announces 100,000 bytes, sends 10, closes.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else { return };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n0123456789")
                    .await;
                let _ = s.shutdown().await;
            });
        }
    });
    let gw = gateway_with("", &format!("http://{addr}")).await;
    let r = http().get(gw.url("/public/big")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.bytes().await.is_err(),
        "the client sees a cut response, not a short 'complete' one"
    );
    // The gateway goes on serving.
    for _ in 0..3 {
        let r = http().get(gw.url("/nothing-here")).send().await.unwrap();
        assert_eq!(r.status(), 404);
    }
}

#[tokio::test]
async fn slow_headers_are_dropped_after_the_header_read_timeout() {
    let up = start_upstream().await;
    let gw = gateway_with("header_read_timeout = \"1s\"\n", &up.url()).await;
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /public/x HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .expect("connection closed by the gateway");
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(up.seen.count(), 0);
    // Others are still served.
    assert_eq!(http().get(gw.url("/public/x")).send().await.unwrap().status(), 200);
}

/// The header-read deadline is looked at by the connection's periodic
/// check (no timer per request): a keep-alive connection whose next head
/// trickles in is still closed, after the timeout and within a quarter of
/// it more, and a head that keeps coming in time is served.
#[tokio::test]
async fn a_slow_second_head_on_a_keep_alive_connection_is_dropped_too() {
    let up = start_upstream().await;
    let gw = gateway_with("header_read_timeout = \"1s\"\n", &up.url()).await;
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /public/x HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    // A second head in time (under the timeout since the first response).
    tokio::time::sleep(Duration::from_millis(600)).await;
    s.write_all(b"GET /public/y HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let n = s.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "a head sent in time is served");
    // The third never ends.
    let started = Instant::now();
    s.write_all(b"GET /public/z HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
        .await
        .expect("connection closed by the gateway");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "closed before its timeout: {waited:?}"
    );
    assert!(waited < Duration::from_secs(3), "closed too late: {waited:?}");
    assert_eq!(up.seen.count(), 2, "the unfinished head never reached the upstream");
}

#[tokio::test]
async fn connections_over_the_maximum_are_refused_and_existing_ones_served() {
    let up = start_upstream().await;
    let gw = gateway_with("max_connections = 2\n", &up.url()).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(b"GET /public/a HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        held.push(s);
    }
    // A third connection is closed at once, without a response.
    let mut third = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let _ = third.write_all(b"GET /public/b HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut buf = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(3), third.read_to_end(&mut buf))
        .await
        .expect("refused promptly");
    assert!(r.is_err() || buf.is_empty(), "no response on a refused connection");
    // The held connections keep being served.
    for s in held.iter_mut() {
        s.write_all(b"GET /public/c HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    }
    let m = http()
        .get(gw.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("tilegate_connections_refused_total 1"), "{m}");
}

async fn admin_get(gw: &Gateway, path: &str) -> Value {
    let r = http()
        .get(gw.admin_url(path))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap()
}

/// Overwrites a file in place (same inode, so the gateway's open
/// connections see the new content).
fn overwrite(path: &std::path::Path, bytes: &[u8]) {
    use std::io::{Seek, Write};
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(0).unwrap();
    f.seek(std::io::SeekFrom::Start(0)).unwrap();
    f.write_all(bytes).unwrap();
    f.sync_all().unwrap();
}

/// Zeroes SQLite's shared-memory WAL index, so every connection rebuilds it
/// from the files on its next read instead of trusting pages it cached.
fn reset_wal_index(db: &std::path::Path) {
    let shm = db.with_extension("db-shm");
    if let Ok(m) = std::fs::metadata(&shm) {
        overwrite(&shm, &vec![0u8; m.len() as usize]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_unreadable_proxying_goes_on_token_endpoints_answer_503_then_recover() {
    use sqlx::Connection;
    let up = start_upstream().await;
    let gw = gateway_with("", &up.url()).await;
    let (_org, sa) = admin_org_and_account(&gw).await;
    let key = admin_api_key(&gw, &sa, "tiles:read").await;
    // A second key, never used: not in the secret cache when the store goes.
    let cold = admin_api_key(&gw, &sa, "tiles:read").await;
    let used = exchange_token(&gw, &key).await;
    assert_eq!(tile_status(&gw, &used).await, 200);
    // Minted before the outage, first shown to the proxy during it: its
    // verification cannot come from the cache.
    let unused = exchange_token(&gw, &key).await;
    let keys_before = admin_get(&gw, "/admin/v1/api-keys").await;

    // Fold the WAL into the main file, keep a copy, then replace the file's
    // content with something that is not a database.
    let db = gw.dir.path().join("tilegate.db");
    let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    let saved = std::fs::read(&db).unwrap();
    overwrite(&db, &b"this is not an SQLite database. ".repeat(saved.len() / 32 + 1));
    overwrite(&db.with_extension("db-wal"), b"");
    reset_wal_index(&db);

    // Verification is local: both tokens open routes.
    assert_eq!(tile_status(&gw, &used).await, 200);
    assert_eq!(tile_status(&gw, &unused).await, 200);
    // A key in the secret cache (`cache.secret_ttl`) still exchanges; what
    // needs the store answers 503 JSON with Retry-After.
    assert_eq!(exchange(&gw, &key).await.status(), 200);
    let r = exchange(&gw, &cold).await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("retry-after").is_some());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    let r = http()
        .post(gw.url("/oauth/token"))
        .form(&[("grant_type", "password"), ("username", "nobody"), ("password", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(http().get(gw.admin_url("/readyz")).send().await.unwrap().status(), 503);
    assert_eq!(http().get(gw.admin_url("/healthz")).send().await.unwrap().status(), 200);

    // The file comes back: everything recovers, and nothing was changed.
    overwrite(&db, &saved);
    reset_wal_index(&db);
    let start = Instant::now();
    loop {
        let r = exchange(&gw, &cold).await;
        if r.status() == 200 {
            break;
        }
        assert_eq!(r.status(), 503, "only 503 while recovering");
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "token endpoint did not recover"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(http().get(gw.admin_url("/readyz")).send().await.unwrap().status(), 200);
    let mut after = admin_get(&gw, "/admin/v1/api-keys").await;
    let mut before = keys_before;
    for v in [&mut before, &mut after] {
        for k in v.as_array_mut().into_iter().flatten() {
            k.as_object_mut().unwrap().remove("last_used_at");
        }
    }
    assert_eq!(before.as_array().map(Vec::len), Some(2), "{before}");
    assert_eq!(before, after);
    assert_eq!(tile_status(&gw, &exchange_token(&gw, &key).await).await, 200);
    let logs = gw.logs();
    assert!(!logs.contains(&key) && !logs.contains(&unused));
}

fn sign_kid(issuer: &Issuer, kid: &str) -> String {
    issuer.sign_kid(&Issuer::claims("tiles:read", 300), kid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_endpoint_going_down_keeps_the_last_good_keys() {
    let (k1, k2) = (Issuer::new(), Issuer::new());
    let server = jwks_server("127.0.0.1:0", Some(json!({"keys": [k1.jwk_kid("k1")]}).to_string())).await;
    let up = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let unused = dir.path().join("unused.json");
    let toml = config(&up.url(), &unused, "").replace(
        &format!("jwks_file = \"{}\"", unused.display()),
        &format!("jwks_url = \"http://{}/jwks\"\njwks_refresh = \"1s\"", server.addr),
    );
    assert!(toml.contains("jwks_url"));
    let gw = tokio::task::spawn_blocking(move || start_gateway_in(dir, &toml, &[]))
        .await
        .unwrap();
    assert_eq!(tile_status(&gw, &sign_kid(&k1, "k1")).await, 200);

    // The endpoint fails (503), then disappears (connection refused); the
    // gateway keeps refreshing, and keeps k1 through both.
    *server.body.lock().unwrap() = None;
    let hits = server.hits.load(std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        server.hits.load(std::sync::atomic::Ordering::SeqCst) > hits,
        "the gateway asked again while the endpoint failed"
    );
    assert_eq!(
        tile_status(&gw, &sign_kid(&k1, "k1")).await,
        200,
        "a new token, so no cache"
    );
    server.task.abort();
    let _ = server.task.await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(tile_status(&gw, &sign_kid(&k1, "k1")).await, 200);
    // A key the gateway never saw stays refused (401, not a 5xx).
    assert_eq!(tile_status(&gw, &sign_kid(&k2, "k2")).await, 401);
    assert!(gw.logs().contains("keeping the last good keys"), "{}", gw.logs());

    // Back with a rotated set: the new key is learnt, the old one dropped.
    let server = jwks_server(
        &server.addr.to_string(),
        Some(json!({"keys": [k2.jwk_kid("k2")]}).to_string()),
    )
    .await;
    let start = Instant::now();
    while tile_status(&gw, &sign_kid(&k2, "k2")).await != 200 {
        assert!(start.elapsed() < Duration::from_secs(10), "the new key was not fetched");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(tile_status(&gw, &sign_kid(&k1, "k1")).await, 401);
    assert!(server.hits.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    server.task.abort();
}

/// `TOKIO_WORKER_THREADS=1` (the per-core benchmark setting) runs the
/// gateway on tokio's current-thread scheduler: proxying, token checks,
/// an exchange (signing) and a password login (argon2 on the blocking
/// pool) all work there too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_serves_everything_on_the_current_thread_scheduler() {
    let up = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    let issuer = Issuer::new();
    std::fs::write(&jwks, issuer.jwks()).unwrap();
    // Generous upstream timeouts: 200 requests arrive at once with a new
    // token, each verifies it (no single-flight), and the one thread of a
    // debug build is busy long enough for 1 s connect timeouts to fire on
    // some of their upstream connects. This test is about the scheduler,
    // not about latency.
    let toml = config(&up.url(), &jwks, "")
        .replace("connect_timeout = \"1s\"", "connect_timeout = \"20s\"")
        .replace("request_timeout = \"1s\"", "request_timeout = \"20s\"");
    let gw = tokio::task::spawn_blocking(move || start_gateway_in(dir, &toml, &[("TOKIO_WORKER_THREADS", "1")]))
        .await
        .unwrap();
    assert_eq!(tile_status(&gw, &issuer.token("tiles:read")).await, 200);
    assert_eq!(tile_status(&gw, &issuer.token("datasets:stream")).await, 403);
    let (org, sa) = admin_org_and_account(&gw).await;
    admin_user_ana(&gw, &org).await;
    let key = admin_api_key(&gw, &sa, "tiles:read").await;
    let token = exchange_token(&gw, &key).await;
    assert_eq!(tile_status(&gw, &token).await, 200);
    assert_eq!(password_grant_ana(&gw).await.unwrap().status(), 200);
    // Many concurrent requests on the one thread.
    let tok = issuer.token("tiles:read");
    let all = futures_util::future::join_all((0..200).map(|_| tile_status(&gw, &tok))).await;
    assert!(all.iter().all(|s| *s == 200), "{all:?}");
}
