//! Hostile and broken bodies, through the real binary: request bodies
//! trickled slower than `server.body_read_timeout` (token endpoints and
//! proxied uploads), an upstream that stalls in the middle of its response
//! body (`upstreams[].body_read_timeout`), forms with thousands of distinct
//! parameters, failed credentials on every endpoint that checks one (the
//! failure throttle), and early answers (413, 401) that must reach a client
//! that is still sending its body (lingering close, seen by Python's
//! urllib).

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Send `head` and then `body` one byte at a time, `every` apart, while
/// reading the answer; stops writing once the gateway answered or closed.
/// Returns everything read until the gateway closed the connection (or
/// `give_up` passed: then `None`).
async fn trickle(addr: SocketAddr, head: &str, body: &[u8], every: Duration, give_up: Duration) -> Option<String> {
    let s = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    wr.write_all(head.as_bytes()).await.unwrap();
    let body = body.to_vec();
    let writer = tokio::spawn(async move {
        for b in body {
            if wr.write_all(&[b]).await.is_err() {
                return;
            }
            tokio::time::sleep(every).await;
        }
        // Keep the write side open: the client is slow, not finished.
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(wr);
    });
    let mut out = Vec::new();
    let read = tokio::time::timeout(give_up, async {
        let mut buf = [0u8; 4096];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    writer.abort();
    read.ok().map(|_| String::from_utf8_lossy(&out).into_owned())
}

/// Status line and JSON body of a raw HTTP/1.1 answer.
fn parse_answer(raw: &str) -> (u16, Value, String) {
    let status = raw.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
    (
        status,
        serde_json::from_str(body.trim()).unwrap_or(Value::Null),
        head.to_ascii_lowercase(),
    )
}

/// What an upstream saw of each request body: `Ok(bytes)` when it arrived
/// whole, `Err(bytes so far)` when the request was aborted.
#[derive(Clone, Default)]
struct Bodies(Arc<Mutex<Vec<Result<usize, usize>>>>);

/// An upstream that reads each request body to its end (recording how it
/// ended) and then answers 200 `got:<len>`.
async fn recording_upstream() -> (String, Bodies) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let bodies = Bodies::default();
    let b = bodies.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let b = b.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let b = b.clone();
                    async move {
                        let mut body = req.into_body();
                        let mut n = 0;
                        let end = loop {
                            match body.frame().await {
                                None => break Ok(n),
                                Some(Ok(f)) => n += f.data_ref().map_or(0, |d| d.len()),
                                Some(Err(_)) => break Err(n),
                            }
                        };
                        b.0.lock().unwrap().push(end);
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from(format!(
                            "got:{n}"
                        )))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    (format!("http://{addr}"), bodies)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_body_on_a_token_endpoint_gets_408_and_the_connection_closes() {
    let up = start_upstream().await;
    let gw = start_gateway_with(&up.url(), &Issuer::new(), "body_read_timeout = \"1s\"\n", "").await;
    let head = "POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n";
    // One byte every 2 s against a 1 s inactivity timeout.
    let raw = trickle(
        gw.addr,
        head,
        b"grant_type=client_credentials",
        Duration::from_secs(2),
        Duration::from_secs(20),
    )
    .await
    .expect("the gateway answered and closed the connection");
    let (status, body, head) = parse_answer(&raw);
    assert_eq!(status, 408, "{raw}");
    assert_eq!(body["error"], "request_timeout", "{raw}");
    assert!(head.contains("connection: close"), "{raw}");
    assert!(metrics_text(&gw)
        .await
        .contains("tilegate_request_body_timeouts_total 1"));

    // A slow but moving body (a byte every 300 ms, 3.6 s in all) is read
    // to its end and answered on its merits.
    let form = b"grant_type=x";
    let head = format!(
        "POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        form.len()
    );
    let raw = trickle(
        gw.addr,
        &head,
        form,
        Duration::from_millis(300),
        Duration::from_secs(20),
    )
    .await
    .expect("answered");
    let (status, body, _) = parse_answer(&raw);
    assert_eq!(status, 400, "{raw}");
    assert_eq!(body["error"], "unsupported_grant_type", "{raw}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_upload_aborts_the_upstream_request_and_gets_408() {
    let (upstream, bodies) = recording_upstream().await;
    // The upstream's request_timeout (1 s in the test config) does not run
    // while the gateway waits on the client: the client's stall is a 408,
    // and a slow but moving upload is not cut off.
    let gw = start_gateway_with(&upstream, &Issuer::new(), "body_read_timeout = \"1s\"\n", "").await;
    let head = "POST /public/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n";
    let raw = trickle(
        gw.addr,
        head,
        b"abcdefgh",
        Duration::from_secs(2),
        Duration::from_secs(20),
    )
    .await
    .expect("the gateway answered and closed the connection");
    let (status, body, head) = parse_answer(&raw);
    assert_eq!(status, 408, "{raw}");
    assert_eq!(body["error"], "request_timeout", "{raw}");
    assert!(head.contains("connection: close"), "{raw}");
    // The upstream saw its request begin and then break off.
    let seen = bodies.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(matches!(seen[0], Err(n) if n < 100), "{seen:?}");

    let data = b"slow-but-moving";
    let head = format!(
        "POST /public/upload HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        data.len()
    );
    let raw = trickle(
        gw.addr,
        &head,
        data,
        Duration::from_millis(300),
        Duration::from_secs(20),
    )
    .await
    .expect("answered");
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(raw.ends_with(&format!("got:{}", data.len())), "{raw}");
    assert_eq!(bodies.0.lock().unwrap().last(), Some(&Ok(data.len())));
}

/// A raw upstream that answers at once, before reading the request body:
/// a chunked `hello` and then nothing, while it keeps reading; it reports
/// when the gateway closes the connection.
async fn early_answering_upstream() -> (String, tokio::sync::mpsc::Receiver<usize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else { return };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let mut read = 0;
                let mut answered = false;
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => read += n,
                    }
                    if !answered {
                        answered = true;
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
                            .await;
                    }
                }
                let _ = tx.send(read).await;
            });
        }
    });
    (format!("http://{addr}"), rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_upload_whose_response_has_started_drops_the_connection() {
    let (upstream, mut closed) = early_answering_upstream().await;
    let gw = start_gateway_with(&upstream, &Issuer::new(), "body_read_timeout = \"1s\"\n", "").await;
    let head = "POST /public/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n";
    let raw = trickle(
        gw.addr,
        head,
        b"abcdefgh",
        Duration::from_secs(2),
        Duration::from_secs(20),
    )
    .await
    .expect("the gateway closed the connection");
    // The response had begun: it is cut off (no last chunk), not replaced.
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(raw.contains("hello"), "{raw}");
    assert!(
        !raw.ends_with("0\r\n\r\n"),
        "the response must not look complete: {raw:?}"
    );
    // And the upstream request was aborted.
    tokio::time::timeout(Duration::from_secs(10), closed.recv())
        .await
        .expect("the gateway closed the upstream connection")
        .unwrap();
    assert!(metrics_text(&gw)
        .await
        .contains("tilegate_request_body_timeouts_total 1"));
}

/// A raw upstream: `/stall` sends a head announcing 1,000 bytes and 10 of
/// them, then nothing (it reports when the gateway closes that connection);
/// `/drip` sends 10 bytes one every 300 ms; anything else gets `ok`.
/// Counts connections.
async fn stalling_upstream() -> (String, Arc<AtomicUsize>, tokio::sync::mpsc::Receiver<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let (closed_tx, closed_rx) = tokio::sync::mpsc::channel(4);
    let c = conns.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else { return };
            c.fetch_add(1, Ordering::SeqCst);
            let closed_tx = closed_tx.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut have = Vec::new();
                loop {
                    let Ok(n) = s.read(&mut buf).await else { return };
                    if n == 0 {
                        return;
                    }
                    have.extend_from_slice(&buf[..n]);
                    let Some(end) = have.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&have[..end]).into_owned();
                    have.drain(..end + 4);
                    if head.contains(" /public/stall ") {
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n0123456789")
                            .await;
                        // Nothing more; wait for the gateway to hang up.
                        let mut sink = [0u8; 64];
                        let gone = tokio::time::timeout(Duration::from_secs(30), async {
                            loop {
                                match s.read(&mut sink).await {
                                    Ok(0) | Err(_) => return,
                                    Ok(_) => {}
                                }
                            }
                        })
                        .await;
                        if gone.is_ok() {
                            let _ = closed_tx.send(()).await;
                        }
                        return;
                    } else if head.contains(" /public/drip ") {
                        let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n").await;
                        for b in b"0123456789" {
                            tokio::time::sleep(Duration::from_millis(300)).await;
                            let _ = s.write_all(&[*b]).await;
                        }
                    } else {
                        let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), conns, closed_rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upstream_body_is_cut_off_and_the_gateway_keeps_serving() {
    let (upstream, conns, mut closed) = stalling_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, Issuer::new().jwks()).unwrap();
    let toml = config(&upstream, &jwks, "").replacen(
        "request_timeout = \"1s\"\n",
        "request_timeout = \"1s\"\nbody_read_timeout = \"1s\"\n",
        1,
    );
    assert!(toml.contains("body_read_timeout"));
    let gw = tokio::task::spawn_blocking(move || start_gateway_in(dir, &toml, &[]))
        .await
        .unwrap();

    let r = http().get(gw.url("/public/stall")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.bytes().await.is_err(),
        "the client sees a cut response, not a short 'complete' one"
    );
    // The upstream connection was discarded (closed by the gateway), not
    // pooled.
    tokio::time::timeout(Duration::from_secs(10), closed.recv())
        .await
        .expect("the gateway closed the stalled upstream connection")
        .unwrap();
    assert!(gw.logs().contains("upstream response body stalled"), "{}", gw.logs());
    let m = metrics_text(&gw).await;
    assert!(
        m.contains("tilegate_upstream_body_timeouts_total{upstream=\"tiles\"} 1"),
        "{m}"
    );

    // The gateway goes on serving, over a new upstream connection.
    let r = http().get(gw.url("/public/ok")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok");
    assert_eq!(conns.load(Ordering::SeqCst), 2);
    // A slow but moving body (a byte every 300 ms, 3 s in all) arrives whole.
    let r = http().get(gw.url("/public/drip")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "0123456789");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_of_many_distinct_parameters_are_400_and_tiles_stay_served() {
    let up = start_upstream().await;
    let issuer = Issuer::new();
    let gw = start_gateway_with(&up.url(), &issuer, "", "").await;
    // About 64 KiB of distinct keys: the audit's quadratic case.
    let mut big = String::new();
    let mut i = 0;
    while big.len() < 64 * 1024 - 16 {
        big.push_str(&format!("k{i}=&"));
        i += 1;
    }
    assert!(i > 9000);
    let big = Bytes::from(big);

    let expect_400 = |r: reqwest::Response| async move {
        assert_eq!(r.status(), 400);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "invalid_request", "{v}");
        assert!(v["error_description"].as_str().unwrap().contains("parameters"), "{v}");
    };
    // Four clients, each a bounded number of big forms at the three form
    // endpoints, while tiles are requested.
    let attackers = (0..4).map(|c| {
        let url = gw.url(
            [
                "/oauth/introspect",
                "/oauth/token",
                "/oauth/revoke",
                "/oauth/introspect",
            ][c],
        );
        let big = big.clone();
        async move {
            for _ in 0..15 {
                let r = http()
                    .post(&url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("authorization", "Bearer not-a-token")
                    .body(big.clone())
                    .send()
                    .await
                    .unwrap();
                expect_400(r).await;
            }
        }
    });
    let token = issuer.token("tiles:read");
    let tiles = async {
        let mut served = 0;
        for _ in 0..30 {
            assert_eq!(tile_status(&gw, &token).await, 200);
            served += 1;
        }
        served
    };
    let (_, served) = tokio::join!(futures_util::future::join_all(attackers), tiles);
    assert_eq!(served, 30);

    // The cap: 64 parameters are read, 65 are refused.
    let form = |n: usize| (0..n).map(|i| format!("p{i}=v")).collect::<Vec<_>>().join("&");
    let r = http()
        .post(gw.url("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("grant_type=nope&{}", form(63)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "unsupported_grant_type");
    let r = http()
        .post(gw.url("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("grant_type=nope&{}", form(64)))
        .send()
        .await
        .unwrap();
    expect_400(r).await;
    // JSON bodies: at most 64 members too.
    let members: serde_json::Map<String, Value> = (0..65).map(|i| (format!("m{i}"), Value::from(i))).collect();
    let r = http()
        .post(gw.url("/v1/auth/token"))
        .bearer_auth("tgk_whatever")
        .json(&members)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(v["error_description"].as_str().unwrap().contains("members"), "{v}");
}

/// A client whose connections come from `ip` (another loopback address,
/// so each case has its own failure counter).
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_that_checks_a_secret_counts_failures_toward_429() {
    let up = start_upstream().await;
    let gw = start_gateway_with(
        &up.url(),
        &Issuer::new(),
        "",
        "[limits]\nauth_failures_per_minute = 3\n",
    )
    .await;
    let minted = gw.cli(&["token", "mint", "--scope", "tiles:read", "--ttl", "10m"]);
    assert!(minted.status.success(), "{}", String::from_utf8_lossy(&minted.stderr));
    let own = String::from_utf8(minted.stdout).unwrap().trim().to_owned();
    let (org, _) = admin_org_and_account(&gw).await;
    admin_user_ana(&gw, &org).await;
    let login: Value = password_grant_ana(&gw).await.unwrap().json().await.unwrap();
    let login = login["access_token"].as_str().unwrap().to_owned();
    let generator: Value = http()
        .get(gw.url("/oauth/v1/user/generator-token"))
        .bearer_auth(&login)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let generator = generator["token"].as_str().unwrap().to_owned();

    type Case = (
        &'static str,
        &'static str,
        Box<dyn Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder>,
    );
    let form = |c: &reqwest::Client, url: &str| {
        c.post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("token=whatever")
    };
    let cases: Vec<Case> = vec![
        // (source address, path, a request with a bad credential)
        (
            "127.0.0.2",
            "/oauth/introspect",
            Box::new(move |c, u| form(c, u).bearer_auth("eyJhbGciOiJFUzI1NiJ9.e30.bad")),
        ),
        (
            "127.0.0.3",
            "/oauth/revoke",
            Box::new(move |c, u| form(c, u).bearer_auth("eyJhbGciOiJFUzI1NiJ9.e30.bad")),
        ),
        (
            "127.0.0.4",
            "/oauth/introspect",
            Box::new(move |c, u| form(c, u).basic_auth("tgc_nobody", Some("wrong"))),
        ),
        (
            "127.0.0.5",
            "/oauth/revoke",
            Box::new(move |c, u| form(c, u).header("authorization", "Basic !!!not-base64")),
        ),
        (
            "127.0.0.6",
            "/me",
            Box::new(|c, u| c.get(u).bearer_auth("eyJhbGciOiJFUzI1NiJ9.e30.bad")),
        ),
        (
            "127.0.0.7",
            "/v1/clients",
            Box::new(|c, u| c.get(u).bearer_auth("eyJhbGciOiJFUzI1NiJ9.e30.bad")),
        ),
        (
            "127.0.0.8",
            "/oauth/v1/user/tokens",
            Box::new(|c, u| c.get(u).bearer_auth("tgg_not-a-generator-token")),
        ),
    ];
    for (ip, path, bad) in &cases {
        let c = client_from(ip);
        let url = gw.url(path);
        for i in 0..3 {
            let r = bad(&c, &url).send().await.unwrap();
            assert_eq!(r.status(), 401, "{path} from {ip}, failure {i}");
        }
        let r = bad(&c, &url).send().await.unwrap();
        assert_eq!(r.status(), 429, "{path} from {ip}: the 4th failure");
        assert!(r.headers().get("retry-after").is_some());
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "too_many_requests");
    }
    // A blocked address is refused before its credential is looked at: a
    // good one gets 429 too.
    let blocked = |ip| client_from(ip);
    let r = form(&blocked("127.0.0.2"), &gw.url("/oauth/introspect"))
        .bearer_auth(&own)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let r = form(&blocked("127.0.0.3"), &gw.url("/oauth/revoke"))
        .bearer_auth(&own)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let r = blocked("127.0.0.8")
        .get(gw.url("/oauth/v1/user/tokens"))
        .bearer_auth(&generator)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    // Other addresses are not affected.
    let r = form(&http(), &gw.url("/oauth/introspect"))
        .bearer_auth(&own)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http()
        .get(gw.url("/oauth/v1/user/tokens"))
        .bearer_auth(&generator)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A request without any credential is a 401 that does not count.
    let c = client_from("127.0.0.9");
    for _ in 0..5 {
        let r = form(&c, &gw.url("/oauth/introspect")).send().await.unwrap();
        assert_eq!(r.status(), 401);
    }
}

const URLLIB_CLIENT: &str = r#"
import json, sys, urllib.request, urllib.error

def send(url, body, headers, chunked):
    if chunked:
        step = 64 * 1024
        data = (body[i:i + step] for i in range(0, len(body), step))
    else:
        data = body
    req = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return [r.status, r.read().decode()]
    except urllib.error.HTTPError as e:
        return [e.code, e.read().decode()]
    except Exception as e:
        return [type(e).__name__ + ": " + str(e), ""]

out = []
for c in json.load(sys.stdin):
    out.append(send(c["url"], b"x" * c["size"], c["headers"], c["chunked"]))
print(json.dumps(out))
"#;

/// POST bodies with Python's urllib, which sends the whole body before it
/// reads the answer; `[status, body]` per case.
fn urllib(cases: &Value) -> Vec<Value> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("python3")
        .args(["-c", URLLIB_CLIENT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(cases.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_answers_reach_a_client_that_keeps_sending() {
    let (upstream, bodies) = recording_upstream().await;
    let issuer = Issuer::new();
    let gw = start_gateway_with(&upstream, &issuer, "max_body_bytes = 262144\n", "").await;
    let token = issuer.token("datasets:stream");
    // 3 MiB: more than the socket buffers hold, so an answer followed by
    // an immediate close would reset the connection under the sender.
    let size = 3 * 1024 * 1024;
    let form = serde_json::json!({"Content-Type": "application/x-www-form-urlencoded"});
    let bearer = serde_json::json!({"Authorization": format!("Bearer {token}")});
    let cases = serde_json::json!([
        // Token endpoints (64 KiB limit): declared and chunked.
        {"url": gw.url("/oauth/token"), "size": size, "headers": form, "chunked": false},
        {"url": gw.url("/oauth/token"), "size": size, "headers": form, "chunked": true},
        {"url": gw.url("/oauth/introspect"), "size": size, "headers": form, "chunked": false},
        // A 401 before the body is looked at.
        {"url": gw.url("/v1/clients"), "size": size, "headers": {"Content-Type": "application/json"}, "chunked": false},
        // Proxied route (256 KiB limit here): declared and chunked.
        {"url": gw.url("/stream/upload"), "size": size, "headers": bearer, "chunked": false},
        {"url": gw.url("/stream/upload"), "size": size, "headers": bearer, "chunked": true},
        // Proxied refusals: no token, and a token without the scope.
        {"url": gw.url("/stream/upload"), "size": size, "headers": {}, "chunked": false},
        {"url": gw.url("/stream/upload"), "size": size, "headers": {"Authorization": format!("Bearer {}", issuer.token("tiles:read"))}, "chunked": true},
        // Within the limit it is forwarded whole.
        {"url": gw.url("/stream/upload"), "size": 100_000, "headers": bearer, "chunked": true},
    ]);
    let got = tokio::task::spawn_blocking(move || urllib(&cases)).await.unwrap();
    let status: Vec<Value> = got.iter().map(|g| g[0].clone()).collect();
    assert_eq!(
        status,
        serde_json::json!([413, 413, 413, 401, 413, 413, 401, 403, 200])
            .as_array()
            .unwrap()
            .clone(),
        "{got:?}"
    );
    for g in &got[..8] {
        let v: Value = serde_json::from_str(g[1].as_str().unwrap()).unwrap();
        assert!(v["error"].is_string(), "{g:?}");
    }
    assert_eq!(got[8][1], "got:100000");
    // The oversized chunked upload reached the upstream and was cut off
    // there; the others never did.
    let seen = bodies.0.lock().unwrap().clone();
    assert!(seen.contains(&Ok(100_000)), "{seen:?}");
    assert!(seen.len() <= 2, "{seen:?}");
    assert!(metrics_text(&gw)
        .await
        .lines()
        .any(|l| l.starts_with("tilegate_request_bodies_lingered_total ")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_http2_an_early_answer_resets_only_its_stream() {
    let up = start_upstream().await;
    let issuer = Issuer::new();
    let gw = start_gateway_with(&up.url(), &issuer, "max_body_bytes = 262144\n", "").await;
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    // A body that keeps coming (3 MiB in 64 KiB chunks, no length).
    let endless = || {
        let chunks = (0..48).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 64 * 1024])));
        reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))
    };
    for (path, auth, want) in [
        ("/oauth/token", None, 413),
        ("/stream/upload", None, 401),
        ("/stream/upload", Some(issuer.token("datasets:stream")), 413),
    ] {
        let mut req = h2
            .post(gw.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(endless());
        if let Some(t) = auth {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap_or_else(|e| panic!("{path}: {e:?}"));
        assert_eq!(r.version(), reqwest::Version::HTTP_2);
        assert_eq!(r.status(), want, "{path}");
        let v: Value = r.json().await.unwrap();
        assert!(v["error"].is_string(), "{v}");
    }
    // The same connection goes on serving.
    let r = h2.get(gw.url("/public/x")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_upstream_gets_the_same_413_and_408() {
    // start_upstream serves h2c too; this upstream is spoken to in HTTP/2.
    let up = start_upstream().await;
    let extra = format!(
        "[[upstreams]]\nname = \"h2\"\nbackends = [\"{}\"]\nhttp2 = true\n[[routes]]\nprefix = \"/h2up/\"\nupstream = \"h2\"\npublic = true\n",
        up.url()
    );
    let gw = start_gateway_with(
        &up.url(),
        &Issuer::new(),
        "max_body_bytes = 262144\nbody_read_timeout = \"1s\"\n",
        &extra,
    )
    .await;
    let r = http().post(gw.url("/h2up/small")).body("hello").send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "upstream:/h2up/small:5");
    assert_eq!(up.seen.last().version, "HTTP/2.0");
    // Streamed past max_body_bytes: 413, not a 502.
    let chunks = (0..48).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 64 * 1024])));
    let r = http()
        .post(gw.url("/h2up/big"))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "body_too_large");
    // Trickled: 408, not a 504 or 502.
    let head = "POST /h2up/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n";
    let raw = trickle(
        gw.addr,
        head,
        b"abcdefgh",
        Duration::from_secs(2),
        Duration::from_secs(20),
    )
    .await
    .expect("answered and closed");
    let (status, body, _) = parse_answer(&raw);
    assert_eq!(status, 408, "{raw}");
    assert_eq!(body["error"], "request_timeout", "{raw}");
}
