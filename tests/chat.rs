//! `tcpkit chat-server` end to end over real loopback sockets: registration, login, throttling,
//! tokens, greeting by address, broadcast, private messages, history across restarts, the
//! console, sanitizing, bad input, and a stalled reader.
//!
//! Clients bind distinct loopback source addresses (127.0.0.2, .3, ...) so that the
//! per-address greeting and throttle of one test never touch another.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;

/// A line-based test client.
struct Client {
    reader: BufReader<TcpStream>,
    stream: TcpStream,
}

impl Client {
    /// Connects from the loopback address `127.0.0.<host>`.
    fn connect(server: SocketAddr, host: u8) -> Client {
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        let src: SocketAddr = format!("127.0.0.{host}:0").parse().unwrap();
        sock.bind(&src.into()).unwrap();
        sock.connect(&server.into()).unwrap();
        let stream: TcpStream = sock.into();
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            stream,
        }
    }

    fn send(&mut self, line: &str) {
        self.stream.write_all(line.as_bytes()).unwrap();
        self.stream.write_all(b"\n").unwrap();
    }

    fn line(&mut self) -> Option<String> {
        let mut l = String::new();
        match self.reader.read_line(&mut l) {
            Ok(0) => None,
            Ok(_) => Some(l.trim_end_matches('\n').to_string()),
            Err(e) => panic!("read failed: {e}"),
        }
    }

    /// Reads lines until one starts with `prefix`; returns it. Panics on end of stream.
    fn expect(&mut self, prefix: &str) -> String {
        let mut seen = Vec::new();
        loop {
            match self.line() {
                Some(l) if l.starts_with(prefix) => return l,
                Some(l) => seen.push(l),
                None => panic!("end of stream before {prefix:?}; saw {seen:#?}"),
            }
        }
    }

    /// Reads lines until end of stream; returns them.
    fn until_eof(&mut self) -> Vec<String> {
        let mut v = Vec::new();
        while let Some(l) = self.line() {
            v.push(l);
        }
        v
    }

    /// Registers with `/register` and waits for the end of the login sequence.
    fn register(server: SocketAddr, host: u8, name: &str, password: &str) -> (Client, String) {
        let mut c = Client::connect(server, host);
        c.expect("? ");
        c.send(&format!("/register {name} {password}"));
        c.expect(&format!("* welcome {name}"));
        let token = c.expect("* token ")["* token ".len()..].to_string();
        c.expect("* online:");
        (c, token)
    }
}

fn chat_server(args: &[&str]) -> ServerProc {
    ServerProc::start("chat-server", args)
}

#[test]
fn registration_and_login_by_prompts_and_wrong_password() {
    let server = chat_server(&["--no-console"]);
    let mut c = Client::connect(server.addr, 2);
    c.expect("? name");
    c.send("bad name!");
    c.expect("! invalid name");
    c.expect("? name");
    c.send("alice");
    c.expect("? new password for alice");
    c.send("correct horse");
    c.expect("? repeat password for alice");
    c.send("battery");
    c.expect("! the passwords differ");
    c.expect("? new password for alice");
    c.send("correct horse");
    c.expect("? repeat password for alice");
    c.send("correct horse");
    c.expect("* welcome alice");
    c.expect("* token ");
    assert_eq!(c.expect("* history"), "* history 0");
    c.expect("* end of history");
    assert_eq!(c.expect("* online:"), "* online: alice");
    c.send("/quit");
    c.expect("* bye");
    assert!(c.until_eof().is_empty());

    // Another address: asked for a name, the known name leads to its password.
    let mut d = Client::connect(server.addr, 3);
    d.expect("? name");
    d.send("ALICE");
    d.expect("? password for alice");
    d.send("wrong");
    d.expect("! wrong password");
    d.expect("? password for alice");
    d.send("correct horse");
    d.expect("* welcome alice");
}

