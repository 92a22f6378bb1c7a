//! The open-files limit: raise the soft limit toward the hard one, and size descriptor-hungry
//! work (connects in flight, clients) below it.

/// Descriptors kept free for everything that is not a scan socket or a client (stdio, log
/// files, epoll instances, the listener, the database).
pub const RESERVE: u64 = 64;

/// Raises the soft RLIMIT_NOFILE to the hard limit and returns the soft limit now in force.
/// Where limits cannot be read, returns a conservative 1024.
pub fn raise() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(_) => rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft),
    }
}

/// How many descriptors of `limit` one kind of work may use: the limit less [`RESERVE`],
/// and at least 1.
///
/// ```
/// assert_eq!(tcpkit::fdlimit::usable(20_000), 19_936);
/// assert_eq!(tcpkit::fdlimit::usable(10), 1);
/// ```
pub fn usable(limit: u64) -> usize {
    usize::try_from(limit.saturating_sub(RESERVE).max(1)).unwrap_or(usize::MAX)
}
