//! `tcpkit scan` end to end: the real binary against listeners this test opened on loopback,
//! and wide scans only inside namespaces the test created.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use common::*;
use predicates::prelude::*;

/// Half the ports listen, half were released: exactly the listening ones are reported, in
/// order, and the summary counts the rest as closed.
#[test]
fn finds_exactly_the_open_ports_in_order() {
    let open = listeners(6);
    let open_ports: Vec<u16> = open.iter().map(port_of).collect();
    let closed = released_ports(6);
    let mut all = open_ports.clone();
    all.extend(&closed);
    // Listed out of order on purpose: output must still be ascending.
    all.reverse();

    let out = tcpkit()
        .args(["scan", "127.0.0.1", "-p", &port_list(&all)])
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .success();
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    let got: Vec<String> = stdout.lines().map(str::to_string).collect();
    let want: Vec<String> = open_ports
        .iter()
        .map(|p| match tcpkit::scan::service_name(*p) {
            Some(s) => format!("Port {p} open ({s})"),
            None => format!("Port {p} open"),
        })
        .collect();
    assert_eq!(got, want, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stderr.contains("scanned 12 ports on 1 host")
            && stderr.contains("6 open, 6 closed, 0 filtered"),
        "summary: {stderr}"
    );
}

#[test]
fn json_is_one_object_per_host() {
    let open = listeners(3);
    let ports: Vec<u16> = open.iter().map(port_of).collect();
    let closed = released_ports(2);
    let spec = format!("{},{}", port_list(&ports), port_list(&closed));
    let out = tcpkit()
        .args([
            "scan",
            "--format",
            "json",
            "-p",
            &spec,
            "127.0.0.1",
            "localhost",
        ])
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .success();
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    // localhost resolves to 127.0.0.1 too, so the duplicate address is scanned once.
    assert_eq!(lines.len(), 1, "{stdout}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(v["host"], "127.0.0.1");
    assert_eq!(v["ip"], "127.0.0.1");
    assert_eq!(v["open"], serde_json::json!(ports));
    assert_eq!(v["closed"], 2);
    assert_eq!(v["filtered"], 0);
    assert!(v["elapsed_ms"].is_u64());
}

#[test]
fn several_targets_get_a_header_each() {
    let open = listeners(1);
    let p = port_of(&open[0]);
    let out = tcpkit()
        .args(["scan", "-p", &p.to_string(), "127.0.0.1", "127.0.0.2"])
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .success();
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    // The listener is bound to 127.0.0.1 only, so 127.0.0.2 refuses.
    assert_eq!(
        stdout,
        format!("Host 127.0.0.1\nPort {p} open\nHost 127.0.0.2\n"),
        "{stdout}"
    );
}

#[test]
fn bad_ports_are_usage_errors_naming_the_value() {
    for (spec, says) in [
        ("70000", "invalid port '70000': ports are 1-65535"),
        ("0", "invalid port '0'"),
        ("100-50", "invalid port range '100-50'"),
        ("22,,80", "empty item in port list '22,,80'"),
        ("http", "invalid port 'http'"),
    ] {
        tcpkit()
            .args(["scan", "127.0.0.1", "-p", spec])
            .assert()
            .code(2)
            .stderr(predicate::str::contains(says));
    }
}

#[test]
fn bad_targets_and_options_are_usage_errors() {
    for (args, says) in [
        (vec!["300.1.1.1"], "invalid target '300.1.1.1'"),
        (vec!["10.0.0.0/33"], "invalid CIDR block '10.0.0.0/33'"),
        (
            vec!["127.0.0.1", "--timeout", "soon"],
            "invalid timeout 'soon'",
        ),
        (vec!["127.0.0.1", "--concurrency", "0"], "'0'"),
        (vec!["127.0.0.1", "--format", "xml"], "'xml'"),
    ] {
        tcpkit()
            .arg("scan")
            .args(&args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(says));
    }
}

#[test]
fn unresolvable_host_is_a_runtime_error() {
    tcpkit()
        .args(["scan", "-p", "1", "no-such-host.invalid"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "cannot resolve host 'no-such-host.invalid'",
        ));
}

#[test]
fn no_target_without_a_terminal_is_a_usage_error() {
    tcpkit()
        .args(["scan", "-p", "1"])
        .write_stdin("")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no TARGET given"));
}

#[test]
fn help_teaches_with_examples() {
    tcpkit()
        .args(["scan", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Examples:").and(predicate::str::contains("filtered")));
    tcpkit()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("tcpkit scan 127.0.0.1"));
}

/// With no target on a terminal, the scanner asks, explains bad answers and asks again.
#[test]
fn prompts_for_the_host_on_a_terminal() {
    let open = listeners(1);
    let p = port_of(&open[0]);
    let cmd = format!("{} scan --no-progress -p {p}", tcpkit_path().display());
    let mut s = rexpect::spawn(&cmd, Some(30_000)).expect("spawn on a pty");
    s.exp_string("Host to scan: ").unwrap();
    s.send_line("").unwrap();
    s.exp_string("please type a host name").unwrap();
    s.exp_string("Host to scan: ").unwrap();
    s.send_line("no-such-host.invalid").unwrap();
    s.exp_string("cannot resolve host 'no-such-host.invalid'")
        .unwrap();
    s.exp_string("Host to scan: ").unwrap();
    s.send_line("127.0.0.1").unwrap();
    s.exp_string(&format!("Port {p} open")).unwrap();
    s.exp_eof().unwrap();
}

const LISTENER_PY: &str = r"
import socket, sys, time
socks = []
for p in map(int, sys.argv[1].split(',')):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('127.0.0.1', p)); s.listen(64); socks.append(s)
print('ready', flush=True)
time.sleep(float(sys.argv[2]))
";

/// A namespace of our own: listeners at the edges (1, 65535) and in the middle, nftables
/// dropping 2000-2999. A full scan finds exactly the listeners (no TCP self-connect phantom,
/// whose odds grow with every full loopback scan), calls every dropped port filtered and never
/// closed, and the rest closed. Three runs, since phantoms show up in some runs only.
#[test]
fn full_scan_in_a_namespace_with_dropped_ports() {
    let ns = match Netns::create("scan") {
        Ok(ns) => ns,
        Err(why) => {
            eprintln!("SKIPPED full_scan_in_a_namespace_with_dropped_ports: {why}");
            return;
        }
    };
    for tool in ["nft", "python3"] {
        if !have(tool) {
            eprintln!("SKIPPED full_scan_in_a_namespace_with_dropped_ports: no `{tool}`");
            return;
        }
    }
    let rules = "table inet tktest {\n chain input {\n  type filter hook input priority 0;\n  \
                 tcp dport 2000-2999 drop\n }\n}\n";
    let mut nft = ns.command("nft");
    nft.args(["-f", "-"]).stdin(Stdio::piped());
    let mut child = nft.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), rules.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "nft rules");

    let open = [1u16, 1500, 40000, 65535];
    let mut listener = ns
        .command("python3")
        .args(["-c", LISTENER_PY, &port_list(&open), "120"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(listener.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready.trim(), "ready");

    for run in 0..3 {
        let out = ns
            .command(tcpkit_path())
            .args(["scan", "--format", "json", "127.0.0.1"])
            .output()
            .unwrap();
        assert!(out.status.success(), "run {run}: {out:?}");
        let v: serde_json::Value =
            serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
        assert_eq!(v["open"], serde_json::json!(open), "run {run}: {v}");
        assert_eq!(v["filtered"], 1000, "run {run}: {v}");
        assert_eq!(v["closed"], 65535 - 1000 - open.len(), "run {run}: {v}");
    }
    let _ = listener.kill();
    let _ = listener.wait();
}
