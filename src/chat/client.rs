//! The chat client: logs in by answering the server's `? ` prompts (with the saved session
//! token first, passwords read without echo), then sends what the user types while a reader
//! thread shows incoming lines above the line being typed (rustyline's external printer).
//! Piped stdin works too: prompts are answered by the next input lines.

use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;

/// Where the client keeps session tokens, one line `SERVER TOKEN` each:
/// `$XDG_STATE_HOME/tcpkit/tokens`, else `~/.local/state/tcpkit/tokens`.
#[derive(Debug, Clone)]
pub struct TokenStore {
    path: Option<PathBuf>,
}

impl TokenStore {
    /// The token file under the user's state directory (none if neither variable is set).
    pub fn from_env() -> Self {
        let base = std::env::var_os("XDG_STATE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")));
        TokenStore {
            path: base.map(|b| b.join("tcpkit").join("tokens")),
        }
    }

    fn entries(&self) -> Vec<(String, String)> {
        let Some(p) = &self.path else {
            return Vec::new();
        };
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(k, t)| (k.to_string(), t.to_string()))
            .collect()
    }

    /// The saved token for `server` (`host:port`).
    pub fn get(&self, server: &str) -> Option<String> {
        self.entries()
            .into_iter()
            .find(|(k, _)| k == server)
            .map(|(_, t)| t)
    }

    /// Saves (or, with `None`, forgets) the token for `server`. The file is private (0600).
    pub fn set(&self, server: &str, token: Option<&str>) -> io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let Some(p) = &self.path else { return Ok(()) };
        let mut entries: Vec<(String, String)> = self
            .entries()
            .into_iter()
            .filter(|(k, _)| k != server)
            .collect();
        if let Some(t) = token {
            entries.push((server.to_string(), t.to_string()));
        }
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(p)?;
        for (k, t) in entries {
            writeln!(f, "{k} {t}")?;
        }
        Ok(())
    }
}

/// How the client answers the server's prompts.
pub trait Answers {
    /// A plain answer (a name); `None` gives up.
    fn text(&mut self, question: &str) -> io::Result<Option<String>>;
    /// A secret answer, read without echo where possible.
    fn secret(&mut self, question: &str) -> io::Result<Option<String>>;
    /// Shows a server line.
    fn show(&mut self, line: &str);
}

/// Answers from a terminal: names with a line editor, passwords without echo.
pub struct TerminalAnswers;

impl Answers for TerminalAnswers {
    fn text(&mut self, question: &str) -> io::Result<Option<String>> {
        eprint!("{question}: ");
        io::stderr().flush()?;
        let mut l = String::new();
        Ok((io::stdin().read_line(&mut l)? > 0).then(|| l.trim().to_string()))
    }

    fn secret(&mut self, question: &str) -> io::Result<Option<String>> {
        rpassword::prompt_password(format!("{question}: ")).map(Some)
    }

    fn show(&mut self, line: &str) {
        // The question is asked again locally (without echo for passwords).
        if !line.starts_with("? ") {
            println!("{line}");
        }
    }
}

/// Answers from piped input: each prompt takes the next line.
pub struct PipedAnswers<R: BufRead, W: Write> {
    /// Where answers come from.
    pub input: R,
    /// Where server lines go.
    pub output: W,
}

impl<R: BufRead, W: Write> Answers for PipedAnswers<R, W> {
    fn text(&mut self, _question: &str) -> io::Result<Option<String>> {
        let mut l = String::new();
        Ok((self.input.read_line(&mut l)? > 0)
            .then(|| l.trim_end_matches(['\r', '\n']).to_string()))
    }

    fn secret(&mut self, question: &str) -> io::Result<Option<String>> {
        self.text(question)
    }

    fn show(&mut self, line: &str) {
        let _ = writeln!(self.output, "{line}");
    }
}

/// The connection and what the client knows about its session.
pub struct Session {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// `host:port`, the key of the saved token.
    server: String,
    tokens: TokenStore,
}

impl Session {
    /// Wraps a connected stream.
    ///
    /// # Errors
    /// When the stream cannot be cloned.
    pub fn new(stream: TcpStream, server: String, tokens: TokenStore) -> io::Result<Self> {
        Ok(Session {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
            server,
            tokens,
        })
    }

    fn send(&mut self, line: &str) -> io::Result<()> {
        self.writer.write_all(format!("{line}\n").as_bytes())
    }

    /// Remembers a `* token` line's token; true if the line was one.
    fn keep_token(tokens: &TokenStore, server: &str, line: &str) -> bool {
        match line.strip_prefix("* token ") {
            Some(t) => {
                let _ = tokens.set(server, Some(t.trim()));
                true
            }
            None => false,
        }
    }

