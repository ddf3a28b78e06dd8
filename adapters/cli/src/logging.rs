//! Daemon logs: `tracing` events printed as upstream's `cluster.log` lines.
//!
//! A Wazuh operator reads and greps lines such as
//! `2019/07/11 08:39:52 wazuh-clusterd: INFO: [Worker worker-1] [Integrity] Finished in 0.012s`:
//! a tag naming the peer, a tag naming the task, the message. We print the same shape, with the
//! node's name where upstream prints its program name (one process may run several nodes, e.g.
//! `demo`):
//!
//! ```text
//! 2026/11/26 10:00:00 master01: INFO: [Worker worker-1] [Integrity] Finished in 0.012s
//! ```
//!
//! # The span and field convention (adapters follow it)
//!
//! * **`node` span**, one per running node, around everything the node does:
//!   `info_span!("node", name = %node_name, tag = "Master")`. `name` is printed in the program
//!   slot; `tag` is the peer tag used for node-level lines (upstream's `[Master]`/`[Worker]`).
//! * **`peer` span**, one per connection, inside the node span:
//!   `info_span!("peer", tag = %format!("Worker {worker_name}"))` on the master for a worker's
//!   link, `tag = "Master"` on a worker for its link to the master, `tag = "Local Server"` for the
//!   local socket (upstream's tags). The innermost `tag` wins; with none, the tag is `Main`.
//! * **task**: a `task` span (`info_span!("task", name = "Integrity")`) around a periodic task's
//!   work, or a `task` field on a single event (`info!(task = "Keep alive", "...")`); the innermost
//!   wins, the event field over any span. Upstream's task names: `Main` (the default), `Integrity`,
//!   `Agent info`, `Keep alive`, `Extra valid`, `File transfer`, `D API`.
//! * **message**: upstream's text where there is one (`Finished in {:.3}s`, `Starting`, ...). Any
//!   other field of the event is appended as ` key=value` (e.g. `bytes=1048576`), so progress of a
//!   long transfer can be logged as `info!(task = "File transfer", sent, total, "Sending")`.
//!
//! Levels print as upstream's names: `ERROR`, `WARNING`, `INFO`, `DEBUG`, and `DEBUG2` for trace.
//! The time is UTC (upstream prints local time; a daemon's host is usually on UTC, and UTC needs
//! no time-zone database).
//!
//! # Choosing what is printed
//!
//! `RUST_LOG` (an `EnvFilter` directive such as `info,wazuh_cluster_tokio=debug`) wins when set;
//! otherwise `-v` raises the level to `DEBUG`, `-vv` to `DEBUG2`, `-q` lowers it to `WARNING`,
//! `-qq` to `ERROR`; the default is `INFO`. Lines go to standard error.

use std::fmt::{self, Write as _};
use std::io::Write;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Args;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;
use wazuh_cluster_sync::calendar::{CivilDate, UtcTime};

/// Name of the span around one node.
pub const NODE_SPAN: &str = "node";
/// Name of the span around one peer link.
pub const PEER_SPAN: &str = "peer";
/// Name of the span around one task's work.
pub const TASK_SPAN: &str = "task";
/// Task tag when none is given (upstream's `[Main]`).
pub const DEFAULT_TASK: &str = "Main";
/// Program slot outside any node span.
pub const PROGRAM: &str = "wazuh-cluster";
/// Peer tag of upstream's daemon outside any node span.
pub const DAEMON_DEFAULT_TAG: &str = "Cluster";

/// `-v` / `-q` (global: they may follow any subcommand).
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct LogArgs {
    /// More log lines: -v debug, -vv everything (RUST_LOG, when set, decides instead).
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Fewer log lines: -q warnings and errors, -qq errors only.
    #[arg(
        short = 'q',
        long = "quiet",
        action = clap::ArgAction::Count,
        global = true,
        conflicts_with = "verbose"
    )]
    pub quiet: u8,
}

