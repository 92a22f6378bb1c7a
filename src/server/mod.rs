//! The multithreaded server core: a listener thread, one OS thread per client, and a
//! [`Service`] plugged in (echo, chat). The core owns what every service shares: binding with
//! port fallback, limits, the client registry, pause and resume, and graceful shutdown.
//!
//! Shutdown sequence ([`ServerHandle::shutdown`]): stop accepting (set the flag, wake the
//! blocked `accept` with a connect to ourselves, join the listener thread, which drops the
//! socket), then `shutdown(Both)` every live client socket so each client thread's blocked read
//! returns, then wait (bounded) until every client thread has unregistered.

pub mod console;
mod listener;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use listener::bind_with_fallback;

/// The default port of the servers.
pub const DEFAULT_PORT: u16 = 9090;
/// How many ports after a busy one the server tries before giving up.
pub const PORT_TRIES: u16 = 20;
/// The default client limit; see README ("What bounds the client count").
pub const DEFAULT_MAX_CLIENTS: usize = 10_000;
/// Stack size of a client thread: small, since services keep buffers small and on the heap
/// only when needed. Only touched pages cost memory.
pub const CLIENT_STACK: usize = 128 * 1024;
/// How long shutdown waits for client threads to finish after their sockets are shut down.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// The line a client over the limit gets before the server closes its connection.
pub const FULL_LINE: &[u8] = b"! server full, try again later\n";

/// The most clients one process can serve on this machine with `threads_per_client` threads
/// each, and the name of the limit that binds: open files (one socket each), threads
/// (`kernel.pid_max`, `kernel.threads-max`) or memory mappings (`vm.max_map_count`, two per
/// thread stack), each less a reserve for everything else.
pub fn client_ceiling(fd_limit: u64, threads_per_client: usize) -> (usize, &'static str) {
    let per = threads_per_client.max(1);
    const RESERVE: usize = 1000;
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
    };
    let mut best = (crate::fdlimit::usable(fd_limit), "the open-files limit");
    let threads = read("/proc/sys/kernel/pid_max")
        .into_iter()
        .chain(read("/proc/sys/kernel/threads-max"))
        .min();
    if let Some(t) = threads.map(|t| (t.saturating_sub(RESERVE) / per).max(1))
        && t < best.0
    {
        best = (t, "the thread limit (kernel.pid_max)");
    }
    if let Some(m) =
        read("/proc/sys/vm/max_map_count").map(|m| ((m / 2).saturating_sub(RESERVE) / per).max(1))
        && m < best.0
    {
        best = (m, "vm.max_map_count");
    }
    best
}

/// Server settings. `Default` gives 127.0.0.1:9090 and the limits above.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on.
    pub host: IpAddr,
    /// Port to listen on (0: the system chooses); busy ports fall back to the next ones.
    pub port: u16,
    /// Clients served at once; more are told the server is full.
    pub max_clients: usize,
    /// A client silent this long is disconnected; `None` waits forever.
    pub idle_timeout: Option<Duration>,
    /// Stack size of each client thread.
    pub stack_size: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: DEFAULT_PORT,
            max_clients: DEFAULT_MAX_CLIENTS,
            idle_timeout: None,
            stack_size: CLIENT_STACK,
        }
    }
}

/// A service: the code that talks to one client, plus its answers to the admin console.
pub trait Service: Send + Sync + 'static {
    /// Serves one client on the calling thread (the client's own thread) until the client
    /// leaves or its socket is shut down. Read and write timeouts are already set.
    fn serve(&self, conn: Arc<Conn>);

    /// The console's `clear-users`: empty the identification store, say what was done.
    fn clear_users(&self) -> String {
        "this service keeps no user store: nothing to clear".to_string()
    }

    /// A console command the core does not know (`who`, `kick NAME`): `Some(reply)` if the
    /// service handles it.
    fn console_command(&self, _command: &str, _args: &str) -> Option<String> {
        None
    }

    /// Threads one client costs (the core's reader thread, plus any the service starts), for
    /// sizing the client limit below the kernel's thread limit.
    fn threads_per_client(&self) -> usize {
        1
    }

    /// Lines added to the console's `help`, one per service command.
    fn console_help(&self) -> &'static [&'static str] {
        &[]
    }

    /// Called once at shutdown, after the listener stopped and before clients are closed.
    fn on_shutdown(&self) {}
}

