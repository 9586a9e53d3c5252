//! Token extraction: `Authorization: Bearer` and the route's query
//! parameters. A query token is cut out of the query that goes upstream.

use http::header::AUTHORIZATION;
use http::HeaderMap;

use super::{AuthError, Reason};

/// Where the token was found, and the query to forward when it came in
/// the query string.
#[derive(Debug, PartialEq, Eq)]
pub struct Extracted<'a> {
    pub token: std::borrow::Cow<'a, str>,
    /// `Some(q)` when the forwarded query must be `q` (possibly empty).
    pub new_query: Option<String>,
}

/// The bearer credential in an `Authorization` header, if any. A header
/// with another scheme counts as no bearer token.
#[inline]
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, AuthError> {
    let mut it = headers.get_all(AUTHORIZATION).iter();
    let Some(v) = it.next() else { return Ok(None) };
    if it.next().is_some() {
        return Err(AuthError::Invalid(Reason::Ambiguous));
    }
    let v = v.to_str().map_err(|_| AuthError::Invalid(Reason::Malformed))?;
    match v.split_once(' ') {
        Some((scheme, tok)) if scheme.eq_ignore_ascii_case("bearer") => {
            let tok = tok.trim();
            if tok.is_empty() {
                Err(AuthError::Invalid(Reason::Malformed))
            } else {
                Ok(Some(tok))
            }
        }
        _ => Ok(None),
    }
}

/// Find the request's token: header first, then `params` in the query.
/// More than one token (header and query, or a repeated parameter) is
/// refused: RFC 6750 §2 allows one method per request.
pub fn extract<'a>(
    headers: &'a HeaderMap,
    query: Option<&'a str>,
    params: &[Box<str>],
) -> Result<Option<Extracted<'a>>, AuthError> {
    let header = bearer(headers)?;
    let Some(q) = query.filter(|q| !q.is_empty() && !params.is_empty()) else {
        return Ok(header.map(|t| Extracted {
            token: t.into(),
            new_query: None,
        }));
    };
    let mut found: Option<&str> = None;
    let mut any = false;
    for pair in q.split('&') {
        if is_token_param(pair, params) {
            if found.is_some() || header.is_some() {
                return Err(AuthError::Invalid(Reason::Ambiguous));
            }
            found = Some(pair.split_once('=').map_or("", |(_, v)| v));
            any = true;
        }
    }
    if !any {
        return Ok(header.map(|t| Extracted {
            token: t.into(),
            new_query: None,
        }));
    }
    let raw = found.unwrap_or("");
    let token = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| AuthError::Invalid(Reason::Malformed))?;
    if token.is_empty() {
        return Err(AuthError::Invalid(Reason::Malformed));
    }
    Ok(Some(Extracted {
        token,
        new_query: Some(without_tokens(q, params)),
    }))
}

/// Whether a `name=value` pair names a token parameter. Names are compared
/// percent-decoded (`acc%65ss_token` is `access_token` to the backend).
fn is_token_param(pair: &str, params: &[Box<str>]) -> bool {
    let name = pair.split_once('=').map_or(pair, |(n, _)| n);
    if name.contains('%') {
        let decoded = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
        params.iter().any(|p| p.as_ref() == decoded)
    } else {
        params.iter().any(|p| p.as_bytes() == name.as_bytes())
    }
}

/// The query without its token parameters.
fn without_tokens(q: &str, params: &[Box<str>]) -> String {
    let kept: Vec<&str> = q.split('&').filter(|pair| !is_token_param(pair, params)).collect();
    kept.join("&")
}

/// For a public route: the query with any token parameter removed, or
/// None when it has none (the common case: no allocation).
pub fn strip_query_tokens(query: Option<&str>, params: &[Box<str>]) -> Option<String> {
    let q = query.filter(|q| !q.is_empty() && !params.is_empty())?;
    if q.split('&').any(|pair| is_token_param(pair, params)) {
        Some(without_tokens(q, params))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(v: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(AUTHORIZATION, v.parse().unwrap());
        m
    }
    fn params() -> Vec<Box<str>> {
        vec!["access_token".into()]
    }

    #[test]
    fn header_token() {
        let (h1, h2) = (h("Bearer abc"), h("bearer abc"));
        let e = extract(&h1, None, &params()).unwrap().unwrap();
        assert_eq!(e.token, "abc");
        assert_eq!(e.new_query, None);
        let e = extract(&h2, Some("x=1"), &params()).unwrap().unwrap();
        assert_eq!(e.token, "abc");
        assert!(extract(&h("Basic abc"), None, &params()).unwrap().is_none());
        assert!(extract(&h("Bearer "), None, &params()).is_err());
    }

    #[test]
    fn query_token_is_cut_out() {
        let m = HeaderMap::new();
        let e = extract(&m, Some("a=1&access_token=t.o.k&b=2"), &params())
            .unwrap()
            .unwrap();
        assert_eq!(e.token, "t.o.k");
        assert_eq!(e.new_query.as_deref(), Some("a=1&b=2"));
        let e = extract(&m, Some("access_token=x"), &params()).unwrap().unwrap();
        assert_eq!(e.new_query.as_deref(), Some(""));
        let e = extract(&m, Some("access_token_x=1"), &params()).unwrap();
        assert!(e.is_none());
    }

    #[test]
    fn two_tokens_are_refused() {
        assert!(extract(&h("Bearer a"), Some("access_token=b"), &params()).is_err());
        assert!(extract(&HeaderMap::new(), Some("access_token=a&access_token=b"), &params()).is_err());
    }
}
