//! Helpers shared by the integration tests: the binary, loopback listeners the test owns, and
//! private network namespaces for scans of wide port ranges.
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::Command;

/// The release or debug `tcpkit` binary built for these tests.
pub fn tcpkit() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("tcpkit").expect("tcpkit binary")
}

/// Path of the `tcpkit` binary, for commands run through other programs (`ip netns exec`).
pub fn tcpkit_path() -> std::path::PathBuf {
    assert_cmd::cargo::cargo_bin("tcpkit")
}

/// `n` listeners on 127.0.0.1 with system-chosen ports, sorted by port.
pub fn listeners(n: usize) -> Vec<TcpListener> {
    let mut v: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    v.sort_by_key(port_of);
    v
}

/// The port a listener is bound to.
pub fn port_of(l: &TcpListener) -> u16 {
    l.local_addr().unwrap().port()
}

/// Ports this test bound and released again: closed unless something grabs them meanwhile.
pub fn released_ports(n: usize) -> Vec<u16> {
    listeners(n).iter().map(port_of).collect()
}

/// A comma-separated port list.
pub fn port_list(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// A private network namespace with its own loopback up, deleted on drop.
pub struct Netns {
    /// The namespace's name, for `ip netns exec`.
    pub name: String,
}

impl Netns {
    /// Creates the namespace, or returns why it cannot (not root, no `ip`).
    pub fn create(tag: &str) -> Result<Netns, String> {
        if !is_root() {
            return Err("not root".into());
        }
        let name = format!("tktest-{tag}-{}", std::process::id());
        let ok = |c: &mut Command| c.status().map(|s| s.success()).unwrap_or(false);
        if !ok(Command::new("ip").args(["netns", "add", &name])) {
            return Err("`ip netns add` failed or `ip` (iproute2) is missing".into());
        }
        let ns = Netns { name };
        if !ok(Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"])) {
            return Err("cannot bring up loopback in the namespace".into());
        }
        Ok(ns)
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Whether a program is on PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}
