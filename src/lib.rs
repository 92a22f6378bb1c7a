//! tcpkit: a TCP toolkit grown from a networking lab.
//!
//! Modules:
//! - [`scan`]: the TCP connect port scanner (targets, ports, the engine, the reporter).
//! - [`fdlimit`]: the open-files limit, raised and shared out.
//! - [`prompt`]: asking the user on the terminal, with validation.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod fdlimit;
pub mod prompt;
pub mod scan;