#[test]
fn known_address_is_greeted_by_name() {
    let server = chat_server(&["--no-console"]);
    let (mut c, _) = Client::register(server.addr, 4, "carol", "pw-carol");
    c.send("/quit");
    c.until_eof();
    let mut again = Client::connect(server.addr, 4);
    assert_eq!(again.expect("* "), "* hello again, carol");
    again.expect("? password for carol");
    again.send("pw-carol");
    again.expect("* welcome carol");
}

#[test]
fn fifth_failure_closes_and_blocks_the_address() {
    let server = chat_server(&["--no-console"]);
    let (mut u, _) = Client::register(server.addr, 5, "dave", "pw-dave");
    u.send("/quit");
    u.until_eof();
    let mut c = Client::connect(server.addr, 6);
    c.expect("? name");
    c.send("/login dave nope1");
    c.expect("! wrong password");
    c.send("/token 00ff");
    c.expect("! invalid or expired token");
    c.send("/login nobody x");
    c.expect("! unknown user nobody");
    c.send("/login dave nope2");
    c.expect("! wrong password");
    c.send("/login dave nope3");
    c.expect("! too many failed logins, try again later");
    assert!(c.until_eof().iter().all(|l| !l.starts_with("* welcome")));
    // The address is refused at connect, even with the right password later.
    let mut again = Client::connect(server.addr, 6);
    assert_eq!(
        again.line().as_deref(),
        Some("! too many failed logins, try again later")
    );
    assert_eq!(again.line(), None);
    // Other addresses are not affected.
    let mut other = Client::connect(server.addr, 7);
    other.expect("? name");
    other.send("/login dave pw-dave");
    other.expect("* welcome dave");
}

#[test]
fn token_login_rotates_and_logout_revokes() {
    let server = chat_server(&["--no-console"]);
    let (mut c, token1) = Client::register(server.addr, 8, "erin", "pw-erin");
    c.send("/quit");
    c.until_eof();
    let mut t = Client::connect(server.addr, 9);
    t.expect("? name");
    t.send(&format!("/token {token1}"));
    t.expect("* welcome erin");
    let token2 = t.expect("* token ")["* token ".len()..].to_string();
    assert_ne!(token1, token2);
    t.send("/logout");
    t.expect("* bye");
    t.until_eof();
    // The used token was revoked when it was used, the second by /logout.
    for tok in [&token1, &token2] {
        let mut x = Client::connect(server.addr, 10);
        x.expect("? name");
        x.send(&format!("/token {tok}"));
        x.expect("! invalid or expired token");
    }
}

#[test]
fn broadcast_reaches_everyone_else_and_private_messages_one() {
    let server = chat_server(&["--no-console"]);
    let (mut a, _) = Client::register(server.addr, 11, "ann", "pw");
    let (mut b, _) = Client::register(server.addr, 12, "ben", "pw");
    a.expect("* ben joined");
    let (mut c, _) = Client::register(server.addr, 13, "cid", "pw");
    a.expect("* cid joined");
    b.expect("* cid joined");
    a.send("hello all");
    assert_eq!(b.expect("<"), "<ann> hello all");
    assert_eq!(c.expect("<"), "<ann> hello all");
    b.send("/msg ann just you");
    assert_eq!(a.expect("[pm]"), "[pm] <ben> just you");
    c.send("/msg nobody hi");
    c.expect("! no such user online: nobody");
    c.send("/who");
    assert_eq!(c.expect("* online:"), "* online: ann, ben, cid");
    // The sender never gets its own line back; the next line ann sees is cid's.
    c.send("from cid");
    assert_eq!(a.expect("<"), "<cid> from cid");
    b.send("/quit");
    a.expect("* ben left");
    c.send("/dance");
    c.expect("! unknown command");
}

