//! `[server]` and `[admin]`: the two listeners.

use std::path::PathBuf;
use std::sync::Arc;

use super::Problems;
use crate::config::file::{FileAdmin, FileServer, FileWorkers};
use crate::config::types::{AdminConfig, ServerConfig, TlsFiles, Workers};

pub(super) fn server(s: &FileServer, p: &mut Problems) -> ServerConfig {
    let tls = match (&s.tls_cert, &s.tls_key) {
        (Some(c), Some(k)) => Some(TlsFiles {
            cert: c.into(),
            key: k.into(),
        }),
        (None, None) => None,
        _ => {
            p.push("server.tls_cert", "tls_cert and tls_key go together");
            None
        }
    };
    if s.max_header_bytes < 8192 {
        p.push(
            "server.max_header_bytes",
            "must be at least 8192 (hyper's smallest read buffer)",
        );
    }
    if s.max_connections == 0 {
        p.push("server.max_connections", "must be at least 1");
    }
    let trusted_proxies = match crate::net::trusted::TrustedProxies::parse(&s.trusted_proxies) {
        Ok(t) => t,
        Err(errors) => {
            for e in errors {
                p.push("server.trusted_proxies", e);
            }
            Default::default()
        }
    };
    if s.proxy_protocol && s.trusted_proxies.is_empty() {
        p.push(
            "server.proxy_protocol",
            "PROXY headers are read only from trusted_proxies: list the load balancers' addresses",
        );
    }
    ServerConfig {
        listen: p.addr("server.listen", &s.listen),
        tls,
        h2c: s.h2c,
        max_header_bytes: s.max_header_bytes,
        max_body_bytes: s.max_body_bytes,
        body_read_timeout: p.positive_duration("server.body_read_timeout", &s.body_read_timeout),
        lingering_time: p.duration("server.lingering_time", &s.lingering_time),
        lingering_bytes: s.lingering_bytes,
        max_connections: s.max_connections,
        header_read_timeout: header_read_timeout(&s.header_read_timeout, p),
        shutdown_grace: p.duration("server.shutdown_grace", &s.shutdown_grace),
        watch_config: s.watch_config,
        access_log: s.access_log,
        handshake_timeout: p.positive_duration("server.handshake_timeout", &s.handshake_timeout),
        idle_timeout: p.positive_duration("server.idle_timeout", &s.idle_timeout),
        send_timeout: p.positive_duration("server.send_timeout", &s.send_timeout),
        h2_keep_alive_interval: p.positive_duration("server.h2_keep_alive_interval", &s.h2_keep_alive_interval),
        h2_keep_alive_timeout: p.positive_duration("server.h2_keep_alive_timeout", &s.h2_keep_alive_timeout),
        max_connections_per_ip: p.at_least_one("server.max_connections_per_ip", s.max_connections_per_ip),
        trusted_proxies: Arc::new(trusted_proxies),
        proxy_protocol: s.proxy_protocol,
        workers: workers(&s.workers, p),
    }
}

/// `server.header_read_timeout`: at least a second. Each connection's
/// checks run four times per the shortest of its timeouts, this one
/// included (`server::conn::CheckedTimer`), and no honest client needs
/// less to send a head.
fn header_read_timeout(v: &str, p: &mut Problems) -> std::time::Duration {
    let d = p.positive_duration("server.header_read_timeout", v);
    if !d.is_zero() && d < std::time::Duration::from_secs(1) {
        p.push(
            "server.header_read_timeout",
            format!("{v:?} is under the 1s minimum (the connections' checks run four times per it)"),
        );
    }
    d
}

/// `server.workers`: `"shared"`, `"per-core"` (one worker per CPU this
/// process may run on), or a number from 1 to [`Workers::MAX`].
fn workers(w: &FileWorkers, p: &mut Problems) -> Workers {
    let count = match w {
        FileWorkers::Word(s) if s == "shared" => return Workers::Shared,
        FileWorkers::Word(s) if s == "per-core" => std::thread::available_parallelism().map_or(1, |n| n.get()),
        FileWorkers::Word(s) => {
            p.push(
                "server.workers",
                format!("{s:?} is not a worker model: use \"shared\", \"per-core\" or a number of workers"),
            );
            return Workers::Shared;
        }
        FileWorkers::Count(n) if *n < 1 => {
            p.push(
                "server.workers",
                format!("{n} workers would serve nothing: use at least 1, or \"shared\""),
            );
            return Workers::Shared;
        }
        FileWorkers::Count(n) if *n as u64 > Workers::MAX as u64 => {
            p.push("server.workers", format!("{n} workers is more than {}", Workers::MAX));
            return Workers::Shared;
        }
        FileWorkers::Count(n) => *n as usize,
    };
    match std::num::NonZeroUsize::new(count) {
        Some(n) => Workers::PerCore(n),
        None => Workers::Shared,
    }
}

pub(super) fn admin(a: &FileAdmin, p: &mut Problems) -> AdminConfig {
    AdminConfig {
        listen: (!a.listen.is_empty()).then(|| p.addr("admin.listen", &a.listen)),
        token_env: a.token_env.clone(),
        token_file: a.token_file.as_ref().map(PathBuf::from),
        max_connections: p.at_least_one("admin.max_connections", a.max_connections),
        max_connections_per_ip: p.at_least_one("admin.max_connections_per_ip", a.max_connections_per_ip),
    }
}
