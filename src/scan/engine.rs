//! The connect engine: each worker thread keeps many non-blocking connects in flight on its own
//! epoll set (mio), settles each port as open, closed or filtered, and hands results to the
//! collector in batches. No thread per port, no lock on the hot path.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::{PortList, PortState, ScanConfig, TargetList, Timeout};

/// How many (host, port) indexes a worker claims at a time from the shared counter.
const CHUNK: u64 = 64;
/// Launches between two looks at the epoll set, so answers are read (and round-trip times
/// measured) promptly even while a large window is being filled.
const LAUNCH_BURST: usize = 128;
/// Round-trip estimates kept per worker at most, so a scan of a large block stays bounded.
const RTT_HOSTS: usize = 4096;
/// A worker sends its results to the collector once it holds this many.
const BATCH: usize = 256;
/// How long a worker with nothing in flight waits before retrying after running out of
/// descriptors or local ports.
const PRESSURE_PAUSE: Duration = Duration::from_millis(5);
/// A worker that cannot open a single socket for this long gives up: the limit is taken by
/// something else and waiting will not help.
const PRESSURE_GIVE_UP: Duration = Duration::from_secs(10);

/// One settled port: its global index (host * ports + port position) and its state.
pub(crate) type Settled = (u64, PortState);

/// What all workers share: the work and the counters. Read-only but for the atomics.
pub(crate) struct Job<'a> {
    pub targets: &'a TargetList,
    pub ports: &'a PortList,
    pub config: &'a ScanConfig,
    /// The next unclaimed global index.
    pub next: AtomicU64,
    /// targets.len() * ports.len().
    pub total: u64,
    /// Connects that landed on their own source port (TCP self-connect) and were retried.
    pub self_connects: AtomicU64,
    /// Times a worker hit the descriptor or local-port limit and slowed down.
    pub pressure_events: AtomicU64,
}

/// A connect in flight.
struct Flight {
    stream: TcpStream,
    index: u64,
    attempt: u32,
    started: Instant,
}

/// Smoothed round-trip time of one host, as TCP keeps it (RFC 6298).
#[derive(Clone, Copy)]
struct Rtt {
    srtt: Duration,
    rttvar: Duration,
}

impl Rtt {
    fn update(slot: &mut Option<Rtt>, sample: Duration) {
        *slot = Some(match *slot {
            None => Rtt {
                srtt: sample,
                rttvar: sample / 2,
            },
            Some(r) => {
                let diff = r.srtt.abs_diff(sample);
                Rtt {
                    rttvar: (r.rttvar * 3 + diff) / 4,
                    srtt: (r.srtt * 7 + sample) / 8,
                }
            }
        });
    }
}

/// How a connect attempt ended.
enum Outcome {
    Settled(PortState),
    /// Out of descriptors or local ports: try the same attempt again later.
    Pressure,
    /// Landed on its own source port: not an answer from a listener; try again.
    SelfConnect,
    /// Still connecting: wait for an event.
    Pending(TcpStream),
}

fn classify(err: &io::Error) -> Outcome {
    match err.raw_os_error() {
        Some(libc::ECONNREFUSED) => Outcome::Settled(PortState::Closed),
        Some(
            libc::EMFILE
            | libc::ENFILE
            | libc::ENOBUFS
            | libc::ENOMEM
            | libc::EADDRNOTAVAIL
            | libc::EAGAIN,
        ) => Outcome::Pressure,
        // Unreachable, refused by a local firewall, timed out by the kernel, or any other
        // failure: no answer from a listener, so never "closed" and never "open".
        _ => Outcome::Settled(PortState::Filtered),
    }
}

/// Checks a socket whose connect has been started: refused, connected, or still pending.
fn check(stream: TcpStream) -> Outcome {
    match stream.take_error() {
        Ok(Some(e)) => return classify(&e),
        Err(e) => return classify(&e),
        Ok(None) => {}
    }
    match stream.peer_addr() {
        Ok(peer) => {
            if stream.local_addr().ok() == Some(peer) {
                return Outcome::SelfConnect;
            }
            // Reset rather than close politely: no TIME_WAIT piles up on either side.
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            Outcome::Settled(PortState::Open)
        }
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Outcome::Pending(stream),
        Err(e) => classify(&e),
    }
}

