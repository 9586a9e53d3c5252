//! The canonical request path. Routing and forwarding both use it, so what
//! the upstream is asked for is exactly what was authorized, and every
//! spelling a backend reads as one path is authorized under one rule.
//!
//! [`normalize`] computes the canonical form once, before routing (RFC 3986
//! §6.2.2 and further, `docs/security.md` has the table of constructs):
//! escapes of unreserved characters (`%70` → `p`, `%2E` → `.`) are decoded;
//! the other escapes are kept with upper-case hex; `.` and `..` segments are
//! resolved and empty segments (`//`) merged. Refused (400): a `..` above the
//! root, an encoded `/` or `\`, a literal `\`, an encoded control character,
//! an escaped `%` that forms an escape again (`%2570`, read as `%70` → `p` by
//! backends that decode twice), escapes that do not decode to UTF-8
//! (overlong forms such as `%C0%AE`) and malformed escapes.
//!
//! Some constructs stay in the canonical form because most backends read
//! them literally while some do not: escapes of reserved characters (`%3B`,
//! `%40`, non-ASCII), `;` path parameters (stripped by Java servlet
//! containers), letter case (folded by case-insensitive file systems) and
//! trailing dots or `:` in a segment (Windows). [`readings`] lists the other
//! ways a backend may read such a path; the route table refuses a request
//! whose readings are routed differently (`RouteTable::resolve`).

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
    #[error("path contains an encoded control character")]
    ControlChar,
    #[error("path contains a double-encoded escape")]
    DoubleEncoded,
    #[error("path escapes do not decode to UTF-8")]
    NotUtf8,
}

/// Normalise `path` (without the query) into its canonical form. Borrowed
/// when nothing changes, which is the common case for tile paths.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, PathError> {
    let b = path.as_bytes();
    if b.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    if !needs_work(b) {
        return Ok(Cow::Borrowed(path));
    }
    let mut segs: Vec<String> = Vec::new();
    let parts: Vec<&str> = path[1..].split('/').collect();
    let last = parts.len() - 1;
    let mut trailing_slash = false;
    for (i, raw) in parts.iter().enumerate() {
        let seg = canonical_segment(raw)?;
        match seg.as_str() {
            "." => trailing_slash = i == last,
            ".." => {
                if segs.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
                trailing_slash = i == last;
            }
            "" => trailing_slash = i == last,
            _ => {
                segs.push(seg);
                trailing_slash = false;
            }
        }
    }
    let mut s = String::with_capacity(path.len());
    for seg in &segs {
        s.push('/');
        s.push_str(seg);
    }
    if trailing_slash || s.is_empty() {
        s.push('/');
    }
    check_decoded(&s)?;
    if s == path {
        return Ok(Cow::Borrowed(path));
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

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
}

/// One segment: unreserved escapes decoded, the others upper-cased; refuses
/// separators, control characters and malformed escapes.
fn canonical_segment(seg: &str) -> Result<String, PathError> {
    let b = seg.as_bytes();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => return Err(PathError::Malformed),
            b'%' => {
                let (h, l) = match (b.get(i + 1).and_then(|&c| hex(c)), b.get(i + 2).and_then(|&c| hex(c))) {
                    (Some(h), Some(l)) => (h, l),
                    _ => return Err(PathError::Malformed),
                };
                let v = h << 4 | l;
                if matches!(v, b'/' | b'\\') || v == 0 {
                    return Err(PathError::EncodedSeparator);
                }
                if v < 0x20 || v == 0x7f {
                    return Err(PathError::ControlChar);
                }
                if is_unreserved(v) {
                    out.push(v as char);
                } else {
                    out.push('%');
                    out.push(b"0123456789ABCDEF"[h as usize] as char);
                    out.push(b"0123456789ABCDEF"[l as usize] as char);
                }
                i += 3;
            }
            _ => {
                // `seg` is a &str and only ASCII is consumed one byte at a
                // time here, so multi-byte characters are copied whole.
                let ch = seg[i..].chars().next().expect("in bounds");
                out.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    Ok(out)
}

/// Whole-path checks on the canonical form: no `%25` that forms an escape
/// again, and escapes that decode to UTF-8.
fn check_decoded(s: &str) -> Result<(), PathError> {
    let b = s.as_bytes();
    let mut high = false;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            // Canonical escapes are well formed: `%` and two hex digits.
            if b[i + 1] == b'2'
                && b[i + 2] == b'5'
                && b.len() > i + 4
                && hex(b[i + 3]).is_some()
                && hex(b[i + 4]).is_some()
            {
                return Err(PathError::DoubleEncoded);
            }
            if b[i + 1] >= b'8' {
                high = true;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    if high && std::str::from_utf8(&percent_decode(s)).is_err() {
        return Err(PathError::NotUtf8);
    }
    Ok(())
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let (Some(h), Some(l)) = (b.get(i + 1).and_then(|&c| hex(c)), b.get(i + 2).and_then(|&c| hex(c))) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Another way a backend may read a canonical path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    pub path: String,
    /// Read by a case-insensitive backend: match with ASCII case ignored.
    pub folded: bool,
}

/// Whether a canonical path may be read differently by some backend, so
/// that [`readings`] must be consulted. One pass, no allocation: this runs
/// on every request.
#[inline]
pub fn ambiguous(canonical: &str) -> bool {
    let b = canonical.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'%' | b';' | b':' | b'A'..=b'Z' => return true,
            b'.' if matches!(b.get(i + 1), None | Some(b'/')) => return true,
            _ => {}
        }
    }
    false
}

