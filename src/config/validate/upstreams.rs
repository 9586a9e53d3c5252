//! `[[upstreams]]`: where requests go.

use std::path::PathBuf;
use std::sync::Arc;

use http::Uri;

use super::Problems;
use crate::config::file::FileUpstream;
use crate::config::types::UpstreamConfig;

pub(super) fn upstreams(raw: &[FileUpstream], p: &mut Problems) -> Vec<Arc<UpstreamConfig>> {
    let mut upstreams: Vec<Arc<UpstreamConfig>> = Vec::new();
    for (i, u) in raw.iter().enumerate() {
        let key = format!("upstreams[{i}]");
        if upstreams.iter().any(|x| x.name == u.name) {
            p.push(format!("{key}.name"), format!("\"{}\" is used twice", u.name));
        }
        if u.backends.is_empty() {
            p.push(format!("{key}.backends"), "needs at least one backend");
        }
        let mut backends = Vec::new();
        for (j, b) in u.backends.iter().enumerate() {
            match b.parse::<Uri>() {
                Ok(uri)
                    if matches!(uri.scheme_str(), Some("http" | "https"))
                        && uri.authority().is_some()
                        && matches!(uri.path(), "" | "/")
                        && uri.query().is_none() =>
                {
                    backends.push(uri)
                }
                _ => p.push(
                    format!("{key}.backends[{j}]"),
                    format!("\"{b}\" is not a base URL like http://127.0.0.1:3000 (no path)"),
                ),
            }
        }
        upstreams.push(Arc::new(UpstreamConfig {
            name: u.name.clone(),
            backends,
            connect_timeout: p.duration(&format!("{key}.connect_timeout"), &u.connect_timeout),
            request_timeout: p.duration(&format!("{key}.request_timeout"), &u.request_timeout),
            idle_timeout: p.duration(&format!("{key}.idle_timeout"), &u.idle_timeout),
            body_read_timeout: p.positive_duration(&format!("{key}.body_read_timeout"), &u.body_read_timeout),
            ca_file: u.ca_file.as_ref().map(PathBuf::from),
            http2: u.http2,
            pool_max_idle: u.pool_max_idle,
        }));
    }
    upstreams
}
