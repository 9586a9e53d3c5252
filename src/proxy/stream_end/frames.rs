//! Where WebSocket frames begin and end in a byte stream (RFC 6455 §5.2),
//! so a close frame is only ever put between two frames, never inside one.
//!
//! A frame is a 2-byte head (FIN, RSV, opcode; MASK and a 7-bit length),
//! then a 16- or 64-bit length when the 7-bit one is 126 or 127, then a
//! 4-byte masking key when MASK is set, then the payload. The tracker reads
//! the heads and counts payload bytes; it never looks at the payload.
//! Pure: no I/O, no allocation.

/// The frame position of one direction of a WebSocket connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameTracker {
    /// The head read so far (at most 14 bytes) while in a head.
    head: [u8; 14],
    head_len: u8,
    /// Payload bytes still to come of the current frame.
    payload_left: u64,
}

impl FrameTracker {
    pub fn new() -> FrameTracker {
        FrameTracker::default()
    }

    /// Whether the bytes fed so far end exactly at a frame boundary.
    pub fn at_boundary(&self) -> bool {
        self.head_len == 0 && self.payload_left == 0
    }

    /// Take `bytes` into account.
    pub fn feed(&mut self, bytes: &[u8]) {
        let mut i = 0;
        while i < bytes.len() {
            i += self.step(&bytes[i..]);
        }
    }

    /// The first offset `p` in `bytes` (1..=len) at which the stream is at a
    /// frame boundary once `bytes[..p]` is fed, or None when `bytes` ends
    /// inside a frame. Does not feed anything.
    pub fn boundary_in(&self, bytes: &[u8]) -> Option<usize> {
        let mut t = *self;
        let mut i = 0;
        while i < bytes.len() {
            i += t.step(&bytes[i..]);
            if t.at_boundary() {
                return Some(i);
            }
        }
        None
    }

    /// Consume some of `bytes` (not empty): head bytes one at a time, then
    /// as much of the payload as is there. Returns how many were consumed.
    fn step(&mut self, bytes: &[u8]) -> usize {
        if self.payload_left > 0 {
            let n = (bytes.len() as u64).min(self.payload_left);
            self.payload_left -= n;
            return n as usize;
        }
        self.head[self.head_len as usize] = bytes[0];
        self.head_len += 1;
        if let Some(payload) = head_complete(&self.head[..self.head_len as usize]) {
            self.head_len = 0;
            self.payload_left = payload;
        }
        1
    }
}

/// The payload length once `head` is a complete frame head, else None.
fn head_complete(head: &[u8]) -> Option<u64> {
    if head.len() < 2 {
        return None;
    }
    let masked = head[1] & 0x80 != 0;
    let (ext, len7) = match head[1] & 0x7f {
        126 => (2, None),
        127 => (8, None),
        n => (0, Some(u64::from(n))),
    };
    let need = 2 + ext + if masked { 4 } else { 0 };
    if head.len() < need {
        return None;
    }
    Some(match len7 {
        Some(n) => n,
        None => head[2..2 + ext].iter().fold(0u64, |a, b| (a << 8) | u64::from(*b)),
    })
}

