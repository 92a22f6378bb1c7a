//! Binding (with fallback to the next free port) and the accept loop: limits, the client
//! registry entry, and one named OS thread per client.

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use super::{ClientGuard, Conn, FULL_LINE, PORT_TRIES, ServerError, Shared};

/// Listen backlog: room for a burst of connects while the accept thread spawns threads.
const BACKLOG: i32 = 4096;
/// Pause after an accept error such as EMFILE, so a full descriptor table is not spun on.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Binds and listens on `addr` (SO_REUSEADDR, a deep backlog).
pub(crate) fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(false).ok();
    }
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Binds `host:port`, or the next free port of the following [`PORT_TRIES`] when it is busy.
/// Returns the listener and the busy ports skipped. Port 0 lets the system choose.
///
/// # Errors
/// [`ServerError::AllBusy`] when every port tried is busy; [`ServerError::Bind`] for other
/// failures (permission, address not on this machine).
pub fn bind_with_fallback(host: IpAddr, port: u16) -> Result<(TcpListener, Vec<u16>), ServerError> {
    let mut busy = Vec::new();
    let last = if port == 0 {
        0
    } else {
        port.saturating_add(PORT_TRIES - 1)
    };
    for p in port..=last {
        let addr = SocketAddr::new(host, p);
        match bind(addr) {
            Ok(l) => return Ok((l, busy)),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => busy.push(p),
            Err(source) => return Err(ServerError::Bind { addr, source }),
        }
    }
    Err(ServerError::AllBusy {
        host,
        first: port,
        last,
    })
}

/// The running accept loop: its thread and its stop flag.
pub(crate) struct Acceptor {
    thread: JoinHandle<()>,
    stop: Arc<AtomicBool>,
}

impl Acceptor {
    pub(crate) fn spawn(listener: TcpListener, shared: Arc<Shared>) -> Result<Self, ServerError> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("listener".into())
            .spawn(move || accept_loop(listener, &shared, &flag))
            .map_err(ServerError::Thread)?;
        Ok(Acceptor { thread, stop })
    }

    /// Stops the loop: sets the flag, wakes the blocked `accept` by connecting to it, and
    /// waits for the thread, which drops the listening socket (releasing the port).
    pub(crate) fn stop(self, addr: SocketAddr) {
        self.stop.store(true, Ordering::SeqCst);
        let wake = SocketAddr::new(wake_ip(addr.ip()), addr.port());
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        let _ = self.thread.join();
    }
}

/// The address to connect to for waking a listener bound to `ip` (a wildcard needs loopback).
fn wake_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(a) if a.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(a) if a.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    }
}

fn accept_loop(listener: TcpListener, shared: &Arc<Shared>, stop: &AtomicBool) {
    loop {
        let accepted = listener.accept();
        if stop.load(Ordering::SeqCst) {
            break;
        }
        match accepted {
            Ok((stream, peer)) => admit(stream, peer, shared),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                // EMFILE and friends: the connection stays queued; try again shortly.
                tracing::warn!(error = %e, "accept failed");
                std::thread::sleep(ACCEPT_BACKOFF);
            }
        }
    }
}

/// Turns an accepted socket into a served client, or refuses it politely.
fn admit(stream: TcpStream, peer: SocketAddr, shared: &Arc<Shared>) {
    let config = &shared.config;
    let mut clients = shared.clients();
    if clients.len() >= config.max_clients {
        drop(clients);
        refuse(stream, peer, "client limit reached");
        return;
    }
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(config.idle_timeout);
    let _ = stream.set_write_timeout(config.idle_timeout);
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let conn = Arc::new(Conn {
        id,
        peer,
        stream,
        bytes_in: Default::default(),
        bytes_out: Default::default(),
    });
    clients.insert(id, conn.clone());
    let now = clients.len();
    drop(clients);
    tracing::info!(%peer, clients = now, "client connected");
    let (thread_shared, thread_conn) = (shared.clone(), conn.clone());
    let service = shared.service.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("client-{id}"))
        .stack_size(config.stack_size)
        .spawn(move || {
            let _guard = ClientGuard {
                shared: thread_shared,
                conn: thread_conn.clone(),
            };
            service.serve(thread_conn);
        });
    match spawned {
        Ok(_) => {
            shared.served.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            // Out of threads or memory: tell the client, as for a full server.
            shared.clients().remove(&id);
            tracing::warn!(%peer, error = %e, "cannot start a client thread");
            let _ = (&conn.stream).write_all(FULL_LINE);
            conn.close();
        }
    }
}

fn refuse(mut stream: TcpStream, peer: SocketAddr, why: &str) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = stream.write_all(FULL_LINE);
    tracing::warn!(%peer, reason = why, "client refused: server full");
}
