//! Streams that end with their token: the real binary in front of a real
//! WebSocket echo and a real server-sent-events upstream; routes with
//! `end_streams_with_token = true` close a WebSocket with 1008 and end an
//! event stream with a final event when the token expires or is revoked,
//! routes without it keep streams open past expiry.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

const FINAL_EXPIRED: &str = "event: tilegate-token-expired\ndata: {\"error\":\"token_expired\"}\n\n";

/// An upstream of endless streams: `/events` a `text/event-stream` whose
/// events arrive in two pieces 100 ms apart (so a stream often stands
/// inside an event), `/ticks` an `application/octet-stream` without a
/// length, a line every 200 ms.
async fn stream_upstream() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let sse = req.uri().path().ends_with("/events");
                    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::convert::Infallible>>(1);
                    tokio::spawn(async move {
                        for n in 0u64.. {
                            let pieces = if sse {
                                vec![format!("event: tick\ndata: {n}\n"), "\n".to_owned()]
                            } else {
                                vec![format!("tick {n}\n")]
                            };
                            for p in pieces {
                                if tx.send(Ok(Frame::data(Bytes::from(p)))).await.is_err() {
                                    return;
                                }
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        }
                    });
                    let body = StreamBody::new(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)));
                    let ct = if sse {
                        "text/event-stream"
                    } else {
                        "application/octet-stream"
                    };
                    Ok::<_, std::convert::Infallible>(
                        Response::builder()
                            .header("content-type", ct)
                            .body(BodyExt::boxed(body))
                            .unwrap(),
                    )
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

struct Env {
    issuer: Issuer,
    gw: Gateway,
    _up: Upstream,
}

/// `/live/` (WebSocket echo) and `/events/` (streams) end with their
/// token; `/open-events/` and the common `/stream/` (WebSocket echo) do not.
async fn env() -> Env {
    let issuer = Issuer::new();
    let up = start_upstream().await;
    let streams = stream_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, issuer.jwks()).unwrap();
    let extra = format!(
        "[[upstreams]]\nname = \"streams\"\nbackends = [\"{streams}\"]\n\
         [[routes]]\nname = \"live\"\nprefix = \"/live/\"\nupstream = \"tiles\"\nscopes = [\"datasets:stream\"]\nissuers = [\"self\", \"{IDP}\"]\nend_streams_with_token = true\n\
         [[routes]]\nname = \"events\"\nprefix = \"/events/\"\nupstream = \"streams\"\nscopes = [\"datasets:stream\"]\nissuers = [\"self\", \"{IDP}\"]\nend_streams_with_token = true\n\
         [[routes]]\nname = \"open-events\"\nprefix = \"/open-events/\"\nupstream = \"streams\"\nscopes = [\"datasets:stream\"]\nissuers = [\"self\", \"{IDP}\"]\n"
    );
    let toml = config(&up.url(), &jwks, &extra);
    let gw = tokio::task::spawn_blocking(move || start_gateway_in(dir, &toml, &[]))
        .await
        .unwrap();
    Env { issuer, gw, _up: up }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws(gw: &Gateway, path: &str, token: &str) -> Ws {
    let mut req = format!("ws://{}{path}", gw.addr).into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket through the gateway");
    assert_eq!(resp.status(), 101);
    ws
}

/// Echo round trip: the tunnel is open.
async fn echo(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text)).await.unwrap();
    let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("echo in time")
        .expect("a message")
        .expect("no error");
    assert_eq!(m.into_text().unwrap().as_str(), text);
}