/// One worker thread's state. It owns every socket it opened; dropping it closes them.
pub(crate) struct Worker<'a> {
    job: &'a Job<'a>,
    tx: Sender<Vec<Settled>>,
    poll: Poll,
    /// Flights by token; `None` marks a free slot.
    slots: Vec<Option<Flight>>,
    /// Generation of each slot, bumped on reuse, so stale timer entries are recognised.
    gens: Vec<u32>,
    free: Vec<usize>,
    /// Timer queues, one per attempt number: (slot, generation) in launch order.
    timers: Vec<VecDeque<(usize, u32)>>,
    inflight: usize,
    /// The in-flight window: the configured share, lowered while the kernel pushes back.
    cap: usize,
    max_cap: usize,
    /// Attempts waiting to be launched before new work: retries and pushed-back connects.
    again: VecDeque<(u64, u32)>,
    /// The claimed but not yet launched part of the shared index space.
    claimed: std::ops::Range<u64>,
    rtt: HashMap<u64, Option<Rtt>>,
    /// Size of `rtt` at which old hosts are next pruned (amortized).
    rtt_prune_at: usize,
    batch: Vec<Settled>,
    /// Cached host address for the host index last looked up.
    host_cache: Option<(u64, std::net::IpAddr)>,
}

impl<'a> Worker<'a> {
    pub(crate) fn new(
        job: &'a Job<'a>,
        tx: Sender<Vec<Settled>>,
        share: usize,
    ) -> io::Result<Self> {
        let share = share.max(1);
        Ok(Worker {
            job,
            tx,
            poll: Poll::new()?,
            slots: Vec::new(),
            gens: Vec::new(),
            free: Vec::new(),
            timers: (0..=job.config.retries).map(|_| VecDeque::new()).collect(),
            inflight: 0,
            cap: share,
            max_cap: share,
            again: VecDeque::new(),
            claimed: 0..0,
            rtt: HashMap::new(),
            rtt_prune_at: RTT_HOSTS,
            batch: Vec::with_capacity(BATCH),
            host_cache: None,
        })
    }

