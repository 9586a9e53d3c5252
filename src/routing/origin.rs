//! Allowed origins of an API key and the tokens derived from it (origin
//! binding, docs/grants.md): `https://app.example.com` (exact: scheme,
//! host and port) or `https://*.example.com` (any one label in place of
//! the `*`: `a.example.com`, not `a.b.example.com`, not `example.com`).

/// Whether `pattern` is an allowed-origin pattern: `http(s)://host[:port]`
/// in lower case, no path, the host optionally starting with `*.` followed
/// by at least two labels.
pub fn valid_origin_pattern(pattern: &str) -> bool {
    let Some(rest) = pattern
        .strip_prefix("https://")
        .or_else(|| pattern.strip_prefix("http://"))
    else {
        return false;
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (rest, None),
    };
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    let host = match host.strip_prefix("*.") {
        Some(h) => {
            if h.split('.').count() < 2 {
                return false;
            }
            h
        }
        None => host,
    };
    !host.is_empty()
        && pattern.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// Whether `origin` (as a browser sends it: `scheme://host[:port]`) is
/// allowed by `pattern`. Case-insensitive on the origin.
pub fn origin_matches(pattern: &str, origin: &str) -> bool {
    match pattern.split_once("*.") {
        None => pattern.eq_ignore_ascii_case(origin),
        Some((scheme, suffix)) => {
            let (Some(o_scheme), Some(o_rest)) = (origin.get(..scheme.len()), origin.get(scheme.len()..)) else {
                return false;
            };
            if !o_scheme.eq_ignore_ascii_case(scheme) || o_rest.len() <= suffix.len() + 1 {
                return false;
            }
            let (label, rest) = o_rest.split_at(o_rest.len() - suffix.len());
            let Some(label) = label.strip_suffix('.') else {
                return false;
            };
            rest.eq_ignore_ascii_case(suffix)
                && !label.is_empty()
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        }
    }
}

/// The origin (`scheme://host[:port]`) of a `Referer` URL.
pub fn referer_origin(referer: &str) -> Option<&str> {
    let scheme_end = referer.find("://")? + 3;
    let rest = &referer[scheme_end..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    // No userinfo: `https://app.example.com@evil.example/` is evil's.
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    Some(&referer[..scheme_end + end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        for ok in [
            "https://app.example.com",
            "http://localhost:8080",
            "https://*.example.com",
            "https://a-1.example.co.uk:8443",
        ] {
            assert!(valid_origin_pattern(ok), "{ok}");
        }
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "https://*.com",
            "https://a.*.example.com",
            "https://*",
            "https://App.example.com",
            "https://a.example.com:",
            "ftp://a.example.com",
            "*",
        ] {
            assert!(!valid_origin_pattern(bad), "{bad}");
        }
    }

    #[test]
    fn wildcards_stand_for_one_label() {
        let p = "https://*.example.com";
        assert!(origin_matches(p, "https://a.example.com"));
        assert!(origin_matches(p, "https://A.Example.com"));
        assert!(!origin_matches(p, "https://a.b.example.com"));
        assert!(!origin_matches(p, "https://example.com"));
        assert!(!origin_matches(p, "https://.example.com"));
        assert!(!origin_matches(p, "http://a.example.com"));
        assert!(!origin_matches(p, "https://aexample.com"));
        assert!(!origin_matches(p, "https://a.example.com:8443"));
        assert!(!origin_matches(p, "https://a.example.com.evil.net"));
        assert!(origin_matches("https://app.example.com", "https://app.example.com"));
        assert!(!origin_matches(
            "https://app.example.com",
            "https://app.example.com:444"
        ));
    }

    #[test]
    fn referer_origins() {
        assert_eq!(
            referer_origin("https://app.example.com/map?x=1"),
            Some("https://app.example.com")
        );
        assert_eq!(
            referer_origin("https://app.example.com:8443"),
            Some("https://app.example.com:8443")
        );
        assert_eq!(referer_origin("https://app.example.com@evil.example/"), None);
        assert_eq!(referer_origin("no-scheme"), None);
    }
}
