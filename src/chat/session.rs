//! One chat connection: a bounded line reader, the login state machine (prompts, `/register`,
//! `/login`, `/token`), then the logged-in commands. Runs on the connection's thread; its
//! output goes through the connection's [`Outbox`] to its own writer thread.

use std::io::{BufRead, BufReader, ErrorKind};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::Chat;
use super::auth::{new_token, token_hash};
use super::hub::{Line, Member, Outbox, line};
use super::protocol::{self, Request, error, info, prompt, valid_name};
use crate::server::Conn;

/// Stack of a connection's writer thread: it only moves buffers to the socket.
const WRITER_STACK: usize = 64 * 1024;
/// A writer blocked this long on a client that does not read gives up.
const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// What the next plain line answers.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    AskName,
    AskPassword(String),
    AskNewPassword(String),
    Confirm(String, String),
    Chatting,
}

/// One read from the client.
enum Input {
    Line(String),
    TooLong,
    BadUtf8,
    End,
}

/// Serves one chat connection on the calling thread, with a writer thread beside it.
pub(crate) fn run(chat: &Chat, conn: Arc<Conn>) {
    let outbox = Arc::new(Outbox::new(conn.clone(), chat.config.max_sendq));
    let _ = conn.stream().set_write_timeout(Some(WRITE_TIMEOUT));
    std::thread::scope(|s| {
        let writer = std::thread::Builder::new()
            .name(format!("writer-{}", conn.id))
            .stack_size(WRITER_STACK)
            .spawn_scoped(s, || outbox.drain());
        if let Err(e) = writer {
            tracing::warn!(peer = %conn.peer, error = %e, "cannot start a writer thread");
            let _ = std::io::Write::write_all(&mut conn.stream(), crate::server::FULL_LINE);
            return;
        }
        let mut session = Session {
            chat,
            conn: &conn,
            outbox: &outbox,
            state: State::AskName,
            user: None,
            token: None,
            closing: false,
        };
        session.serve();
        session.leave();
        outbox.close();
    });
}

struct Session<'a> {
    chat: &'a Chat,
    conn: &'a Arc<Conn>,
    outbox: &'a Arc<Outbox>,
    state: State,
    /// The logged-in user's name, as registered.
    user: Option<String>,
    /// The hash of this session's token, for `/logout`.
    token: Option<Vec<u8>>,
    /// Set when the session must end after what is queued is written.
    closing: bool,
}