#[test]
fn history_survives_a_crash_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let db_s = db.to_str().unwrap().to_string();
    {
        let mut server = ServerProc::start("chat-server", &["--no-console", "--db", &db_s]);
        let (mut a, _) = Client::register(server.addr, 14, "fay", "pw-fay");
        let (mut w, _) = Client::register(server.addr, 27, "watcher", "pw");
        for i in 0..3 {
            a.send(&format!("message {i}"));
        }
        // Stored before sent on: once the watcher has them, they are on disk.
        for i in 0..3 {
            assert_eq!(w.expect("<fay>"), format!("<fay> message {i}"));
        }
        a.send("/history 2");
        a.expect("* history 2");
        assert!(a.expect("[").ends_with("] <fay> message 1"));
        // A crash, not a shutdown: what a client saw must be on disk already.
        server.child.kill().unwrap();
        server.child.wait().unwrap();
    }
    let server = ServerProc::start("chat-server", &["--no-console", "--db", &db_s]);
    let mut b = Client::connect(server.addr, 15);
    b.expect("? name");
    b.send("/login fay pw-fay");
    b.expect("* welcome fay");
    assert_eq!(b.expect("* history"), "* history 3");
    for i in 0..3 {
        let l = b.expect("[");
        assert!(l.ends_with(&format!("] <fay> message {i}")), "{l}");
    }
    b.expect("* end of history");
}

#[test]
fn history_lines_have_a_utc_timestamp() {
    let server = chat_server(&["--no-console"]);
    let (mut a, _) = Client::register(server.addr, 16, "gus", "pw");
    let (mut w, _) = Client::register(server.addr, 28, "watch", "pw");
    a.send("stamped");
    w.expect("<gus> stamped");
    a.send("/history 1");
    a.expect("* history 1");
    let l = a.expect("[");
    let (stamp, rest) = l.split_once("] ").unwrap();
    assert_eq!(rest, "<gus> stamped");
    let stamp = &stamp[1..];
    assert_eq!(stamp.len(), 19, "{stamp}");
    assert!(
        stamp.as_bytes()[4] == b'-' && stamp.as_bytes()[10] == b' ' && stamp.as_bytes()[13] == b':'
    );
}

#[test]
fn console_who_kick_and_clear_users() {
    let mut server = chat_server(&[]);
    let (mut a, _) = Client::register(server.addr, 17, "hal", "pw-hal");
    let (mut b, _) = Client::register(server.addr, 18, "ivy", "pw-ivy");
    a.expect("* ivy joined");
    server.console("who");
    server.expect_out("hal 127.0.0.17:");
    server.console("kick ivy");
    server.expect_out("kicked ivy (1 connection(s))");
    b.until_eof();
    a.expect("* ivy left");
    server.console("clear-users");
    server.expect_out("accounts, identifications and tokens cleared");
    a.until_eof();
    let mut c = Client::connect(server.addr, 17);
    // The identification is gone too: a name is asked, not a password.
    c.expect("? name");
    c.send("/login hal pw-hal");
    c.expect("! unknown user hal");
}

#[test]
fn database_holds_no_plaintext_password_or_token() {
    // At the highest verbosity, so the log is checked at its most talkative.
    let server = chat_server(&["--no-console", "-v"]);
    let (mut a, token) = Client::register(server.addr, 19, "jo", "Plaintext-Secret-42");
    a.send("/passwd Plaintext-Secret-42 Other-Secret-43");
    a.expect("* password changed");
    a.send("/passwd wrong x");
    a.expect("! wrong password");
    a.send("/quit");
    a.until_eof();
    let dir = server.dir.path();
    let mut all = Vec::new();
    for f in ["tcpkit-chat.db", "tcpkit-chat.db-wal", "tcpkit-chat.log"] {
        if let Ok(b) = std::fs::read(dir.join(f)) {
            all.extend(b);
        }
    }
    let text = String::from_utf8_lossy(&all);
    assert!(
        !text.contains("Plaintext-Secret-42"),
        "password in the database or log"
    );
    assert!(!text.contains(&token), "token in the database or log");
    assert!(
        text.contains("$argon2id$v=19$m=19456,t=2,p=1$"),
        "argon2id PHC string stored"
    );
}