impl LogArgs {
    /// The `EnvFilter` directive these flags stand for.
    pub fn directive(&self) -> &'static str {
        match (self.verbose, self.quiet) {
            (0, 0) => "info",
            (1, _) => "debug",
            (v, _) if v > 1 => "trace",
            (_, 1) => "warn",
            _ => "error",
        }
    }
}

/// Installs the global subscriber: `RUST_LOG` if set (and valid), else the flags' level; lines
/// on standard error. A second call (or an invalid `RUST_LOG`) is reported and otherwise ignored.
pub fn init(args: &LogArgs) {
    install(
        args.directive(),
        UpstreamLayer::new(Box::new(std::io::stderr()), SystemTime::now),
    );
}

/// Installs the global subscriber printing with `layer`: `RUST_LOG` if set (and valid), else
/// `directive`. A second call (or an invalid `RUST_LOG`) is reported and otherwise ignored.
pub fn install(directive: &str, layer: UpstreamLayer) {
    let rust_log = std::env::var("RUST_LOG")
        .ok()
        .filter(|value| !value.is_empty());
    let filter = match rust_log.as_deref().map(EnvFilter::try_new) {
        Some(Ok(filter)) => filter,
        Some(Err(error)) => {
            eprintln!("wazuh-cluster: ignoring RUST_LOG ({error})");
            EnvFilter::new(directive)
        }
        None => EnvFilter::new(directive),
    };
    if let Err(error) = tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init()
    {
        eprintln!("wazuh-cluster: logging already set up ({error})");
    }
}

/// The fields of our spans that the line format uses.
#[derive(Debug, Default, Clone)]
struct SpanTags {
    /// `name` of a `node` or `task` span.
    name: Option<String>,
    /// `tag` of a `node` or `peer` span.
    tag: Option<String>,
}

impl Visit for SpanTags {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.set(field, format!("{value:?}"));
    }
}

impl SpanTags {
    fn set(&mut self, field: &Field, value: String) {
        match field.name() {
            "name" => self.name = Some(value),
            "tag" => self.tag = Some(value),
            _ => {}
        }
    }
}

/// An event's message, its `task` field and its other fields (` key=value`).
#[derive(Debug, Default)]
struct EventText {
    message: String,
    task: Option<String>,
    extra: String,
}

impl Visit for EventText {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message.push_str(value),
            "task" => self.task = Some(value.to_owned()),
            name => {
                let _ = write!(self.extra, " {name}={value}");
            }
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            // `format_args!` messages: Debug of fmt::Arguments is the text itself.
            "message" => {
                let _ = write!(self.message, "{value:?}");
            }
            "task" => self.task = Some(format!("{value:?}")),
            name => {
                let _ = write!(self.extra, " {name}={value:?}");
            }
        }
    }
}

/// Upstream's level names.
fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "DEBUG2",
    }
}

/// The UTC day of a system time (the epoch for times before it), as log rotation names it.
pub fn civil_date_of(time: SystemTime) -> CivilDate {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    UtcTime::from_unix(i64::try_from(secs).unwrap_or(i64::MAX)).date
}

/// `YYYY/MM/DD HH:MM:SS` (UTC) of a Unix time in seconds (upstream's `%Y/%m/%d %H:%M:%S`).
pub fn format_utc(unix_secs: u64) -> String {
    let UtcTime {
        date: CivilDate { year, month, day },
        hour,
        minute,
        second,
    } = UtcTime::from_unix(i64::try_from(unix_secs).unwrap_or(i64::MAX));
    format!("{year:04}/{month:02}/{day:02} {hour:02}:{minute:02}:{second:02}")
}

/// The layer printing upstream-shaped lines; see the [module documentation](self).
pub struct UpstreamLayer {
    out: Mutex<Box<dyn Write + Send>>,
    clock: fn() -> SystemTime,
    /// The program slot for every line (`wazuh-clusterd`), or `None` for the node's name.
    program: Option<&'static str>,
    /// The peer tag outside any node or peer span.
    default_tag: &'static str,
}