impl Session<'_> {
    fn send(&self, text: String) {
        self.push(line(text));
    }

    fn push(&self, l: Line) {
        // An overflow closes the connection inside the outbox; the read loop then ends.
        self.outbox.push(l);
    }

    fn serve(&mut self) {
        let ip = self.conn.peer.ip();
        if self.chat.throttle.blocked(ip) {
            self.send(error("too many failed logins, try again later"));
            return;
        }
        self.greet();
        let mut reader = BufReader::with_capacity(8192, self.conn.stream());
        let mut buf = Vec::with_capacity(256);
        while !self.closing {
            match read_line(&mut reader, &mut buf, self.chat.config.max_line) {
                Input::Line(l) => {
                    self.conn.count_in(l.len() + 1);
                    tracing::debug!(peer = %self.conn.peer, bytes = l.len(), "line received");
                    self.handle(&l);
                }
                Input::TooLong => self.send(error(&format!(
                    "line too long: the limit is {} bytes; line ignored",
                    self.chat.config.max_line
                ))),
                Input::BadUtf8 => self.send(error("invalid UTF-8: line ignored")),
                Input::End => break,
            }
        }
    }

    fn greet(&mut self) {
        let ip = self.conn.peer.ip().to_string();
        let known = match self.chat.store.name_for_ip(&ip) {
            Ok(Some(n)) => self.chat.store.find_user(&n).ok().flatten(),
            _ => None,
        };
        match known {
            Some(account) => {
                self.send(info(&format!("hello again, {}", account.name)));
                self.ask_password(account.name);
            }
            None => {
                self.send(info("welcome to tcpkit chat; type /help for commands"));
                self.ask_name();
            }
        }
    }

    fn ask_name(&mut self) {
        self.send(prompt("name"));
        self.state = State::AskName;
    }

    fn ask_password(&mut self, name: String) {
        self.send(prompt(&format!("password for {name}")));
        self.state = State::AskPassword(name);
    }

    fn ask_new_password(&mut self, name: String) {
        self.send(prompt(&format!("new password for {name}")));
        self.state = State::AskNewPassword(name);
    }

    /// Re-asks whatever the current prompt is (after an error).
    fn reprompt(&mut self) {
        match self.state.clone() {
            State::AskName => self.ask_name(),
            State::AskPassword(n) => self.ask_password(n),
            State::AskNewPassword(n) | State::Confirm(n, _) => self.ask_new_password(n),
            State::Chatting => {}
        }
    }

    fn handle(&mut self, raw: &str) {
        let req = Request::parse(raw);
        match (&self.state, req) {
            (_, Request::Quit) => {
                self.send(info("bye"));
                self.closing = true;
            }
            (_, Request::Help) => {
                for l in protocol::HELP {
                    self.send(info(l));
                }
            }
            (_, Request::Usage(u)) => self.send(error(u)),
            (_, Request::Unknown(_)) => self.send(error("unknown command")),
            (State::Chatting, req) => self.chatting(req),
            (_, Request::Register { name, password }) => self.register(&name, &password),
            (_, Request::Login { name, password }) => self.login(&name, &password),
            (_, Request::Token(t)) => self.token_login(&t),
            (_, Request::Text(answer)) => self.answer(answer),
            (_, _) => {
                self.send(error(
                    "log in first: answer the prompt, or /register, /login, /token",
                ));
                self.reprompt();
            }
        }
    }

    fn answer(&mut self, answer: String) {
        match self.state.clone() {
            State::AskName => {
                let name = answer.trim();
                if !valid_name(name) {
                    self.send(bad_name(name));
                    return self.ask_name();
                }
                match self.chat.store.find_user(name) {
                    Ok(Some(account)) => self.ask_password(account.name),
                    Ok(None) => self.ask_new_password(name.to_string()),
                    Err(e) => self.store_failed(e),
                }
            }
            State::AskPassword(name) => self.login(&name, &answer),
            State::AskNewPassword(name) => {
                if answer.is_empty() {
                    self.send(error("the password must not be empty"));
                    return self.ask_new_password(name);
                }
                self.send(prompt(&format!("repeat password for {name}")));
                self.state = State::Confirm(name, answer);
            }
            State::Confirm(name, first) => {
                if answer != first {
                    self.send(error("the passwords differ"));
                    return self.ask_new_password(name);
                }
                self.register(&name, &answer);
            }
            State::Chatting => {}
        }
    }

    fn store_failed(&mut self, e: crate::store::StoreError) {
        tracing::error!(peer = %self.conn.peer, error = %e, "store failed");
        self.send(error("server error: the store failed, try again"));
        self.reprompt();
    }

    /// Counts a failed login; at the limit the connection ends. Returns true if it ended.
    fn failed(&mut self, why: &str) -> bool {
        let ip = self.conn.peer.ip();
        tracing::info!(peer = %self.conn.peer, reason = why, "login failed");
        if self.chat.throttle.fail(ip) {
            tracing::warn!(peer = %self.conn.peer, "too many failed logins: address blocked for 60 s");
            self.send(error("too many failed logins, try again later"));
            self.closing = true;
            return true;
        }
        false
    }

    fn refuse_if_blocked(&mut self) -> bool {
        if self.chat.throttle.blocked(self.conn.peer.ip()) {
            self.send(error("too many failed logins, try again later"));
            self.closing = true;
            return true;
        }
        false
    }

    fn register(&mut self, name: &str, password: &str) {
        if !valid_name(name) {
            self.send(bad_name(name));
            return self.reprompt();
        }
        match self.chat.store.find_user(name) {
            Ok(Some(_)) => {
                self.send(error(&format!("user {name} already exists")));
                return self.reprompt();
            }
            Err(e) => return self.store_failed(e),
            Ok(None) => {}
        }
        let phc = self.chat.hasher.hash(password);
        match self.chat.store.create_user(name, &phc) {
            Ok(()) => {
                tracing::info!(peer = %self.conn.peer, user = name, "registered");
                self.complete_login(name.to_string());
            }
            Err(crate::store::StoreError::UserExists(_)) => {
                self.send(error(&format!("user {name} already exists")));
                self.reprompt();
            }
            Err(e) => self.store_failed(e),
        }
    }

    fn login(&mut self, name: &str, password: &str) {
        if self.refuse_if_blocked() {
            return;
        }
        let account = match self.chat.store.find_user(name) {
            Ok(a) => a,
            Err(e) => return self.store_failed(e),
        };
        let Some(account) = account else {
            if !self.failed("unknown user") {
                self.send(error(&format!("unknown user {}", protocol::sanitize(name))));
                self.reprompt();
            }
            return;
        };
        if self.chat.hasher.verify(password, &account.phc) {
            self.complete_login(account.name);
        } else if !self.failed("wrong password") {
            self.send(error("wrong password"));
            // After a wrong password, the prompt for that account again.
            self.ask_password(account.name);
        }
    }

    fn token_login(&mut self, token: &str) {
        if self.refuse_if_blocked() {
            return;
        }
        let hash = token_hash(token);
        match self.chat.store.token_user(&hash, now_unix()) {
            Ok(Some(name)) => {
                let _ = self.chat.store.revoke_token(&hash);
                self.complete_login(name);
            }
            Ok(None) => {
                if !self.failed("bad token") {
                    self.send(error("invalid or expired token"));
                    self.reprompt();
                }
            }
            Err(e) => self.store_failed(e),
        }
    }

    /// Welcome, a fresh token, the history, then into the hub.
    fn complete_login(&mut self, name: String) {
        let chat = self.chat;
        let ip = self.conn.peer.ip().to_string();
        if let Err(e) = chat.store.remember_ip(&ip, &name) {
            tracing::error!(error = %e, "cannot remember the address");
        }
        let token = new_token();
        let hash = token_hash(&token);
        let expires = now_unix() + chat.config.token_ttl.as_secs() as i64;
        if let Err(e) = chat.store.add_token(&hash, &name, expires) {
            return self.store_failed(e);
        }
        tracing::info!(peer = %self.conn.peer, user = %name, "logged in");
        self.send(info(&format!("welcome {name}")));
        self.send(info(&format!("token {token}")));
        self.token = Some(hash);
        self.user = Some(name.clone());
        self.state = State::Chatting;
        if chat.config.history > 0 {
            self.history(chat.config.history);
        }
        chat.hub.join(Arc::new(Member {
            name: name.clone(),
            conn: self.conn.clone(),
            outbox: self.outbox.clone(),
        }));
        self.send(info(&format!("online: {}", self.online_names())));
        chat.notice(&format!("{name} joined"), Some(self.conn.id));
    }

    fn online_names(&self) -> String {
        self.chat
            .hub
            .online()
            .into_iter()
            .map(|(n, _)| n)
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn history(&self, n: usize) {
        match self.chat.store.recent(n) {
            Ok(msgs) => {
                let mut text = info(&format!("history {}", msgs.len()));
                for m in msgs {
                    text.push_str(&format!("[{}] <{}> {}\n", m.at, m.name, m.text));
                }
                text.push_str(&info("end of history"));
                self.send(text);
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the history");
                self.send(error("server error: the history cannot be read"));
            }
        }
    }

    fn chatting(&mut self, req: Request) {
        let name = self.user.clone().unwrap_or_default();
        match req {
            Request::Text(text) => {
                let text = protocol::sanitize(&text);
                if !text.is_empty() {
                    self.chat
                        .relay(name, text, self.conn.id, self.outbox.clone());
                }
            }
            Request::Who => self.send(info(&format!("online: {}", self.online_names()))),
            Request::Msg { to, text } => {
                let text = protocol::sanitize(&text);
                if text.is_empty() {
                    return;
                }
                let l = line(protocol::private(&name, &text));
                if self.chat.hub.send_to(&to, &l) == 0 {
                    self.send(error(&format!(
                        "no such user online: {}",
                        protocol::sanitize(&to)
                    )));
                }
            }
            Request::History(n) => self.history(n.unwrap_or(self.chat.config.history)),
            Request::Passwd { old, new } => match self.chat.store.find_user(&name) {
                Ok(Some(acc)) if self.chat.hasher.verify(&old, &acc.phc) => {
                    let phc = self.chat.hasher.hash(&new);
                    match self.chat.store.set_password(&acc.name, &phc) {
                        Ok(()) => {
                            tracing::info!(user = %name, "password changed");
                            self.send(info("password changed"));
                        }
                        Err(e) => self.store_failed(e),
                    }
                }
                Ok(_) => self.send(error("wrong password")),
                Err(e) => self.store_failed(e),
            },
            Request::Logout => {
                if let Some(h) = self.token.take() {
                    let _ = self.chat.store.revoke_token(&h);
                }
                self.send(info("bye"));
                self.closing = true;
            }
            Request::Register { .. } | Request::Login { .. } | Request::Token(_) => {
                self.send(error(&format!("already logged in as {name}")));
            }
            Request::Quit | Request::Help | Request::Usage(_) | Request::Unknown(_) => {}
        }
    }

    fn leave(&mut self) {
        if let Some(name) = self.user.take()
            && self.chat.hub.leave(self.conn.id).is_some()
        {
            self.chat.notice(&format!("{name} left"), None);
        }
    }
}

/// The refusal of an invalid name.
fn bad_name(name: &str) -> String {
    error(&format!(
        "invalid name '{}': use 1-32 letters, digits, '_', '-' or '.'",
        protocol::sanitize(name)
    ))
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Reads one line of at most `max` bytes (without its `\n` or `\r\n`). A longer line is
/// skipped to its end without being buffered.
fn read_line(reader: &mut BufReader<&TcpStream>, buf: &mut Vec<u8>, max: usize) -> Input {
    buf.clear();
    let mut too_long = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return Input::End,
        };
        if available.is_empty() {
            // End of stream: a last line without its newline still counts.
            if buf.is_empty() || too_long {
                return Input::End;
            }
            break;
        }
        let (chunk, used, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], i + 1, true),
            None => (available, available.len(), false),
        };
        if !too_long {
            if buf.len() + chunk.len() > max + 1 {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        reader.consume(used);
        if done {
            break;
        }
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    if too_long || buf.len() > max {
        return Input::TooLong;
    }
    match String::from_utf8(std::mem::take(buf)) {
        Ok(s) => Input::Line(s),
        Err(_) => Input::BadUtf8,
    }
}
