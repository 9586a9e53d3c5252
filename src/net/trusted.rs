//! Who the client is when the gateway sits behind a proxy it trusts.
//!
//! `[server] trusted_proxies` lists the networks whose connections are
//! load balancers or reverse proxies. Only a connection whose hop (the TCP
//! peer, or the address its PROXY header carries) is in the list has its
//! `X-Forwarded-For` and `X-Forwarded-Proto` read; every other connection
//! is its own client, and what it says about forwarding is replaced
//! (`proxy::headers`).
//!
//! The client behind a trusted hop is found by the usual right-to-left
//! walk of `X-Forwarded-For`: each proxy appends the address it received
//! the request from, so the right-most entry was written by the hop, the
//! one before it by that entry if it is a trusted proxy too, and so on. The
//! first entry that is not a trusted proxy is the client; whatever stands
//! left of it was written by that client (or by proxies it controls) and
//! is never looked at. The left-most entry is the client only when every
//! entry right of it is a trusted proxy.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::header::{HeaderMap, HeaderName, HeaderValue};

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// One network of `trusted_proxies`: an IPv4 network (`v6 == false`, the
/// address in the low 32 bits) or an IPv6 one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Net {
    v6: bool,
    bits: u128,
    prefix: u8,
}

impl Net {
    fn contains(&self, ip: IpAddr) -> bool {
        let (v6, bits, width) = match ip {
            IpAddr::V4(a) => (false, u128::from(u32::from(a)), 32),
            IpAddr::V6(a) => (true, u128::from(a), 128),
        };
        v6 == self.v6 && (self.prefix == 0 || (bits ^ self.bits) >> (width - u32::from(self.prefix)) == 0)
    }
}

/// The networks whose connections are proxies: their `X-Forwarded-For`
/// names the client. Empty: nobody is trusted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Box<[Net]>,
}

impl TrustedProxies {
    /// Parse CIDRs (`10.0.0.0/8`, `2001:db8::/32`) or single addresses
    /// (`127.0.0.1`, as `/32` or `/128`); one message per bad entry.
    pub fn parse(list: &[String]) -> Result<TrustedProxies, Vec<String>> {
        let mut nets = Vec::new();
        let mut errors = Vec::new();
        for s in list {
            match parse_net(s.trim()) {
                Ok(n) => {
                    if !nets.contains(&n) {
                        nets.push(n);
                    }
                }
                Err(e) => errors.push(format!("\"{s}\": {e}")),
            }
        }
        if errors.is_empty() {
            Ok(TrustedProxies {
                nets: nets.into_boxed_slice(),
            })
        } else {
            Err(errors)
        }
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Whether `ip` (IPv4-mapped IPv6 counts as IPv4) is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|n| n.contains(ip))
    }
}

fn parse_net(s: &str) -> Result<Net, String> {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| "not an IP address or CIDR network".to_string())?;
    let (v6, bits, width) = match ip {
        IpAddr::V4(a) => (false, u128::from(u32::from(a)), 32u8),
        IpAddr::V6(a) if a.to_ipv4_mapped().is_some() => {
            return Err("write IPv4 networks as IPv4 (IPv4-mapped peers match them)".into())
        }
        IpAddr::V6(a) => (true, u128::from(a), 128u8),
    };
    let prefix = match prefix {
        None => width,
        Some(p) => p
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= width)
            .ok_or_else(|| format!("the prefix length must be 1 to {width}"))?,
    };
    if prefix == 0 {
        return Err("a /0 network trusts every address, so any client could choose its own address".into());
    }
    let host_bits = u32::from(width - prefix);
    if host_bits > 0 && bits & ((1u128 << host_bits) - 1) != 0 {
        return Err(format!(
            "host bits are set (the network is {}/{prefix})",
            match ip {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from((bits >> host_bits << host_bits) as u32)),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(bits >> host_bits << host_bits)),
            }
        ));
    }
    Ok(Net { v6, bits, prefix })
}

