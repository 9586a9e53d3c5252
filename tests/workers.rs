//! Per-core workers (`server.workers = 2`) through the real binary: two
//! OS threads, each with its own runtime and its own `SO_REUSEPORT` socket
//! on the one listen address, in front of real upstreams with real signed
//! JWTs. Requests are authorized and proxied on both, the kernel spreads
//! connections over them, each keeps its own upstream connections (HTTP/1.1
//! and HTTP/2), a reload reaches both and keeps the running model, the
//! connection cap is one for the process, TLS, h2c, PROXY headers,
//! WebSockets and streams ending with their token work, `"per-core"` starts
//! one worker per CPU, and SIGTERM drains both.
//!
//! "Both workers" assertions rest on the kernel's spreading: it picks a
//! socket by a hash of each connection's addresses and ports, so N new
//! connections all landing on one of two workers has probability 2^(1-N);
//! the tests use N ≥ 16.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

const WORKERS: &str = "workers = 2\n";

fn worker_series(w: usize) -> String {
    format!("tilegate_worker_connections_total{{worker=\"{w}\"}}")
}

/// Connections worker `w` accepted, as the `/metrics` `text` says.
fn accepted_by(text: &str, w: usize) -> f64 {
    let series = worker_series(w);
    text.lines()
        .find_map(|l| l.strip_prefix(series.as_str())?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Connections each of the two workers accepted so far.
async fn per_worker(gw: &Gateway) -> [f64; 2] {
    let text = metrics_text(gw).await;
    [accepted_by(&text, 1), accepted_by(&text, 2)]
}

/// One `GET path` on a new connection (`Connection: close`): the status
/// and body, or `None` when the connection closed without an answer.
async fn get_once(addr: SocketAddr, path: &str, token: Option<&str>) -> Option<(u16, String)> {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n");
    let out = raw_request_from(addr, "127.0.0.1", req.as_bytes()).await;
    let status = raw_response_status(&out)?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

async fn wait_for<F, Fut>(mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("condition not met in 20s");
}

#[tokio::test]
async fn two_workers_authorize_and_proxy_and_refuse_bad_tokens() {
    let issuer = Issuer::new();
    let up = start_upstream().await;
    let gw = start_gateway_with(&up.url(), &issuer, WORKERS, "").await;
    wait_for(|| async {
        let logs = gw.logs();
        logs.contains("\"worker\":1") && logs.contains("\"worker\":2")
    })
    .await;

    let tok = issuer.token("tiles:read");
    for i in 0..16 {
        let path = format!("/tiles/1/2/{i}.pbf");
        let (status, body) = get_once(gw.addr, &path, Some(&tok)).await.expect("an answer");
        assert_eq!(status, 200);
        assert_eq!(body, format!("upstream:{path}:0"));
    }
    assert_eq!(up.seen.count(), 16);
    // Refused on every worker, and never forwarded.
    let denied = issuer.token("datasets:stream");
    for _ in 0..16 {
        assert_eq!(
            get_once(gw.addr, "/tiles/1/2/3.pbf", Some(&denied)).await.unwrap().0,
            403
        );
        assert_eq!(
            get_once(gw.addr, "/tiles/1/2/3.pbf", Some("not-a-token"))
                .await
                .unwrap()
                .0,
            401
        );
        assert_eq!(get_once(gw.addr, "/tiles/1/2/3.pbf", None).await.unwrap().0, 401);
    }
    assert_eq!(up.seen.count(), 16);
    let [a, b] = per_worker(&gw).await;
    assert_eq!(a + b, 64.0, "every connection counted by the worker that accepted it");
    assert!(a > 0.0 && b > 0.0, "both workers served: {a} and {b}");
}

/// An upstream (HTTP/1.1 with keep-alive, and h2c with prior knowledge)
/// that answers `ok` and counts the connections it accepted.
async fn counting_upstream() -> (String, Arc<AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let n = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            n.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|_req: hyper::Request<hyper::body::Incoming>| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(
                        bytes::Bytes::from_static(b"ok"),
                    )))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    (format!("http://{addr}"), accepted)
}

#[tokio::test]
async fn each_worker_keeps_its_own_upstream_connections() {
    let (upstream, accepted) = counting_upstream().await;
    let gw = start_gateway_with_sections(&upstream, WORKERS, "").await;
    // Sequential requests, each on a new client connection: a worker
    // reuses its idle upstream connection, and never another worker's.
    for _ in 0..32 {
        assert_eq!(get_once(gw.addr, "/public/x", None).await, Some((200, "ok".into())));
    }
    let [a, b] = per_worker(&gw).await;
    assert!(a > 0.0 && b > 0.0, "both workers served: {a} and {b}");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "one upstream connection per worker, each reused by its own worker"
    );
}

