//! Fan-out: who is online, and delivery of lines to them. Each connection has an [`Outbox`].
//! A line for a connection whose queue is empty is written at once, without blocking
//! (`MSG_DONTWAIT`), by whichever thread delivers it; whatever the kernel does not take waits in
//! the queue for that connection's own writer thread, which sends everything queued in one
//! `writev`. So delivering never blocks on a peer, an idle room pays no thread wake-up per line,
//! and one stalled reader fills only its own queue. A connection more than its send-queue limit
//! behind is disconnected ("send queue exceeded", as IRC servers do).
//!
//! "Behind" means the kernel refuses more (the client does not read) *and* more than the limit
//! waits in the queue. A queue that grows only because its writer thread has not been scheduled
//! yet is not behind; it may reach [`BURST_FACTOR`] times the limit before it is cut, which
//! bounds memory all the same.

use std::collections::{HashMap, VecDeque};
use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, RwLock};

use crate::server::Conn;

/// A line as sent on the wire (with its `\n`), shared by every recipient without copying.
pub type Line = Arc<[u8]>;

/// How far past its limit a queue may grow while its writer is not blocked by the client.
pub const BURST_FACTOR: usize = 4;
/// The most slices handed to one `writev` (the kernel's IOV_MAX).
const MAX_SLICES: usize = 1024;

/// Turns text into a shareable [`Line`].
pub fn line(text: String) -> Line {
    Arc::from(text.into_bytes().into_boxed_slice())
}

/// Several lines in one shared buffer, each tagged with the connection it came from: what the
/// relay hands the hub. Every recipient queues a view of the same buffer (one reference, one
/// `iovec`), leaving out only its own lines, so fan-out costs neither a copy nor a reference
/// count per line and recipient.
#[derive(Debug, Clone)]
pub struct Batch {
    buf: Line,
    /// Each line's byte range in `buf` and the connection it came from.
    spans: Vec<(std::ops::Range<usize>, Option<u64>)>,
    /// The connections with lines in the batch, sorted, each once: everyone else gets all
    /// of `buf` as one view.
    senders: Vec<u64>,
}

impl Batch {
    /// Builds a batch from formatted lines and their senders.
    pub fn new<'a>(lines: impl IntoIterator<Item = (&'a str, Option<u64>)>) -> Self {
        let mut buf = Vec::new();
        let mut spans = Vec::new();
        let mut senders = Vec::new();
        for (text, from) in lines {
            let start = buf.len();
            buf.extend_from_slice(text.as_bytes());
            spans.push((start..buf.len(), from));
            senders.extend(from);
        }
        senders.sort_unstable();
        senders.dedup();
        Batch {
            buf: Arc::from(buf.into_boxed_slice()),
            spans,
            senders,
        }
    }

    /// The parts of the buffer that connection `me` should get: everything but its own lines,
    /// as few ranges as possible.
    fn view_for(&self, me: u64) -> Vec<Chunk> {
        if self.senders.binary_search(&me).is_err() {
            return if self.buf.is_empty() {
                Vec::new()
            } else {
                vec![Chunk::whole(self.buf.clone())]
            };
        }
        let mut out: Vec<Chunk> = Vec::new();
        for (range, from) in &self.spans {
            if *from == Some(me) {
                continue;
            }
            match out.last_mut() {
                Some(c) if c.end == range.start => c.end = range.end,
                _ => out.push(Chunk {
                    buf: self.buf.clone(),
                    start: range.start,
                    end: range.end,
                }),
            }
        }
        out
    }
}

/// A piece of a shared buffer waiting to be written.
#[derive(Debug, Clone)]
struct Chunk {
    buf: Line,
    start: usize,
    end: usize,
}

impl Chunk {
    fn whole(buf: Line) -> Self {
        let end = buf.len();
        Chunk { buf, start: 0, end }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn len(&self) -> usize {
        self.end - self.start
    }
}

/// One connection's output: the socket and the queue of lines the kernel has not taken yet.
#[derive(Debug)]
pub struct Outbox {
    conn: Arc<Conn>,
    state: Mutex<OutState>,
    ready: Condvar,
    max_bytes: usize,
}

#[derive(Debug, Default)]
struct OutState {
    queue: VecDeque<Chunk>,
    /// Unwritten bytes in the queue.
    bytes: usize,
    closed: bool,
    /// The writer is asleep on `ready`: only then does a push pay for a wake-up.
    waiting: bool,
    /// The writer is writing outside the lock: nobody else may write now.
    writing: bool,
    /// The kernel refused part of the last write: the client is not keeping up.
    stuck: bool,
}

/// What [`Outbox::push`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Written or queued.
    Queued,
    /// The outbox was already closed; the line was dropped.
    Closed,
    /// This line took the queue past its limit: the outbox is closed, the connection shut
    /// down and the reason logged.
    Overflow,
}

