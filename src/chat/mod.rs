//! The chat service, built on an authentication server: accounts with argon2id hashes, clients
//! known by address greeted by name, session tokens, a persistent public history, and each
//! line broadcast to everyone else. It plugs into the [server core](crate::server) like echo.
//!
//! Public messages take one path: the sender's thread sanitizes the line and hands it to the
//! relay thread, which stores a batch of lines in one transaction (a group commit) and only
//! then formats the batch into one shared buffer for the [`hub::Hub`] to deliver. So a
//! message any client saw is on disk, and every client sees messages in the same order.
//! Joins and leaves take the same path (not stored), so a crowd leaving at once costs each
//! remaining client a few writes, not one per departure.

pub mod auth;
pub mod client;
pub mod hub;
pub mod protocol;
mod session;

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use crate::server::{Conn, Service};
use crate::store::{NewMessage, Store};
use hub::{Batch, Hub, Outbox, line};

/// The default send-queue limit: a client this far behind is disconnected.
pub const DEFAULT_MAX_SENDQ: usize = 1024 * 1024;
/// The most lines stored in one transaction.
const GROUP_COMMIT: usize = 4096;
/// The most bytes of text stored in one transaction: a batch is also a burst into every
/// outbox, so it stays well below the send-queue limits.
const GROUP_COMMIT_BYTES: usize = 256 * 1024;
/// In a busy room the relay keeps a batch open while lines keep coming (each within
/// [`LINGER_GAP`] of the last), up to this long at most: under load a write per line and
/// recipient becomes one per batch. In a quiet room a line does not wait.
const LINGER: Duration = Duration::from_millis(100);
/// In a busy room a batch may stay open this long per connected recipient (up to [`LINGER`]):
/// fan-out costs a write per recipient and batch, so bigger rooms get bigger batches.
const LINGER_PER_MEMBER: Duration = Duration::from_micros(100);
/// See [`LINGER`]: the longest pause between lines that keeps a busy room's batch open.
const LINGER_GAP: Duration = Duration::from_millis(2);
/// The most lines in a quiet room's batch: what is already waiting goes out at once, and the
/// next, larger batches gather while it is stored and sent.
const FIRST_BATCH: usize = 256;
/// A batch this large means the room is busy.
const BUSY_BATCH: usize = 32;
/// Lines waiting for the relay before senders wait (back-pressure to fast senders).
const RELAY_QUEUE: usize = 16 * 1024;

/// Chat settings; `Default` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct ChatConfig {
    /// History lines replayed at login (0: none).
    pub history: usize,
    /// The longest line a client may send, in bytes.
    pub max_line: usize,
    /// Bytes a client may be behind before it is disconnected.
    pub max_sendq: usize,
    /// How long a session token is valid.
    pub token_ttl: Duration,
    /// Password hashes computed at once (each takes ~19 MiB).
    pub hash_permits: usize,
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            history: protocol::DEFAULT_HISTORY,
            max_line: protocol::DEFAULT_MAX_LINE,
            max_sendq: DEFAULT_MAX_SENDQ,
            token_ttl: auth::TOKEN_TTL,
            hash_permits: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// A line on its way to everyone else, through the relay, so that every client sees every
/// line in the same order and a burst of lines costs each client one write.
enum Outgoing {
    /// A public message: stored before it is sent.
    Public {
        name: String,
        text: String,
        from: u64,
        /// The sender's outbox, to tell it if the line could not be stored.
        sender: Arc<Outbox>,
    },
    /// A notice such as `* bob joined`, formatted, not stored; `except` does not get it.
    Notice { line: String, except: Option<u64> },
}

impl Outgoing {
    fn len(&self) -> usize {
        match self {
            Outgoing::Public { text, .. } => text.len(),
            Outgoing::Notice { line, .. } => line.len(),
        }
    }
}

/// The chat service: shared by every connection thread.
pub struct Chat {
    config: ChatConfig,
    store: Arc<dyn Store>,
    hub: Arc<dyn Hub>,
    hasher: auth::Hasher,
    throttle: auth::Throttle,
    relay: Sender<Outgoing>,
}

impl Chat {
    /// A chat over `store` and `hub`; starts the relay thread.
    ///
    /// # Errors
    /// When the relay thread cannot start.
    pub fn new(
        config: ChatConfig,
        store: Arc<dyn Store>,
        hub: Arc<dyn Hub>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = crossbeam_channel::bounded(RELAY_QUEUE);
        let (s, h) = (store.clone(), hub.clone());
        std::thread::Builder::new()
            .name("relay".into())
            .spawn(move || relay_loop(&rx, s.as_ref(), h.as_ref()))?;
        Ok(Chat {
            hasher: auth::Hasher::new(config.hash_permits),
            config,
            store,
            hub,
            throttle: auth::Throttle::default(),
            relay: tx,
        })
    }

    fn relay(&self, name: String, text: String, from: u64, sender: Arc<Outbox>) {
        self.to_relay(Outgoing::Public {
            name,
            text,
            from,
            sender,
        });
    }