/// The other readings of a canonical path by common backends
/// (`docs/security.md`):
/// - decoded: every escape decoded once (nginx, Go, Python, Node, Tomcat
///   after its parameter step);
/// - parameters stripped: `;…` removed from each segment before decoding,
///   then dot segments resolved (Tomcat, Jetty, Spring: `/a/..;/b` is `/b`);
/// - folded: ASCII case ignored (Windows, macOS file systems, IIS);
/// - Windows: trailing dots and spaces trimmed and `:…` (alternate data
///   streams) cut from each segment, case ignored.
///
/// Err when a reading climbs above the root.
pub fn readings(canonical: &str) -> Result<Vec<Reading>, PathError> {
    let mut out = Vec::new();
    let push = |r: Reading, out: &mut Vec<Reading>| {
        if (r.folded || r.path != canonical) && !out.contains(&r) {
            out.push(r);
        }
    };
    let decoded = decode_lossy(canonical);
    let mut bases = vec![decoded.clone()];
    if canonical.contains(';') {
        let stripped: Vec<&str> = canonical
            .split('/')
            .map(|seg| seg.split(';').next().unwrap_or(""))
            .collect();
        bases.push(decode_lossy(&resolve(&stripped.join("/"))?));
    }
    for base in bases {
        push(
            Reading {
                path: base.clone(),
                folded: false,
            },
            &mut out,
        );
        push(
            Reading {
                path: base.clone(),
                folded: true,
            },
            &mut out,
        );
        let win: Vec<&str> = base
            .split('/')
            .map(|seg| seg.split(':').next().unwrap_or("").trim_end_matches(['.', ' ']))
            .collect();
        let win = win.join("/");
        if win != base {
            push(
                Reading {
                    path: resolve(&win)?,
                    folded: true,
                },
                &mut out,
            );
        }
    }
    Ok(out)
}

fn decode_lossy(s: &str) -> String {
    if !s.contains('%') {
        return s.to_owned();
    }
    String::from_utf8_lossy(&percent_decode(s)).into_owned()
}

