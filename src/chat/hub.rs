//! Fan-out: who is online, and delivery of lines to them. Each connection has an [`Outbox`], a
//! bounded queue drained by that connection's own writer thread, so delivering never blocks on
//! a peer: a broadcast only pushes one shared line buffer into each queue. A connection more
//! than its send-queue limit behind is disconnected ("send queue exceeded", as IRC servers do).
//!
//! "Behind" means the kernel refuses more (the client does not read) *and* more than the limit
//! waits in the queue. A queue that grows only because its writer thread has not been scheduled
//! yet is not behind; it may reach [`BURST_FACTOR`] times the limit before it is cut, which
//! bounds memory all the same.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, RwLock};

use crate::server::Conn;

/// A line as sent on the wire (with its `\n`), shared by every recipient without copying.
pub type Line = Arc<[u8]>;

/// How far past its limit a queue may grow while its writer is not blocked by the client.
pub const BURST_FACTOR: usize = 4;

/// Turns text into a shareable [`Line`].
pub fn line(text: String) -> Line {
    Arc::from(text.into_bytes().into_boxed_slice())
}

/// One connection's queue of lines waiting to be written.
#[derive(Debug)]
pub struct Outbox {
    state: Mutex<OutState>,
    ready: Condvar,
    max_bytes: usize,
}

#[derive(Debug, Default)]
struct OutState {
    queue: VecDeque<Line>,
    bytes: usize,
    closed: bool,
    overflowed: bool,
    /// The writer is asleep on `ready`: only then does a push pay for a wake-up.
    waiting: bool,
    /// The kernel refused part of the last write: the client is not keeping up.
    stuck: bool,
}

/// What [`Outbox::push`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued.
    Queued,
    /// The outbox was already closed; the line was dropped.
    Closed,
    /// This line took the queue past its limit: the outbox is now closed and the connection
    /// must be dropped.
    Overflow,
}