#[tokio::test]
async fn each_worker_has_its_own_http2_upstream_connection() {
    let (upstream, accepted) = counting_upstream().await;
    let gw = start_gateway_with_sections(&upstream, WORKERS, "").await;
    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    std::fs::write(
        &gw.config_path,
        text.replacen(
            "request_timeout = \"1s\"\n",
            "request_timeout = \"1s\"\nhttp2 = true\n",
            1,
        ),
    )
    .unwrap();
    gw.signal("HUP");
    wait_for(|| async { gw.logs().contains("config reloaded") }).await;
    for _ in 0..32 {
        assert_eq!(get_once(gw.addr, "/public/x", None).await, Some((200, "ok".into())));
    }
    let [a, b] = per_worker(&gw).await;
    assert!(a > 0.0 && b > 0.0, "both workers served: {a} and {b}");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "one multiplexed upstream connection per worker, driven by its own runtime"
    );
}

#[tokio::test]
async fn a_reload_keeps_the_running_worker_model() {
    let (upstream, accepted) = counting_upstream().await;
    let gw = start_gateway_with_sections(&upstream, WORKERS, "").await;
    for _ in 0..16 {
        assert_eq!(get_once(gw.addr, "/public/x", None).await, Some((200, "ok".into())));
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    // Asking for the shared model by reload: refused with a warning, and
    // the new upstream pools still keep one connection per running worker.
    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    std::fs::write(&gw.config_path, text.replace(WORKERS, "workers = \"shared\"\n")).unwrap();
    gw.signal("HUP");
    wait_for(|| async { gw.logs().contains("config reloaded") }).await;
    assert!(
        gw.logs()
            .contains("server.workers takes effect at the next restart only"),
        "{}",
        gw.logs()
    );
    let before = per_worker(&gw).await;
    for _ in 0..32 {
        assert_eq!(get_once(gw.addr, "/public/x", None).await, Some((200, "ok".into())));
    }
    let after = per_worker(&gw).await;
    assert!(
        after[0] > before[0] && after[1] > before[1],
        "both workers still serve: {before:?} -> {after:?}"
    );
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        4,
        "the reload's new pools: again one upstream connection per worker"
    );
}

#[tokio::test]
async fn a_reload_reaches_every_worker() {
    let issuer = Issuer::new();
    let up = start_upstream().await;
    let gw = start_gateway_with(&up.url(), &issuer, WORKERS, "").await;
    for _ in 0..16 {
        assert_eq!(get_once(gw.addr, "/extra/x", None).await.unwrap().0, 404);
    }
    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    let with_new = format!("{text}\n[[routes]]\nprefix = \"/extra/\"\nupstream = \"tiles\"\npublic = true\n");
    std::fs::write(&gw.config_path, with_new).unwrap();
    gw.signal("HUP");
    wait_for(|| async { get_once(gw.addr, "/extra/x", None).await.is_some_and(|r| r.0 == 200) }).await;
    let before = per_worker(&gw).await;
    for _ in 0..32 {
        assert_eq!(
            get_once(gw.addr, "/extra/x", None).await,
            Some((200, "upstream:/extra/x:0".into()))
        );
    }
    let after = per_worker(&gw).await;
    assert!(
        after[0] > before[0] && after[1] > before[1],
        "both workers served the new route: {before:?} -> {after:?}"
    );
}