impl UpstreamLayer {
    /// Lines go to `out`; times come from `clock` (`SystemTime::now` outside tests).
    pub fn new(out: Box<dyn Write + Send>, clock: fn() -> SystemTime) -> UpstreamLayer {
        UpstreamLayer {
            out: Mutex::new(out),
            clock,
            program: None,
            default_tag: DEFAULT_TASK,
        }
    }

    /// As [`UpstreamLayer::new`], with upstream's daemon's exact shape: `program` in the program
    /// slot of every line (as `wazuh-clusterd.py` prints `wazuh-clusterd`, whatever the node) and
    /// its default tag `Cluster` outside any node (its `ClusterFilter(tag='Cluster')`).
    pub fn for_daemon(
        out: Box<dyn Write + Send>,
        clock: fn() -> SystemTime,
        program: &'static str,
    ) -> UpstreamLayer {
        UpstreamLayer {
            program: Some(program),
            default_tag: DAEMON_DEFAULT_TAG,
            ..UpstreamLayer::new(out, clock)
        }
    }

    /// The line for an event at `now` under `node`, `tag`, `task`.
    fn line(&self, level: &Level, node: &str, tag: &str, task: &str, text: &EventText) -> String {
        let unix_secs = (self.clock)()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        format!(
            "{} {node}: {}: [{tag}] [{task}] {}{}\n",
            format_utc(unix_secs),
            level_name(level),
            text.message,
            text.extra
        )
    }
}