/// One `X-Forwarded-For` element as an address: `192.0.2.1`,
/// `2001:db8::1`, and the forms some proxies write with a port or
/// brackets (`192.0.2.1:443`, `[2001:db8::1]`, `[2001:db8::1]:443`).
/// Anything else (`unknown`, obfuscated identifiers) is `None`.
fn parse_element(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    let port = |p: &str| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit());
    if let Some(rest) = s.strip_prefix('[') {
        let (addr, tail) = rest.split_once(']')?;
        if !(tail.is_empty() || tail.strip_prefix(':').is_some_and(port)) {
            return None;
        }
        return addr.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    let (addr, p) = s.rsplit_once(':')?;
    if !port(p) {
        return None;
    }
    addr.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

/// The client behind `hop`, a trusted proxy: the right-most
/// `X-Forwarded-For` address that is not itself a trusted proxy. When
/// every address is trusted, the left-most one; when an element is not an
/// address, the trusted address right of it (the chain is not followed
/// past what a trusted proxy could not have written). No `X-Forwarded-For`
/// at all: the hop itself. No allocation.
pub fn client_of(trusted: &TrustedProxies, hop: IpAddr, h: &HeaderMap) -> IpAddr {
    let mut client = hop;
    // Header lines are one list in order (RFC 9110 §5.3): the last line's
    // last element is the right-most.
    for line in h.get_all(&X_FORWARDED_FOR).iter().rev() {
        let Ok(line) = line.to_str() else { return client };
        for element in line.rsplit(',') {
            let element = element.trim();
            if element.is_empty() {
                continue;
            }
            let Some(ip) = parse_element(element) else {
                return client;
            };
            client = ip.to_canonical();
            if !trusted.contains(client) {
                return client;
            }
        }
    }
    client
}

/// What a request that came through a trusted proxy tells the upstream.
pub struct Forwarded {
    /// The client address ([`client_of`]).
    pub client: IpAddr,
    /// `X-Real-IP`: the client address.
    pub real_ip: HeaderValue,
    /// `X-Forwarded-For`: the chain as received, with the hop appended, so
    /// that nothing a trusted proxy wrote is lost.
    pub chain: HeaderValue,
    /// `X-Forwarded-Proto` as the proxy sent it, when it is exactly one
    /// `http` or `https`; otherwise the connection's own scheme is used.
    pub https: Option<bool>,
}

/// Read a trusted hop's forwarding headers (`hop_value` is `hop` as a
/// header value).
pub fn forwarded(trusted: &TrustedProxies, hop: IpAddr, hop_value: &HeaderValue, h: &HeaderMap) -> Forwarded {
    let client = client_of(trusted, hop, h);
    let real_ip = if client == hop {
        hop_value.clone()
    } else {
        HeaderValue::from_str(&client.to_string()).unwrap_or_else(|_| hop_value.clone())
    };
    let mut lines = h.get_all(&X_FORWARDED_FOR).iter().peekable();
    let chain = if lines.peek().is_none() {
        hop_value.clone()
    } else {
        let mut chain = Vec::new();
        for line in lines {
            let line = line.as_bytes().trim_ascii();
            if !line.is_empty() {
                chain.extend_from_slice(line);
                chain.extend_from_slice(b", ");
            }
        }
        chain.extend_from_slice(hop_value.as_bytes());
        HeaderValue::from_bytes(&chain).unwrap_or_else(|_| hop_value.clone())
    };
    let mut protos = h.get_all(&X_FORWARDED_PROTO).iter();
    let https = match (protos.next(), protos.next()) {
        (Some(v), None) => {
            let v = v.as_bytes().trim_ascii();
            if v.eq_ignore_ascii_case(b"https") {
                Some(true)
            } else if v.eq_ignore_ascii_case(b"http") {
                Some(false)
            } else {
                None
            }
        }
        _ => None,
    };
    Forwarded {
        client,
        real_ip,
        chain,
        https,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(nets: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&nets.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(&X_FORWARDED_FOR, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn networks_parse_and_match() {
        let t = list(&["10.0.0.0/8", "127.0.0.1", "2001:db8::/32", "::1/128"]);
        assert!(t.contains(ip("10.1.2.3")));
        assert!(
            t.contains(ip("::ffff:10.1.2.3")),
            "IPv4-mapped peers match IPv4 networks"
        );
        assert!(!t.contains(ip("11.0.0.1")));
        assert!(t.contains(ip("127.0.0.1")));
        assert!(!t.contains(ip("127.0.0.2")));
        assert!(t.contains(ip("2001:db8:ffff::1")));
        assert!(!t.contains(ip("2001:db9::1")));
        assert!(t.contains(ip("::1")));
        assert!(!t.contains(ip("::2")));
        assert!(!list(&[]).contains(ip("127.0.0.1")));
        let bad = |s: &str| TrustedProxies::parse(&[s.to_string()]).unwrap_err().join(" ");
        assert!(bad("10.0.0.1/8").contains("10.0.0.0/8"), "{}", bad("10.0.0.1/8"));
        assert!(bad("0.0.0.0/0").contains("/0"));
        assert!(bad("::/0").contains("/0"));
        assert!(bad("10.0.0.0/33").contains("1 to 32"));
        assert!(bad("example.com").contains("not an IP"));
        assert!(bad("::ffff:10.0.0.0/104").contains("IPv4"));
        assert!(
            TrustedProxies::parse(&["10.0.0.0/8".into(), "x".into(), "y".into()])
                .unwrap_err()
                .len()
                == 2
        );
    }

    #[test]
    fn the_client_is_the_right_most_untrusted_address() {
        let t = list(&["10.0.0.0/8", "127.0.0.1/32"]);
        let hop = ip("127.0.0.1");
        // One proxy that appended its peer.
        assert_eq!(client_of(&t, hop, &xff(&["203.0.113.7"])), ip("203.0.113.7"));
        // A client's own entries stand left of its address: never used.
        assert_eq!(
            client_of(&t, hop, &xff(&["6.6.6.6, 7.7.7.7", "203.0.113.7"])),
            ip("203.0.113.7")
        );
        // Trusted proxies in the chain are skipped.
        assert_eq!(
            client_of(&t, hop, &xff(&["1.1.1.1, 203.0.113.7, 10.0.0.5", "10.0.0.6"])),
            ip("203.0.113.7")
        );
        // Every entry trusted: the left-most.
        assert_eq!(client_of(&t, hop, &xff(&["10.0.0.9, 10.0.0.5"])), ip("10.0.0.9"));
        // Nothing: the hop.
        assert_eq!(client_of(&t, hop, &HeaderMap::new()), hop);
        // Garbage where a trusted proxy should have written an address:
        // the chain stops at the last trusted address.
        assert_eq!(
            client_of(&t, hop, &xff(&["203.0.113.7, unknown, 10.0.0.5"])),
            ip("10.0.0.5")
        );
        assert_eq!(client_of(&t, hop, &xff(&["unknown"])), hop);
        // Ports, brackets, IPv6, IPv4-mapped, empty elements.
        assert_eq!(client_of(&t, hop, &xff(&["203.0.113.7:5555"])), ip("203.0.113.7"));
        assert_eq!(client_of(&t, hop, &xff(&["[2001:db8::1]:443"])), ip("2001:db8::1"));
        assert_eq!(client_of(&t, hop, &xff(&["[2001:db8::1]"])), ip("2001:db8::1"));
        assert_eq!(client_of(&t, hop, &xff(&["2001:db8::1,,"])), ip("2001:db8::1"));
        assert_eq!(client_of(&t, hop, &xff(&["::ffff:203.0.113.7"])), ip("203.0.113.7"));
        assert_eq!(client_of(&t, hop, &xff(&["[2001:db8::1]x"])), hop);
        assert_eq!(client_of(&t, hop, &xff(&["203.0.113.7:http"])), hop);
    }

    #[test]
    fn forwarded_headers_keep_the_chain_and_read_the_proto() {
        let t = list(&["127.0.0.1/32"]);
        let hop = ip("127.0.0.1");
        let hv = HeaderValue::from_static("127.0.0.1");
        let mut h = xff(&["6.6.6.6", " 203.0.113.7 "]);
        h.insert(&X_FORWARDED_PROTO, HeaderValue::from_static("HTTPS"));
        let f = forwarded(&t, hop, &hv, &h);
        assert_eq!(f.client, ip("203.0.113.7"));
        assert_eq!(f.real_ip, "203.0.113.7");
        assert_eq!(f.chain, "6.6.6.6, 203.0.113.7, 127.0.0.1");
        assert_eq!(f.https, Some(true));
        let mut h = HeaderMap::new();
        h.insert(&X_FORWARDED_PROTO, HeaderValue::from_static("http"));
        let f = forwarded(&t, hop, &hv, &h);
        assert_eq!(
            (f.client, f.chain.to_str().unwrap(), f.https),
            (hop, "127.0.0.1", Some(false))
        );
        for bad in ["ftp", "https, http", ""] {
            let mut h = HeaderMap::new();
            h.insert(&X_FORWARDED_PROTO, HeaderValue::from_str(bad).unwrap());
            assert_eq!(forwarded(&t, hop, &hv, &h).https, None, "{bad:?}");
        }
        let mut h = HeaderMap::new();
        h.append(&X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        h.append(&X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        assert_eq!(forwarded(&t, hop, &hv, &h).https, None, "two headers: not one answer");
    }

    proptest::proptest! {
        /// Whatever the client writes into X-Forwarded-For before the
        /// proxy appends its address, the derived client is that address.
        #[test]
        fn a_client_cannot_choose_its_address(prefix in "[ -~]{0,64}", last in 0u32..) {
            let t = list(&["127.0.0.1/32", "10.0.0.0/8"]);
            let client = Ipv4Addr::from(last);
            proptest::prop_assume!(!t.contains(IpAddr::V4(client)));
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&prefix) {
                h.append(&X_FORWARDED_FOR, v);
            }
            h.append(&X_FORWARDED_FOR, HeaderValue::from_str(&client.to_string()).unwrap());
            proptest::prop_assert_eq!(client_of(&t, ip("127.0.0.1"), &h), IpAddr::V4(client));
        }
    }
}
