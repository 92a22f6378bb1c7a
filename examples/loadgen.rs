//! tcpkit's load generator for the server benchmarks (`bench/echo.py`). Loopback only: the
//! address must be a loopback address; every run is bounded in time.
//!
//! ```text
//! loadgen echo --addr 127.0.0.1:9090 --conns C [--size 64] [--secs 10] [--pid P]
//!     C connections in one epoll thread, each a ping-pong of SIZE bytes for SECS seconds.
//! loadgen idle --addr 127.0.0.1:9090 --conns N [--hold 3] --pid P
//!     N connections, one 1-byte echo each (proof of service), held HOLD seconds;
//!     reports the server's RSS growth per connection and its thread count.
//! ```
//! Prints one JSON object on stdout.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(mode) = args.first().cloned() else {
        usage();
    };
    let opts = parse_opts(&args[1..]);
    let addr: SocketAddr = opts
        .get("addr")
        .unwrap_or_else(|| usage())
        .parse()
        .expect("--addr HOST:PORT");
    assert!(addr.ip().is_loopback(), "loadgen targets loopback only");
    let num = |k: &str, d: u64| opts.get(k).map_or(d, |v| v.parse().expect("a number"));
    let pid = opts.get("pid").map(|p| p.parse::<u32>().expect("--pid"));
    match mode.as_str() {
        "echo" => echo(
            addr,
            num("conns", 1) as usize,
            num("size", 64) as usize,
            num("secs", 10).min(600),
            pid,
        ),
        "idle" => idle(
            addr,
            num("conns", 1000) as usize,
            num("hold", 3).min(600),
            pid.expect("--pid"),
        ),
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: loadgen echo|idle --addr 127.0.0.1:PORT [--conns N] [--size B] [--secs S] [--hold S] [--pid P]"
    );
    std::process::exit(2);
}

fn parse_opts(args: &[String]) -> HashMap<String, String> {
    args.chunks(2)
        .map(|kv| {
            let k = kv[0].trim_start_matches("--").to_string();
            (k, kv.get(1).cloned().unwrap_or_default())
        })
        .collect()
}

/// CPU seconds (user + system) used so far by a process.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

fn status_field(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

struct Conn {
    stream: TcpStream,
    got: usize,
    sent_at: Instant,
}

fn echo(addr: SocketAddr, conns: usize, size: usize, secs: u64, pid: Option<u32>) {
    let mut poll = Poll::new().unwrap();
    let payload = vec![b'x'; size];
    let mut buf = vec![0u8; 64 * 1024];
    let mut cs: Vec<Conn> = Vec::with_capacity(conns);
    for i in 0..conns {
        let std_stream = std::net::TcpStream::connect(addr).expect("connect");
        std_stream.set_nodelay(true).unwrap();
        std_stream.set_nonblocking(true).unwrap();
        let mut stream = TcpStream::from_std(std_stream);
        poll.registry()
            .register(&mut stream, Token(i), Interest::READABLE)
            .unwrap();
        cs.push(Conn {
            stream,
            got: 0,
            sent_at: Instant::now(),
        });
    }
    let mut lat_us: Vec<u32> = Vec::with_capacity(1 << 20);
    let mut errors = 0u64;
    let cpu0 = pid.map(cpu_secs);
    let start = Instant::now();
    for c in cs.iter_mut() {
        c.sent_at = Instant::now();
        c.stream.write_all(&payload).expect("first write");
    }
    let deadline = start + Duration::from_secs(secs);
    let mut events = Events::with_capacity(4096);
    let mut open = conns;
    while Instant::now() < deadline && open > 0 {
        poll.poll(&mut events, Some(Duration::from_millis(100)))
            .unwrap();
        for ev in events.iter() {
            let c = &mut cs[ev.token().0];
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => {
                        errors += 1;
                        open -= 1;
                        break;
                    }
                    Ok(n) => {
                        c.got += n;
                        while c.got >= size {
                            c.got -= size;
                            lat_us
                                .push(c.sent_at.elapsed().as_micros().min(u32::MAX as u128) as u32);
                            c.sent_at = Instant::now();
                            if c.stream.write_all(&payload).is_err() {
                                errors += 1;
                            }
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => {
                        errors += 1;
                        break;
                    }
                }
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let server_cpu = pid.map(|p| (cpu_secs(p) - cpu0.unwrap()) / elapsed * 100.0);
    lat_us.sort_unstable();
    let pct = |q: f64| {
        lat_us
            .get(((lat_us.len() as f64 * q) as usize).min(lat_us.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "{{\"mode\":\"echo\",\"conns\":{conns},\"size\":{size},\"secs\":{elapsed:.2},\"round_trips\":{},\"rt_per_s\":{:.0},\"p50_us\":{},\"p99_us\":{},\"max_us\":{},\"errors\":{errors},\"server_cpu_pct\":{}}}",
        lat_us.len(),
        lat_us.len() as f64 / elapsed,
        pct(0.5),
        pct(0.99),
        lat_us.last().copied().unwrap_or(0),
        server_cpu.map_or("null".to_string(), |c| format!("{c:.0}"))
    );
}

fn idle(addr: SocketAddr, conns: usize, hold: u64, pid: u32) {
    let rss0 = status_field(pid, "VmRSS:");
    let threads0 = status_field(pid, "Threads:");
    let mut held = Vec::with_capacity(conns);
    let mut refused = 0;
    for _ in 0..conns {
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut b = [0u8; 1];
        s.write_all(b"p").unwrap();
        match s.read_exact(&mut b) {
            Ok(()) if &b == b"p" => held.push(s),
            _ => refused += 1,
        }
    }
    std::thread::sleep(Duration::from_secs(hold));
    let rss1 = status_field(pid, "VmRSS:");
    let threads1 = status_field(pid, "Threads:");
    let per = (rss1 as f64 - rss0 as f64) / held.len().max(1) as f64;
    println!(
        "{{\"mode\":\"idle\",\"conns\":{conns},\"served\":{},\"refused\":{refused},\"rss_before_kib\":{rss0},\"rss_with_kib\":{rss1},\"rss_kib_per_conn\":{per:.2},\"threads_before\":{threads0},\"threads_with\":{threads1}}}",
        held.len()
    );
}