    /// Runs until the shared work is exhausted and every local attempt is settled.
    pub(crate) fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut starved_since: Option<Instant> = None;
        loop {
            let pressured = self.fill();
            if self.inflight == 0 && !self.has_work() {
                break;
            }
            if pressured && self.inflight == 0 {
                let since = *starved_since.get_or_insert_with(Instant::now);
                if since.elapsed() > PRESSURE_GIVE_UP {
                    return Err(io::Error::other(
                        "no socket could be opened for 10 s: out of file descriptors or local ports",
                    ));
                }
            } else {
                starved_since = None;
            }
            let wait = if pressured && self.inflight == 0 {
                Some(PRESSURE_PAUSE)
            } else if self.inflight < self.cap && self.has_work() {
                Some(Duration::ZERO)
            } else {
                self.next_deadline()
                    .map(|d| d.saturating_duration_since(Instant::now()))
            };
            match self.poll.poll(&mut events, wait) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for ev in events.iter() {
                self.on_event(ev.token().0);
            }
            self.expire(Instant::now());
            self.flush();
        }
        self.flush();
        Ok(())
    }

    fn has_work(&self) -> bool {
        !self.again.is_empty()
            || !self.claimed.is_empty()
            || self.job.next.load(Ordering::Relaxed) < self.job.total
    }

    fn next_work(&mut self) -> Option<(u64, u32)> {
        if let Some(w) = self.again.pop_front() {
            return Some(w);
        }
        if self.claimed.is_empty() {
            let start = self.job.next.fetch_add(CHUNK, Ordering::Relaxed);
            if start >= self.job.total {
                return None;
            }
            self.claimed = start..(start + CHUNK).min(self.job.total);
        }
        self.claimed.next().map(|i| (i, 0))
    }

    /// Launches up to [`LAUNCH_BURST`] attempts while the window has room. Returns true when the
    /// kernel pushed back (no descriptors or local ports).
    fn fill(&mut self) -> bool {
        for _ in 0..LAUNCH_BURST {
            if self.inflight >= self.cap {
                break;
            }
            let Some((index, attempt)) = self.next_work() else {
                return false;
            };
            let addr = self.addr_of(index);
            let started = Instant::now();
            let outcome = match TcpStream::connect(addr) {
                Ok(stream) => check(stream),
                Err(e) => classify(&e),
            };
            match outcome {
                Outcome::Settled(state) => self.settle(index, state, Some(started)),
                Outcome::Pending(stream) => self.track(stream, index, attempt, started),
                Outcome::SelfConnect => {
                    self.job.self_connects.fetch_add(1, Ordering::Relaxed);
                    self.again.push_back((index, attempt));
                }
                Outcome::Pressure => {
                    self.job.pressure_events.fetch_add(1, Ordering::Relaxed);
                    self.again.push_front((index, attempt));
                    self.cap = self.inflight.max(1);
                    return true;
                }
            }
            if self.batch.len() >= BATCH {
                self.flush();
            }
        }
        false
    }

    fn addr_of(&mut self, index: u64) -> SocketAddr {
        let n = self.job.ports.len() as u64;
        let host = index / n;
        let port = self.job.ports.as_slice()[(index % n) as usize];
        let ip = match self.host_cache {
            Some((h, ip)) if h == host => ip,
            _ => {
                let ip = self.job.targets.ip(host).expect("index within the job");
                self.host_cache = Some((host, ip));
                ip
            }
        };
        SocketAddr::new(ip, port)
    }

    fn track(&mut self, mut stream: TcpStream, index: u64, attempt: u32, started: Instant) {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                self.gens.push(0);
                self.slots.len() - 1
            }
        };
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(slot), Interest::WRITABLE)
        {
            self.free.push(slot);
            match classify(&e) {
                Outcome::Settled(s) => self.settle(index, s, None),
                _ => self.again.push_front((index, attempt)),
            }
            return;
        }
        self.gens[slot] = self.gens[slot].wrapping_add(1);
        self.slots[slot] = Some(Flight {
            stream,
            index,
            attempt,
            started,
        });
        self.timers[attempt as usize].push_back((slot, self.gens[slot]));
        self.inflight += 1;
    }

    fn release(&mut self, slot: usize) -> Option<Flight> {
        let mut flight = self.slots.get_mut(slot)?.take()?;
        let _ = self.poll.registry().deregister(&mut flight.stream);
        self.free.push(slot);
        self.inflight -= 1;
        Some(flight)
    }

    fn on_event(&mut self, slot: usize) {
        let Some(flight) = self.release(slot) else {
            return;
        };
        let Flight {
            stream,
            index,
            attempt,
            started,
        } = flight;
        match check(stream) {
            Outcome::Settled(state) => self.settle(index, state, Some(started)),
            Outcome::Pending(stream) => self.track(stream, index, attempt, started),
            Outcome::SelfConnect => {
                self.job.self_connects.fetch_add(1, Ordering::Relaxed);
                self.again.push_back((index, attempt));
            }
            Outcome::Pressure => self.again.push_front((index, attempt)),
        }
    }

    /// Records a settled port; answers (open or closed) also feed the host's RTT estimate and
    /// let a window lowered by pressure grow back.
    fn settle(&mut self, index: u64, state: PortState, started: Option<Instant>) {
        if state != PortState::Filtered {
            if let Some(t0) = started {
                let host = index / self.job.ports.len() as u64;
                Rtt::update(self.rtt.entry(host).or_default(), t0.elapsed());
                if self.rtt.len() > self.rtt_prune_at {
                    // Hosts are scanned in order: forget those well behind the work claimed
                    // (a late retry for one of them just waits the longest timeout).
                    let low = self.claimed.start / self.job.ports.len() as u64;
                    self.rtt.retain(|h, _| h + RTT_HOSTS as u64 / 2 >= low);
                    self.rtt_prune_at = (self.rtt.len() * 2).max(RTT_HOSTS);
                }
            }
            if self.cap < self.max_cap {
                self.cap += 1;
            }
        }
        self.batch.push((index, state));
    }

    /// The timeout for an attempt at a host: fixed, or adapted to the host's measured RTT
    /// (srtt + 4 rttvar within the configured bounds), doubled for each retry.
    fn timeout_for(&self, index: u64, attempt: u32) -> Duration {
        match self.job.config.timeout {
            Timeout::Fixed(d) => d,
            Timeout::Adaptive { min, max } => {
                let host = index / self.job.ports.len() as u64;
                let base = match self.rtt.get(&host).copied().flatten() {
                    Some(r) => (r.srtt + r.rttvar * 4).clamp(min, max),
                    None => max,
                };
                (base * 2u32.saturating_pow(attempt)).min(max)
            }
        }
    }

    fn live_front(&mut self, q: usize) -> Option<(usize, Instant)> {
        while let Some(&(slot, generation)) = self.timers[q].front() {
            match &self.slots[slot] {
                Some(f) if self.gens[slot] == generation => {
                    let deadline = f.started + self.timeout_for(f.index, f.attempt);
                    return Some((slot, deadline));
                }
                _ => {
                    self.timers[q].pop_front();
                }
            }
        }
        None
    }

    fn next_deadline(&mut self) -> Option<Instant> {
        (0..self.timers.len())
            .filter_map(|q| self.live_front(q).map(|(_, d)| d))
            .min()
    }

    /// Gives up on attempts past their deadline: a retry if any are left, else filtered.
    fn expire(&mut self, now: Instant) {
        for q in 0..self.timers.len() {
            while let Some((slot, deadline)) = self.live_front(q) {
                if deadline > now {
                    break;
                }
                self.timers[q].pop_front();
                if let Some(f) = self.release(slot) {
                    if f.attempt < self.job.config.retries {
                        self.again.push_back((f.index, f.attempt + 1));
                    } else {
                        self.settle(f.index, PortState::Filtered, None);
                    }
                }
            }
        }
    }

    fn flush(&mut self) {
        if !self.batch.is_empty() {
            let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
            // The collector only goes away when the scan is being torn down.
            let _ = self.tx.send(batch);
        }
    }
}
