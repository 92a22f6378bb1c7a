//! tcpkit's load generator for the server benchmarks (`bench/echo.py`, `bench/chat.py`). Loopback only: the
//! address must be a loopback address; every run is bounded in time.
//!
//! ```text
//! loadgen echo --addr 127.0.0.1:9090 --conns C [--size 64] [--secs 10] [--pid P]
//!     C connections in one epoll thread, each a ping-pong of SIZE bytes for SECS seconds.
//! loadgen idle --addr 127.0.0.1:9090 --conns N [--hold 3] --pid P
//!     N connections, one 1-byte echo each (proof of service), held HOLD seconds;
//!     reports the server's RSS growth per connection and its thread count.
//! loadgen chat --addr 127.0.0.1:9090 --clients N --senders S --msgs M [--rate R]
//!         [--login-fmt '/register u{i} pw{i}'] [--ready-marker '* online'] [--stall 1]
//!         [--timeout 120] [--pid P]
//!     N clients connect (and log in with the formatted line, waiting for the marker), a
//!     probe proves every client receives broadcasts, then the first S send M lines each,
//!     `BENCH <sender> <seq> <send-us>`, R per second each (0: flat out). Every client reads
//!     everything. Reports deliveries/s, send-to-receive latency, missing, out-of-order,
//!     malformed and self-echoed lines. `--stall 1` adds a client that logs in and then
//!     never reads (it must not change the others' figures).
//! ```
//!
//! Prints one JSON object on stdout. The chat mode also reports its own work (reads, bytes
//! per read, user and system CPU seconds, time spent waiting) and the server's CPU seconds
//! over the run. Flat out, a one-thread client is what limits the figures, so it is built to
//! cost little per line, as a real client's buffered reader does: lines are split with
//! `memchr` straight out of each read, the clock is read once per read, and the latency
//! table is touched before the run. `LOADGEN_PROFILE=1` pauses 1 s before the run, which
//! gives time to attach `perf record -p`.

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
        "chat" => chat::run(addr, &opts, pid),
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

