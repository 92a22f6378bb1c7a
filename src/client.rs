//! What the interactive clients share: finding the server (asking on a terminal) and
//! connecting with a clear error.

use std::io::{self, BufRead, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The host a client connects to when none is given.
pub const DEFAULT_HOST: &str = "127.0.0.1";
/// How long a connect may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a client could not reach its server.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The name did not resolve.
    #[error("cannot resolve host '{host}': {reason}")]
    Resolve {
        /// The host as given.
        host: String,
        /// What the resolver said.
        reason: io::Error,
    },
    /// No address of the host accepted the connection.
    #[error("cannot connect to {host}:{port}: {reason}")]
    Connect {
        /// The host as given.
        host: String,
        /// The port.
        port: u16,
        /// The last error (connection refused, timed out, ...).
        reason: io::Error,
    },
    /// End of input while asking for the host or port.
    #[error("no server given (end of input at the prompt)")]
    NoAnswer,
}

/// Fills in a missing host or port: asked on `terminal` when one is given, else the defaults.
///
/// # Errors
/// [`ConnectError::NoAnswer`] at end of input (or when the terminal cannot be read).
pub fn endpoint(
    host: Option<String>,
    port: Option<u16>,
    default_port: u16,
    terminal: Option<(&mut dyn BufRead, &mut dyn Write)>,
) -> Result<(String, u16), ConnectError> {
    match terminal {
        None => Ok((
            host.unwrap_or_else(|| DEFAULT_HOST.to_string()),
            port.unwrap_or(default_port),
        )),
        Some((input, output)) => {
            let host = match host {
                Some(h) => h,
                None => crate::prompt::ask_host(&mut *input, &mut *output, DEFAULT_HOST)
                    .ok()
                    .flatten()
                    .ok_or(ConnectError::NoAnswer)?,
            };
            let port = match port {
                Some(p) => p,
                None => crate::prompt::ask_port(&mut *input, &mut *output, default_port)
                    .ok()
                    .flatten()
                    .ok_or(ConnectError::NoAnswer)?,
            };
            Ok((host, port))
        }
    }
}

/// Connects to `host:port`, trying each address of the host in turn.
///
/// # Errors
/// [`ConnectError::Resolve`] or [`ConnectError::Connect`] naming the host and port.
pub fn connect(host: &str, port: u16) -> Result<TcpStream, ConnectError> {
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|reason| ConnectError::Resolve {
            host: host.to_string(),
            reason,
        })?;
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address found");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(ConnectError::Connect {
        host: host.to_string(),
        port,
        reason: last,
    })
}