/// A close frame: code and a short reason (at most 123 bytes, the limit of
/// a control frame's payload), masked with `mask` when given (client to
/// server frames must be masked, server to client ones must not).
pub fn close_frame(code: u16, reason: &str, mask: Option<[u8; 4]>) -> Vec<u8> {
    let reason = &reason.as_bytes()[..reason.len().min(123)];
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(reason);
    let mut out = Vec::with_capacity(6 + payload.len());
    out.push(0x88); // FIN + close
    match mask {
        None => {
            out.push(payload.len() as u8);
            out.extend_from_slice(&payload);
        }
        Some(key) => {
            out.push(0x80 | payload.len() as u8);
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A frame as a sender writes it: unmasked (server) or masked (client).
    fn frame(opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut out = vec![0x80 | opcode];
        let m = if mask.is_some() { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => out.push(m | n as u8),
            n if n <= 0xffff => {
                out.push(m | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(m | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        match mask {
            Some(k) => {
                out.extend_from_slice(&k);
                out.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
            }
            None => out.extend_from_slice(payload),
        }
        out
    }

    #[test]
    fn heads_of_every_length_form() {
        for (len, mask) in [
            (0, None),
            (5, None),
            (125, None),
            (126, None),
            (70_000, None),
            (3, Some([1, 2, 3, 4])),
        ] {
            let f = frame(0x2, &vec![7u8; len], mask);
            let mut t = FrameTracker::new();
            t.feed(&f[..f.len() - 1]);
            assert!(!t.at_boundary() || f.len() == 1, "inside a frame of {len}");
            t.feed(&f[f.len() - 1..]);
            assert!(t.at_boundary(), "after a frame of {len}");
        }
    }

    #[test]
    fn the_boundary_is_found_inside_a_chunk() {
        let mut bytes = frame(0x1, b"hello", None);
        let first = bytes.len();
        bytes.extend(frame(0x1, b"world!", None));
        let mut t = FrameTracker::new();
        t.feed(&bytes[..3]);
        assert_eq!(t.boundary_in(&bytes[3..]), Some(first - 3));
        assert_eq!(t, {
            let mut u = FrameTracker::new();
            u.feed(&bytes[..3]);
            u
        });
        t.feed(&bytes[3..first + 2]);
        assert_eq!(t.boundary_in(&bytes[first + 2..first + 4]), None);
    }

    #[test]
    fn close_frames_read_back() {
        let f = close_frame(1008, "token expired", None);
        assert_eq!(&f[..4], &[0x88, 15, 0x03, 0xf0]);
        assert_eq!(&f[4..], b"token expired");
        let key = [9, 8, 7, 6];
        let m = close_frame(1008, "token revoked", Some(key));
        assert_eq!(m[1], 0x80 | 15);
        let unmasked: Vec<u8> = m[6..].iter().enumerate().map(|(i, b)| b ^ key[i % 4]).collect();
        assert_eq!(&unmasked[..2], &1008u16.to_be_bytes());
        assert_eq!(&unmasked[2..], b"token revoked");
        let mut t = FrameTracker::new();
        t.feed(&m);
        assert!(t.at_boundary());
        assert!(close_frame(1008, &"x".repeat(300), None).len() == 2 + 125);
    }

    fn frames() -> impl Strategy<Value = Vec<(u8, Vec<u8>, Option<[u8; 4]>)>> {
        let payload = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..130),
            proptest::collection::vec(any::<u8>(), 60_000..70_000),
        ];
        proptest::collection::vec(
            (
                prop_oneof![Just(0x0u8), Just(0x1), Just(0x2), Just(0x9), Just(0xA)],
                payload,
                any::<Option<[u8; 4]>>(),
            ),
            0..6,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        /// Frames cut into chunks anywhere: the tracker is at a boundary
        /// exactly at the ends of frames, and `boundary_in` names the first
        /// frame end inside each chunk.
        #[test]
        fn the_tracker_always_knows_the_boundary(fs in frames(), cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8)) {
            let mut bytes = Vec::new();
            let mut ends = std::collections::BTreeSet::new();
            for (op, p, m) in &fs {
                bytes.extend(frame(*op, p, *m));
                ends.insert(bytes.len());
            }
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            points.push(0);
            points.push(bytes.len());
            points.sort_unstable();
            points.dedup();
            let mut t = FrameTracker::new();
            for w in points.windows(2) {
                let chunk = &bytes[w[0]..w[1]];
                let expect = ends.range(w[0] + 1..=w[1]).next().map(|e| e - w[0]);
                prop_assert_eq!(t.boundary_in(chunk), expect);
                t.feed(chunk);
                prop_assert_eq!(t.at_boundary(), w[1] == 0 || ends.contains(&w[1]));
            }
        }
    }
}
