//! SIGINT and SIGTERM on tokio: what `wazuh-cluster node` waits for to stop a node gracefully.

/// Waits for SIGINT or SIGTERM and names the one that came.
///
/// # Errors
/// The signal handlers could not be installed.
pub async fn shutdown_signal() -> std::io::Result<&'static str> {
    Ok(ShutdownSignals::install()?.recv().await)
}

/// SIGINT and SIGTERM caught from the moment [`ShutdownSignals::install`] returns: a signal that
/// comes before [`ShutdownSignals::recv`] is first awaited is kept, not fatal. Install them before
/// telling anyone the process is up (a pid file, a readiness report), so that a stop sent at once
/// is still a graceful one.
#[derive(Debug)]
pub struct ShutdownSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    /// Installs the handlers; must run inside a tokio runtime.
    ///
    /// # Errors
    /// The signal handlers could not be installed.
    pub fn install() -> std::io::Result<ShutdownSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(ShutdownSignals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for SIGINT or SIGTERM and names the one that came.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
