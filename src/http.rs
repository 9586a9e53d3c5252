//! The gateway's response body type and the JSON/empty response helpers.
//! Which status and code an error gets is decided in `server::rescue`.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http::{Response, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::Full;

/// Every response body the gateway sends: a streamed upstream body, or a
/// small body of its own. An enum, not a box: no allocation per response.
///
/// It lives here, above `proxy`, and not in `proxy`: the forwarder hands
/// back the upstream's `Response<PooledBody>` and knows nothing of the
/// gateway's own responses; the request stack wraps it in `Upstream`.
pub enum Body {
    Upstream(crate::proxy::PooledBody),
    /// An upstream body on a route that ends streams with their token.
    Ending(crate::proxy::stream_end::EndingBody),
    Full(Full<Bytes>),
}

impl Body {
    pub fn empty() -> Body {
        Body::Full(Full::new(Bytes::new()))
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Body {
        Body::Full(Full::new(b))
    }
}

impl From<String> for Body {
    fn from(s: String) -> Body {
        Body::Full(Full::new(Bytes::from(s)))
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Body {
        Body::Full(Full::new(Bytes::from_static(s.as_bytes())))
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = crate::proxy::UpstreamBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, crate::proxy::UpstreamBodyError>>> {
        match self.get_mut() {
            Body::Upstream(b) => Pin::new(b).poll_frame(cx),
            Body::Ending(b) => Pin::new(b).poll_frame(cx),
            Body::Full(b) => Pin::new(b).poll_frame(cx).map_err(|e: Infallible| match e {}),
        }
    }
    fn is_end_stream(&self) -> bool {
        match self {
            Body::Upstream(b) => b.is_end_stream(),
            Body::Ending(b) => b.is_end_stream(),
            Body::Full(b) => b.is_end_stream(),
        }
    }
    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Upstream(b) => b.size_hint(),
            Body::Ending(b) => b.size_hint(),
            Body::Full(b) => b.size_hint(),
        }
    }
}

pub type Resp = Response<Body>;

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");

/// A JSON response with `Cache-Control: no-store` (token responses must not
/// be cached, RFC 6749 §5.1; harmless elsewhere).
pub fn json(status: StatusCode, body: &impl serde::Serialize) -> Resp {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = Response::new(Body::from(Bytes::from(bytes)));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, JSON);
    r.headers_mut().insert(CACHE_CONTROL, NO_STORE);
    r
}

/// `{"error": …, "error_description": …}`.
pub fn error(status: StatusCode, code: &str, description: &str) -> Resp {
    json(
        status,
        &serde_json::json!({ "error": code, "error_description": description }),
    )
}

pub fn empty(status: StatusCode) -> Resp {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    r
}
