//! tcpkit: a TCP toolkit grown from a networking lab.
//!
//! Modules:
//! - [`scan`]: the TCP connect port scanner (targets, ports, the engine, the reporter).
//! - [`fdlimit`]: the open-files limit, raised and shared out.
//! - [`prompt`]: asking the user on the terminal, with validation.
//! - [`server`]: the multithreaded server core (listener, thread per client, limits, console,
//!   pause/resume, shutdown) that every service plugs into.
//! - [`logging`]: the servers' event log (file or stderr) and the console's view of it.
//! - [`echo`]: the echo service and the echo client.
//! - [`chat`]: the chat service on an authentication server (protocol, sessions, hub).
//! - [`store`]: accounts, identifications, tokens and history in SQLite.
//! - [`client`]: what the interactive clients share (finding and reaching the server).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod chat;
pub mod client;
pub mod echo;
pub mod fdlimit;
pub mod logging;
pub mod prompt;
pub mod scan;
pub mod server;
pub mod store;