impl Outbox {
    /// An empty outbox holding at most `max_bytes` of unsent lines.
    pub fn new(max_bytes: usize) -> Self {
        Outbox {
            state: Mutex::new(OutState::default()),
            ready: Condvar::new(),
            max_bytes,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, OutState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a line without blocking.
    pub fn push(&self, line: Line) -> Pushed {
        let mut s = self.state();
        if s.closed {
            return Pushed::Closed;
        }
        let after = s.bytes + line.len();
        if after > self.max_bytes && (s.stuck || after > self.max_bytes * BURST_FACTOR) {
            Self::overflow(&mut s);
            drop(s);
            self.ready.notify_all();
            return Pushed::Overflow;
        }
        s.bytes += line.len();
        s.queue.push_back(line);
        let wake = s.waiting;
        s.waiting = false;
        drop(s);
        if wake {
            self.ready.notify_one();
        }
        Pushed::Queued
    }

    fn overflow(s: &mut OutState) {
        s.closed = true;
        s.overflowed = true;
        s.queue.clear();
        s.bytes = 0;
    }

    /// Marks whether the kernel is refusing this connection's writes. Returns false when,
    /// stuck, the queue is already past its limit (the outbox is then closed as overflowed).
    fn set_stuck(&self, stuck: bool) -> bool {
        let mut s = self.state();
        s.stuck = stuck;
        if stuck && s.bytes > self.max_bytes {
            Self::overflow(&mut s);
            return false;
        }
        true
    }

    /// Closes the outbox: lines already queued are still written, new ones are dropped.
    pub fn close(&self) {
        self.state().closed = true;
        self.ready.notify_all();
    }

    /// True once the queue overflowed.
    pub fn overflowed(&self) -> bool {
        self.state().overflowed
    }

    /// Waits for lines and moves every queued line into `out`. Returns false when the outbox
    /// is closed and nothing is left to write.
    pub fn take_all(&self, out: &mut Vec<Line>) -> bool {
        let mut s = self.state();
        loop {
            if !s.queue.is_empty() {
                out.extend(s.queue.drain(..));
                s.bytes = 0;
                return true;
            }
            if s.closed {
                return false;
            }
            s.waiting = true;
            s = self.ready.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Writes everything an outbox receives to the connection, several lines per system call,
/// until the outbox is closed and drained or the connection fails. Each batch is first offered
/// without blocking; only when the kernel refuses part of it is the client "stuck", and the
/// writer then blocks (up to the socket's write timeout) for the rest.
pub fn drain(conn: &Conn, outbox: &Outbox) {
    use std::io::IoSlice;
    let mut batch: Vec<Line> = Vec::with_capacity(256);
    let sock = socket2::SockRef::from(conn.stream());
    while outbox.take_all(&mut batch) {
        let total: usize = batch.iter().map(|l| l.len()).sum();
        let mut done = 0;
        let mut blocking = false;
        while done < total {
            // Skip what is written already, then hand the rest to one writev.
            let mut skip = done;
            let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(batch.len().min(1024));
            for l in &batch {
                if skip >= l.len() {
                    skip -= l.len();
                    continue;
                }
                slices.push(IoSlice::new(&l[skip..]));
                skip = 0;
                if slices.len() == 1024 {
                    break;
                }
            }
            let flags = if blocking { 0 } else { libc::MSG_DONTWAIT };
            match sock.send_vectored_with_flags(&slices, flags | libc::MSG_NOSIGNAL) {
                Ok(0) => return,
                Ok(n) => {
                    done += n;
                    if done < total && !blocking {
                        blocking = true;
                        if !outbox.set_stuck(true) {
                            return cut(conn, outbox);
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && !blocking => {
                    blocking = true;
                    if !outbox.set_stuck(true) {
                        return cut(conn, outbox);
                    }
                }
                Err(e) => {
                    tracing::debug!(peer = %conn.peer, error = %e, "write failed");
                    outbox.close();
                    conn.close();
                    return;
                }
            }
        }
        if blocking {
            outbox.set_stuck(false);
        }
        conn.count_out(total);
        batch.clear();
    }
}

/// Ends a connection whose queue overflowed while the client was not reading.
fn cut(conn: &Conn, outbox: &Outbox) {
    tracing::warn!(peer = %conn.peer, "send queue exceeded: disconnecting");
    outbox.close();
    conn.close();
}

/// One logged-in connection as the hub sees it.
#[derive(Debug)]
pub struct Member {
    /// The user's name.
    pub name: String,
    /// The connection.
    pub conn: Arc<Conn>,
    /// Where lines for it go.
    pub outbox: Arc<Outbox>,
}

/// Delivery of lines to connected users. [`LocalHub`] serves one process; a hub backed by a
/// message bus (NATS, Redis) would implement the same trait to span several tcpkit nodes.
pub trait Hub: Send + Sync {
    /// Adds a logged-in connection.
    fn join(&self, member: Arc<Member>);
    /// Removes a connection; returns its member if it was there.
    fn leave(&self, conn_id: u64) -> Option<Arc<Member>>;
    /// Sends a line to every member but the connection `except`.
    fn broadcast(&self, line: &Line, except: Option<u64>);
    /// Sends a line to every connection of user `name` (any case); returns how many got it.
    fn send_to(&self, name: &str, line: &Line) -> usize;
    /// The names online (each once, sorted) with their connections' addresses.
    fn online(&self) -> Vec<(String, Vec<SocketAddr>)>;
    /// Disconnects every connection of `name`; returns how many.
    fn kick(&self, name: &str) -> usize;
    /// Disconnects everyone.
    fn kick_all(&self) -> usize;
}

/// The in-process hub: members by connection id, and an immutable snapshot of them that a
/// broadcast walks without holding any lock.
#[derive(Default)]
pub struct LocalHub {
    members: Mutex<HashMap<u64, Arc<Member>>>,
    snapshot: RwLock<Arc<Vec<Arc<Member>>>>,
}

impl LocalHub {
    fn members(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Member>>> {
        self.members.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn refresh(&self, members: &HashMap<u64, Arc<Member>>) {
        let snap = Arc::new(members.values().cloned().collect::<Vec<_>>());
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = snap;
    }

    fn current(&self) -> Arc<Vec<Arc<Member>>> {
        self.snapshot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn deliver(m: &Member, line: &Line) {
        if m.outbox.push(line.clone()) == Pushed::Overflow {
            tracing::warn!(peer = %m.conn.peer, user = %m.name, "send queue exceeded: disconnecting");
            m.conn.close();
        }
    }
}

impl Hub for LocalHub {
    fn join(&self, member: Arc<Member>) {
        let mut m = self.members();
        m.insert(member.conn.id, member);
        self.refresh(&m);
    }

    fn leave(&self, conn_id: u64) -> Option<Arc<Member>> {
        let mut m = self.members();
        let gone = m.remove(&conn_id);
        if gone.is_some() {
            self.refresh(&m);
        }
        gone
    }

    fn broadcast(&self, line: &Line, except: Option<u64>) {
        for m in self.current().iter() {
            if Some(m.conn.id) != except {
                Self::deliver(m, line);
            }
        }
    }

    fn send_to(&self, name: &str, line: &Line) -> usize {
        let mut n = 0;
        for m in self.current().iter() {
            if m.name.eq_ignore_ascii_case(name) {
                Self::deliver(m, line);
                n += 1;
            }
        }
        n
    }

    fn online(&self) -> Vec<(String, Vec<SocketAddr>)> {
        let mut by_name: std::collections::BTreeMap<String, Vec<SocketAddr>> = Default::default();
        for m in self.current().iter() {
            by_name.entry(m.name.clone()).or_default().push(m.conn.peer);
        }
        by_name.into_iter().collect()
    }

    fn kick(&self, name: &str) -> usize {
        let mut n = 0;
        for m in self.current().iter() {
            if m.name.eq_ignore_ascii_case(name) {
                m.outbox.close();
                m.conn.close();
                n += 1;
            }
        }
        n
    }

    fn kick_all(&self) -> usize {
        let all = self.current();
        for m in all.iter() {
            m.outbox.close();
            m.conn.close();
        }
        all.len()
    }
}