/// The next close frame (echoes before it are skipped), or None when the
/// connection ends without one.
async fn close_frame(ws: &mut Ws, limit: Duration) -> Option<(CloseCode, String)> {
    tokio::time::timeout(limit, async {
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
    .expect("the connection ends in time")
}

#[tokio::test]
async fn a_websocket_is_closed_with_1008_when_its_token_expires() {
    let e = env().await;
    let start = Instant::now();
    let tok = e.issuer.sign(&Issuer::claims("datasets:stream", 3));
    let mut ws = ws(&e.gw, "/live/ws", &tok).await;
    echo(&mut ws, "before expiry").await;
    let close = close_frame(&mut ws, Duration::from_secs(10)).await;
    let at = start.elapsed();
    assert_eq!(close, Some((CloseCode::Policy, "token expired".to_owned())));
    assert!(
        at >= Duration::from_secs(2) && at <= Duration::from_secs(5),
        "closed after {at:?}"
    );
    assert_eq!(
        metric(&e.gw, "tilegate_streams_ended_total{reason=\"expired\"}").await,
        1.0
    );
}

#[tokio::test]
async fn a_websocket_without_the_option_outlives_its_token() {
    let e = env().await;
    let tok = e.issuer.sign(&Issuer::claims("datasets:stream", 2));
    let mut ws = ws(&e.gw, "/stream/ws", &tok).await;
    echo(&mut ws, "before expiry").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    echo(&mut ws, "after expiry").await;
}

/// The body of `path` as it arrives until it ends (cleanly or not), and
/// whether it ended cleanly.
async fn read_stream(gw: &Gateway, path: &str, token: &str) -> (String, bool) {
    let mut r = http().get(gw.url(path)).bearer_auth(token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let mut text = String::new();
    loop {
        match r.chunk().await {
            Ok(Some(c)) => text.push_str(std::str::from_utf8(&c).unwrap()),
            Ok(None) => return (text, true),
            Err(_) => return (text, false),
        }
    }
}

#[tokio::test]
async fn an_event_stream_ends_with_a_final_event_when_its_token_expires() {
    let e = env().await;
    let start = Instant::now();
    let tok = e.issuer.sign(&Issuer::claims("datasets:stream", 3));
    let (text, clean) = tokio::time::timeout(Duration::from_secs(10), read_stream(&e.gw, "/events/events", &tok))
        .await
        .expect("the stream ends");
    let at = start.elapsed();
    assert!(clean, "an event stream ends cleanly: {text:?}");
    assert!(
        at >= Duration::from_secs(2) && at <= Duration::from_secs(5),
        "ended after {at:?}"
    );
    let before = text
        .strip_suffix(FINAL_EXPIRED)
        .unwrap_or_else(|| panic!("final event last: {text:?}"));
    assert!(before.contains("data: 0\n\n"), "events passed before: {text:?}");
    assert!(
        before.ends_with("\n\n"),
        "the final event follows a whole event: {text:?}"
    );
    for event in before.split_terminator("\n\n") {
        assert!(event.starts_with("event: tick\ndata: "), "whole events only: {event:?}");
    }
}

#[tokio::test]
async fn another_streaming_body_is_cut_short_when_its_token_expires() {
    let e = env().await;
    let start = Instant::now();
    let tok = e.issuer.sign(&Issuer::claims("datasets:stream", 3));
    let (text, clean) = tokio::time::timeout(Duration::from_secs(10), read_stream(&e.gw, "/events/ticks", &tok))
        .await
        .expect("the stream ends");
    let at = start.elapsed();
    assert!(!clean, "an incomplete transfer, not a complete one: {text:?}");
    assert!(text.starts_with("tick 0\n"), "{text:?}");
    assert!(
        at >= Duration::from_secs(2) && at <= Duration::from_secs(5),
        "ended after {at:?}"
    );
}

#[tokio::test]
async fn an_event_stream_without_the_option_outlives_its_token() {
    let e = env().await;
    let tok = e.issuer.sign(&Issuer::claims("datasets:stream", 2));
    let mut r = http()
        .get(e.gw.url("/open-events/events"))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let start = Instant::now();
    let mut text = String::new();
    while start.elapsed() < Duration::from_secs(4) {
        let c = r.chunk().await.expect("no error").expect("still open");
        text.push_str(std::str::from_utf8(&c).unwrap());
    }
    assert!(!text.contains("tilegate-token"), "{text:?}");
}

#[tokio::test]
async fn revoking_the_api_key_closes_an_open_websocket_at_once() {
    let e = env().await;
    let (_, sa) = admin_org_and_account(&e.gw).await;
    let key = admin_post(
        &e.gw,
        "/admin/v1/api-keys",
        json!({"service_account": sa["id"], "scope": "datasets:stream"}),
    )
    .await;
    let tok = exchange_token(&e.gw, key["api_key"].as_str().unwrap()).await;
    let mut ws = ws(&e.gw, "/live/ws", &tok).await;
    echo(&mut ws, "before revocation").await;
    let r = http()
        .delete(e.gw.admin_url(&format!("/admin/v1/api-keys/{}", key["id"].as_str().unwrap())))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let close = close_frame(&mut ws, Duration::from_secs(2)).await;
    assert_eq!(close, Some((CloseCode::Policy, "token revoked".to_owned())));
    assert_eq!(
        metric(&e.gw, "tilegate_streams_ended_total{reason=\"revoked\"}").await,
        1.0
    );
}