#[tokio::test]
async fn max_connections_is_one_cap_for_all_workers() {
    let up = start_upstream().await;
    let gw = start_gateway_with_sections(&up.url(), &format!("{WORKERS}max_connections = 4\n"), "").await;
    // Four silent connections take the four slots, wherever they landed.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(tokio::net::TcpStream::connect(gw.addr).await.unwrap());
    }
    wait_for(|| async { metric(&gw, "tilegate_connections_open").await == 4.0 }).await;
    // Further connections are refused on either worker: with a cap per
    // worker, the one holding fewer than four would serve them.
    for _ in 0..16 {
        assert_eq!(get_once(gw.addr, "/public/x", None).await, None);
    }
    let [a, b] = per_worker(&gw).await;
    assert!(a > 0.0 && b > 0.0, "both workers were tried: {a} and {b}");
    assert_eq!(metric(&gw, "tilegate_connections_refused_total").await, 16.0);
    drop(held);
    wait_for(|| async { get_once(gw.addr, "/public/x", None).await.is_some_and(|r| r.0 == 200) }).await;
}

#[tokio::test]
async fn tls_h2_and_h2c_are_served_by_workers() {
    let issuer = Issuer::new();
    let up = start_upstream().await;
    let (gw, cert) = start_tls_gateway_with(&up.url(), &issuer, WORKERS).await;
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap();
    let tok = issuer.token("tiles:read");
    for _ in 0..8 {
        // A new client (a new connection) each time.
        let client = reqwest::Client::builder()
            .no_proxy()
            .add_root_certificate(ca.clone())
            .build()
            .unwrap();
        let r = client
            .get(format!("https://localhost:{}/tiles/1/2/3.pbf", gw.addr.port()))
            .bearer_auth(&tok)
            .send()
            .await
            .unwrap();
        assert_eq!(r.version(), reqwest::Version::HTTP_2);
        assert_eq!(r.status(), 200);
        assert_eq!(up.seen.last().header("x-forwarded-proto"), Some("https"));
    }

    let gw = start_gateway_with(&up.url(), &issuer, WORKERS, "").await;
    for _ in 0..8 {
        let client = reqwest::Client::builder()
            .no_proxy()
            .http2_prior_knowledge()
            .build()
            .unwrap();
        let r = client
            .get(gw.url("/tiles/1/2/3.pbf"))
            .bearer_auth(&tok)
            .send()
            .await
            .unwrap();
        assert_eq!(r.version(), reqwest::Version::HTTP_2);
        assert_eq!(r.status(), 200);
    }
}

#[tokio::test]
async fn proxy_protocol_headers_name_the_client_on_workers() {
    let up = start_upstream().await;
    let gw = start_gateway_with_sections(
        &up.url(),
        &format!("{WORKERS}trusted_proxies = [\"127.0.0.1/32\"]\nproxy_protocol = true\n"),
        "",
    )
    .await;
    for i in 1..=16 {
        let req = format!(
            "PROXY TCP4 198.51.100.{i} 127.0.0.1 4000 8080\r\nGET /public/p HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        );
        let out = raw_request_from(gw.addr, "127.0.0.1", req.as_bytes()).await;
        assert_eq!(raw_response_status(&out), Some(200));
        let ip = format!("198.51.100.{i}");
        assert_eq!(up.seen.last().header("x-real-ip"), Some(ip.as_str()));
    }
    // A trusted peer without a header is closed unanswered.
    assert_eq!(get_once(gw.addr, "/public/p", None).await, None);
}

#[tokio::test]
async fn websockets_pass_through_and_end_with_their_token_on_workers() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::Message;
    let issuer = Issuer::new();
    let up = start_upstream().await;
    let extra = format!(
        "[[routes]]\nname = \"live\"\nprefix = \"/live/\"\nupstream = \"tiles\"\nscopes = [\"datasets:stream\"]\nissuers = [\"{IDP}\"]\nend_streams_with_token = true\n"
    );
    let gw = start_gateway_with(&up.url(), &issuer, WORKERS, &extra).await;
    let open = |path: &str, token: String| {
        let mut req = format!("ws://{}{path}", gw.addr).into_client_request().unwrap();
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        async move {
            let (ws, resp) = tokio_tungstenite::connect_async(req).await.expect("websocket");
            assert_eq!(resp.status(), 101);
            ws
        }
    };
    // Several tunnels at once, over both workers.
    let mut tunnels = Vec::new();
    for _ in 0..16 {
        tunnels.push(open("/stream/ws", issuer.token("datasets:stream")).await);
    }
    for (i, ws) in tunnels.iter_mut().enumerate() {
        let text = format!("ping-{i}");
        ws.send(Message::text(text.clone())).await.unwrap();
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(m.into_text().unwrap().as_str(), text);
    }
    let [a, b] = per_worker(&gw).await;
    assert!(a > 0.0 && b > 0.0, "both workers hold tunnels: {a} and {b}");

    // On a route that ends streams with their token: closed with 1008 when
    // the token expires (the timer runs on the worker's runtime).
    let mut ws = open("/live/ws", issuer.sign(&Issuer::claims("datasets:stream", 2))).await;
    let close = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(m) = ws.next().await {
            if let Ok(Message::Close(Some(f))) = m {
                return Some((f.code, f.reason.to_string()));
            }
        }
        None
    })
    .await
    .expect("closed in time");
    assert_eq!(close, Some((CloseCode::Policy, "token expired".to_owned())));
}

