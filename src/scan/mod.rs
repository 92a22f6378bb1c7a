//! The TCP connect port scanner: targets x ports through a bounded, multi-threaded connect
//! engine, results streamed to a callback in port order.
//!
//! ```no_run
//! use tcpkit::scan::{self, PortList, ScanConfig, ScanEvent, TargetList, TargetSpec, PortState};
//! let targets = TargetList::resolve(&[TargetSpec::parse("127.0.0.1")?], scan::system_resolve)?;
//! let ports = PortList::parse("1-1024")?;
//! let summary = scan::scan(&targets, &ports, &ScanConfig::default(), |event| {
//!     if let ScanEvent::Port { port, state: PortState::Open, .. } = event {
//!         println!("Port {port} open");
//!     }
//! })?;
//! eprintln!("{} open", summary.open);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod engine;
mod ports;
pub mod report;
mod services;
mod targets;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use ports::{PortList, PortsError};
pub use services::service_name;
pub use targets::{MAX_HOSTS, Target, TargetError, TargetList, TargetSpec, system_resolve};

use engine::{Job, Settled, Worker};

/// What a port answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortState {
    /// The connect succeeded: something listens there.
    Open,
    /// The connect was refused (RST): reachable, nothing listening.
    Closed,
    /// No answer within the timeout after every try, or the host was unreachable.
    Filtered,
}

impl fmt::Display for PortState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PortState::Open => "open",
            PortState::Closed => "closed",
            PortState::Filtered => "filtered",
        })
    }
}

/// How long to wait for an answer to one connect attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    /// The same wait for every attempt.
    Fixed(Duration),
    /// Adapt to each host's measured round-trip time, as TCP and nmap do: srtt + 4 rttvar,
    /// kept within `min..=max`, doubled for each retry; `max` until the host has answered.
    Adaptive {
        /// The shortest wait, whatever the measured RTT.
        min: Duration,
        /// The longest wait, and the wait before any answer was measured.
        max: Duration,
    },
}

impl Default for Timeout {
    fn default() -> Self {
        Timeout::Adaptive {
            min: Duration::from_millis(100),
            max: Duration::from_millis(1000),
        }
    }
}

/// Scan settings. `Default` gives the scanner's defaults.
#[derive(Debug, Clone)]
pub struct ScanConfig {
    /// Connects in flight over all threads.
    pub concurrency: usize,
    /// Worker threads, each with its own share of the connects in flight.
    pub threads: usize,
    /// Wait per attempt.
    pub timeout: Timeout,
    /// Extra attempts for a port that did not answer, before it is called filtered.
    pub retries: u32,
}

/// The default number of connects in flight when the open-files limit allows it.
pub const DEFAULT_CONCURRENCY: usize = 16_384;
/// The default number of extra attempts for an unanswered port.
pub const DEFAULT_RETRIES: u32 = 2;

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig {
            concurrency: DEFAULT_CONCURRENCY,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            timeout: Timeout::default(),
            retries: DEFAULT_RETRIES,
        }
    }
}

/// What one host's scan found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostSummary {
    /// Open ports, ascending.
    pub open: Vec<u16>,
    /// Ports that refused the connect.
    pub closed: u64,
    /// Ports that never answered, or unreachable.
    pub filtered: u64,
    /// Time from the start of this host's turn to its last settled port.
    pub elapsed: Duration,
}

/// Totals of a whole scan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Hosts scanned.
    pub hosts: u64,
    /// (host, port) pairs settled.
    pub ports: u64,
    /// Open ports over all hosts.
    pub open: u64,
    /// Closed ports over all hosts.
    pub closed: u64,
    /// Filtered ports over all hosts.
    pub filtered: u64,
    /// TCP self-connects seen and retried (never reported as open).
    pub self_connects: u64,
    /// Times the engine ran out of descriptors or local ports and slowed down.
    pub pressure_events: u64,
    /// Wall time of the scan.
    pub elapsed: Duration,
}

/// One step of a scan, streamed to the caller's callback. Ports of a host come in ascending
/// order, each once, after the host's `HostStart` and before its `HostDone`; hosts come in
/// target order.
#[derive(Debug)]
pub enum ScanEvent<'a> {
    /// The first port of this host is settled; its ports follow.
    HostStart {
        /// The host.
        target: &'a Target,
    },
    /// A port is settled and every lower port of its host too.
    Port {
        /// The host.
        target: &'a Target,
        /// The port.
        port: u16,
        /// What it answered.
        state: PortState,
    },
    /// Every port of this host is settled.
    HostDone {
        /// The host.
        target: &'a Target,
        /// What the host's scan found.
        summary: &'a HostSummary,
    },
    /// Sent about ten times a second: how far the scan has got.
    Progress {
        /// Settled (host, port) pairs, in any order.
        done: u64,
        /// All (host, port) pairs of the scan.
        total: u64,
        /// Open ports found so far.
        open: u64,
    },
}

/// Why a scan could not run.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// A worker could not start (no thread, no epoll instance) or its poll failed.
    #[error("scanner worker failed: {0}")]
    Worker(#[from] std::io::Error),
}