/// A non-blocking, TCP_NODELAY connection registered for reading under token `i`.
fn connect_polled(poll: &Poll, addr: SocketAddr, i: usize) -> TcpStream {
    let std_stream = std::net::TcpStream::connect(addr).expect("connect");
    std_stream.set_nodelay(true).unwrap();
    std_stream.set_nonblocking(true).unwrap();
    let mut stream = TcpStream::from_std(std_stream);
    poll.registry()
        .register(&mut stream, Token(i), Interest::READABLE)
        .unwrap();
    stream
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
        let stream = connect_polled(&poll, addr, i);
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

mod chat {
    //! The chat broadcast scenario.
    use super::*;

    struct Client {
        stream: TcpStream,
        rbuf: Vec<u8>,
        wbuf: Vec<u8>,
        ready: bool,
        probed: bool,
        /// Last sequence number seen per sender, for order checks.
        last: Vec<i64>,
        /// Lines still to send (senders only) and when the next is due.
        to_send: u64,
        next_due: Instant,
        sent: u64,
        writable_wait: bool,
    }

    /// How long an idle wait for events lasts outside the measured run.
    const TICK: Duration = Duration::from_millis(20);

    fn opt<'a>(opts: &'a HashMap<String, String>, k: &str, d: &'a str) -> &'a str {
        opts.get(k).map_or(d, |s| s.as_str())
    }

    pub fn run(addr: SocketAddr, opts: &HashMap<String, String>, pid: Option<u32>) {
        let n: usize = opt(opts, "clients", "10").parse().unwrap();
        let senders: usize = opt(opts, "senders", "10").parse::<usize>().unwrap().min(n);
        let msgs: u64 = opt(opts, "msgs", "1000").parse().unwrap();
        let rate: f64 = opt(opts, "rate", "0").parse().unwrap();
        let timeout =
            Duration::from_secs(opt(opts, "timeout", "120").parse::<u64>().unwrap().min(900));
        let login = opts.get("login-fmt").cloned();
        let marker = opts.get("ready-marker").cloned();
        let stall = opt(opts, "stall", "0") == "1";
        let mut poll = Poll::new().unwrap();
        let mut cs: Vec<Client> = Vec::with_capacity(n);
        let t_connect = Instant::now();
        let mut buf = vec![0u8; 256 * 1024];
        let mut events = Events::with_capacity(4096);
        // Connect and log in, a few at a time, reading as we go.
        for i in 0..n {
            let stream = connect_polled(&poll, addr, i);
            let mut c = Client {
                stream,
                rbuf: Vec::new(),
                wbuf: Vec::new(),
                ready: marker.is_none(),
                probed: false,
                last: vec![-1; senders],
                to_send: if i < senders { msgs } else { 0 },
                next_due: Instant::now(),
                sent: 0,
                writable_wait: false,
            };
            if let Some(f) = &login {
                let l = f.replace("{i}", &i.to_string()) + "\n";
                c.stream.write_all(l.as_bytes()).unwrap();
            }
            cs.push(c);
            // Keep the accept queue and the password hashing from piling up.
            pump(
                &mut poll,
                &mut events,
                &mut cs,
                &mut buf,
                marker.as_deref(),
                Duration::from_millis(1),
                None,
            );
        }
        let ready_deadline = Instant::now() + Duration::from_secs(300);
        while cs.iter().any(|c| !c.ready) {
            assert!(
                Instant::now() < ready_deadline,
                "clients not ready within 300 s"
            );
            pump(
                &mut poll,
                &mut events,
                &mut cs,
                &mut buf,
                marker.as_deref(),
                Duration::from_millis(50),
                None,
            );
        }
        let connect_secs = t_connect.elapsed().as_secs_f64();
        // The stalled client: logs in, then never reads again.
        let _stalled = stall.then(|| {
            let sock =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            sock.set_recv_buffer_size(4096).unwrap();
            sock.connect(&addr.into()).unwrap();
            let mut s: std::net::TcpStream = sock.into();
            if let Some(f) = &login {
                s.write_all((f.replace("{i}", &n.to_string()) + "\n").as_bytes())
                    .unwrap();
            }
            std::thread::sleep(Duration::from_millis(500));
            s
        });
        // Probe: client 0 says PROBE until every other client has seen it.
        let probe_deadline = Instant::now() + Duration::from_secs(30);
        let mut last_probe = Instant::now() - Duration::from_secs(1);
        while cs.iter().skip(1).any(|c| !c.probed) {
            assert!(
                Instant::now() < probe_deadline,
                "probe not delivered within 30 s"
            );
            if last_probe.elapsed() > Duration::from_millis(200) {
                cs[0].stream.write_all(b"PROBE\n").unwrap();
                last_probe = Instant::now();
            }
            pump(&mut poll, &mut events, &mut cs, &mut buf, None, TICK, None);
        }
        let settle = Instant::now() + Duration::from_millis(500);
        while Instant::now() < settle {
            pump(&mut poll, &mut events, &mut cs, &mut buf, None, TICK, None);
        }
        for c in cs.iter_mut() {
            c.last = vec![-1; senders];
        }
        // The run.
        if std::env::var_os("LOADGEN_PROFILE").is_some() {
            eprintln!("run starts in 1 s");
            std::thread::sleep(Duration::from_secs(1));
        }
        // Every latency slot is written once before the run, so the run does not pay the
        // kernel for first touches of this memory (tens of MB at 500 clients).
        let mut lat_us = vec![1u64; (senders as u64 * msgs * n as u64) as usize];
        lat_us.clear();
        let mut stats = Stats {
            lat_us,
            ..Default::default()
        };
        let start = Instant::now();
        let ru0 = rusage();
        let cpu0 = pid.map(cpu_secs);
        let own0 = cpu_secs(std::process::id());
        let expected = senders as u64 * msgs * (n as u64 - 1);
        let interval = if rate > 0.0 {
            Duration::from_secs_f64(1.0 / rate)
        } else {
            Duration::ZERO
        };
        for (i, c) in cs.iter_mut().enumerate().take(senders) {
            // Stagger paced senders evenly.
            c.next_due = start + interval.mul_f64(i as f64 / senders as f64);
        }
        let deadline = start + timeout;
        let mut last_progress = Instant::now();
        let mut last_delivered = 0;

        while stats.delivered < expected && Instant::now() < deadline {
            // Send what is due.
            let now = Instant::now();
            let mut next_wake = now + Duration::from_millis(50);
            for (i, c) in cs.iter_mut().enumerate().take(senders) {
                while c.to_send > 0
                    && c.wbuf.len() < 64 * 1024
                    && (rate == 0.0 || c.next_due <= now)
                {
                    let us = start.elapsed().as_micros();
                    c.wbuf
                        .extend_from_slice(format!("BENCH {i} {} {us}\n", c.sent).as_bytes());
                    c.sent += 1;
                    c.to_send -= 1;
                    c.next_due += interval;
                }
                if c.to_send > 0 && rate > 0.0 {
                    next_wake = next_wake.min(c.next_due);
                }
                flush(&mut poll, c, i);
            }
            let wait = if cs
                .iter()
                .take(senders)
                .any(|c| c.to_send > 0 && rate == 0.0)
            {
                Duration::ZERO
            } else {
                next_wake.saturating_duration_since(Instant::now())
            };
            pump(
                &mut poll,
                &mut events,
                &mut cs,
                &mut buf,
                None,
                wait,
                Some((&mut stats, start)),
            );
            if stats.delivered != last_delivered {
                last_delivered = stats.delivered;
                last_progress = Instant::now();
            } else if cs
                .iter()
                .take(senders)
                .all(|c| c.to_send == 0 && c.wbuf.is_empty())
                && last_progress.elapsed() > Duration::from_secs(5)
            {
                break;
            }
        }
        let span = stats.last_delivery.max(0.000_001);
        let ru1 = rusage();

        let server_cpu_s = pid.map(|p| cpu_secs(p) - cpu0.unwrap());
        let server_cpu = server_cpu_s.map(|c| c / start.elapsed().as_secs_f64() * 100.0);
        let own_cpu = (cpu_secs(std::process::id()) - own0) / start.elapsed().as_secs_f64() * 100.0;
        stats.lat_us.sort_unstable();
        let pct = |q: f64| {
            stats
                .lat_us
                .get(
                    ((stats.lat_us.len() as f64 * q) as usize)
                        .min(stats.lat_us.len().saturating_sub(1)),
                )
                .copied()
                .unwrap_or(0) as f64
                / 1000.0
        };
        println!(
            "{{\"mode\":\"chat\",\"clients\":{n},\"senders\":{senders},\"msgs\":{msgs},\"rate\":{rate},\"stall\":{stall},\"connect_secs\":{connect_secs:.2},\"expected\":{expected},\"delivered\":{},\"missing\":{},\"deliveries_per_s\":{:.0},\"p50_ms\":{:.2},\"p99_ms\":{:.2},\"max_ms\":{:.2},\"out_of_order\":{},\"malformed\":{},\"self_echo\":{},\"reads\":{},\"bytes_per_read\":{:.0},\"first_delivery_ms\":{:.1},\"loadgen_idle_ms\":{:.1},\"loadgen_user_s\":{:.3},\"loadgen_sys_s\":{:.3},\"loadgen_preempted\":{},\"loadgen_cpu_pct\":{own_cpu:.0},\"server_cpu_pct\":{},\"server_cpu_s\":{}}}",
            stats.delivered,
            expected.saturating_sub(stats.delivered),
            stats.delivered as f64 / span,
            pct(0.5),
            pct(0.99),
            stats.lat_us.last().copied().unwrap_or(0) as f64 / 1000.0,
            stats.out_of_order,
            stats.malformed,
            stats.self_echo,
            stats.reads,
            stats.read_bytes as f64 / stats.reads.max(1) as f64,
            stats.first_delivery * 1000.0,
            stats.idle_s * 1000.0,
            ru1.0 - ru0.0,
            ru1.1 - ru0.1,
            ru1.2 - ru0.2,
            server_cpu.map_or("null".to_string(), |c| format!("{c:.0}")),
            server_cpu_s.map_or("null".to_string(), |c| format!("{c:.2}"))
        );
    }

    /// This process's user and system CPU seconds and involuntary context switches.
    fn rusage() -> (f64, f64, i64) {
        // SAFETY: getrusage fills the struct it is given.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        (secs(ru.ru_utime), secs(ru.ru_stime), ru.ru_nivcsw)
    }

    #[derive(Default)]
    struct Stats {
        delivered: u64,
        lat_us: Vec<u64>,
        out_of_order: u64,
        malformed: u64,
        self_echo: u64,
        /// Successful reads and the bytes they returned, during the run.
        reads: u64,
        read_bytes: u64,
        /// Seconds spent waiting in poll, in all and up to the last delivery.
        poll_s: f64,
        idle_s: f64,
        /// Seconds from the first send to the first and the last delivery.
        first_delivery: f64,
        last_delivery: f64,
    }

    fn flush(poll: &mut Poll, c: &mut Client, i: usize) {
        while !c.wbuf.is_empty() {
            match c.stream.write(&c.wbuf) {
                Ok(n) => {
                    c.wbuf.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("sender {i} write failed: {e}"),
            }
        }
        let want = !c.wbuf.is_empty();
        if want != c.writable_wait {
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            poll.registry()
                .reregister(&mut c.stream, Token(i), interest)
                .unwrap();
            c.writable_wait = want;
        }
    }

    fn pump(
        poll: &mut Poll,
        events: &mut Events,
        cs: &mut [Client],
        buf: &mut [u8],
        marker: Option<&str>,
        wait: Duration,
        mut stats: Option<(&mut Stats, Instant)>,
    ) {
        let t = Instant::now();
        poll.poll(events, Some(wait)).unwrap();
        if let Some((stats, _)) = stats.as_mut() {
            stats.poll_s += t.elapsed().as_secs_f64();
        }
        for ev in events.iter() {
            let i = ev.token().0;
            if ev.is_writable() {
                flush(poll, &mut cs[i], i);
            }
            let c = &mut cs[i];
            // Lines are handled read by read, straight from `buf`; only a partial last line
            // is kept in the client's own buffer (a per-event copy of everything read would
            // cost the load generator more for servers that write more at once).
            loop {
                let k = match c.stream.read(buf) {
                    Ok(0) => break,
                    Ok(k) => k,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => break,
                };
                if let Some((stats, _)) = stats.as_mut() {
                    stats.reads += 1;
                    stats.read_bytes += k as u64;
                }
                let mut chunk = &buf[..k];
                if !c.rbuf.is_empty() {
                    let Some(nl) = memchr::memchr(b'\n', chunk) else {
                        c.rbuf.extend_from_slice(chunk);
                        continue;
                    };
                    let mut first = std::mem::take(&mut c.rbuf);
                    first.extend_from_slice(&chunk[..=nl]);
                    lines(&first, c, i, marker, &mut stats);
                    first.clear();
                    c.rbuf = first;
                    chunk = &chunk[nl + 1..];
                }
                let used = lines(chunk, c, i, marker, &mut stats);
                c.rbuf.extend_from_slice(&chunk[used..]);
            }
        }
    }

    /// Handles the complete lines in `data`, all received at `now` (they came in one read);
    /// returns the bytes they took. Works on bytes: the load generator's own cost per line
    /// should be as small as it can be, so that it measures the server, not itself.
    fn lines(
        data: &[u8],
        c: &mut Client,
        i: usize,
        marker: Option<&str>,
        stats: &mut Option<(&mut Stats, Instant)>,
    ) -> usize {
        let now = stats.as_ref().map(|(_, t0)| t0.elapsed());
        let mut start_of_line = 0;
        while let Some(nl) = memchr::memchr(b'\n', &data[start_of_line..]) {
            let line = &data[start_of_line..start_of_line + nl];
            start_of_line += nl + 1;
            if let Some(m) = marker
                && find(line, m.as_bytes()).is_some()
            {
                c.ready = true;
            }
            if line.ends_with(b"PROBE") {
                c.probed = true;
            }
            if let (Some((stats, _)), Some(now)) = (stats.as_mut(), now) {
                account(stats, now, c, i, line);
            }
        }
        start_of_line
    }

    /// Where `needle` first occurs in `hay`.
    fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        memchr::memmem::find(hay, needle)
    }

    /// Finds `BENCH ` in a line; built once, as searching is most of the per-line work.
    static BENCH: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"BENCH "));

    /// A decimal number, the whole of `field`.
    fn number(field: &[u8]) -> Option<u64> {
        if field.is_empty() || field.len() > 19 {
            return None;
        }
        field.iter().try_fold(0u64, |n, &b| {
            b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
        })
    }

    /// Counts one received line: `[<NAME> ]BENCH <sender> <seq> <send-us>`.
    fn account(stats: &mut Stats, now: Duration, c: &mut Client, me: usize, line: &[u8]) {
        let Some(at) = BENCH.find(line) else {
            return;
        };
        let rest = &line[at + 6..];
        let mut fields = rest.split(|&b| b == b' ');
        let parsed = match (fields.next(), fields.next(), fields.next(), fields.next()) {
            (Some(s), Some(q), Some(t), None) => number(s).zip(number(q)).zip(number(t)),
            _ => None,
        };
        let Some(((sender, seq), sent_us)) = parsed else {
            stats.malformed += 1;
            return;
        };
        let (sender, seq) = (sender as usize, seq as i64);
        if sender >= c.last.len() {
            stats.malformed += 1;
            return;
        }
        if sender == me {
            stats.self_echo += 1;
            return;
        }
        if seq <= c.last[sender] {
            stats.out_of_order += 1;
        }
        c.last[sender] = seq;
        stats.delivered += 1;
        stats
            .lat_us
            .push((now.as_micros() as u64).saturating_sub(sent_us));
        stats.last_delivery = now.as_secs_f64();
        if stats.delivered == 1 {
            stats.first_delivery = stats.last_delivery;
        }
        stats.idle_s = stats.poll_s;
    }
}
