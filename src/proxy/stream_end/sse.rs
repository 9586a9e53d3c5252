//! Where server-sent events end in a `text/event-stream` body: at a blank
//! line (HTML Living Standard, "Interpreting an event stream"; a line ends
//! with CRLF, LF or CR). A final event may only be put at such a boundary,
//! never inside an event. Pure: no I/O, no allocation.

/// The position in an event stream after the bytes fed so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SseTracker {
    /// At an event boundary (the start, or after a blank line).
    #[default]
    Boundary,
    /// At a boundary reached by a CR (an LF next belongs to it).
    BoundaryCr,
    /// Inside a non-empty line.
    Line,
    /// After a CR ending a non-empty line (an LF next belongs to it).
    LineCr,
    /// At the start of a line after a non-empty one.
    LineStart,
}

impl SseTracker {
    pub fn at_boundary(self) -> bool {
        matches!(self, SseTracker::Boundary | SseTracker::BoundaryCr)
    }

    fn step(self, b: u8) -> SseTracker {
        use SseTracker::*;
        match (self, b) {
            (BoundaryCr, b'\n') => Boundary,
            (Boundary | BoundaryCr | LineStart, b'\r') => BoundaryCr,
            (Boundary | LineStart, b'\n') => Boundary,
            (LineCr, b'\n') => LineStart,
            (LineCr, b'\r') => BoundaryCr,
            (Line, b'\r') => LineCr,
            (Line, b'\n') => LineStart,
            (_, _) => Line,
        }
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        *self = bytes.iter().fold(*self, |s, b| s.step(*b));
    }

    /// The first offset `p` (1..=len) at which the stream is at an event
    /// boundary once `bytes[..p]` is fed, or None.
    pub fn boundary_in(self, bytes: &[u8]) -> Option<usize> {
        let mut s = self;
        for (i, b) in bytes.iter().enumerate() {
            s = s.step(*b);
            if s.at_boundary() {
                return Some(i + 1);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn after(bytes: &[u8]) -> SseTracker {
        let mut t = SseTracker::default();
        t.feed(bytes);
        t
    }

    #[test]
    fn blank_lines_end_events_with_every_line_ending() {
        assert!(after(b"").at_boundary());
        for s in [
            &b"data: 1\n\n"[..],
            b"data: 1\r\n\r\n",
            b"data: 1\r\r",
            b"event: a\ndata: 1\n\n",
            b": c\n\n",
        ] {
            assert!(after(s).at_boundary(), "{:?}", String::from_utf8_lossy(s));
            assert!(
                !after(&s[..s.len() - 2]).at_boundary(),
                "{:?}",
                String::from_utf8_lossy(s)
            );
        }
        assert!(!after(b"data: 1\r\n").at_boundary());
        assert!(!after(b"data: 1\n\ndata: 2").at_boundary());
        assert_eq!(
            SseTracker::default().boundary_in(b"data: 1\ndata: 2\n\ndata: 3"),
            Some(17)
        );
        assert_eq!(after(b"data: 1\n").boundary_in(b"\ndata"), Some(1));
        assert_eq!(after(b"data: 1").boundary_in(b"\ndata: 2\n"), None);
    }

    proptest! {
        /// Feeding in any chunks lands where feeding at once does, and the
        /// boundary found in a chunk is where feeding byte by byte first
        /// reaches one.
        #[test]
        fn chunks_do_not_matter(
            bytes in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'a'), Just(b':')], 0..64),
            cut in any::<prop::sample::Index>(),
        ) {
            let c = cut.index(bytes.len() + 1);
            let mut t = SseTracker::default();
            t.feed(&bytes[..c]);
            let mut slow = t;
            let mut first = None;
            for (i, b) in bytes[c..].iter().enumerate() {
                slow.feed(&[*b]);
                if first.is_none() && slow.at_boundary() {
                    first = Some(i + 1);
                }
            }
            prop_assert_eq!(t.boundary_in(&bytes[c..]), first);
            t.feed(&bytes[c..]);
            prop_assert_eq!(t, after(&bytes));
        }
    }
}
