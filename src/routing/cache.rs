//! What shared caches may keep of a response to an authenticated request
//! (docs/grants.md, "Shared caches"): on token routes without
//! `shared_cache = true`, `Cache-Control` is made `private` and, when the
//! token came in a header, `Vary` names `Authorization`.

use http::header::{HeaderMap, HeaderValue, CACHE_CONTROL, VARY};

/// Make `h` (a response's headers) private to the caller: the upstream's
/// `Cache-Control` directives are kept, but for `public` and `s-maxage`
/// (which let a shared cache store it) and a field-qualified `private=…`
/// (which lets it store the rest), and `private` is added. With
/// `vary_authorization` (the token came in `Authorization`), `Vary` gets
/// `Authorization` unless it is `*` or names it already.
pub fn make_private(h: &mut HeaderMap, vary_authorization: bool) {
    if h.contains_key(CACHE_CONTROL) {
        rewrite_cache_control(h);
    } else {
        // The common case for tiles without cache headers: no parsing.
        h.insert(CACHE_CONTROL, HeaderValue::from_static("private"));
    }
    if vary_authorization {
        let covered = h.get_all(VARY).iter().any(|v| {
            v.to_str().unwrap_or("").split(',').any(|n| {
                let n = n.trim();
                n == "*" || n.eq_ignore_ascii_case("authorization")
            })
        });
        if !covered {
            h.append(VARY, HeaderValue::from_static("Authorization"));
        }
    }
}

/// `Cache-Control` with `private` first and the shared-cache directives
/// gone (see [`make_private`]).
fn rewrite_cache_control(h: &mut HeaderMap) {
    // Directives are borrowed from the header values, straight into the
    // one string the new value is made of.
    let mut value = String::from("private");
    let mut readable = true;
    for v in h.get_all(CACHE_CONTROL) {
        let Ok(text) = v.to_str() else {
            readable = false;
            continue;
        };
        for d in directives(text) {
            let name = d.split('=').next().unwrap_or("").trim();
            let shared = ["public", "s-maxage", "private"]
                .iter()
                .any(|n| name.eq_ignore_ascii_case(n));
            if !shared && !name.is_empty() {
                value.push_str(", ");
                value.push_str(d);
            }
        }
    }
    // An unreadable header: nothing of it is trusted, the response may not
    // be stored at all.
    if !readable {
        value.push_str(", no-store");
    }
    let value = HeaderValue::from_maybe_shared(bytes::Bytes::from(value))
        .unwrap_or(HeaderValue::from_static("private, no-store"));
    h.insert(CACHE_CONTROL, value);
}

/// The directives of a `Cache-Control` value: split at commas outside
/// quoted strings (`no-cache="a, b"` is one directive), trimmed, empty
/// ones left out; read lazily, without collecting them.
fn directives(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || loop {
        let t = rest?;
        // Each piece starts outside quotes: a split is only made there.
        let (mut quoted, mut escaped, mut end) = (false, false, None);
        for (i, b) in t.bytes().enumerate() {
            match b {
                _ if escaped => escaped = false,
                b'\\' if quoted => escaped = true,
                b'"' => quoted = !quoted,
                b',' if !quoted => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let piece = match end {
            Some(i) => {
                rest = Some(&t[i + 1..]);
                &t[..i]
            }
            None => {
                rest = None;
                t
            }
        };
        let piece = piece.trim();
        if !piece.is_empty() {
            return Some(piece);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn private(cc: &[&str], vary: &[&str], from_header: bool) -> (String, Vec<String>) {
        let mut h = HeaderMap::new();
        for v in cc {
            h.append(CACHE_CONTROL, HeaderValue::from_str(v).unwrap());
        }
        for v in vary {
            h.append(VARY, HeaderValue::from_str(v).unwrap());
        }
        make_private(&mut h, from_header);
        let all: Vec<_> = h.get_all(CACHE_CONTROL).iter().collect();
        assert_eq!(all.len(), 1, "one Cache-Control");
        (
            all[0].to_str().unwrap().to_owned(),
            h.get_all(VARY).iter().map(|v| v.to_str().unwrap().to_owned()).collect(),
        )
    }

    #[test]
    fn shared_cache_directives_are_replaced_and_stricter_ones_kept() {
        assert_eq!(private(&[], &[], true).0, "private");
        assert_eq!(
            private(&["public, max-age=3600, s-maxage=86400"], &[], true).0,
            "private, max-age=3600"
        );
        assert_eq!(private(&["no-store"], &[], true).0, "private, no-store");
        assert_eq!(
            private(&["no-cache, must-revalidate", "max-age=0"], &[], true).0,
            "private, no-cache, must-revalidate, max-age=0"
        );
        assert_eq!(private(&["private"], &[], true).0, "private");
        assert_eq!(
            private(&[r#"private="set-cookie", no-cache="a, b""#], &[], true).0,
            r#"private, no-cache="a, b""#
        );
    }

    #[test]
    fn vary_names_authorization_once_and_only_for_header_tokens() {
        assert_eq!(private(&[], &[], true).1, vec!["Authorization"]);
        assert!(private(&[], &[], false).1.is_empty());
        assert_eq!(
            private(&[], &["Accept-Encoding"], true).1,
            vec!["Accept-Encoding", "Authorization"]
        );
        assert_eq!(
            private(&[], &["accept, authorization"], true).1,
            vec!["accept, authorization"]
        );
        assert_eq!(private(&[], &["*"], true).1, vec!["*"]);
    }
}