/// One connected client: its socket (shared by its thread and the registry, never duplicated)
/// and its counters.
#[derive(Debug)]
pub struct Conn {
    /// Unique per server run.
    pub id: u64,
    /// The client's address.
    pub peer: SocketAddr,
    stream: TcpStream,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

impl Conn {
    /// The socket; `&TcpStream` reads and writes, so no clone (and no extra descriptor) is made.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Counts bytes received from the client.
    pub fn count_in(&self, n: usize) {
        self.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts bytes sent to the client.
    pub fn count_out(&self, n: usize) {
        self.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Ends the connection both ways: the client sees end of stream, its thread's read returns.
    pub fn close(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// A snapshot for the console's `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The address the server listens (or listened) on.
    pub addr: SocketAddr,
    /// False while paused.
    pub listening: bool,
    /// Clients connected now.
    pub clients_now: usize,
    /// Clients accepted since start (refused ones not counted).
    pub clients_served: u64,
    /// Bytes received from clients since start.
    pub bytes_in: u64,
    /// Bytes sent to clients since start.
    pub bytes_out: u64,
}

/// State shared by the listener thread, the client threads and the handle.
pub(crate) struct Shared {
    config: ServerConfig,
    service: Arc<dyn Service>,
    /// Live clients by id. Client threads add themselves through the listener and remove
    /// themselves through [`ClientGuard`]; shutdown closes every socket listed here.
    clients: Mutex<HashMap<u64, Arc<Conn>>>,
    /// Signalled whenever a client leaves, for shutdown's wait.
    left: Condvar,
    next_id: AtomicU64,
    served: AtomicU64,
    /// Byte counts of clients that have left (live ones are summed from the registry).
    bytes_in_done: AtomicU64,
    bytes_out_done: AtomicU64,
    stopping: AtomicBool,
}

impl Shared {
    fn clients(&self) -> MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        // A panicking client thread must not take the registry down with it.
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Removes a client from the registry when its thread ends, however it ends.
struct ClientGuard {
    shared: Arc<Shared>,
    conn: Arc<Conn>,
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        let c = &self.conn;
        let (bin, bout) = (
            c.bytes_in.load(Ordering::Relaxed),
            c.bytes_out.load(Ordering::Relaxed),
        );
        self.shared.bytes_in_done.fetch_add(bin, Ordering::Relaxed);
        self.shared
            .bytes_out_done
            .fetch_add(bout, Ordering::Relaxed);
        c.close();
        let mut clients = self.shared.clients();
        clients.remove(&c.id);
        let now = clients.len();
        drop(clients);
        self.shared.left.notify_all();
        tracing::info!(peer = %c.peer, bytes_in = bin, bytes_out = bout, clients = now, "client disconnected");
    }
}

/// Control of a running server: pause, resume, status, shutdown. Cheap to share by reference.
pub struct ServerHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    acceptor: Mutex<Option<listener::Acceptor>>,
}

/// Why the server could not start or resume listening.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Every port tried was busy.
    #[error("ports {first}-{last} on {host} are all in use")]
    AllBusy {
        /// The host.
        host: IpAddr,
        /// First port tried.
        first: u16,
        /// Last port tried.
        last: u16,
    },
    /// Binding or listening failed for another reason.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the system said.
        source: io::Error,
    },
    /// The listener thread could not be started.
    #[error("cannot start the listener thread: {0}")]
    Thread(io::Error),
}

impl ServerHandle {
    /// Starts serving on an already bound listener: spawns the listener thread and returns.
    ///
    /// # Errors
    /// [`ServerError::Thread`] when the listener thread cannot start.
    pub fn start(
        listener: TcpListener,
        config: ServerConfig,
        service: Arc<dyn Service>,
    ) -> Result<ServerHandle, ServerError> {
        let addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: SocketAddr::new(config.host, config.port),
            source,
        })?;
        let shared = Arc::new(Shared {
            config,
            service,
            clients: Mutex::new(HashMap::new()),
            left: Condvar::new(),
            next_id: AtomicU64::new(1),
            served: AtomicU64::new(0),
            bytes_in_done: AtomicU64::new(0),
            bytes_out_done: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
        });
        let acceptor = listener::Acceptor::spawn(listener, shared.clone())?;
        tracing::info!(%addr, "listening");
        Ok(ServerHandle {
            shared,
            addr,
            acceptor: Mutex::new(Some(acceptor)),
        })
    }

    /// The address the server listens on (kept while paused, for `resume`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The service plugged into this server.
    pub fn service(&self) -> &Arc<dyn Service> {
        &self.shared.service
    }

    fn acceptor(&self) -> MutexGuard<'_, Option<listener::Acceptor>> {
        self.acceptor.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stops listening and releases the port; connected clients stay. Returns false if already
    /// paused.
    pub fn pause(&self) -> bool {
        let Some(acceptor) = self.acceptor().take() else {
            return false;
        };
        acceptor.stop(self.addr);
        if !self.shared.stopping.load(Ordering::SeqCst) {
            tracing::info!(addr = %self.addr, "paused: not listening");
        }
        true
    }

    /// Listens again on the same address. Returns false if it was not paused.
    ///
    /// # Errors
    /// [`ServerError::Bind`] when the port was taken meanwhile, [`ServerError::Thread`].
    pub fn resume(&self) -> Result<bool, ServerError> {
        let mut slot = self.acceptor();
        if slot.is_some() || self.shared.stopping.load(Ordering::SeqCst) {
            return Ok(false);
        }
        let listener = listener::bind(self.addr).map_err(|source| ServerError::Bind {
            addr: self.addr,
            source,
        })?;
        *slot = Some(listener::Acceptor::spawn(listener, self.shared.clone())?);
        tracing::info!(addr = %self.addr, "resumed: listening");
        Ok(true)
    }

    /// A snapshot of the server's state and counters.
    pub fn status(&self) -> Status {
        let clients = self.shared.clients();
        let (mut bin, mut bout) = (
            self.shared.bytes_in_done.load(Ordering::Relaxed),
            self.shared.bytes_out_done.load(Ordering::Relaxed),
        );
        for c in clients.values() {
            bin += c.bytes_in.load(Ordering::Relaxed);
            bout += c.bytes_out.load(Ordering::Relaxed);
        }
        Status {
            addr: self.addr,
            listening: self.acceptor().is_some(),
            clients_now: clients.len(),
            clients_served: self.shared.served.load(Ordering::Relaxed),
            bytes_in: bin,
            bytes_out: bout,
        }
    }

    /// Stops accepting, closes every client and waits (at most [`SHUTDOWN_GRACE`]) for their
    /// threads to finish. Idempotent.
    pub fn shutdown(&self) {
        if self.shared.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        tracing::info!("shutting down");
        self.pause();
        self.shared.service.on_shutdown();
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        let mut clients = self.shared.clients();
        for c in clients.values() {
            c.close();
        }
        while !clients.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!(clients = clients.len(), "clients still running at shutdown");
                break;
            }
            clients = self
                .shared
                .left
                .wait_timeout(clients, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        tracing::info!("server stopped");
    }
}

/// Runs a server to the end: binds (with fallback, each busy port reported on `diag` and in
/// the log), starts the listener, writes `listening on ADDR:PORT` to `out`, takes console
/// commands (and Ctrl-C/SIGTERM) on the calling thread, and shuts down gracefully.
///
/// # Errors
/// [`ServerError`] when no port can be bound or the listener thread cannot start.
pub fn run(
    config: ServerConfig,
    service: Arc<dyn Service>,
    logging: &crate::logging::Logging,
    console: bool,
    out: &mut impl io::Write,
    diag: &mut impl io::Write,
) -> Result<(), ServerError> {
    let (listener, busy) = bind_with_fallback(config.host, config.port)?;
    for p in &busy {
        tracing::warn!(port = p, "port busy, trying the next one");
        let _ = writeln!(diag, "port {p} is busy, trying the next one");
    }
    let inputs = console::inputs(console);
    let handle = ServerHandle::start(listener, config, service)?;
    let _ = writeln!(out, "listening on {}", handle.addr());
    let _ = out.flush();
    let _ = console::run(&handle, logging, &inputs, out);
    handle.shutdown();
    Ok(())
}