/// How often `Progress` events are sent.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// Scans every port of `ports` on every host of `targets`, calling `on_event` (on the calling
/// thread) as ports settle; returns the totals once every port is settled.
///
/// # Errors
/// [`ScanError::Worker`] when a worker thread cannot start or its poll fails. Running out of
/// descriptors is not an error: the engine slows down and retries.
pub fn scan(
    targets: &TargetList,
    ports: &PortList,
    config: &ScanConfig,
    mut on_event: impl FnMut(ScanEvent<'_>),
) -> Result<Summary, ScanError> {
    let started = Instant::now();
    let threads = config.threads.max(1);
    let job = Job {
        targets,
        ports,
        config,
        next: AtomicU64::new(0),
        total: targets.len() * ports.len() as u64,
        self_connects: AtomicU64::new(0),
        pressure_events: AtomicU64::new(0),
    };
    let (tx, rx) = crossbeam_channel::bounded::<Vec<Settled>>(1024);
    let mut collector = Collector::new(targets, ports, started);
    let worker_results = std::thread::scope(|s| {
        // Every worker's epoll set is made before any worker starts, so a running worker's
        // sockets cannot take the descriptor the next epoll set needs. Short of descriptors,
        // the scan goes on with the workers it could make (at least one).
        let mut workers = Vec::with_capacity(threads);
        for i in 0..threads {
            let share =
                config.concurrency / threads + usize::from(i < config.concurrency % threads);
            match Worker::new(&job, tx.clone(), share) {
                Ok(w) => workers.push(w),
                Err(e) if workers.is_empty() => return Err(e),
                Err(_) => break,
            }
        }
        let mut handles = Vec::with_capacity(workers.len());
        for (i, worker) in workers.into_iter().enumerate() {
            let handle = std::thread::Builder::new()
                .name(format!("scan-{i}"))
                .stack_size(256 * 1024)
                .spawn_scoped(s, move || worker.run())?;
            handles.push(handle);
        }
        drop(tx);
        let mut last_progress = Instant::now();
        loop {
            match rx.recv_timeout(PROGRESS_EVERY) {
                Ok(batch) => collector.take(batch, &mut on_event),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            }
            if last_progress.elapsed() >= PROGRESS_EVERY {
                last_progress = Instant::now();
                on_event(ScanEvent::Progress {
                    done: collector.done,
                    total: job.total,
                    open: collector.summary.open,
                });
            }
        }
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("worker panicked")))
            })
            .collect::<Result<Vec<()>, _>>()
    });
    worker_results?;
    let mut summary = collector.summary;
    summary.self_connects = job.self_connects.load(Ordering::Relaxed);
    summary.pressure_events = job.pressure_events.load(Ordering::Relaxed);
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// Puts results that arrive in any order back into (host, port) order.
struct Collector<'a> {
    targets: &'a TargetList,
    ports: &'a PortList,
    /// The lowest global index not yet passed to the callback.
    next: u64,
    /// Results above `next`, waiting for the gap below them to fill.
    waiting: BTreeMap<u64, PortState>,
    /// The host being reported and what it has found so far.
    current: Option<(Target, HostSummary)>,
    host_started: Instant,
    done: u64,
    summary: Summary,
}

impl<'a> Collector<'a> {
    fn new(targets: &'a TargetList, ports: &'a PortList, started: Instant) -> Self {
        Collector {
            targets,
            ports,
            next: 0,
            waiting: BTreeMap::new(),
            current: None,
            host_started: started,
            done: 0,
            summary: Summary::default(),
        }
    }

    fn take(&mut self, batch: Vec<Settled>, on_event: &mut impl FnMut(ScanEvent<'_>)) {
        self.done += batch.len() as u64;
        for (index, state) in batch {
            if index == self.next {
                self.emit(index, state, on_event);
                while let Some(state) = self.waiting.remove(&self.next) {
                    self.emit(self.next, state, on_event);
                }
            } else {
                self.waiting.insert(index, state);
            }
        }
    }

    fn emit(&mut self, index: u64, state: PortState, on_event: &mut impl FnMut(ScanEvent<'_>)) {
        let n = self.ports.len() as u64;
        let pos = (index % n) as usize;
        if pos == 0 {
            let target = self.targets.get(index / n).expect("index within the scan");
            on_event(ScanEvent::HostStart { target: &target });
            self.current = Some((target, HostSummary::default()));
            self.summary.hosts += 1;
        }
        let (target, host) = self
            .current
            .as_mut()
            .expect("host started before its ports");
        let port = self.ports.as_slice()[pos];
        match state {
            PortState::Open => {
                host.open.push(port);
                self.summary.open += 1;
            }
            PortState::Closed => {
                host.closed += 1;
                self.summary.closed += 1;
            }
            PortState::Filtered => {
                host.filtered += 1;
                self.summary.filtered += 1;
            }
        }
        self.summary.ports += 1;
        on_event(ScanEvent::Port {
            target,
            port,
            state,
        });
        self.next = index + 1;
        if pos + 1 == self.ports.len() {
            host.elapsed = self.host_started.elapsed();
            self.host_started = Instant::now();
            on_event(ScanEvent::HostDone {
                target,
                summary: host,
            });
            self.current = None;
        }
    }
}
