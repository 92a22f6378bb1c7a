//! `tcpkit echo-server` and `tcpkit echo` end to end, over real loopback sockets: the echo,
//! one thread per client, limits, the console (pause/resume, logs), shutdown and signals.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use common::*;
use predicates::prelude::*;

fn round_trip(s: &mut TcpStream, msg: &[u8]) -> Vec<u8> {
    s.write_all(msg).unwrap();
    let mut back = vec![0; msg.len()];
    s.read_exact(&mut back).unwrap();
    back
}

fn assert_eof(s: &mut TcpStream) {
    let mut buf = [0u8; 64];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("expected end of stream, got {e}"),
        }
    }
}

#[test]
fn one_mebibyte_of_random_bytes_comes_back_exactly() {
    let server = ServerProc::start("echo-server", &["--no-console"]);
    let data = random_bytes(1 << 20, 42);
    let s = server.connect();
    let mut writer = s.try_clone().unwrap();
    let to_send = data.clone();
    let sender = std::thread::spawn(move || {
        writer.write_all(&to_send).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut back = Vec::new();
    (&s).read_to_end(&mut back).unwrap();
    sender.join().unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "echoed bytes differ");
}

#[test]
fn two_hundred_clients_at_once_each_on_its_own_thread() {
    let server = ServerProc::start("echo-server", &["--no-console"]);
    let base = server.threads();
    let mut clients: Vec<TcpStream> = (0..200).map(|_| server.connect()).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        let msg = format!("hello from client {i}\n");
        assert_eq!(round_trip(c, msg.as_bytes()), msg.as_bytes());
    }
    // Every client has been served, so each has its thread now.
    assert_eq!(server.threads(), base + 200, "one thread per client");
    drop(clients);
    // Threads end as clients leave (bounded wait, no duration asserted).
    for _ in 0..500 {
        if server.threads() == base {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        server.threads(),
        base,
        "client threads end with their clients"
    );
}

#[test]
fn a_busy_port_falls_back_to_the_next_free_one() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let p = busy.local_addr().unwrap().port();
    let server = ServerProc::start_in(
        tempfile::tempdir().unwrap(),
        "echo-server",
        &["--port", &p.to_string()],
        &["--no-console"],
    );
    let got = server.addr.port();
    assert!(
        got > p && got <= p + 20,
        "listening on {got} after busy {p}"
    );
    let err = server.stderr_lines().join("\n");
    assert!(err.contains(&format!("port {p} is busy")), "stderr: {err}");
    let mut c = server.connect();
    assert_eq!(round_trip(&mut c, b"x"), b"x");
}

#[test]
fn pause_refuses_connects_and_resume_accepts_again() {
    let mut server = ServerProc::start("echo-server", &[]);
    let mut kept = server.connect();
    assert_eq!(round_trip(&mut kept, b"before"), b"before");
    server.console("pause");
    server.expect_out("paused");
    let err = TcpStream::connect(server.addr).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    // The connected client is still served while paused.
    assert_eq!(round_trip(&mut kept, b"during"), b"during");
    server.console("status");
    let status = server.expect_out("clients now").pop().unwrap();
    assert!(
        status.contains("paused") && status.contains("clients now 1"),
        "{status}"
    );
    server.console("resume");
    server.expect_out("again");
    let mut fresh = server.connect();
    assert_eq!(round_trip(&mut fresh, b"after"), b"after");
    server.console("resume");
    server.expect_out("not paused");
}

