//! The chat protocol, pure (no I/O): limits, client requests parsed into an enum, server lines
//! formatted with their markers, names checked and text sanitized. See docs/protocol.md.

/// The longest name, in bytes.
pub const MAX_NAME: usize = 32;
/// The longest line a client may send by default (`--max-line`), newline excluded.
pub const DEFAULT_MAX_LINE: usize = 4096;
/// The most history lines one `/history N` may ask for.
pub const MAX_HISTORY: usize = 1000;
/// The history replayed at login by default (`--history`).
pub const DEFAULT_HISTORY: usize = 50;

/// One line from a client, parsed. Anything not starting with `/` is [`Request::Text`]: a
/// public message once logged in, or the answer to a prompt before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `/register NAME PASSWORD`
    Register {
        /// The new account's name.
        name: String,
        /// Its password.
        password: String,
    },
    /// `/login NAME PASSWORD`
    Login {
        /// The account.
        name: String,
        /// Its password.
        password: String,
    },
    /// `/token TOKEN`: log in with a session token.
    Token(String),
    /// `/who`
    Who,
    /// `/msg NAME TEXT`: a private message.
    Msg {
        /// The recipient.
        to: String,
        /// The text.
        text: String,
    },
    /// `/history [N]`
    History(Option<usize>),
    /// `/passwd OLD NEW`
    Passwd {
        /// The current password.
        old: String,
        /// The new one.
        new: String,
    },
    /// `/logout`: revoke this session's token and leave.
    Logout,
    /// `/quit`: leave.
    Quit,
    /// `/help`
    Help,
    /// A `/command` nobody knows.
    Unknown(String),
    /// A known command with wrong arguments: the usage to show.
    Usage(&'static str),
    /// A line not starting with `/`.
    Text(String),
}

impl Request {
    /// Parses one line (without its line ending).
    ///
    /// ```
    /// use tcpkit::chat::protocol::Request;
    /// assert_eq!(Request::parse("/msg bob hi there"),
    ///            Request::Msg { to: "bob".into(), text: "hi there".into() });
    /// assert_eq!(Request::parse("hello"), Request::Text("hello".into()));
    /// assert_eq!(Request::parse("/dance"), Request::Unknown("/dance".into()));
    /// ```
    pub fn parse(line: &str) -> Request {
        if !line.starts_with('/') {
            return Request::Text(line.to_string());
        }
        let (cmd, rest) = line.split_once(' ').unwrap_or((line, ""));
        let rest = rest.trim_start();
        let words: Vec<&str> = rest.split_whitespace().collect();
        let two = |usage| match words.as_slice() {
            [a, b] => Ok((a.to_string(), b.to_string())),
            _ => Err(Request::Usage(usage)),
        };
        match cmd.to_ascii_lowercase().as_str() {
            "/register" => match two("usage: /register NAME PASSWORD") {
                Ok((name, password)) => Request::Register { name, password },
                Err(u) => u,
            },
            "/login" => match two("usage: /login NAME PASSWORD") {
                Ok((name, password)) => Request::Login { name, password },
                Err(u) => u,
            },
            "/passwd" => match two("usage: /passwd OLD NEW") {
                Ok((old, new)) => Request::Passwd { old, new },
                Err(u) => u,
            },
            "/token" => match words.as_slice() {
                [t] => Request::Token(t.to_string()),
                _ => Request::Usage("usage: /token TOKEN"),
            },
            "/msg" => match rest.split_once(' ') {
                Some((to, text)) if !text.trim().is_empty() => Request::Msg {
                    to: to.to_string(),
                    text: text.trim_start().to_string(),
                },
                _ => Request::Usage("usage: /msg NAME TEXT"),
            },
            "/history" => match words.as_slice() {
                [] => Request::History(None),
                [n] => match n.parse::<usize>() {
                    Ok(n) if n <= MAX_HISTORY => Request::History(Some(n)),
                    _ => Request::Usage("usage: /history [N], N from 0 to 1000"),
                },
                _ => Request::Usage("usage: /history [N], N from 0 to 1000"),
            },
            "/who" if words.is_empty() => Request::Who,
            "/logout" if words.is_empty() => Request::Logout,
            "/quit" => Request::Quit,
            "/help" => Request::Help,
            "/who" => Request::Usage("usage: /who"),
            "/logout" => Request::Usage("usage: /logout"),
            _ => Request::Unknown(cmd.to_string()),
        }
    }
}

