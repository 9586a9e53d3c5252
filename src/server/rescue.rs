//! The one place that turns errors into responses: every layer's error
//! enum below the listeners gets its status, `error` code, body and
//! headers (`WWW-Authenticate`, `Retry-After`, `Allow`) here. Matches are
//! exhaustive on purpose: a new variant does not compile until someone
//! picks its status. `http` only builds bodies; the handlers return their
//! layer's error and the listener calls this module.

use http::header::{HeaderValue, ALLOW, RETRY_AFTER, WWW_AUTHENTICATE};
use http::StatusCode;

use crate::auth::AuthError;
use crate::credentials::CredentialError;
use crate::http::{empty, error, Resp};
use crate::issue::IssueError;
use crate::proxy::ProxyError;
use crate::routing::{MethodSet, OutOfGrant, PathError, PreflightRefusal, RouteMiss, TargetError, TileRefusal};
use crate::store::StoreError;

/// What a client is told about a refused or failed request.
pub trait IntoResponse {
    fn into_response(self) -> Resp;
}

fn with(mut r: Resp, name: http::header::HeaderName, value: HeaderValue) -> Resp {
    r.headers_mut().insert(name, value);
    r
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Resp {
        let (status, www, code) = match self {
            AuthError::Missing => (StatusCode::UNAUTHORIZED, "Bearer realm=\"tilegate\"", "invalid_request"),
            AuthError::Invalid(_) | AuthError::ApiKeyAsToken { .. } => (
                StatusCode::UNAUTHORIZED,
                "Bearer realm=\"tilegate\", error=\"invalid_token\"",
                "invalid_token",
            ),
            AuthError::InsufficientScope { .. } | AuthError::ReadOnly => (
                StatusCode::FORBIDDEN,
                "Bearer realm=\"tilegate\", error=\"insufficient_scope\"",
                "insufficient_scope",
            ),
            AuthError::OriginNotAllowed => (StatusCode::FORBIDDEN, "Bearer realm=\"tilegate\"", "origin_not_allowed"),
        };
        // RFC 6750 §3: the scope the resource needs, when a scope is missing.
        let www = match &self {
            AuthError::InsufficientScope { required, .. } => {
                HeaderValue::from_str(&format!("{www}, scope=\"{required}\"")).unwrap_or(HeaderValue::from_static(www))
            }
            _ => HeaderValue::from_static(www),
        };
        with(error(status, code, &self.to_string()), WWW_AUTHENTICATE, www)
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
            ProxyError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
        };
        let r = error(status, code, &self.to_string());
        match self {
            ProxyError::RateLimited(secs) => with(r, RETRY_AFTER, HeaderValue::from(secs)),
            _ => r,
        }
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

/// The gateway's 404: no route, and (by default) a tile outside the
/// token's grant, which must not be told apart from it.
fn no_route() -> Resp {
    error(StatusCode::NOT_FOUND, "not_found", "no route for this request")
}

/// A route miss; `allowed` names the methods the path's routes take, for
/// the `Allow` header of a 405 (asked only then).
pub fn route_miss(miss: RouteMiss, allowed: impl FnOnce() -> MethodSet) -> Resp {
    match miss {
        RouteMiss::NotFound => no_route(),
        RouteMiss::MethodNotAllowed(_) => {
            let mut r = error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not allow the method",
            );
            if let Ok(v) = HeaderValue::from_str(&allowed().header_value()) {
                r.headers_mut().insert(ALLOW, v);
            }
            r
        }
        RouteMiss::Ambiguous => error(
            StatusCode::BAD_REQUEST,
            "invalid_path",
            "backends may read this path as one that another rule covers; spell it plainly",
        ),
    }
}

impl IntoResponse for TargetError {
    fn into_response(self) -> Resp {
        match self {
            TargetError::MoreThanOneHost | TargetError::HostDiffersFromTarget | TargetError::Unforwardable => {
                invalid_request(&self.to_string())
            }
        }
    }
}

