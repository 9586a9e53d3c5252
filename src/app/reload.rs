//! Config reload: SIGHUP and file changes (debounced) feed one channel;
//! each reload re-reads the file, validates it with the same function as
//! start-up, and swaps the runtime only if it is valid.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

use crate::state::Gateway;

/// Watch the config file's directory and turn changes into reload requests.
pub fn watch_file(path: PathBuf, reload: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    let file_name = path.file_name()?.to_owned();
    let dir = path.parent().map(|p| {
        if p.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            p.to_owned()
        }
    })?;
    let mut w = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev {
            // The file itself, or a Kubernetes ConfigMap's `..data` symlink
            // swap (the file name never appears in those events).
            let relevant = ev.paths.iter().any(|p| {
                p.file_name() == Some(&file_name)
                    || p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(".."))
            });
            if relevant && !ev.kind.is_access() {
                let _ = reload.try_send(());
            }
        }
    })
    .ok()?;
    // Watch the directory, not the file: editors and ConfigMaps replace the
    // file by rename.
    w.watch(&dir, RecursiveMode::NonRecursive).ok()?;
    Some(w)
}

/// Apply reload requests until shutdown. Bursts of file events within
/// 200 ms make one reload.
pub async fn reload_loop(gw: Arc<Gateway>, mut rx: mpsc::Receiver<()>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            r = rx.recv() => if r.is_none() { return },
            _ = shutdown.changed() => return,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        while rx.try_recv().is_ok() {}
        gw.reload().await;
    }
}