#[test]
fn control_characters_are_stripped() {
    let server = chat_server(&["--no-console"]);
    let (mut a, _) = Client::register(server.addr, 20, "kim", "pw");
    let (mut b, _) = Client::register(server.addr, 21, "lee", "pw");
    a.expect("* lee joined");
    a.send("red \x1b[31malert\x07\tend\u{9b}2J");
    assert_eq!(b.expect("<"), "<kim> red [31malert end2J");
    // A line of nothing but controls is dropped: lee's next line is the next message.
    a.send("\x1b\x07");
    a.send("after");
    assert_eq!(b.expect("<"), "<kim> after");
}

#[test]
fn long_lines_and_bad_utf8_are_refused_and_everyone_carries_on() {
    let server = chat_server(&["--no-console", "--max-line", "100"]);
    let (mut a, _) = Client::register(server.addr, 22, "max", "pw");
    let (mut b, _) = Client::register(server.addr, 23, "ned", "pw");
    a.expect("* ned joined");
    a.send(&"x".repeat(5000));
    a.expect("! line too long");
    a.stream.write_all(b"\xff\xfe bad\r\n").unwrap();
    a.expect("! invalid UTF-8");
    a.send(&"y".repeat(100));
    assert_eq!(b.expect("<"), format!("<max> {}", "y".repeat(100)));
    a.stream.write_all(b"crlf line\r\n").unwrap();
    assert_eq!(b.expect("<"), "<max> crlf line");
}

#[test]
fn a_stalled_reader_is_disconnected_and_others_keep_receiving() {
    let server = chat_server(&["--no-console"]);
    // The stalled client: a tiny receive buffer, and it never reads after logging in.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.bind(&"127.0.0.24:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    sock.connect(&server.addr.into()).unwrap();
    let mut stalled = Client {
        reader: BufReader::new(TcpStream::from(sock.try_clone().unwrap())),
        stream: sock.into(),
    };
    stalled
        .stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    stalled.expect("? ");
    stalled.send("/register stall pw");
    stalled.expect("* online:");

    let (mut reader, _) = Client::register(server.addr, 25, "reader", "pw");
    let (mut sender, _) = Client::register(server.addr, 26, "sender", "pw");
    let payload = "z".repeat(1000);
    let lines = 8000;
    let started = Instant::now();
    let writer = std::thread::spawn(move || {
        for i in 0..lines {
            sender.send(&format!("{i} {payload}"));
        }
        sender
    });
    for i in 0..lines {
        let l = reader.expect("<sender>");
        assert!(
            l.starts_with(&format!("<sender> {i} ")),
            "line {i}: {}",
            &l[..30.min(l.len())]
        );
    }
    let _sender = writer.join().unwrap();
    assert!(started.elapsed() < Duration::from_secs(120));
    // The stalled client was cut off: its stream ends once its buffers are read.
    let mut got = 0;
    while stalled.line().is_some() {
        got += 1;
    }
    assert!(got < lines, "the stalled client was not disconnected");
    let log = std::fs::read_to_string(server.dir.path().join("tcpkit-chat.log")).unwrap();
    assert!(log.contains("send queue exceeded"), "reason logged");
}

#[test]
fn interactive_client_logs_in_hides_passwords_and_reuses_its_token() {
    let server = chat_server(&["--no-console"]);
    let state = tempfile::tempdir().unwrap();
    let spawn = || {
        let mut cmd = std::process::Command::new(tcpkit_path());
        cmd.args([
            "chat",
            "127.0.0.1",
            &server.addr.port().to_string(),
            "--user",
            "zed",
        ])
        .env("XDG_STATE_HOME", state.path());
        rexpect::session::spawn_command(cmd, Some(30_000)).unwrap()
    };
    let mut s = spawn();
    s.exp_string("new password for zed: ").unwrap();
    s.send_line("pw-of-zed").unwrap();
    let between = s.exp_string("repeat password for zed: ").unwrap();
    assert!(
        !between.contains("pw-of-zed"),
        "password echoed: {between:?}"
    );
    s.send_line("pw-of-zed").unwrap();
    s.exp_string("* welcome zed").unwrap();
    s.exp_string("* online: zed").unwrap();

    // Another user talks; the line shows up in the client while it waits for input.
    let (mut yan, _) = Client::register(server.addr, 30, "yan", "pw");
    s.exp_string("* yan joined").unwrap();
    yan.send("hello zed");
    s.exp_string("<yan> hello zed").unwrap();
    s.send_line("hi yan").unwrap();
    assert_eq!(yan.expect("<zed>"), "<zed> hi yan");
    s.send_line("exit").unwrap();
    s.exp_eof().unwrap();
    yan.expect("* zed left");

    // Next time the saved token logs in: no password asked.
    let mut again = spawn();
    let before = again.exp_string("* welcome zed").unwrap();
    assert!(!before.contains("password"), "asked again: {before:?}");
    again.exp_string("* online:").unwrap();
    again.send_line("/quit").unwrap();
    again.exp_eof().unwrap();
    let saved = std::fs::read_to_string(state.path().join("tcpkit/tokens")).unwrap();
    assert!(
        saved.starts_with(&format!("127.0.0.1:{} ", server.addr.port())),
        "{saved}"
    );
}

