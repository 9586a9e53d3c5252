//! The routing phases of the request path that read the request itself:
//! the host check, the CORS preflight test and the target rewrite (strip
//! and add prefix, query without token parameters).

use std::borrow::Cow;

use http::header::{ACCESS_CONTROL_REQUEST_METHOD, HOST, ORIGIN};
use http::uri::PathAndQuery;
use http::Method;

use super::Route;

/// Why a request's host or target cannot be routed or forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("more than one Host header")]
    MoreThanOneHost,
    #[error("the Host header differs from the request target")]
    HostDiffersFromTarget,
    #[error("the request target cannot be forwarded")]
    Unforwardable,
}

/// One host per request: a single `Host` header, equal to the request
/// target's authority when both are present (an HTTP/2 `host` that differs
/// from `:authority`, or an absolute-form HTTP/1 target with another
/// `Host`, would be routed on one and read by the backend as the other).
pub fn one_host(req: &http::request::Parts) -> Result<(), TargetError> {
    let mut hosts = req.headers.get_all(HOST).iter();
    let Some(h) = hosts.next() else { return Ok(()) };
    if hosts.next().is_some() {
        return Err(TargetError::MoreThanOneHost);
    }
    match req.uri.authority() {
        Some(a) if !a.as_str().as_bytes().eq_ignore_ascii_case(h.as_bytes()) => Err(TargetError::HostDiffersFromTarget),
        _ => Ok(()),
    }
}

/// The request's host, without port, from `Host` or the URI (HTTP/2).
pub fn host_of(req: &http::request::Parts) -> Option<&str> {
    let h = req
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.host())?;
    // `maps.example.` names the same host as `maps.example` (a trailing
    // dot would otherwise miss the host's routes and fall to host-less ones).
    let h = match h.rsplit_once(':') {
        Some((host, port))
            if port.bytes().all(|b| b.is_ascii_digit()) && !host.ends_with(']') || h.starts_with('[') =>
        {
            if h.starts_with('[') {
                h.split(']').next().map(|x| &x[1..]).unwrap_or(h)
            } else {
                host
            }
        }
        _ => h,
    };
    Some(h.strip_suffix('.').unwrap_or(h))
}

/// The method a CORS preflight announces: an `OPTIONS` request with an
/// `Origin` and a valid `Access-Control-Request-Method`. Anything else is
/// an ordinary request (an `OPTIONS` one included).
pub fn preflight_method(req: &http::request::Parts) -> Option<Method> {
    if req.method != Method::OPTIONS || !req.headers.contains_key(ORIGIN) {
        return None;
    }
    req.headers
        .get(ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
}

/// The target sent upstream: the normalised `path`, re-prefixed as the
/// route says (`strip_prefix`, then `add_prefix`), with `new_query` (the
/// query minus any token parameter, when one was removed) or else the
/// request's own query. The request's own bytes when nothing changed.
pub fn rewrite_target(
    route: &Route,
    path: &str,
    uri: &http::Uri,
    new_query: Option<&str>,
) -> Result<PathAndQuery, TargetError> {
    let mut target_path: Cow<'_, str> = Cow::Borrowed(path);
    if let Some(strip) = &route.strip_prefix {
        if let Some(rest) = path.strip_prefix(strip.as_ref()) {
            target_path = if rest.starts_with('/') {
                Cow::Borrowed(rest)
            } else {
                Cow::Owned(format!("/{rest}"))
            };
        }
    }
    if let Some(add) = &route.add_prefix {
        target_path = Cow::Owned(format!("{}{}", add.trim_end_matches('/'), target_path));
    }
    let unchanged = matches!(target_path, Cow::Borrowed(p) if p == uri.path()) && new_query.is_none();
    if unchanged {
        return Ok(uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")));
    }
    let q = match new_query {
        Some(q) => Some(q).filter(|q| !q.is_empty()),
        None => uri.query(),
    };
    let s = match q {
        Some(q) => format!("{target_path}?{q}"),
        None => target_path.into_owned(),
    };
    PathAndQuery::try_from(s).map_err(|_| TargetError::Unforwardable)
}
