//! Body type, response helpers, and the one place that maps every layer's
//! error to an HTTP status and body. Matches are exhaustive on purpose: a
//! new variant does not compile until someone picks its status.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::Full;

use crate::auth::AuthError;
use crate::issue::IssueError;
use crate::proxy::ProxyError;
use crate::routing::{PathError, RouteMiss, TileRefusal};
use crate::store::StoreError;

/// Every response body the gateway sends: a streamed upstream body, or a
/// small body of its own. An enum, not a box: no allocation per response.
///
/// It lives here, above `proxy`, and not in `proxy`: the forwarder hands
/// back the upstream's `Response<PooledBody>` and knows nothing of the
/// gateway's own responses; the request stack wraps it in `Upstream`.
pub enum Body {
    Upstream(crate::proxy::PooledBody),
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
            Body::Full(b) => Pin::new(b).poll_frame(cx).map_err(|e: Infallible| match e {}),
        }
    }
    fn is_end_stream(&self) -> bool {
        match self {
            Body::Upstream(b) => b.is_end_stream(),
            Body::Full(b) => b.is_end_stream(),
        }
    }
    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Upstream(b) => b.size_hint(),
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

/// What a client is told about a refused or failed request.
pub trait IntoResponse {
    fn into_response(self) -> Resp;
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Resp {
        let (status, www, code) = match self {
            AuthError::Missing => (StatusCode::UNAUTHORIZED, "Bearer realm=\"tilegate\"", "invalid_request"),
            AuthError::Invalid(_) => (
                StatusCode::UNAUTHORIZED,
                "Bearer realm=\"tilegate\", error=\"invalid_token\"",
                "invalid_token",
            ),
            AuthError::InsufficientScope | AuthError::ReadOnly => (
                StatusCode::FORBIDDEN,
                "Bearer realm=\"tilegate\", error=\"insufficient_scope\"",
                "insufficient_scope",
            ),
            AuthError::OriginNotAllowed => (StatusCode::FORBIDDEN, "Bearer realm=\"tilegate\"", "origin_not_allowed"),
        };
        let mut r = error(status, code, &self.to_string());
        r.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static(www));
        r
    }
}

impl IntoResponse for ProxyError {
    fn into_response(self) -> Resp {
        let (status, code) = match self {
            ProxyError::UpstreamUnreachable => (StatusCode::BAD_GATEWAY, "upstream_unreachable"),
            ProxyError::UpstreamFailed => (StatusCode::BAD_GATEWAY, "upstream_failed"),
            ProxyError::UpstreamTimeout => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
            ProxyError::BodyTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            ProxyError::RequestBodyTimeout => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            ProxyError::BodyUnreadable => (StatusCode::BAD_REQUEST, "invalid_request"),
            ProxyError::BadRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            ProxyError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
        };
        let mut r = error(status, code, &self.to_string());
        if let ProxyError::RateLimited(secs) = self {
            r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        r
    }
}

impl IntoResponse for PathError {
    fn into_response(self) -> Resp {
        let code = match self {
            PathError::NotAbsolute
            | PathError::AboveRoot
            | PathError::EncodedSeparator
            | PathError::Malformed
            | PathError::ControlChar
            | PathError::DoubleEncoded
            | PathError::NotUtf8 => "invalid_path",
        };
        error(StatusCode::BAD_REQUEST, code, &self.to_string())
    }
}

impl IntoResponse for RouteMiss {
    fn into_response(self) -> Resp {
        match self {
            RouteMiss::NotFound => error(StatusCode::NOT_FOUND, "not_found", "no route for this request"),
            RouteMiss::MethodNotAllowed(_) => error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not allow the method",
            ),
            RouteMiss::Ambiguous => error(
                StatusCode::BAD_REQUEST,
                "invalid_path",
                "backends may read this path as one that another rule covers; spell it plainly",
            ),
        }
    }
}

impl IntoResponse for TileRefusal {
    /// A tile outside the token's grant, as the route's `out_of_grant`
    /// says; a path naming no tile is the gateway's 404.
    fn into_response(self) -> Resp {
        use crate::routing::OutOfGrant;
        match self {
            TileRefusal::NoSuchTile
            | TileRefusal::OutOfGrant {
                mode: OutOfGrant::NotFound,
                ..
            } => RouteMiss::NotFound.into_response(),
            TileRefusal::OutOfGrant {
                mode: OutOfGrant::Forbidden,
                dimension,
            } => error(
                StatusCode::FORBIDDEN,
                "tile_not_granted",
                match dimension {
                    crate::grants::Dimension::Zoom => "the token's tile grant does not cover this zoom",
                    crate::grants::Dimension::Area => "the token's tile grant does not cover this area",
                    crate::grants::Dimension::Layer => "the token's tile grant does not cover this layer",
                },
            ),
            TileRefusal::OutOfGrant {
                mode: OutOfGrant::NoContent,
                ..
            } => empty(StatusCode::NO_CONTENT),
            TileRefusal::OutOfGrant {
                mode: OutOfGrant::Empty,
                ..
            } => empty(StatusCode::OK),
        }
    }
}

impl IntoResponse for StoreError {
    /// Store failures are logged here, once; their messages come from the
    /// database and never carry a bound value (so never a secret).
    fn into_response(self) -> Resp {
        match self {
            StoreError::Unavailable(m) => {
                tracing::warn!(error = %m, "credential store unavailable");
                let mut r = error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "the credential store is unavailable",
                );
                r.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("5"));
                r
            }
            StoreError::Conflict(m) => error(StatusCode::CONFLICT, "conflict", &m),
            StoreError::NotFound(m) => error(StatusCode::NOT_FOUND, "not_found", &m),
            StoreError::Invalid(m) => error(StatusCode::BAD_REQUEST, "invalid_request", &m),
            e @ (StoreError::Crypto(_) | StoreError::Internal(_)) => {
                tracing::error!(error = %e, "credential store failure");
                error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "internal error")
            }
        }
    }
}

impl IntoResponse for IssueError {
    fn into_response(self) -> Resp {
        crate::issue::error_response(self)
    }
}