/// Whether `name` is a valid user name: 1-32 of letters, digits, `_`, `-`, `.`.
///
/// ```
/// use tcpkit::chat::protocol::valid_name;
/// assert!(valid_name("alice.b-2_x"));
/// assert!(!valid_name("") && !valid_name("a b") && !valid_name(&"x".repeat(33)));
/// ```
pub fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Text as others may see it: every C0 and C1 control (ESC among them) removed, TAB turned
/// into a space, surrounding blanks trimmed. An empty result means "drop the line".
///
/// ```
/// use tcpkit::chat::protocol::sanitize;
/// assert_eq!(sanitize("hi\x1b[31m red\tx\u{9b}"), "hi[31m red x");
/// ```
pub fn sanitize(text: &str) -> String {
    text.chars()
        .filter_map(|c| match c {
            '\t' => Some(' '),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect::<String>()
        .trim()
        .to_string()
}

/// `? TEXT`: a prompt awaiting an answer.
pub fn prompt(text: &str) -> String {
    format!("? {text}\n")
}

/// `* TEXT`: information.
pub fn info(text: &str) -> String {
    format!("* {text}\n")
}

/// `! TEXT`: an error or refusal.
pub fn error(text: &str) -> String {
    format!("! {text}\n")
}

/// `<NAME> TEXT`: a public message.
pub fn public(name: &str, text: &str) -> String {
    format!("<{name}> {text}\n")
}

/// `[pm] <NAME> TEXT`: a private message.
pub fn private(name: &str, text: &str) -> String {
    format!("[pm] <{name}> {text}\n")
}

/// The `/help` text, one `* ` line each.
pub const HELP: &[&str] = &[
    "commands:",
    "  TEXT                 say TEXT to everyone",
    "  /msg NAME TEXT       say TEXT to NAME only",
    "  /who                 who is online",
    "  /history [N]         the last N messages (default 50, at most 1000)",
    "  /passwd OLD NEW      change your password",
    "  /logout              end this session for good (its token stops working)",
    "  /quit                leave",
    "before logging in, at any prompt:",
    "  /register NAME PASSWORD, /login NAME PASSWORD, /token TOKEN",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_command_and_refuses_bad_arguments() {
        assert_eq!(
            Request::parse("/register bob pw"),
            Request::Register {
                name: "bob".into(),
                password: "pw".into()
            }
        );
        assert!(matches!(Request::parse("/register bob"), Request::Usage(_)));
        assert!(matches!(Request::parse("/login a b c"), Request::Usage(_)));
        assert_eq!(Request::parse("/token abc"), Request::Token("abc".into()));
        assert_eq!(Request::parse("/who"), Request::Who);
        assert_eq!(Request::parse("/history"), Request::History(None));
        assert_eq!(Request::parse("/history 7"), Request::History(Some(7)));
        assert!(matches!(Request::parse("/history 1001"), Request::Usage(_)));
        assert!(matches!(Request::parse("/msg bob"), Request::Usage(_)));
        assert_eq!(Request::parse("/logout"), Request::Logout);
        assert_eq!(Request::parse("/QUIT"), Request::Quit);
        assert_eq!(Request::parse("/"), Request::Unknown("/".into()));
        assert_eq!(Request::parse(" /who"), Request::Text(" /who".into()));
    }

    #[test]
    fn sanitize_strips_every_control() {
        assert_eq!(sanitize("\x00a\x07b\x7fc\u{85}d\r"), "abcd");
        assert_eq!(sanitize("\x1b]0;title\x07"), "]0;title");
        assert_eq!(sanitize(" \t "), "");
    }
}