    /// Sends an information line (`* TEXT`) to everyone but `except`, in order with the
    /// public messages; many at once (a crowd leaving) cost each client one write.
    fn notice(&self, text: &str, except: Option<u64>) {
        self.to_relay(Outgoing::Notice {
            line: protocol::info(text),
            except,
        });
    }

    fn to_relay(&self, msg: Outgoing) {
        if self.relay.send(msg).is_err() {
            tracing::error!("relay thread gone: message dropped");
        }
    }
}

/// Stores each batch of waiting public lines in one transaction, then delivers the batch.
fn relay_loop(rx: &Receiver<Outgoing>, store: &dyn Store, hub: &dyn Hub) {
    let mut batch: Vec<Outgoing> = Vec::with_capacity(GROUP_COMMIT);
    let mut busy = false;
    while let Ok(first) = rx.recv() {
        let mut bytes = first.len();
        batch.push(first);
        // Quiet room (the last batch was small): take what is already waiting and go. Busy
        // room: stay open while lines keep coming, within a window that grows with the room.
        let (gap, open_for, most) = if busy {
            let window = (LINGER_PER_MEMBER * hub.connections() as u32).clamp(LINGER_GAP, LINGER);
            (LINGER_GAP, window, GROUP_COMMIT)
        } else {
            (Duration::ZERO, Duration::ZERO, FIRST_BATCH)
        };
        let until = std::time::Instant::now() + open_for;
        while batch.len() < most && bytes < GROUP_COMMIT_BYTES {
            let next = (std::time::Instant::now() + gap).min(until);
            match rx.recv_deadline(next) {
                Ok(m) => {
                    bytes += m.len();
                    batch.push(m);
                }
                Err(_) => break,
            }
        }
        busy = batch.len() >= BUSY_BATCH;
        let rows: Vec<NewMessage> = batch
            .iter()
            .filter_map(|m| match m {
                Outgoing::Public { name, text, .. } => Some(NewMessage {
                    name: name.clone(),
                    text: text.clone(),
                }),
                Outgoing::Notice { .. } => None,
            })
            .collect();
        let t_store = std::time::Instant::now();
        let stored = if rows.is_empty() {
            Ok(())
        } else {
            store.append(&rows)
        };
        let store_us = t_store.elapsed().as_micros() as u64;
        if let Err(e) = &stored {
            tracing::error!(error = %e, lines = rows.len(), "cannot store messages: not sent");
        }
        let mut texts: Vec<(String, Option<u64>)> = Vec::with_capacity(batch.len());
        for m in batch.drain(..) {
            match m {
                Outgoing::Public {
                    name, text, from, ..
                } if stored.is_ok() => texts.push((protocol::public(&name, &text), Some(from))),
                Outgoing::Public { sender, .. } => {
                    sender.push(line(protocol::error(
                        "server error: message not stored, not sent",
                    )));
                }
                Outgoing::Notice { line, except } => texts.push((line, except)),
            }
        }
        if texts.is_empty() {
            continue;
        }
        let t_send = std::time::Instant::now();
        hub.broadcast_all(&Batch::new(texts.iter().map(|(t, f)| (t.as_str(), *f))));
        tracing::debug!(
            lines = texts.len(),
            stored = rows.len(),
            store_us,
            send_us = t_send.elapsed().as_micros() as u64,
            "batch stored and sent"
        );
    }
}

impl Service for Chat {
    fn serve(&self, conn: Arc<Conn>) {
        session::run(self, conn);
    }

    fn clear_users(&self) -> String {
        match self.store.clear_users() {
            Ok(()) => {
                let n = self.hub.kick_all();
                tracing::info!(disconnected = n, "user store cleared from the console");
                format!(
                    "accounts, identifications and tokens cleared (history kept); \
                     {n} logged-in connection(s) closed"
                )
            }
            Err(e) => format!("! cannot clear the user store: {e}"),
        }
    }

    fn console_command(&self, command: &str, args: &str) -> Option<String> {
        match command {
            "who" => {
                let online = self.hub.online();
                if online.is_empty() {
                    return Some("nobody is logged in".into());
                }
                Some(
                    online
                        .iter()
                        .map(|(name, addrs)| {
                            let a: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
                            format!("{name} {}", a.join(" "))
                        })
                        .collect::<Vec<_>>()
                        .join("\n"),
                )
            }
            "kick" if args.is_empty() => Some("! usage: kick NAME".into()),
            "kick" => Some(match self.hub.kick(args) {
                0 => format!("! no such user online: {args}"),
                n => {
                    tracing::info!(user = args, connections = n, "kicked from the console");
                    format!("kicked {args} ({n} connection(s))")
                }
            }),
            _ => None,
        }
    }

    fn threads_per_client(&self) -> usize {
        // The connection's reader thread and its writer thread.
        2
    }

    fn console_help(&self) -> &'static [&'static str] {
        &[
            "who             users online, with their addresses",
            "kick NAME       disconnect every connection of NAME",
        ]
    }
}
