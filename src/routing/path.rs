//! Path normalisation. Routing and forwarding both use the normalised path,
//! so what the upstream is asked for is exactly what was authorized.
//!
//! Rules: `.` and `..` segments (also percent-encoded, `%2e`) are resolved;
//! a `..` above the root, an encoded `/` or `\` (`%2f`, `%5c`), a literal `\`,
//! a NUL (`%00`) or a malformed escape are refused (400); empty segments
//! (`//`) collapse. Other escapes pass through untouched, so `%252e` stays a
//! literal segment named `%2e` and is never decoded twice here.

use std::borrow::Cow;

/// Why a path cannot be normalised safely.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path does not start with /")]
    NotAbsolute,
    #[error("path climbs above the root")]
    AboveRoot,
    #[error("path contains an encoded separator or NUL")]
    EncodedSeparator,
    #[error("path contains a malformed percent-escape or a backslash")]
    Malformed,
}

/// Normalise `path` (without the query). Borrowed when nothing changes,
/// which is the common case for tile paths.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, PathError> {
    let b = path.as_bytes();
    if b.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    if !needs_work(b) {
        return Ok(Cow::Borrowed(path));
    }
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len() - 1;
    let mut trailing_slash = false;
    for (i, seg) in segments.iter().enumerate() {
        check_escapes(seg)?;
        match dot_kind(seg) {
            Dot::One => trailing_slash = i == last,
            Dot::Two => {
                if out.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
                trailing_slash = i == last;
            }
            Dot::None if seg.is_empty() => trailing_slash = i == last,
            Dot::None => {
                out.push(seg);
                trailing_slash = false;
            }
        }
    }
    let mut s = String::with_capacity(path.len());
    for seg in &out {
        s.push('/');
        s.push_str(seg);
    }
    if trailing_slash || s.is_empty() {
        s.push('/');
    }
    Ok(Cow::Owned(s))
}

/// True when the path has anything the fast path cannot vouch for: a `%`,
/// a `\`, an empty segment or a segment starting with `.`.
#[inline]
fn needs_work(b: &[u8]) -> bool {
    let mut prev = 0u8;
    for &c in b {
        if c == b'%' || c == b'\\' || (prev == b'/' && (c == b'/' || c == b'.')) {
            return true;
        }
        prev = c;
    }
    false
}

fn check_escapes(seg: &str) -> Result<(), PathError> {
    let b = seg.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => return Err(PathError::Malformed),
            b'%' => {
                let h = b.get(i + 1..i + 3).ok_or(PathError::Malformed)?;
                let v = std::str::from_utf8(h)
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or(PathError::Malformed)?;
                if matches!(v, b'/' | b'\\' | 0) {
                    return Err(PathError::EncodedSeparator);
                }
                i += 3;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

enum Dot {
    None,
    One,
    Two,
}

/// Whether a segment is `.` or `..`, literally or percent-encoded.
fn dot_kind(seg: &str) -> Dot {
    let mut dots = 0;
    let b = seg.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'.' {
            i += 1;
        } else if b[i] == b'%' && b.get(i + 1) == Some(&b'2') && matches!(b.get(i + 2), Some(b'e' | b'E')) {
            i += 3;
        } else {
            return Dot::None;
        }
        dots += 1;
        if dots > 2 {
            return Dot::None;
        }
    }
    match dots {
        1 => Dot::One,
        2 => Dot::Two,
        _ => Dot::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untouched_paths_are_borrowed() {
        assert!(matches!(normalize("/tiles/1/2/3.pbf"), Ok(Cow::Borrowed(_))));
        assert!(matches!(normalize("/"), Ok(Cow::Borrowed(_))));
        assert!(matches!(normalize("/a.b/c..d"), Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn dot_segments_resolve() {
        assert_eq!(normalize("/a/./b").unwrap(), "/a/b");
        assert_eq!(normalize("/a/../b").unwrap(), "/b");
        assert_eq!(normalize("/a/%2e%2E/b").unwrap(), "/b");
        assert_eq!(normalize("/a/.%2e/b").unwrap(), "/b");
        assert_eq!(normalize("//a//b/").unwrap(), "/a/b/");
        assert_eq!(normalize("/a/b/..").unwrap(), "/a/");
        assert_eq!(normalize("/a/.").unwrap(), "/a/");
        assert_eq!(normalize("/a/...").unwrap(), "/a/...");
        assert_eq!(normalize("/a/%252e%252e/b").unwrap(), "/a/%252e%252e/b");
    }

    #[test]
    fn unsafe_paths_are_refused() {
        assert_eq!(normalize("/.."), Err(PathError::AboveRoot));
        assert_eq!(normalize("/a/../../b"), Err(PathError::AboveRoot));
        assert_eq!(normalize("/a%2fb"), Err(PathError::EncodedSeparator));
        assert_eq!(normalize("/a%2Fb"), Err(PathError::EncodedSeparator));
        assert_eq!(normalize("/a%5cb"), Err(PathError::EncodedSeparator));
        assert_eq!(normalize("/a%00"), Err(PathError::EncodedSeparator));
        assert_eq!(normalize("/a\\b"), Err(PathError::Malformed));
        assert_eq!(normalize("/a%zz"), Err(PathError::Malformed));
        assert_eq!(normalize("/a%2"), Err(PathError::Malformed));
        assert_eq!(normalize("a/b"), Err(PathError::NotAbsolute));
    }

    proptest::proptest! {
        /// Whatever comes in, what comes out is absolute, has no dot
        /// segments and no empty inner segments, and is a fixed point.
        #[test]
        fn normalised_is_canonical(s in "/[a-z./%25eE2fF]{0,24}") {
            if let Ok(n) = normalize(&s) {
                proptest::prop_assert!(n.starts_with('/'));
                let inner = n.trim_end_matches('/');
                for seg in inner.split('/').skip(1) {
                    proptest::prop_assert!(!matches!(seg, "" | "." | ".."), "{} -> {}", s, n);
                    proptest::prop_assert!(!seg.eq_ignore_ascii_case("%2e") && !seg.eq_ignore_ascii_case("%2e%2e"));
                }
                let again = normalize(&n).unwrap();
                proptest::prop_assert_eq!(again.as_ref(), n.as_ref());
            }
        }
    }
}
