//! The echo service (every byte a client sends comes back, read 1 KiB at a time) and the echo
//! client (each input line sent, the echo printed).

use std::io::{self, BufRead, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use crate::server::{Conn, Service};

/// The most bytes read from a client at once, as the lab asks.
pub const CHUNK: usize = 1024;

/// The echo service: stateless, so one value serves every client thread.
#[derive(Debug, Default)]
pub struct Echo;

impl Service for Echo {
    fn serve(&self, conn: Arc<Conn>) {
        // On the thread's stack: no allocation per read.
        let mut buf = [0u8; CHUNK];
        let mut stream = conn.stream();
        loop {
            let n = match stream.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    tracing::info!(peer = %conn.peer, "idle timeout: disconnecting");
                    return;
                }
                Err(e) => {
                    tracing::debug!(peer = %conn.peer, error = %e, "read failed");
                    return;
                }
            };
            conn.count_in(n);
            tracing::debug!(peer = %conn.peer, bytes = n, "received");
            if let Err(e) = stream.write_all(&buf[..n]) {
                tracing::debug!(peer = %conn.peer, error = %e, "write failed");
                return;
            }
            conn.count_out(n);
            tracing::debug!(peer = %conn.peer, bytes = n, "sent");
        }
    }
}

/// How long the client waits for its echo before giving up.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the echo client over a connected stream: each line of `input` (up to `exit` or end of
/// input) is sent with its newline, and the echo, once fully back, is written to `output`.
/// Notices (sent, received, disconnected) go to `notices` when given.
///
/// # Errors
/// I/O errors of the connection (including a server that stops answering) or of `output`.
pub fn run_client(
    stream: &TcpStream,
    mut input: impl BufRead,
    mut output: impl Write,
    mut notices: Option<&mut dyn Write>,
) -> io::Result<()> {
    stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
    let mut reader = stream;
    let mut writer = stream;
    let mut line = String::new();
    let mut echo = Vec::new();
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            break;
        }
        if line.trim_end_matches(['\r', '\n']) == "exit" {
            break;
        }
        if !line.ends_with('\n') {
            line.push('\n');
        }
        writer.write_all(line.as_bytes())?;
        if let Some(n) = notices.as_deref_mut() {
            let _ = writeln!(n, "sent {} bytes", line.len());
        }
        echo.resize(line.len(), 0);
        reader.read_exact(&mut echo).map_err(|e| match e.kind() {
            ErrorKind::UnexpectedEof => {
                io::Error::new(ErrorKind::UnexpectedEof, "the server closed the connection")
            }
            ErrorKind::WouldBlock | ErrorKind::TimedOut => {
                io::Error::new(ErrorKind::TimedOut, "no echo from the server within 10 s")
            }
            _ => e,
        })?;
        if let Some(n) = notices.as_deref_mut() {
            let _ = writeln!(n, "received {} bytes", echo.len());
        }
        output.write_all(&echo)?;
        output.flush()?;
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
    Ok(())
}
