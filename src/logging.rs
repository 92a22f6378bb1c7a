//! Server event logging: tracing to a file (or stderr), and the console's view of that file
//! (`logs N`, `clear-logs`).
//!
//! Each event is formatted into one buffer and written with one `write` to a file opened with
//! O_APPEND: lines never interleave, a line is in the file as soon as the event returns (so
//! `logs` shows it and a crash loses nothing), and truncating the file from the console is
//! safe while logging goes on. Only lifecycle events are logged by default (INFO); each read
//! and write is DEBUG (`-v`), so a busy server does not pay for its log.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    /// Appended to this file (created if missing).
    File(PathBuf),
    /// Written to standard error (`--log -`).
    Stderr,
}

impl LogTarget {
    /// `-` means stderr, anything else a file path.
    pub fn from_arg(arg: &str) -> Self {
        if arg == "-" {
            LogTarget::Stderr
        } else {
            LogTarget::File(PathBuf::from(arg))
        }
    }
}

/// The installed logger and the file it writes, for the console.
#[derive(Debug)]
pub struct Logging {
    file: Option<PathBuf>,
}

/// Why logging could not start, or a console log command failed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The log file could not be opened, read or truncated.
    #[error("log file '{path}': {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// A global logger was already installed in this process.
    #[error("a logger is already installed")]
    AlreadyInstalled,
    /// Logs go to stderr, so there is no file to show or clear.
    #[error("logging goes to stderr (--log -): there is no log file")]
    NoFile,
}

/// Installs the process-wide logger: INFO and up (DEBUG with `verbose`), one line per event with
/// time, level and fields (the client's address among them).
///
/// # Errors
/// [`LogError::File`] when the file cannot be opened; [`LogError::AlreadyInstalled`].
pub fn init(target: &LogTarget, verbose: bool) -> Result<Logging, LogError> {
    let level = if verbose {
        tracing::Level::DEBUG
    } else {
        tracing::Level::INFO
    };
    let builder = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_target(false)
        .with_max_level(level);
    let file = match target {
        LogTarget::Stderr => {
            builder
                .with_writer(io::stderr)
                .try_init()
                .map_err(|_| LogError::AlreadyInstalled)?;
            None
        }
        LogTarget::File(path) => {
            let f = Arc::new(open_append(path)?);
            builder
                .with_writer(f)
                .try_init()
                .map_err(|_| LogError::AlreadyInstalled)?;
            Some(path.clone())
        }
    };
    Ok(Logging { file })
}

fn open_append(path: &Path) -> Result<File, LogError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| LogError::File {
            path: path.to_path_buf(),
            source,
        })
}

impl Logging {
    /// The log file, if logging goes to one.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The last `n` lines of the log file, as they are.
    ///
    /// # Errors
    /// [`LogError::NoFile`] when logging goes to stderr; [`LogError::File`] on read errors.
    pub fn tail(&self, n: usize) -> Result<Vec<String>, LogError> {
        let path = self.file.as_ref().ok_or(LogError::NoFile)?;
        tail_file(path, n).map_err(|source| LogError::File {
            path: path.clone(),
            source,
        })
    }

    /// Empties the log file; logging goes on into the emptied file.
    ///
    /// # Errors
    /// [`LogError::NoFile`] when logging goes to stderr; [`LogError::File`] otherwise.
    pub fn clear(&self) -> Result<(), LogError> {
        let path = self.file.as_ref().ok_or(LogError::NoFile)?;
        // The writer appends (O_APPEND), so after truncation it writes at the new end.
        OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| f.set_len(0))
            .map_err(|source| LogError::File {
                path: path.clone(),
                source,
            })
    }
}

/// The last `n` lines of a file, reading backwards in blocks so a large log is not read whole.
pub fn tail_file(path: &Path, n: usize) -> io::Result<Vec<String>> {
    const BLOCK: u64 = 64 * 1024;
    let mut f = File::open(path)?;
    let len = f.seek(SeekFrom::End(0))?;
    let mut start = len;
    let mut buf: Vec<u8> = Vec::new();
    while start > 0 {
        let from = start.saturating_sub(BLOCK);
        let mut chunk = vec![0; (start - from) as usize];
        f.seek(SeekFrom::Start(from))?;
        f.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&buf);
        buf = chunk;
        start = from;
        // n lines need n+1 newlines before the end (the last line ends with one).
        if buf.iter().filter(|&&b| b == b'\n').count() > n {
            break;
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    let skip = lines.len().saturating_sub(n);
    Ok(lines[skip..].iter().map(|s| s.to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_reads_only_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        let text: String = (0..50_000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&p, text).unwrap();
        assert_eq!(tail_file(&p, 2).unwrap(), vec!["line 49998", "line 49999"]);
        assert_eq!(tail_file(&p, 0).unwrap(), Vec::<String>::new());
        std::fs::write(&p, "a\nb\n").unwrap();
        assert_eq!(tail_file(&p, 20).unwrap(), vec!["a", "b"]);
    }
}