#[tokio::test]
async fn sigterm_drains_every_worker_and_exits() {
    let up = start_upstream().await;
    let mut gw = start_gateway_with_sections(&up.url(), WORKERS, "").await;
    // Slow requests (3 s upstream) in flight on both workers; the public
    // route's request_timeout is 1 s, so a patient route.
    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    assert!(text.contains("request_timeout = \"1s\""));
    std::fs::write(
        &gw.config_path,
        text.replace("request_timeout = \"1s\"", "request_timeout = \"10s\""),
    )
    .unwrap();
    gw.signal("HUP");
    wait_for(|| async { gw.logs().contains("config reloaded") }).await;
    let addr = gw.addr;
    let slow: Vec<_> = (0..16)
        .map(|_| tokio::spawn(async move { get_once(addr, "/public/slow", None).await }))
        .collect();
    wait_for(|| async { metric(&gw, "tilegate_in_flight_requests").await == 16.0 }).await;
    let [a, b] = per_worker(&gw).await;
    assert!(a > 0.0 && b > 0.0, "both workers have requests in flight: {a} and {b}");
    gw.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // No worker takes new connections once draining started.
    for _ in 0..8 {
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }
    for s in slow {
        assert_eq!(
            s.await.unwrap(),
            Some((200, "slow".into())),
            "in-flight request finished"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = gw.child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "the gateway exits after the drain");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
    assert!(gw.logs().contains("all connections drained"), "{}", gw.logs());
}

#[tokio::test]
async fn per_core_starts_one_worker_per_cpu_beside_a_current_thread_main_runtime() {
    // The benchmark setting: the main runtime (background tasks, admin)
    // on tokio's current-thread scheduler, the workers beside it.
    let issuer = Issuer::new();
    let up = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, issuer.jwks()).unwrap();
    let toml = config(&up.url(), &jwks, "").replacen("[server]\n", "[server]\nworkers = \"per-core\"\n", 1);
    let gw = tokio::task::spawn_blocking(move || start_gateway_in(dir, &toml, &[("TOKIO_WORKER_THREADS", "1")]))
        .await
        .unwrap();
    let cpus = std::thread::available_parallelism().unwrap().get();
    wait_for(|| async { gw.logs().matches("tilegate worker listening").count() == cpus }).await;
    let tok = issuer.token("tiles:read");
    for _ in 0..16 {
        assert_eq!(
            get_once(gw.addr, "/tiles/1/2/3.pbf", Some(&tok)).await,
            Some((200, "upstream:/tiles/1/2/3.pbf:0".into()))
        );
    }
    let text = metrics_text(&gw).await;
    assert!(
        !text.contains(&worker_series(cpus + 1)),
        "no worker beyond the CPUs: {text}"
    );
    let total: f64 = (1..=cpus).map(|w| accepted_by(&text, w)).sum();
    assert_eq!(total, 16.0, "every connection accepted by one of the workers: {text}");
}