/// Writes as much of `chunks` (the first starting at byte `skip`) as the socket takes, without
/// blocking unless asked; returns the bytes written, or the error (`WouldBlock` counts as 0).
fn send_now<'a>(
    conn: &Conn,
    chunks: impl Iterator<Item = &'a Chunk>,
    skip: usize,
    blocking: bool,
) -> std::io::Result<usize> {
    let slices: Vec<IoSlice<'_>> = chunks
        .take(MAX_SLICES)
        .enumerate()
        .map(|(i, c)| {
            IoSlice::new(if i == 0 {
                &c.bytes()[skip..]
            } else {
                c.bytes()
            })
        })
        .collect();
    let flags = libc::MSG_NOSIGNAL | if blocking { 0 } else { libc::MSG_DONTWAIT };
    loop {
        match socket2::SockRef::from(conn.stream()).send_vectored_with_flags(&slices, flags) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(0),
            Err(e) => return Err(e),
        }
    }
}

impl Outbox {
    /// An empty outbox for `conn`, holding at most `max_bytes` of unsent lines.
    pub fn new(conn: Arc<Conn>, max_bytes: usize) -> Self {
        Outbox {
            conn,
            state: Mutex::new(OutState::default()),
            ready: Condvar::new(),
            max_bytes,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, OutState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Delivers one line without blocking.
    pub fn push(&self, line: Line) -> Pushed {
        self.deliver(vec![Chunk::whole(line)])
    }

    /// Delivers a batch, leaving out the lines that came from this outbox's own connection.
    pub fn push_batch(&self, batch: &Batch) -> Pushed {
        self.deliver(batch.view_for(self.conn.id))
    }

    /// Writes `chunks` at once if nothing is queued (as far as the kernel takes them) and
    /// queues the rest for the writer thread, which is woken at most once.
    fn deliver(&self, chunks: Vec<Chunk>) -> Pushed {
        if chunks.is_empty() {
            return Pushed::Queued;
        }
        let mut s = self.state();
        if s.closed {
            return Pushed::Closed;
        }
        let mut first = 0;
        let mut skip_bytes = 0;
        if s.queue.is_empty() && !s.writing && !s.stuck {
            match send_now(&self.conn, chunks.iter(), 0, false) {
                Ok(mut n) => {
                    self.conn.count_out(n);
                    while first < chunks.len() && n >= chunks[first].len() {
                        n -= chunks[first].len();
                        first += 1;
                    }
                    skip_bytes = n;
                }
                Err(_) => {
                    // The client is gone; its reader thread will notice and clean up.
                    s.closed = true;
                    drop(s);
                    self.conn.close();
                    self.ready.notify_all();
                    return Pushed::Closed;
                }
            }
        }
        if first == chunks.len() {
            return Pushed::Queued;
        }
        let added: usize = chunks[first..].iter().map(Chunk::len).sum::<usize>() - skip_bytes;
        let after = s.bytes + added;
        if after > self.max_bytes && (s.stuck || after > self.max_bytes * BURST_FACTOR) {
            Self::overflow(&mut s);
            drop(s);
            self.cut();
            return Pushed::Overflow;
        }
        s.bytes = after;
        let mut rest = chunks.into_iter().skip(first);
        if let Some(mut c) = rest.next() {
            c.start += skip_bytes;
            s.queue.push_back(c);
        }
        s.queue.extend(rest);
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
        s.queue.clear();
        s.bytes = 0;
    }

    /// Closes the outbox: lines already queued are still written, new ones are dropped.
    pub fn close(&self) {
        self.state().closed = true;
        self.ready.notify_all();
    }

    /// The writer thread's loop: waits for queued lines and writes them, several per system
    /// call, until the outbox is closed and drained or the connection fails. A batch is first
    /// offered without blocking; when the kernel refuses part of it the client is "stuck", and
    /// the writer blocks (up to the socket's write timeout) for the rest.
    pub fn drain(&self) {
        let mut batch: Vec<Chunk> = Vec::with_capacity(256);
        loop {
            {
                let mut s = self.state();
                loop {
                    if !s.queue.is_empty() {
                        break;
                    }
                    s.writing = false;
                    if s.closed {
                        return;
                    }
                    s.waiting = true;
                    s = self.ready.wait(s).unwrap_or_else(|e| e.into_inner());
                }
                batch.extend(s.queue.drain(..));
                s.bytes = 0;
                s.writing = true;
            }
            let mut blocking = false;
            while !batch.is_empty() {
                match send_now(&self.conn, batch.iter(), 0, blocking) {
                    Ok(mut n) => {
                        self.conn.count_out(n);
                        let mut done = 0;
                        while done < batch.len() && n >= batch[done].len() {
                            n -= batch[done].len();
                            done += 1;
                        }
                        batch.drain(..done);
                        if let Some(c) = batch.first_mut() {
                            c.start += n;
                        }
                        if !batch.is_empty() && !blocking {
                            blocking = true;
                            if !self.set_stuck(true) {
                                return self.cut();
                            }
                        }
                    }
                    Err(e) => {
                        tracing::debug!(peer = %self.conn.peer, error = %e, "write failed");
                        self.close();
                        self.conn.close();
                        return;
                    }
                }
            }
            if blocking {
                self.set_stuck(false);
            }
        }
    }

    /// Marks whether the kernel is refusing this connection's writes. Returns false when,
    /// stuck, the queue is already past its limit (the outbox is then closed).
    fn set_stuck(&self, stuck: bool) -> bool {
        let mut s = self.state();
        s.stuck = stuck;
        if stuck && s.bytes > self.max_bytes {
            Self::overflow(&mut s);
            return false;
        }
        true
    }

    /// Ends a connection whose queue overflowed while the client was not reading.
    fn cut(&self) {
        tracing::warn!(peer = %self.conn.peer, "send queue exceeded: disconnecting");
        self.close();
        self.conn.close();
    }
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
    /// Sends a batch of lines, in order, each to every member but the connection it came
    /// from; each recipient gets one view of the shared buffer and is woken at most once.
    fn broadcast_all(&self, batch: &Batch);
    /// Sends a line to every connection of user `name` (any case); returns how many got it.
    fn send_to(&self, name: &str, line: &Line) -> usize;
    /// The names online (each once, sorted) with their connections' addresses.
    fn online(&self) -> Vec<(String, Vec<SocketAddr>)>;
    /// How many logged-in connections there are.
    fn connections(&self) -> usize;
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

    fn broadcast_all(&self, batch: &Batch) {
        for m in self.current().iter() {
            m.outbox.push_batch(batch);
        }
    }

    fn send_to(&self, name: &str, line: &Line) -> usize {
        let mut n = 0;
        for m in self.current().iter() {
            if m.name.eq_ignore_ascii_case(name) {
                m.outbox.push(line.clone());
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

    fn connections(&self) -> usize {
        self.current().len()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn text(chunks: &[Chunk]) -> String {
        chunks
            .iter()
            .map(|c| String::from_utf8_lossy(c.bytes()).into_owned())
            .collect()
    }

    #[test]
    fn a_view_leaves_out_only_the_recipients_own_lines() {
        let batch = Batch::new([
            ("<a> 1\n", Some(1)),
            ("<b> 2\n", Some(2)),
            ("<a> 3\n", Some(1)),
            ("* x joined\n", None),
            ("<b> 4\n", Some(2)),
        ]);
        let all = "<a> 1\n<b> 2\n<a> 3\n* x joined\n<b> 4\n";
        let for_other = batch.view_for(7);
        assert_eq!(for_other.len(), 1, "a non-sender gets one view");
        assert_eq!(text(&for_other), all);
        assert_eq!(text(&batch.view_for(1)), "<b> 2\n* x joined\n<b> 4\n");
        let for_b = batch.view_for(2);
        assert_eq!(text(&for_b), "<a> 1\n<a> 3\n* x joined\n");
        assert_eq!(for_b.len(), 2, "adjacent lines share a view");
        assert!(Batch::new([]).view_for(1).is_empty());
    }
}