#[test]
fn logs_shows_events_and_clear_logs_empties_the_file() {
    let mut server = ServerProc::start("echo-server", &[]);
    let mut c = server.connect();
    round_trip(&mut c, b"ping");
    let peer = c.local_addr().unwrap().to_string();
    drop(c);
    // Wait until the disconnect is logged (bounded).
    let log = server.dir.path().join("tcpkit-echo.log");
    for _ in 0..250 {
        if std::fs::read_to_string(&log)
            .unwrap()
            .contains("client disconnected")
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    server.console("logs 50");
    let lines = server.expect_out("client disconnected");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("client connected") && l.contains(&peer)),
        "{lines:#?}"
    );
    assert!(lines.iter().all(|l| l.contains("INFO")), "{lines:#?}");
    server.console("clear-logs");
    server.expect_out("emptied");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("client connected"),
        "after clear-logs: {text}"
    );
    // Logging goes on into the emptied file.
    let mut c2 = server.connect();
    round_trip(&mut c2, b"again");
    server.console("logs");
    server.expect_out("client connected");
    server.console("clear-users");
    server.expect_out("no user store");
    server.console("frobnicate");
    server.expect_out("unknown command 'frobnicate'");
}

#[test]
fn verbose_logs_each_read_and_write() {
    let server = ServerProc::start("echo-server", &["--no-console", "-v"]);
    let mut c = server.connect();
    round_trip(&mut c, b"12345");
    drop(c);
    let log = server.dir.path().join("tcpkit-echo.log");
    let mut text = String::new();
    for _ in 0..250 {
        text = std::fs::read_to_string(&log).unwrap();
        if text.contains("client disconnected") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        text.contains("DEBUG received") && text.contains("bytes=5"),
        "{text}"
    );
    assert!(text.contains("DEBUG sent"), "{text}");
}

#[test]
fn console_shutdown_exits_zero_and_clients_see_the_end() {
    let mut server = ServerProc::start("echo-server", &[]);
    let mut c = server.connect();
    round_trip(&mut c, b"hi");
    server.console("shutdown");
    assert_eof(&mut c);
    assert!(server.wait_exit().success());
}

#[test]
fn sigterm_exits_zero_and_clients_see_the_end() {
    let mut server = ServerProc::start("echo-server", &["--no-console"]);
    let mut c = server.connect();
    round_trip(&mut c, b"hi");
    server.sigterm();
    assert_eof(&mut c);
    assert!(server.wait_exit().success());
}

#[test]
fn end_of_console_input_does_not_stop_the_server() {
    let mut server = ServerProc::start("echo-server", &[]);
    drop(server.stdin.take());
    std::thread::sleep(Duration::from_millis(200));
    let mut c = server.connect();
    assert_eq!(round_trip(&mut c, b"still here"), b"still here");
    server.sigterm();
    assert!(server.wait_exit().success());
}

