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

/// A server binary (`echo-server`, `chat-server`) running in a temporary folder on a
/// system-chosen port, its console on a pipe and its stdout read line by line.
pub struct ServerProc {
    /// The process.
    pub child: std::process::Child,
    /// Where it listens, from its `listening on` line.
    pub addr: std::net::SocketAddr,
    /// The console (stdin); `None` once closed.
    pub stdin: Option<std::process::ChildStdin>,
    /// Stdout lines after the `listening on` line.
    pub stdout: std::sync::mpsc::Receiver<String>,
    /// Stderr, read to the end once the process exits.
    pub stderr: std::sync::mpsc::Receiver<String>,
    /// The working folder (log file, database).
    pub dir: tempfile::TempDir,
}

impl ServerProc {
    /// Starts `tcpkit SUBCOMMAND --port 0 ARGS...` in a fresh folder and waits for its
    /// `listening on` line.
    pub fn start(subcommand: &str, args: &[&str]) -> ServerProc {
        Self::start_in(
            tempfile::tempdir().unwrap(),
            subcommand,
            &["--port", "0"],
            args,
        )
    }

    /// Like [`ServerProc::start`] with a given folder and port arguments.
    pub fn start_in(
        dir: tempfile::TempDir,
        subcommand: &str,
        port_args: &[&str],
        args: &[&str],
    ) -> ServerProc {
        use std::io::BufRead;
        let mut child = std::process::Command::new(tcpkit_path())
            .arg(subcommand)
            .args(port_args)
            .args(args)
            .current_dir(dir.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start the server");
        let (tx, rx) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (etx, erx) = std::sync::mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                if etx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the server prints `listening on ADDR`");
        let addr = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line: {first}"))
            .parse()
            .unwrap();
        let stdin = child.stdin.take();
        ServerProc {
            child,
            addr,
            stdin,
            stdout: rx,
            stderr: erx,
            dir,
        }
    }

    /// Types a console command.
    pub fn console(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.stdin.as_mut().expect("console open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Reads stdout lines until one contains `needle` (at most 10 s); returns the lines read.
    pub fn expect_out(&self, needle: &str) -> Vec<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.contains(needle);
                    seen.push(line);
                    if hit {
                        return seen;
                    }
                }
                Err(_) => panic!("no stdout line with {needle:?}; got {seen:#?}"),
            }
        }
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        let ok = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM");
    }

    /// Waits (at most 10 s) for the process to exit and returns its status.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("server did not exit within 10 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// All stderr lines so far (waits briefly for late ones).
    pub fn stderr_lines(&self) -> Vec<String> {
        let mut v = Vec::new();
        while let Ok(l) = self
            .stderr
            .recv_timeout(std::time::Duration::from_millis(200))
        {
            v.push(l);
        }
        v
    }

    /// Number of threads of the server process.
    pub fn threads(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.child.id()))
            .unwrap()
            .count()
    }

    /// A client connected to the server, with a 10 s read timeout.
    pub fn connect(&self) -> std::net::TcpStream {
        let s = std::net::TcpStream::connect(self.addr).expect("connect to the server");
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        s
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Deterministic pseudo-random bytes (xorshift), for payloads.
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