impl IntoResponse for PreflightRefusal {
    fn into_response(self) -> Resp {
        let msg = self.to_string();
        match self {
            PreflightRefusal::NoRoute => error(StatusCode::NOT_FOUND, "not_found", &msg),
            PreflightRefusal::RouteDisallows | PreflightRefusal::OriginDisallowed => {
                error(StatusCode::FORBIDDEN, "cors_not_allowed", &msg)
            }
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
                with(
                    error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "temporarily_unavailable",
                        "the credential store is unavailable",
                    ),
                    RETRY_AFTER,
                    HeaderValue::from_static("5"),
                )
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

impl IntoResponse for TileRefusal {
    /// A tile outside the token's grant, as the route's `out_of_grant`
    /// says; a path naming no tile is the gateway's 404.
    fn into_response(self) -> Resp {
        match self {
            TileRefusal::NoSuchTile
            | TileRefusal::OutOfGrant {
                mode: OutOfGrant::NotFound,
                ..
            } => no_route(),
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

impl IntoResponse for CredentialError {
    fn into_response(self) -> Resp {
        let msg = self.to_string();
        match self {
            CredentialError::Store(s) => s.into_response(),
            CredentialError::NotFound(_) => error(StatusCode::NOT_FOUND, "not_found", &msg),
            CredentialError::Conflict(_) => error(StatusCode::CONFLICT, "conflict", &msg),
            CredentialError::BadName { .. }
            | CredentialError::UndeclaredScope { .. }
            | CredentialError::NoScope
            | CredentialError::ScopeNotAllowed { .. }
            | CredentialError::Disabled { .. }
            | CredentialError::PasswordLength
            | CredentialError::BadOrigin(_)
            | CredentialError::NoOrigins
            | CredentialError::BadExpiry(_) => error(StatusCode::BAD_REQUEST, "invalid_request", &msg),
            CredentialError::BadTiles(_) => error(StatusCode::BAD_REQUEST, "invalid_tiles", &msg),
            CredentialError::TilesBeyondCeiling { .. } => error(StatusCode::FORBIDDEN, "tiles_exceeded", &msg),
            CredentialError::OriginsBeyondCeiling { .. } => error(StatusCode::FORBIDDEN, "origins_exceeded", &msg),
            e
            @ (CredentialError::KeyGeneration(_) | CredentialError::NoSigningKey | CredentialError::SigningFailed) => {
                tracing::error!(error = %e, "credential action failed");
                error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "internal error")
            }
        }
    }
}

/// A request the listener above could not read (a body, JSON, a path
/// segment): 400 `invalid_request` with the reason.
pub fn invalid_request(reason: &str) -> Resp {
    error(StatusCode::BAD_REQUEST, "invalid_request", reason)
}

impl IntoResponse for IssueError {
    fn into_response(self) -> Resp {
        let msg = self.to_string();
        match self {
            IssueError::InvalidTtl(_) => error(StatusCode::BAD_REQUEST, "invalid_ttl", &msg),
            IssueError::InvalidRequest(_) => invalid_request(&msg),
            IssueError::Unauthorized(_) => with(
                error(StatusCode::UNAUTHORIZED, "unauthorized", &msg),
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tilegate\""),
            ),
            IssueError::ScopeExceeded(_) => error(StatusCode::FORBIDDEN, "invalid_scope", &msg),
            IssueError::InvalidScope(_) => error(StatusCode::BAD_REQUEST, "invalid_scope", &msg),
            IssueError::TilesExceeded(_) => error(StatusCode::FORBIDDEN, "tiles_exceeded", &msg),
            IssueError::OriginsExceeded(_) => error(StatusCode::FORBIDDEN, "origins_exceeded", &msg),
            IssueError::InvalidTiles(_) => error(StatusCode::BAD_REQUEST, "invalid_tiles", &msg),
            IssueError::InvalidClient(_) => with(
                error(StatusCode::UNAUTHORIZED, "invalid_client", &msg),
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"tilegate\""),
            ),
            IssueError::InvalidGrant(_) => error(StatusCode::BAD_REQUEST, "invalid_grant", &msg),
            IssueError::UnsupportedGrantType => error(StatusCode::BAD_REQUEST, "unsupported_grant_type", &msg),
            IssueError::TokenMissing => with(
                error(StatusCode::UNAUTHORIZED, "invalid_request", &msg),
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tilegate\""),
            ),
            IssueError::InvalidToken(_) | IssueError::ApiKeyAsToken { .. } => with(
                error(StatusCode::UNAUTHORIZED, "invalid_token", &msg),
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tilegate\", error=\"invalid_token\""),
            ),
            IssueError::InsufficientScope(_) => with(
                error(StatusCode::FORBIDDEN, "insufficient_scope", &msg),
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tilegate\", error=\"insufficient_scope\""),
            ),
            IssueError::NotFound(_) => error(StatusCode::NOT_FOUND, "not_found", &msg),
            IssueError::MethodNotAllowed { allow } => {
                let r = error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", &msg);
                match HeaderValue::from_str(&allow) {
                    Ok(v) => with(r, http::header::ALLOW, v),
                    Err(_) => r,
                }
            }
            IssueError::PayloadTooLarge => error(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request", &msg),
            IssueError::RequestTimeout => error(StatusCode::REQUEST_TIMEOUT, "request_timeout", &msg),
            IssueError::TooManyRequests(secs) => with(
                error(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", &msg),
                RETRY_AFTER,
                HeaderValue::from(secs.max(1)),
            ),
            IssueError::Store(s) => s.into_response(),
            // A credential action's refusal inside an endpoint: only its
            // request-shaped variants get here (`From<CredentialError>`
            // turns the store's and the signer's into `Store`/`Server`).
            IssueError::Credential(c) => match c {
                CredentialError::NotFound(_) => error(StatusCode::NOT_FOUND, "not_found", &msg),
                CredentialError::Conflict(_) => error(StatusCode::CONFLICT, "conflict", &msg),
                _ => invalid_request(&msg),
            },
            IssueError::Server(_) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal server error",
            ),
        }
    }
}
