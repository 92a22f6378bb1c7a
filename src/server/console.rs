//! The admin console: the main thread takes commands (from stdin, through a reader thread)
//! while the listener and client threads serve. Ctrl-C and SIGTERM arrive on the same channel.

use std::io::{self, BufRead, Write};

use crossbeam_channel::{Receiver, Sender};

use super::ServerHandle;
use crate::logging::Logging;

/// How many log lines `logs` shows by default.
pub const DEFAULT_LOG_LINES: usize = 20;

/// One console command, parsed. Unknown input is a variant that gets a hint, not an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminCommand {
    /// List the commands.
    Help,
    /// Address, listening or paused, clients now, clients and bytes served so far.
    Status,
    /// Stop listening and release the port; connected clients stay.
    Pause,
    /// Listen again on the same port.
    Resume,
    /// Show the last N lines of the log file.
    Logs(usize),
    /// Empty the log file; logging goes on.
    ClearLogs,
    /// Empty the service's identification store.
    ClearUsers,
    /// Stop the server (`shutdown` or `quit`).
    Shutdown,
    /// A blank line: nothing to do.
    Empty,
    /// A command the core does not know: offered to the service, else a hint.
    Other {
        /// The first word.
        command: String,
        /// The rest of the line, trimmed.
        args: String,
    },
    /// A known command with arguments it cannot take.
    Invalid(String),
}

impl AdminCommand {
    /// Parses one console line.
    ///
    /// ```
    /// use tcpkit::server::console::AdminCommand;
    /// assert_eq!(AdminCommand::parse("logs 5"), AdminCommand::Logs(5));
    /// assert_eq!(AdminCommand::parse(" QUIT "), AdminCommand::Shutdown);
    /// assert!(matches!(AdminCommand::parse("logs many"), AdminCommand::Invalid(_)));
    /// ```
    pub fn parse(line: &str) -> Self {
        let line = line.trim();
        let (cmd, args) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let args = args.trim();
        let cmd_lower = cmd.to_ascii_lowercase();
        let no_args = |c: AdminCommand| {
            if args.is_empty() {
                c
            } else {
                AdminCommand::Invalid(format!("'{cmd_lower}' takes no arguments"))
            }
        };
        match cmd_lower.as_str() {
            "" => AdminCommand::Empty,
            "help" | "?" => AdminCommand::Help,
            "status" => no_args(AdminCommand::Status),
            "pause" => no_args(AdminCommand::Pause),
            "resume" => no_args(AdminCommand::Resume),
            "clear-logs" => no_args(AdminCommand::ClearLogs),
            "clear-users" => no_args(AdminCommand::ClearUsers),
            "shutdown" | "quit" | "exit" => no_args(AdminCommand::Shutdown),
            "logs" if args.is_empty() => AdminCommand::Logs(DEFAULT_LOG_LINES),
            "logs" => match args.parse::<usize>() {
                Ok(n) if n <= 100_000 => AdminCommand::Logs(n),
                _ => AdminCommand::Invalid(format!(
                    "invalid line count '{args}': use `logs [N]` with N from 0 to 100000"
                )),
            },
            _ => AdminCommand::Other {
                command: cmd_lower,
                args: args.to_string(),
            },
        }
    }
}

/// What reaches the console's main loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A line typed on the console.
    Line(String),
    /// The console's input ended (the server keeps running).
    Eof,
    /// Ctrl-C or SIGTERM.
    Signal,
}

/// Whether the console loop goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep taking commands.
    Continue,
    /// Shut the server down.
    Stop,
}

const CORE_HELP: &str = "\
commands:
  help            this list
  status          address, listening or paused, clients now, clients and bytes so far
  pause           stop listening and release the port (connected clients stay)
  resume          listen again on the same port
  logs [N]        the last N lines of the log file (default 20)
  clear-logs      empty the log file (logging goes on)
  clear-users     empty the identification store
  shutdown, quit  close every client and stop";

