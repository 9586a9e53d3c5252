//! The forwarder's phases around the exchange: the declared body cap
//! before anything is sent, and the WebSocket upgrade splice after the
//! upstream's answer.

use http::header::{CONNECTION, CONTENT_LENGTH, UPGRADE};
use http::{HeaderValue, StatusCode};

use super::ProxyError;

/// `Upgrade: websocket` (the only protocol the gateway tunnels).
fn is_websocket(v: Option<&HeaderValue>) -> bool {
    v.is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
}

/// Whether the request asks for a WebSocket upgrade. Any other `Upgrade`
/// (`h2c`, TLS) is not passed on: the request is forwarded as a plain one
/// (curl's opportunistic `--http2` upgrade still gets its answer).
pub fn wants_upgrade(h: &http::HeaderMap) -> bool {
    is_websocket(h.get(UPGRADE))
        && h.get_all(CONNECTION).iter().any(|v| {
            v.to_str()
                .unwrap_or("")
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        })
}

/// The body cap, on what the client declares: a `Content-Length` over
/// `max` is refused before anything reaches the upstream (a body without
/// one is cut at the cap while it streams).
pub fn declared_length_fits(h: &http::HeaderMap, max: u64) -> Result<(), ProxyError> {
    match h
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        Some(len) if len > max => Err(ProxyError::BodyTooLarge),
        _ => Ok(()),
    }
}

/// After the upstream's answer: a `101` becomes a tunnel between client
/// and upstream only for a WebSocket upgrade the client asked for
/// (`client` is its pending upgrade); a 101 for anything else (h2c, or no
/// request at all) would hand the client a raw connection to the backend,
/// past every route rule, and is refused. On a route that ends streams
/// with their token, the tunnel takes the token's `life` and closes itself
/// with 1008 when the token expires or is revoked (`stream_end`).
pub fn splice_upgrade<B>(
    client: Option<hyper::upgrade::OnUpgrade>,
    resp: &mut http::Response<B>,
    life: &mut Option<super::stream_end::TokenLife>,
) -> Result<(), ProxyError> {
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Ok(());
    }
    let agreed = client.is_some() && is_websocket(resp.headers().get(UPGRADE));
    if !agreed {
        tracing::warn!("upstream switched protocols without an agreed WebSocket upgrade");
        return Err(ProxyError::UpstreamFailed);
    }
    if let Some(client) = client {
        let up = hyper::upgrade::on(resp);
        let life = life.take();
        tokio::spawn(async move {
            if let (Ok(c), Ok(u)) = (client.await, up.await) {
                let c = hyper_util::rt::TokioIo::new(c);
                let u = hyper_util::rt::TokioIo::new(u);
                super::stream_end::splice(c, u, life).await;
            }
        });
    }
    Ok(())
}
