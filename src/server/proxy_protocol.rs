//! The PROXY protocol header a TCP load balancer puts before the client's
//! bytes (HAProxy's specification: version 2, binary, and version 1, one
//! text line). Read only from trusted peers, and only when
//! `[server] proxy_protocol` is on; parsing is `ppp`'s.
//!
//! Exactly the header is read from the socket, nothing after it, so the
//! stream goes on to TLS or HTTP unchanged: a version 2 header declares its
//! length in its first 16 bytes; a version 1 line (at most 107 bytes) is
//! read up to its line feed.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncReadExt};

/// The version 2 signature.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The most a version 1 line may take, CRLF included.
const V1_MAX: usize = 107;
/// PP2_TYPE_SSL and its PP2_CLIENT_SSL flag: the client spoke TLS to the
/// proxy.
const PP2_TYPE_SSL: u8 = 0x20;
const PP2_CLIENT_SSL: u8 = 0x01;

/// What a PROXY header says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyHeader {
    /// The client's address, or `None` for a `LOCAL` connection (the proxy's
    /// own, such as a health check) or an address family other than TCP
    /// over IPv4/IPv6: the connection's peer stands for the client then.
    pub source: Option<SocketAddr>,
    /// The client reached the proxy over TLS (a version 2 `PP2_TYPE_SSL`
    /// with `PP2_CLIENT_SSL`).
    pub tls: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyHeaderError {
    #[error("the connection does not start with a PROXY protocol header")]
    Missing,
    #[error("malformed PROXY protocol header: {0}")]
    Malformed(String),
    #[error("reading the PROXY protocol header: {0}")]
    Io(#[from] std::io::Error),
}

/// Read one PROXY header (version 2, or version 1) from the start of `r`.
pub async fn read<R: AsyncRead + Unpin>(r: &mut R) -> Result<ProxyHeader, ProxyHeaderError> {
    // Six bytes tell the versions apart ("PROXY " or the first six of the
    // v2 signature) and are fewer than the shortest header of either.
    let mut head = [0u8; 16];
    r.read_exact(&mut head[..6]).await?;
    if &head[..6] == b"PROXY " {
        let mut line = Vec::with_capacity(V1_MAX);
        line.extend_from_slice(&head[..6]);
        while line.last() != Some(&b'\n') {
            if line.len() == V1_MAX {
                return Err(ProxyHeaderError::Malformed(
                    "a version 1 line longer than 107 bytes".into(),
                ));
            }
            line.push(r.read_u8().await?);
        }
        return parse_v1(&line);
    }
    if !V2_SIGNATURE.starts_with(&head[..6]) {
        return Err(ProxyHeaderError::Missing);
    }
    r.read_exact(&mut head[6..]).await?;
    if &head[..12] != V2_SIGNATURE {
        return Err(ProxyHeaderError::Missing);
    }
    let len = usize::from(u16::from_be_bytes([head[14], head[15]]));
    let mut buf = vec![0u8; 16 + len];
    buf[..16].copy_from_slice(&head);
    r.read_exact(&mut buf[16..]).await?;
    parse_v2(&buf)
}

/// A complete version 1 line, CRLF included.
pub fn parse_v1(line: &[u8]) -> Result<ProxyHeader, ProxyHeaderError> {
    use ppp::v1::{Addresses, Header};
    let h = Header::try_from(line).map_err(|e| ProxyHeaderError::Malformed(e.to_string()))?;
    if h.header.len() != line.len() {
        return Err(ProxyHeaderError::Malformed("bytes after the line's CRLF".into()));
    }
    let source = match h.addresses {
        Addresses::Tcp4(a) => Some(SocketAddr::new(a.source_address.into(), a.source_port)),
        Addresses::Tcp6(a) => Some(SocketAddr::new(a.source_address.into(), a.source_port)),
        Addresses::Unknown => None,
    };
    Ok(ProxyHeader { source, tls: false })
}

/// A complete version 2 header: the 16 fixed bytes and the length they
/// declare, exactly.
pub fn parse_v2(buf: &[u8]) -> Result<ProxyHeader, ProxyHeaderError> {
    use ppp::v2::{Addresses, Command, Header};
    let h = Header::try_from(buf).map_err(|e| ProxyHeaderError::Malformed(e.to_string()))?;
    if h.as_bytes().len() != buf.len() {
        return Err(ProxyHeaderError::Malformed("the declared length differs".into()));
    }
    let mut tls = false;
    for tlv in h.tlvs() {
        let tlv = tlv.map_err(|e| ProxyHeaderError::Malformed(e.to_string()))?;
        if tlv.kind == PP2_TYPE_SSL {
            tls = tlv.value.first().is_some_and(|f| f & PP2_CLIENT_SSL != 0);
        }
    }
    let source = match (h.command, h.addresses) {
        (Command::Local, _) => None,
        (Command::Proxy, Addresses::IPv4(a)) => Some(SocketAddr::new(a.source_address.into(), a.source_port)),
        (Command::Proxy, Addresses::IPv6(a)) => Some(SocketAddr::new(a.source_address.into(), a.source_port)),
        (Command::Proxy, Addresses::Unspecified | Addresses::Unix(_)) => None,
    };
    Ok(ProxyHeader { source, tls })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version 2 header for `src` (IPv4 or IPv6, TCP) with `tlvs` appended.
    pub fn v2(command: u8, src: SocketAddr, tlvs: &[u8]) -> Vec<u8> {
        let mut b = V2_SIGNATURE.to_vec();
        b.push(0x20 | command);
        let mut addrs = Vec::new();
        match src {
            SocketAddr::V4(a) => {
                b.push(0x11);
                addrs.extend_from_slice(&a.ip().octets());
                addrs.extend_from_slice(&[127, 0, 0, 1]);
                addrs.extend_from_slice(&a.port().to_be_bytes());
                addrs.extend_from_slice(&8080u16.to_be_bytes());
            }
            SocketAddr::V6(a) => {
                b.push(0x21);
                addrs.extend_from_slice(&a.ip().octets());
                addrs.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
                addrs.extend_from_slice(&a.port().to_be_bytes());
                addrs.extend_from_slice(&8080u16.to_be_bytes());
            }
        }
        b.extend_from_slice(&((addrs.len() + tlvs.len()) as u16).to_be_bytes());
        b.extend_from_slice(&addrs);
        b.extend_from_slice(tlvs);
        b
    }

    async fn read_all(bytes: &[u8]) -> (Result<ProxyHeader, ProxyHeaderError>, Vec<u8>) {
        let mut r = bytes;
        let h = read(&mut r).await;
        (h, r.to_vec())
    }

    #[tokio::test]
    async fn version_2_gives_the_source_and_leaves_the_rest() {
        let src: SocketAddr = "203.0.113.7:5555".parse().unwrap();
        let mut bytes = v2(1, src, &[]);
        bytes.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let (h, rest) = read_all(&bytes).await;
        assert_eq!(
            h.unwrap(),
            ProxyHeader {
                source: Some(src),
                tls: false
            }
        );
        assert_eq!(rest, b"GET / HTTP/1.1\r\n");
        let src6: SocketAddr = "[2001:db8::7]:443".parse().unwrap();
        // A TLS TLV (client flag set, verify 0) and an unrelated one.
        let tlvs = [&[0x20, 0, 5, 0x01, 0, 0, 0, 0][..], &[0xE0, 0, 2, 1, 2]].concat();
        let (h, rest) = read_all(&v2(1, src6, &tlvs)).await;
        assert_eq!(
            h.unwrap(),
            ProxyHeader {
                source: Some(src6),
                tls: true
            }
        );
        assert!(rest.is_empty());
        // LOCAL: the proxy's own connection.
        let (h, _) = read_all(&v2(0, src, &[])).await;
        assert_eq!(
            h.unwrap(),
            ProxyHeader {
                source: None,
                tls: false
            }
        );
    }

    #[tokio::test]
    async fn version_1_gives_the_source_and_leaves_the_rest() {
        let (h, rest) = read_all(b"PROXY TCP4 198.51.100.9 127.0.0.1 4000 8080\r\nGET /").await;
        assert_eq!(h.unwrap().source, Some("198.51.100.9:4000".parse().unwrap()));
        assert_eq!(rest, b"GET /");
        let (h, _) = read_all(b"PROXY TCP6 2001:db8::9 ::1 4000 8080\r\n").await;
        assert_eq!(h.unwrap().source, Some("[2001:db8::9]:4000".parse().unwrap()));
        let (h, _) = read_all(b"PROXY UNKNOWN\r\n").await;
        assert_eq!(h.unwrap().source, None);
    }

    #[tokio::test]
    async fn anything_else_is_refused() {
        for bad in [
            &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            b"PROXY TCP4 not-an-ip 127.0.0.1 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 127.0.0.1 1 2\n",
            b"PROXY TCP4 1.2.3.4 127.0.0.1 99999 2\r\n",
            b"\r\n\r\n\0\r\nQUIX\n\x21\x11\0\x0c",
        ] {
            let (h, _) = read_all(bad).await;
            assert!(h.is_err(), "{bad:?}");
        }
        // A v1 line that never ends within 107 bytes.
        let long = [&b"PROXY TCP4 "[..], &[b'1'; 200]].concat();
        assert!(matches!(read_all(&long).await.0, Err(ProxyHeaderError::Malformed(_))));
        // Truncated: the stream ends inside the header.
        let full = v2(1, "203.0.113.7:1".parse().unwrap(), &[]);
        for n in 0..full.len() {
            assert!(read_all(&full[..n]).await.0.is_err(), "{n} bytes");
        }
        // A bad version, command, family; a TLV running past the end.
        let mut b = full.clone();
        b[12] = 0x31;
        assert!(read_all(&b).await.0.is_err());
        let mut b = full.clone();
        b[12] = 0x2F;
        assert!(read_all(&b).await.0.is_err());
        let mut b = full.clone();
        b[13] = 0x41;
        assert!(read_all(&b).await.0.is_err());
        let src: SocketAddr = "203.0.113.7:1".parse().unwrap();
        assert!(read_all(&v2(1, src, &[0x20, 0, 9, 1])).await.0.is_err());
    }

    proptest::proptest! {
        /// Arbitrary bytes never panic the reader, never make it read past
        /// what a header declares, and a success names no more than it was
        /// given.
        #[test]
        fn arbitrary_input_is_an_error_or_a_header(prefix in proptest::sample::select(vec![
            V2_SIGNATURE.to_vec(), b"PROXY ".to_vec(), Vec::new(),
        ]), tail in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let bytes = [prefix, tail].concat();
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let (h, rest) = rt.block_on(read_all(&bytes));
            if h.is_ok() {
                proptest::prop_assert!(rest.len() < bytes.len());
            }
        }

        /// Every well-formed version 2 header reads back its source.
        #[test]
        fn well_formed_v2_round_trips(a in proptest::num::u32::ANY, port in proptest::num::u16::ANY,
                                      six in proptest::num::u128::ANY, v6 in proptest::bool::ANY) {
            let src = if v6 {
                SocketAddr::new(std::net::Ipv6Addr::from(six).into(), port)
            } else {
                SocketAddr::new(std::net::Ipv4Addr::from(a).into(), port)
            };
            let mut bytes = v2(1, src, &[]);
            bytes.extend_from_slice(b"rest");
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let (h, rest) = rt.block_on(read_all(&bytes));
            proptest::prop_assert_eq!(h.unwrap().source, Some(src));
            proptest::prop_assert_eq!(rest, b"rest".to_vec());
        }
    }
}
