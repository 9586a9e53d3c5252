//! How the gateway reaches PostgreSQL: the TLS policy checked when the
//! config is validated.
//!
//! sqlx (rustls on aws-lc-rs) reads `sslmode`, `sslrootcert`, `sslcert` and
//! `sslkey` from the store URL, and `PGSSLMODE`/`PGSSLROOTCERT`/`PGHOST`
//! from the environment. What each mode gives with sqlx:
//!
//! - `disable`, `allow`: plaintext.
//! - `prefer` (sqlx's default when the URL names none): TLS when the server
//!   offers it, with no certificate check, plaintext when it does not; so
//!   an on-path attacker gets plaintext by answering "no TLS".
//! - `require`: TLS, but any certificate is accepted: an on-path attacker
//!   can terminate it.
//! - `verify-ca`: the chain is checked, the host name is not, and sqlx
//!   trusts the public web roots besides `sslrootcert`: any certificate a
//!   public CA issued, for any name, passes.
//! - `verify-full`: the chain (to `sslrootcert` or a public root) and the
//!   host name are checked.
//!
//! So a connection to a host other than this machine must be
//! `verify-full`, unless the operator opts in with
//! `store.allow_insecure_transport`. Loopback hosts and Unix sockets never
//! leave the machine and take any mode.

use std::net::IpAddr;
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgSslMode};

/// Check the TLS settings of a `postgres://` store URL. `Err` holds a
/// message for the `store.url` key; it never repeats the URL (which holds
/// the password).
pub fn check_postgres_transport(url: &str, allow_insecure: bool) -> Result<(), String> {
    let options = PgConnectOptions::from_str(url).map_err(|e| match e {
        // The parser's messages quote no part of the URL's credentials.
        sqlx::Error::Configuration(m) => format!("not a valid PostgreSQL URL: {m}"),
        _ => "not a valid PostgreSQL URL".to_owned(),
    })?;
    let mode = options.get_ssl_mode();
    if let Some(ca) = root_cert(url) {
        check_root_cert(&ca)?;
    }
    let local = options.get_socket().is_some() || is_loopback_host(options.get_host());
    if local || allow_insecure || matches!(mode, PgSslMode::VerifyFull) {
        return Ok(());
    }
    let what = match mode {
        PgSslMode::Disable | PgSslMode::Allow => "sends everything in plaintext",
        PgSslMode::Prefer => {
            "falls back to plaintext when an on-path attacker answers that the server has no TLS \
             (prefer is the default when the URL names no sslmode)"
        }
        PgSslMode::Require => "accepts any server certificate, so an on-path attacker can terminate the TLS",
        PgSslMode::VerifyCa => {
            "checks no host name, and the client also trusts the public web CAs: any certificate they \
             issued, for any name, passes"
        }
        PgSslMode::VerifyFull => unreachable!(),
    };
    Err(format!(
        "sslmode={} to a host other than this machine {what}; use \
         ?sslmode=verify-full&sslrootcert=/path/to/ca.pem (the CA of the database's certificate), \
         or set store.allow_insecure_transport = true to accept that risk",
        mode_name(mode)
    ))
}

fn mode_name(mode: PgSslMode) -> &'static str {
    match mode {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    }
}

/// `localhost`, 127.0.0.0/8, `::1` (also bracketed, as a URL writes it).
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.eq_ignore_ascii_case("localhost.")
        || host.parse::<IpAddr>().is_ok_and(|ip| match ip {
            IpAddr::V4(v4) => v4.is_loopback(),
            IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        })
}

/// The CA certificates the URL (or `PGSSLROOTCERT`) names, as sqlx reads
/// them: the last `sslrootcert` (alias `ssl-root-cert`, `ssl-ca`) wins.
fn root_cert(url: &str) -> Option<String> {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    let from_url = pairs
        .into_iter()
        .filter(|(k, _)| matches!(k.as_str(), "sslrootcert" | "ssl-root-cert" | "ssl-ca"))
        .map(|(_, v)| v)
        .next_back();
    from_url.or_else(|| std::env::var("PGSSLROOTCERT").ok())
}

/// The CA file must exist and hold at least one PEM certificate, so a typo
/// is a config error naming the file rather than a TLS failure at connect.
fn check_root_cert(value: &str) -> Result<(), String> {
    let trimmed = value.trim();
    let (pem, what) = if trimmed.starts_with("-----BEGIN") {
        (trimmed.as_bytes().to_vec(), "the inline sslrootcert".to_owned())
    } else {
        let data = std::fs::read(value).map_err(|e| format!("sslrootcert {value}: {e}"))?;
        (data, format!("sslrootcert {value}"))
    };
    let mut reader = std::io::BufReader::new(pem.as_slice());
    let certs: Vec<_> = rustls_pemfile::certs(&mut reader)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{what}: not PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{what}: holds no PEM certificate"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str) -> Result<(), String> {
        check_postgres_transport(url, false)
    }

    #[test]
    fn remote_hosts_need_verify_full_unless_opted_out() {
        for mode in [
            "",
            "?sslmode=disable",
            "?sslmode=allow",
            "?sslmode=prefer",
            "?sslmode=require",
            "?sslmode=verify-ca",
        ] {
            let url = format!("postgres://u:secret-pw@db.invalid:5432/tg{mode}");
            let e = check(&url).unwrap_err();
            assert!(e.contains("verify-full"), "{url}: {e}");
            assert!(!e.contains("secret-pw"), "the password leaked: {e}");
            assert!(check_postgres_transport(&url, true).is_ok(), "{url} with the opt-in");
        }
        assert!(check("postgres://u:p@db.invalid/tg?sslmode=verify-full").is_ok());
        assert!(check("postgresql://u:p@10.1.2.3/tg?ssl-mode=verify-full").is_ok());
        assert!(check("postgres://u:p@10.1.2.3/tg?sslmode=require").is_err());
        assert!(check("postgres://u:p@[2001:db8::1]/tg?sslmode=prefer").is_err());
        // The last sslmode wins, as sqlx reads it.
        assert!(check("postgres://u:p@db.invalid/tg?sslmode=verify-full&sslmode=disable").is_err());
    }

    #[test]
    fn loopback_and_unix_sockets_take_any_mode() {
        for host in ["127.0.0.1", "127.8.9.10", "localhost", "LOCALHOST", "[::1]"] {
            for mode in ["", "?sslmode=disable", "?sslmode=prefer", "?sslmode=require"] {
                let url = format!("postgres://u:p@{host}:5432/tg{mode}");
                assert!(check(&url).is_ok(), "{url}: {:?}", check(&url));
            }
        }
        assert!(check("postgres://u:p@%2Fvar%2Frun%2Fpostgresql/tg").is_ok());
        assert!(check("postgres:///tg?host=/var/run/postgresql").is_ok());
        // A name that merely starts like one is remote.
        assert!(check("postgres://u:p@localhost.evil.invalid/tg").is_err());
        assert!(check("postgres://u:p@127.0.0.1.nip.invalid/tg").is_err());
    }

    #[test]
    fn the_ca_file_must_exist_and_hold_a_certificate() {
        let e = check("postgres://u:p@db.invalid/tg?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem").unwrap_err();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let e = check(&format!(
            "postgres://u:p@db.invalid/tg?sslmode=verify-full&sslrootcert={}",
            junk.display()
        ))
        .unwrap_err();
        assert!(e.contains("no PEM certificate"), "{e}");
        // Also on loopback: a wrong path is a mistake wherever the database is.
        assert!(check(&format!("postgres://u:p@127.0.0.1/tg?sslrootcert={}", junk.display())).is_err());
    }
}
