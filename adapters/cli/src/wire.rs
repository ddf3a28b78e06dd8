//! `wazuh-cluster wire ...`: look at protocol bytes with the protocol crate's own codec.
//!
//! `wire decode` is a dissector for captured streams: each FILE holds the raw bytes of one
//! direction of one TCP connection (or Unix-socket connection, without a key). It reads the file in
//! fixed-size chunks through [`FrameDecoder`], so a capture of gigabytes never sits in memory:
//! at most one read buffer and one frame (bounded by `--max-payload`) are held at a time. It
//! reuses the codec rather than parsing headers itself, so what it shows is what a node would see.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use clap::{Args, Subcommand};
use serde::Serialize;
use wazuh_cluster_protocol::fernet::Fernet;
use wazuh_cluster_protocol::frame::{DEFAULT_MAX_PAYLOAD, FrameDecoder, HEADER_LEN};
use wazuh_cluster_protocol::key::ClusterKey;
use wazuh_cluster_protocol::profile::Profile;

/// Exit status when a stream is malformed (the error object was printed).
const EXIT_MALFORMED: u8 = 1;
/// Exit status for a bad argument or an unreadable file (message on stderr), as clap's usage errors.
const EXIT_USAGE: u8 = 2;
/// Bytes read from a file at a time.
const READ_CHUNK: usize = 1 << 20;

/// `wire` subcommands.
#[derive(Debug, Args)]
pub struct WireArgs {
    #[command(subcommand)]
    command: WireCommand,
}

#[derive(Debug, Subcommand)]
enum WireCommand {
    /// Decode captured byte streams into one JSON object per message.
    ///
    /// Each FILE is the raw byte stream of one direction of one connection. For every message a
    /// line {"counter", "command", "wire_len", "payload_b64", "payload_text"} is printed:
    /// wire_len is the payload length on the wire (the Fernet token's length with a key),
    /// payload_b64 the payload (decrypted with --key) in standard base64, payload_text the same
    /// when it is valid UTF-8. Commands are shown as received, non-printable bytes as \xNN.
    /// With several FILEs each line also names its "file".
    ///
    /// On a malformed stream (truncated frame, oversized length, undecryptable payload) a line
    /// {"error": "<what and at which byte offset>"} is printed and the exit status is 1. A bad key
    /// or an unreadable file: message on stderr, exit status 2.
    Decode(DecodeArgs),
}

#[derive(Debug, Args)]
struct DecodeArgs {
    /// Cluster key (32 characters of [A-Za-z0-9_]) to open Fernet payloads; without it payloads
    /// are shown as on the wire. Prefer the environment variable: command lines are visible to
    /// other users.
    #[arg(long, env = "WAZUH_CLUSTER_KEY", hide_env_values = true)]
    key: Option<String>,

    /// Protocol profile of the streams.
    #[arg(long, default_value = "3.9")]
    profile: Profile,

    /// Largest payload accepted in one frame, in bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_PAYLOAD)]
    max_payload: u32,

    /// Captured streams, decoded one after the other.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

/// Runs a `wire` subcommand and returns the process exit status.
pub fn run(args: WireArgs) -> ExitCode {
    match args.command {
        WireCommand::Decode(args) => decode(&args),
    }
}

/// One output line per message.
#[derive(Serialize)]
struct Message<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<&'a str>,
    counter: u32,
    command: String,
    wire_len: usize,
    payload_b64: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_text: Option<&'a str>,
}

/// The line printed for a malformed stream.
#[derive(Serialize)]
struct ErrorLine<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<&'a str>,
    error: String,
}

/// Why decoding stopped.
enum Stop {
    /// The stream is malformed: printed as an error object, exit 1.
    Malformed(String),
    /// The input could not be read: stderr, exit 2.
    Unreadable(io::Error),
    /// Standard output failed (e.g. a closed pipe): stop quietly.
    Output(io::Error),
}

fn decode(args: &DecodeArgs) -> ExitCode {
    let fernet = match args.key.as_deref().map(ClusterKey::new) {
        None => None,
        Some(Ok(key)) => Some(Fernet::new(&key)),
        Some(Err(error)) => {
            // The error never contains the key itself.
            eprintln!("wazuh-cluster wire decode: invalid --key: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let several = args.files.len() > 1;
    for path in &args.files {
        let name = path.display().to_string();
        let label = several.then_some(name.as_str());
        let result = File::open(path)
            .map_err(Stop::Unreadable)
            .and_then(|file| decode_stream(args, fernet.as_ref(), file, label, &mut out));
        match result {
            Ok(()) => {}
            Err(Stop::Malformed(error)) => {
                let line = ErrorLine { file: label, error };
                let printed = write_line(&mut out, &line).and_then(|()| out.flush());
                return match printed {
                    Ok(()) => ExitCode::from(EXIT_MALFORMED),
                    Err(error) => output_failed(&error),
                };
            }
            Err(Stop::Unreadable(error)) => {
                // Lines already decoded are still worth having.
                let _ = out.flush();
                eprintln!("wazuh-cluster wire decode: cannot read {name}: {error}");
                return ExitCode::from(EXIT_USAGE);
            }
            Err(Stop::Output(error)) => return output_failed(&error),
        }
    }
    match out.flush() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => output_failed(&error),
    }
}

/// A closed pipe (`| head`) is a normal way to stop reading; anything else is reported.
fn output_failed(error: &io::Error) -> ExitCode {
    if error.kind() == io::ErrorKind::BrokenPipe {
        ExitCode::SUCCESS
    } else {
        eprintln!("wazuh-cluster wire decode: cannot write output: {error}");
        ExitCode::from(EXIT_USAGE)
    }
}

fn write_line(out: &mut impl Write, value: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
}

/// Decodes one stream, printing a line per message.
fn decode_stream(
    args: &DecodeArgs,
    fernet: Option<&Fernet>,
    mut file: impl Read,
    label: Option<&str>,
    out: &mut impl Write,
) -> Result<(), Stop> {
    let mut decoder = FrameDecoder::new(args.profile, args.max_payload);
    let mut buffer = vec![0u8; READ_CHUNK];
    loop {
        let read = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(Stop::Unreadable(error)),
        };
        let mut input = &buffer[..read];
        loop {
            let frame = match decoder.decode_slice(&mut input) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(error) => return Err(Stop::Malformed(error.to_string())),
            };
            let offset = decoder.stream_offset() - (HEADER_LEN + frame.payload.len()) as u64;
            let decrypted;
            let payload: &[u8] = match fernet {
                None => &frame.payload,
                Some(fernet) => {
                    decrypted = fernet.decrypt(&frame.payload).map_err(|error| {
                        Stop::Malformed(format!(
                            "cannot decrypt the payload of the frame at byte offset {offset} \
                             (counter {}, command '{}'): {error}",
                            frame.counter, frame.command
                        ))
                    })?;
                    &decrypted
                }
            };
            let line = Message {
                file: label,
                counter: frame.counter,
                command: frame.command.to_string(),
                wire_len: frame.payload.len(),
                payload_b64: STANDARD.encode(payload),
                payload_text: std::str::from_utf8(payload).ok(),
            };
            write_line(out, &line).map_err(Stop::Output)?;
        }
    }
    decoder
        .finish()
        .map_err(|error| Stop::Malformed(error.to_string()))
}