#[test]
fn clients_over_the_limit_are_told_and_closed() {
    let server = ServerProc::start("echo-server", &["--no-console", "--max-clients", "2"]);
    let mut a = server.connect();
    let mut b = server.connect();
    assert_eq!(round_trip(&mut a, b"a"), b"a");
    assert_eq!(round_trip(&mut b, b"b"), b"b");
    let mut c = server.connect();
    let mut refusal = String::new();
    c.read_to_string(&mut refusal).unwrap();
    assert_eq!(refusal, "! server full, try again later\n");
    // Room again once a client leaves.
    drop(a);
    let mut served = false;
    for _ in 0..250 {
        let mut d = server.connect();
        d.write_all(b"d").unwrap();
        let mut buf = [0u8; 1];
        if d.read_exact(&mut buf).is_ok() && &buf == b"d" {
            served = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(served, "a slot frees when a client leaves");
    assert_eq!(round_trip(&mut b, b"b2"), b"b2");
}

#[test]
fn junk_and_abrupt_disconnects_leave_others_served() {
    let server = ServerProc::start("echo-server", &["--no-console"]);
    let mut steady = server.connect();
    assert_eq!(round_trip(&mut steady, b"start"), b"start");
    for i in 0..20u64 {
        let mut j = server.connect();
        let _ = j.write_all(&random_bytes(5000, i));
        if i % 2 == 0 {
            // Reset instead of a clean close.
            socket2::SockRef::from(&j)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
        }
        drop(j);
    }
    // A client that sends and never reads, then vanishes.
    let mut hog = server.connect();
    let _ = hog.write_all(&random_bytes(256 * 1024, 7));
    drop(hog);
    assert_eq!(round_trip(&mut steady, b"still served"), b"still served");
    let mut fresh = server.connect();
    assert_eq!(
        round_trip(&mut fresh, &[0, 255, 10, 13, 0]),
        [0, 255, 10, 13, 0]
    );
}

#[test]
fn idle_clients_are_disconnected_when_asked() {
    let server = ServerProc::start("echo-server", &["--no-console", "--idle-timeout", "1"]);
    let mut c = server.connect();
    assert_eq!(round_trip(&mut c, b"x"), b"x");
    assert_eof(&mut c);
}

#[test]
fn piped_client_sends_each_line_and_stops_at_exit() {
    let server = ServerProc::start("echo-server", &["--no-console"]);
    tcpkit()
        .args(["echo", "-q", "127.0.0.1", &server.addr.port().to_string()])
        .write_stdin("first line\nsecond\nexit\nnever sent\n")
        .timeout(Duration::from_secs(30))
        .assert()
        .success()
        .stdout("first line\nsecond\n")
        .stderr("");
    tcpkit()
        .args(["echo", "127.0.0.1", &server.addr.port().to_string()])
        .write_stdin("hi\n")
        .timeout(Duration::from_secs(30))
        .assert()
        .success()
        .stdout("hi\n")
        .stderr(
            predicate::str::contains("connected to")
                .and(predicate::str::contains("sent 3 bytes"))
                .and(predicate::str::contains("received 3 bytes"))
                .and(predicate::str::contains("disconnected")),
        );
}

#[test]
fn client_refused_is_one_clear_line_and_exit_one() {
    let port = released_ports(1)[0];
    let out = tcpkit()
        .args(["echo", "127.0.0.1", &port.to_string()])
        .write_stdin("hi\n")
        .timeout(Duration::from_secs(30))
        .assert()
        .code(1);
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("cannot connect to 127.0.0.1:{port}")),
        "{err}"
    );
}

#[test]
fn client_asks_host_and_port_on_a_terminal() {
    let server = ServerProc::start("echo-server", &["--no-console"]);
    let cmd = format!("{} echo", tcpkit_path().display());
    let mut s = rexpect::spawn(&cmd, Some(30_000)).unwrap();
    s.exp_string("Host [127.0.0.1]: ").unwrap();
    s.send_line("not a host!").unwrap();
    s.exp_string("invalid host").unwrap();
    s.exp_string("Host [127.0.0.1]: ").unwrap();
    s.send_line("").unwrap();
    s.exp_string("Port [9090]: ").unwrap();
    s.send_line("99999").unwrap();
    s.exp_string("invalid port '99999'").unwrap();
    s.exp_string("Port [9090]: ").unwrap();
    s.send_line(&server.addr.port().to_string()).unwrap();
    s.exp_string("connected to").unwrap();
    s.send_line("over the pty").unwrap();
    s.exp_string("received 13 bytes").unwrap();
    s.send_line("exit").unwrap();
    s.exp_string("disconnected").unwrap();
    s.exp_eof().unwrap();
}

#[test]
fn server_asks_for_its_port_on_a_terminal() {
    let port = released_ports(1)[0];
    let dir = tempfile::tempdir().unwrap();
    let cmd = format!(
        "{} echo-server --ask --no-console --log {}",
        tcpkit_path().display(),
        dir.path().join("log").display()
    );
    let mut s = rexpect::spawn(&cmd, Some(30_000)).unwrap();
    s.exp_string("Port [9090]: ").unwrap();
    s.send_line("0x50").unwrap();
    s.exp_string("invalid port '0x50'").unwrap();
    s.send_line(&port.to_string()).unwrap();
    s.exp_string(&format!("listening on 127.0.0.1:{port}"))
        .unwrap();
    s.send_control('c').unwrap();
    s.exp_eof().unwrap();
}