/// Runs one command against the server; the reply goes to `out`.
///
/// # Errors
/// Only errors writing to `out`.
pub fn execute(
    cmd: AdminCommand,
    server: &ServerHandle,
    logging: &Logging,
    out: &mut impl Write,
) -> io::Result<Flow> {
    match cmd {
        AdminCommand::Empty => {}
        AdminCommand::Help => {
            writeln!(out, "{CORE_HELP}")?;
            for line in server.service().console_help() {
                writeln!(out, "  {line}")?;
            }
        }
        AdminCommand::Status => {
            let s = server.status();
            let state = if s.listening {
                format!("listening on {}", s.addr)
            } else {
                format!("paused (port {} released)", s.addr)
            };
            writeln!(
                out,
                "{state}; clients now {}; clients served {}; bytes received {}, sent {}",
                s.clients_now, s.clients_served, s.bytes_in, s.bytes_out
            )?;
        }
        AdminCommand::Pause => {
            if server.pause() {
                writeln!(
                    out,
                    "paused: port {} released; connected clients stay",
                    server.addr().port()
                )?;
            } else {
                writeln!(out, "already paused")?;
            }
        }
        AdminCommand::Resume => match server.resume() {
            Ok(true) => writeln!(out, "listening on {} again", server.addr())?,
            Ok(false) => writeln!(out, "not paused: already listening on {}", server.addr())?,
            Err(e) => writeln!(out, "! cannot resume: {e}")?,
        },
        AdminCommand::Logs(n) => match logging.tail(n) {
            Ok(lines) => {
                for l in lines {
                    writeln!(out, "{l}")?;
                }
            }
            Err(e) => writeln!(out, "! {e}")?,
        },
        AdminCommand::ClearLogs => match logging.clear() {
            Ok(()) => {
                let file = logging
                    .file()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                writeln!(out, "log file {file} emptied")?;
                tracing::info!("log cleared from the console");
            }
            Err(e) => writeln!(out, "! {e}")?,
        },
        AdminCommand::ClearUsers => {
            let reply = server.service().clear_users();
            writeln!(out, "{reply}")?;
        }
        AdminCommand::Shutdown => {
            writeln!(out, "shutting down")?;
            return Ok(Flow::Stop);
        }
        AdminCommand::Invalid(why) => writeln!(out, "! {why}")?,
        AdminCommand::Other { command, args } => {
            match server.service().console_command(&command, &args) {
                Some(reply) => writeln!(out, "{reply}")?,
                None => writeln!(
                    out,
                    "! unknown command '{command}': type `help` for the list"
                )?,
            }
        }
    }
    out.flush()?;
    Ok(Flow::Continue)
}

/// The console's inputs: Ctrl-C/SIGTERM always, and stdin lines when `console` is true (read
/// on a thread of its own, so a signal is never stuck behind a blocked read).
pub fn inputs(console: bool) -> Receiver<Input> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let sig = tx.clone();
    if let Err(e) = ctrlc::set_handler(move || {
        let _ = sig.send(Input::Signal);
    }) {
        tracing::warn!(error = %e, "cannot catch Ctrl-C/SIGTERM");
    }
    if console {
        spawn_reader(io::BufReader::new(io::stdin()), tx);
    }
    rx
}

/// Feeds lines of `input` into the channel, then `Eof`.
pub fn spawn_reader(input: impl BufRead + Send + 'static, tx: Sender<Input>) {
    let _ = std::thread::Builder::new()
        .name("console".into())
        .spawn(move || {
            for line in input.lines() {
                match line {
                    Ok(l) => {
                        if tx.send(Input::Line(l)).is_err() {
                            return;
                        }
                    }
                    Err(_) => break,
                }
            }
            let _ = tx.send(Input::Eof);
        });
}

/// The main thread's loop: executes console lines until `shutdown`, a signal, or the channel
/// closes; end of console input leaves the server running (only a signal stops it then).
///
/// # Errors
/// Only errors writing to `out`.
pub fn run(
    server: &ServerHandle,
    logging: &Logging,
    inputs: &Receiver<Input>,
    out: &mut impl Write,
) -> io::Result<()> {
    while let Ok(input) = inputs.recv() {
        match input {
            Input::Line(l) => {
                if execute(AdminCommand::parse(&l), server, logging, out)? == Flow::Stop {
                    break;
                }
            }
            Input::Eof => tracing::info!("console input closed; the server keeps running"),
            Input::Signal => {
                tracing::info!("signal received");
                break;
            }
        }
    }
    Ok(())
}