impl<S> Layer<S> for UpstreamLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let name = attrs.metadata().name();
        if ![NODE_SPAN, PEER_SPAN, TASK_SPAN].contains(&name) {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let mut tags = SpanTags::default();
        attrs.record(&mut tags);
        span.extensions_mut().insert(tags);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if let Some(tags) = span.extensions_mut().get_mut::<SpanTags>() {
            values.record(tags);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let (mut node, mut tag, mut task) = (None, None, None);
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                let extensions = span.extensions();
                let Some(tags) = extensions.get::<SpanTags>() else {
                    continue;
                };
                match span.name() {
                    NODE_SPAN => {
                        node = tags.name.clone().or(node);
                        tag = tags.tag.clone().or(tag);
                    }
                    PEER_SPAN => tag = tags.tag.clone().or(tag),
                    _ => task = tags.name.clone().or(task),
                }
            }
        }
        let mut text = EventText::default();
        event.record(&mut text);
        let task = text.task.clone().or(task);
        let line = self.line(
            event.metadata().level(),
            self.program.or(node.as_deref()).unwrap_or(PROGRAM),
            tag.as_deref().unwrap_or(self.default_tag),
            task.as_deref().unwrap_or(DEFAULT_TASK),
            &text,
        );
        if let Ok(mut out) = self.out.lock() {
            // A log line that cannot be written (closed stderr) is dropped, not fatal.
            let _ = out.write_all(line.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tracing::{debug, info, info_span, trace, warn};

    use super::*;

    /// A writer tests can read back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// 2026/11/26 10:00:00 UTC.
    fn fixed_clock() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_687_200)
    }

    fn capture(directive: &str, body: impl FnOnce()) -> String {
        let out = Captured::default();
        let subscriber = tracing_subscriber::registry()
            .with(EnvFilter::new(directive))
            .with(UpstreamLayer::new(Box::new(out.clone()), fixed_clock));
        tracing::subscriber::with_default(subscriber, body);
        out.text()
    }

    #[test]
    fn lines_have_upstreams_shape_with_node_peer_and_task() {
        let text = capture("info", || {
            let node = info_span!("node", name = "master01", tag = "Master");
            let _node = node.enter();
            info!("Serving on 0.0.0.0:1516");
            let peer = info_span!("peer", tag = %format!("Worker {}", "worker-1"));
            let _peer = peer.enter();
            info!("Client worker-1 added");
            {
                let task = info_span!("task", name = "Integrity");
                let _task = task.enter();
                info!("Finished in {:.3}s", 0.0123);
                warn!(task = "Keep alive", "No keep alive received");
            }
            info!(
                task = "File transfer",
                sent = 1_048_576u64,
                total = 4_194_304u64,
                "Sending"
            );
        });
        assert_eq!(
            text,
            "2026/11/26 10:00:00 master01: INFO: [Master] [Main] Serving on 0.0.0.0:1516\n\
             2026/11/26 10:00:00 master01: INFO: [Worker worker-1] [Main] Client worker-1 added\n\
             2026/11/26 10:00:00 master01: INFO: [Worker worker-1] [Integrity] Finished in 0.012s\n\
             2026/11/26 10:00:00 master01: WARNING: [Worker worker-1] [Keep alive] No keep alive received\n\
             2026/11/26 10:00:00 master01: INFO: [Worker worker-1] [File transfer] Sending sent=1048576 total=4194304\n"
        );
    }

    #[test]
    fn outside_a_node_the_program_and_main_tags_are_used() {
        let text = capture("trace", || {
            debug!("parsing ossec.conf");
            trace!(path = "etc/ossec.conf", "read");
        });
        assert_eq!(
            text,
            "2026/11/26 10:00:00 wazuh-cluster: DEBUG: [Main] [Main] parsing ossec.conf\n\
             2026/11/26 10:00:00 wazuh-cluster: DEBUG2: [Main] [Main] read path=etc/ossec.conf\n"
        );
    }

    #[test]
    fn two_nodes_in_one_process_are_told_apart() {
        let text = capture("info", || {
            info_span!("node", name = "worker-1", tag = "Worker").in_scope(|| {
                info_span!("peer", tag = "Master").in_scope(|| info!("Successfully connected"));
            });
            info_span!("node", name = "worker-2", tag = "Worker").in_scope(|| info!("Starting"));
        });
        assert_eq!(
            text,
            "2026/11/26 10:00:00 worker-1: INFO: [Master] [Main] Successfully connected\n\
             2026/11/26 10:00:00 worker-2: INFO: [Worker] [Main] Starting\n"
        );
    }

    #[test]
    fn the_daemon_shape_names_the_program_and_cluster_outside_nodes() {
        let out = Captured::default();
        let subscriber = tracing_subscriber::registry().with(UpstreamLayer::for_daemon(
            Box::new(out.clone()),
            fixed_clock,
            "wazuh-clusterd",
        ));
        tracing::subscriber::with_default(subscriber, || {
            info!("Starting");
            info_span!("node", name = "master01", tag = "Master")
                .in_scope(|| info!("Serving on 0.0.0.0:1516"));
        });
        assert_eq!(
            out.text(),
            "2026/11/26 10:00:00 wazuh-clusterd: INFO: [Cluster] [Main] Starting\n\
             2026/11/26 10:00:00 wazuh-clusterd: INFO: [Master] [Main] Serving on 0.0.0.0:1516\n"
        );
    }

    #[test]
    fn the_filter_drops_lower_levels() {
        let text = capture("warn", || {
            info!("hidden");
            warn!("shown");
        });
        assert_eq!(
            text,
            "2026/11/26 10:00:00 wazuh-cluster: WARNING: [Main] [Main] shown\n"
        );
    }

    #[test]
    fn verbosity_flags_map_to_levels() {
        let args = |verbose, quiet| LogArgs { verbose, quiet };
        assert_eq!(args(0, 0).directive(), "info");
        assert_eq!(args(1, 0).directive(), "debug");
        assert_eq!(args(2, 0).directive(), "trace");
        assert_eq!(args(5, 0).directive(), "trace");
        assert_eq!(args(0, 1).directive(), "warn");
        assert_eq!(args(0, 2).directive(), "error");
    }

    #[test]
    fn utc_dates() {
        assert_eq!(format_utc(0), "1970/01/01 00:00:00");
        // A time of the recorded session (dapi_frames.json "wall"), checked with `date -u`.
        assert_eq!(format_utc(1_795_682_929), "2026/11/26 08:48:49");
        assert_eq!(format_utc(951_782_400), "2000/02/29 00:00:00");
        assert_eq!(format_utc(4_107_542_399), "2100/02/28 23:59:59");
    }
}
