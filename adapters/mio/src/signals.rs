//! SIGINT and SIGTERM without tokio: signal-hook's iterator (a self-pipe written by the handler,
//! read on a thread of its own), which asks the node's loop to stop through its mailbox.

use std::thread::JoinHandle;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

use crate::StopHandle;

/// SIGINT and SIGTERM caught from the moment [`ShutdownSignals::install`] returns: a signal that
/// comes before the node starts is kept, not fatal. Install them before telling anyone the
/// process is up (a pid file, a readiness report), so that a stop sent at once is still a
/// graceful one.
#[derive(Debug)]
pub struct ShutdownSignals(Signals);

impl ShutdownSignals {
    /// Installs the handlers.
    ///
    /// # Errors
    /// The signal handlers could not be installed.
    pub fn install() -> std::io::Result<ShutdownSignals> {
        Signals::new([SIGINT, SIGTERM]).map(ShutdownSignals)
    }

    /// Watches for the first signal on a thread of its own and stops the node with `stop`.
    ///
    /// # Errors
    /// The thread could not be started.
    pub fn stop_on_signal(self, stop: StopHandle) -> std::io::Result<SignalWatch> {
        let mut signals = self.0;
        let handle = signals.handle();
        let thread = std::thread::Builder::new()
            .name("signals".to_owned())
            .spawn(move || {
                let signal = signals.forever().next()?;
                let name = if signal == SIGTERM {
                    "SIGTERM"
                } else {
                    "SIGINT"
                };
                tracing::info!("{name} received: stopping");
                stop.stop();
                Some(name)
            })?;
        Ok(SignalWatch { handle, thread })
    }
}

/// The watcher [`ShutdownSignals::stop_on_signal`] started.
#[derive(Debug)]
pub struct SignalWatch {
    handle: Handle,
    thread: JoinHandle<Option<&'static str>>,
}

impl SignalWatch {
    /// Ends the watch (once the node stopped) and names the signal that stopped it, `None` when
    /// none came (the node stopped on its own, or was stopped otherwise).
    pub fn received(self) -> Option<&'static str> {
        self.handle.close();
        self.thread.join().ok().flatten()
    }
}
