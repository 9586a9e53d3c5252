//! Signals in one place: SIGTERM/SIGINT drain, SIGHUP reloads.

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};

/// Wait for signals; flip `shutdown` on TERM/INT, send on `reload` on HUP.
pub async fn signals(shutdown: watch::Sender<bool>, reload: mpsc::Sender<()>) {
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                let _ = reload.try_send(());
            }
        }
    }
    tracing::info!("shutdown requested: draining in-flight requests");
    let _ = shutdown.send(true);
}