/// Dot segments resolved and empty segments merged, on an already decoded
/// path (the readings' last step).
fn resolve(path: &str) -> Result<String, PathError> {
    let parts: Vec<&str> = path.split('/').skip(1).collect();
    let last = parts.len().saturating_sub(1);
    let mut segs: Vec<&str> = Vec::new();
    let mut trailing = false;
    for (i, seg) in parts.iter().enumerate() {
        match *seg {
            "." | "" => trailing = i == last,
            ".." => {
                if segs.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
                trailing = i == last;
            }
            s => {
                segs.push(s);
                trailing = false;
            }
        }
    }
    let mut s = String::with_capacity(path.len());
    for seg in segs {
        s.push('/');
        s.push_str(seg);
    }
    if trailing || s.is_empty() {
        s.push('/');
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untouched_paths_are_borrowed() {
        assert!(matches!(normalize("/tiles/1/2/3.pbf"), Ok(Cow::Borrowed(_))));
        assert!(matches!(normalize("/"), Ok(Cow::Borrowed(_))));
        assert!(matches!(normalize("/a.b/c..d"), Ok(Cow::Borrowed(_))));
        assert!(matches!(normalize("/a/%3B/%C3%A9"), Ok(Cow::Borrowed(_))));
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
    }

    #[test]
    fn unreserved_escapes_decode_and_others_upper_case() {
        assert_eq!(normalize("/tiles/%70remium/x").unwrap(), "/tiles/premium/x");
        assert_eq!(normalize("/%41%7a%30%2d%5F%7e").unwrap(), "/Az0-_~");
        assert_eq!(normalize("/a%3bb/%c3%a9").unwrap(), "/a%3Bb/%C3%A9");
        assert_eq!(normalize("/a%20b").unwrap(), "/a%20b");
        assert_eq!(normalize("/100%25").unwrap(), "/100%25");
    }

    #[test]
    fn unsafe_paths_are_refused() {
        assert_eq!(normalize("/.."), Err(PathError::AboveRoot));
        assert_eq!(normalize("/a/../../b"), Err(PathError::AboveRoot));
        assert_eq!(normalize("/a%2fb"), Err(PathError::EncodedSeparator));
        assert_eq!(normalize("/a%2Fb"), Err(PathError::EncodedSeparator));
        assert_eq!(normalize("/a%5cb"), Err(PathError::EncodedSeparator));
        assert_eq!(normalize("/a%00"), Err(PathError::EncodedSeparator));
        assert_eq!(normalize("/a%0d%0a"), Err(PathError::ControlChar));
        assert_eq!(normalize("/a%7F"), Err(PathError::ControlChar));
        assert_eq!(normalize("/a\\b"), Err(PathError::Malformed));
        assert_eq!(normalize("/a%zz"), Err(PathError::Malformed));
        assert_eq!(normalize("/a%2"), Err(PathError::Malformed));
        assert_eq!(normalize("a/b"), Err(PathError::NotAbsolute));
        assert_eq!(normalize("/a/%252e%252e/b"), Err(PathError::DoubleEncoded));
        assert_eq!(normalize("/x/%2570remium"), Err(PathError::DoubleEncoded));
        // `%37%30` are digits: decoding them must not make a `%2570`.
        assert_eq!(normalize("/x/%25%37%30remium"), Err(PathError::DoubleEncoded));
        assert_eq!(normalize("/a/%C0%AE%C0%AE/b"), Err(PathError::NotUtf8));
        assert_eq!(normalize("/a/%FF"), Err(PathError::NotUtf8));
    }

    #[test]
    fn readings_cover_parameters_case_and_windows() {
        let r = |p: &str| readings(p).unwrap();
        assert!(!ambiguous("/tiles/1/2/3.pbf"));
        assert!(ambiguous("/tiles/Premium/x"));
        assert!(ambiguous("/tiles/premium./x"));
        assert!(r("/x/premium;a=b/s").contains(&Reading {
            path: "/x/premium/s".into(),
            folded: false
        }));
        assert!(r("/x/..;/premium/s").contains(&Reading {
            path: "/premium/s".into(),
            folded: false
        }));
        assert!(r("/x/%40a").contains(&Reading {
            path: "/x/@a".into(),
            folded: false
        }));
        assert!(r("/x/PREMIUM/s").contains(&Reading {
            path: "/x/PREMIUM/s".into(),
            folded: true
        }));
        assert!(r("/x/premium.%20/s").contains(&Reading {
            path: "/x/premium/s".into(),
            folded: true
        }));
        assert!(r("/x/premium::$DATA/s").contains(&Reading {
            path: "/x/premium/s".into(),
            folded: true
        }));
        assert_eq!(readings("/..;/x"), Err(PathError::AboveRoot));
    }

    proptest::proptest! {
        /// Whatever comes in, what comes out is absolute, has no dot
        /// segments and no empty inner segments, and is a fixed point.
        #[test]
        fn normalised_is_canonical(s in "/[a-zA-Z./%25eE2fF37;]{0,24}") {
            if let Ok(n) = normalize(&s) {
                proptest::prop_assert!(n.starts_with('/'));
                let inner = n.trim_end_matches('/');
                for seg in inner.split('/').skip(1) {
                    proptest::prop_assert!(!matches!(seg, "" | "." | ".."), "{} -> {}", s, n);
                }
                let again = normalize(&n).unwrap();
                proptest::prop_assert_eq!(again.as_ref(), n.as_ref());
            }
        }
    }
}