    /// Answers prompts until logged in (`* online:` after `* welcome`). Returns false if the
    /// server closed first or the answers ran out.
    ///
    /// # Errors
    /// I/O errors of the connection.
    pub fn login(&mut self, user: Option<String>, answers: &mut dyn Answers) -> io::Result<bool> {
        let mut user = user;
        let mut token = self.tokens.get(&self.server);
        let mut welcomed = false;
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Ok(false);
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if Self::keep_token(&self.tokens, &self.server, line) {
                answers.show("* token saved for next time");
                continue;
            }
            answers.show(line);
            if line.starts_with("* welcome ") {
                welcomed = true;
            } else if welcomed && line.starts_with("* online:") {
                return Ok(true);
            } else if line == "! invalid or expired token" {
                let _ = self.tokens.set(&self.server, None);
            } else if let Some(q) = line.strip_prefix("? ") {
                if let Some(t) = token.take() {
                    self.send(&format!("/token {t}"))?;
                    continue;
                }
                let secret = q.contains("password");
                let answer = match (q, user.take()) {
                    ("name", Some(u)) => Some(u),
                    _ if secret => answers.secret(q)?,
                    _ => answers.text(q)?,
                };
                match answer {
                    Some(a) => self.send(&a)?,
                    None => return Ok(false),
                }
            }
        }
    }

    /// Chats: a reader thread hands every server line to `show` (saving new tokens) while
    /// `next_line` supplies what to send; `exit`, `/quit` or `None` ends it with `/quit`.
    ///
    /// # Errors
    /// I/O errors of the connection.
    pub fn chat(
        self,
        mut show: impl FnMut(&str) + Send + 'static,
        mut next_line: impl FnMut() -> Option<String>,
    ) -> io::Result<()> {
        let Session {
            mut reader,
            mut writer,
            server,
            tokens,
        } = self;
        let shower = std::thread::Builder::new()
            .name("chat-reader".into())
            .spawn(move || {
                let mut line = String::new();
                loop {
                    line.clear();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let l = line.trim_end_matches(['\r', '\n']);
                            if Session::keep_token(&tokens, &server, l) {
                                continue;
                            }
                            show(l);
                        }
                    }
                }
                show("* disconnected");
            })?;
        while let Some(l) = next_line() {
            if l == "exit" || l.eq_ignore_ascii_case("/quit") {
                break;
            }
            if writer.write_all(format!("{l}\n").as_bytes()).is_err() {
                break;
            }
        }
        let _ = writer.write_all(b"/quit\n");
        let _ = writer.shutdown(std::net::Shutdown::Write);
        let _ = shower.join();
        Ok(())
    }
}

/// Runs the interactive client on a terminal.
///
/// # Errors
/// I/O errors of the connection or the terminal.
pub fn run_terminal(mut session: Session, user: Option<String>) -> io::Result<()> {
    if !session.login(user, &mut TerminalAnswers)? {
        return Ok(());
    }
    let mut editor = rustyline::DefaultEditor::new().map_err(io::Error::other)?;
    let mut printer = editor.create_external_printer().map_err(io::Error::other)?;
    // Once the user has left the editor, lines are printed plainly.
    let editing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let still = editing.clone();
    session.chat(
        move |l| {
            if still.load(std::sync::atomic::Ordering::SeqCst) {
                let _ = rustyline::ExternalPrinter::print(&mut printer, l.to_string());
            } else {
                println!("{l}");
            }
        },
        move || {
            let line = editor.readline("> ").ok();
            if line
                .as_deref()
                .is_none_or(|l| l == "exit" || l.eq_ignore_ascii_case("/quit"))
            {
                editing.store(false, std::sync::atomic::Ordering::SeqCst);
            }
            line
        },
    )
}

/// Runs the client with piped input and output.
///
/// # Errors
/// I/O errors of the connection.
pub fn run_piped(
    mut session: Session,
    user: Option<String>,
    input: impl BufRead,
    output: impl Write + Send + 'static,
) -> io::Result<()> {
    let output = std::sync::Arc::new(std::sync::Mutex::new(output));
    let mut answers = PipedAnswers {
        input,
        output: SharedWriter(output.clone()),
    };
    if !session.login(user, &mut answers)? {
        return Ok(());
    }
    let mut input = answers.input;
    session.chat(
        move |l| {
            let mut o = output.lock().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(o, "{l}");
            let _ = o.flush();
        },
        move || {
            let mut l = String::new();
            match input.read_line(&mut l) {
                Ok(0) | Err(_) => None,
                Ok(_) => Some(l.trim_end_matches(['\r', '\n']).to_string()),
            }
        },
    )
}

/// A writer shared between the login phase and the reader thread.
struct SharedWriter<W: Write>(std::sync::Arc<std::sync::Mutex<W>>);

impl<W: Write> Write for SharedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).flush()
    }
}