#[test]
fn piped_client_answers_prompts_from_input() {
    let server = chat_server(&["--no-console"]);
    let (mut watcher, _) = Client::register(server.addr, 31, "watcher", "pw");
    let state = tempfile::tempdir().unwrap();
    let out = tcpkit()
        .args([
            "chat",
            "-q",
            "127.0.0.1",
            &server.addr.port().to_string(),
            "--user",
            "pipey",
        ])
        .env("XDG_STATE_HOME", state.path())
        .write_stdin("pw-pipe\npw-pipe\nhello from a pipe\n")
        .timeout(Duration::from_secs(30))
        .assert()
        .success();
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(stdout.contains("* welcome pipey"), "{stdout}");
    assert!(stdout.contains("* bye"), "{stdout}");
    assert_eq!(watcher.expect("<pipey>"), "<pipey> hello from a pipe");
}

#[test]
fn one_user_on_two_connections_gets_every_message_on_both() {
    let server = chat_server(&["--no-console"]);
    let (mut a1, _) = Client::register(server.addr, 32, "multi", "pw-m");
    let mut a2 = Client::connect(server.addr, 33);
    a2.expect("? name");
    a2.send("/login multi pw-m");
    a2.expect("* online:");
    a1.expect("* multi joined");
    let (mut b, _) = Client::register(server.addr, 34, "other", "pw");
    b.send("to everyone");
    assert_eq!(a1.expect("<other>"), "<other> to everyone");
    assert_eq!(a2.expect("<other>"), "<other> to everyone");
    b.send("/msg MULTI private");
    assert_eq!(a1.expect("[pm]"), "[pm] <other> private");
    assert_eq!(a2.expect("[pm]"), "[pm] <other> private");
    // A new password works from then on.
    a1.send("/passwd pw-m pw-new");
    a1.expect("* password changed");
    let mut c = Client::connect(server.addr, 35);
    c.expect("? name");
    c.send("/login multi pw-m");
    c.expect("! wrong password");
    c.send("/login multi pw-new");
    c.expect("* welcome multi");
}

/// The server's peak resident memory in KiB (VmHWM), from /proc.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[test]
fn a_burst_of_registrations_keeps_memory_bounded() {
    // Each argon2id hash works in 19 MiB. 48 registrations at once, with 2 hashes allowed at
    // a time, must not leave 48 x 19 MiB (912 MiB) behind: the work areas are reused.
    let server = chat_server(&["--history", "0"]);
    let addr = server.addr;
    let clients: Vec<_> = (0..48)
        .map(|i| {
            std::thread::spawn(move || {
                Client::register(addr, 40, &format!("burst{i}"), &format!("pw-burst-{i}"))
            })
        })
        .collect();
    let mut logged_in = Vec::new();
    for c in clients {
        logged_in.push(c.join().expect("every registration completes"));
    }
    assert_eq!(logged_in.len(), 48);
    let peak_mib = peak_rss_kib(server.child.id()) / 1024;
    assert!(
        peak_mib < 200,
        "peak RSS {peak_mib} MiB after 48 registrations (2 work areas of 19 MiB expected)"
    );
}
