//! Scan targets: host names, IPv4/IPv6 addresses and CIDR blocks, resolved once into a lazy,
//! de-duplicated list of hosts (a `/16` is never expanded into memory).

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};

/// The most hosts one scan may cover (2^24, a `/8`): a guard against a typo like `10.0.0.0/1`.
pub const MAX_HOSTS: u64 = 1 << 24;

/// Why a target was refused. Syntax errors are usage errors; [`TargetError::Resolve`] is a
/// runtime failure (the name may resolve later).
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// Text that is neither an address, a CIDR block nor a valid host name.
    #[error(
        "invalid target '{0}': expected a host name, an IP address or a CIDR block like 192.0.2.0/24"
    )]
    Invalid(String),
    /// A CIDR prefix length out of range for its address family.
    #[error("invalid CIDR block '{0}': the prefix length must be 0-32 for IPv4, 0-128 for IPv6")]
    BadPrefix(String),
    /// More hosts than [`MAX_HOSTS`].
    #[error("target '{0}' covers too many hosts (the limit is {MAX_HOSTS} per scan)")]
    TooLarge(String),
    /// A host name that did not resolve to any address.
    #[error("cannot resolve host '{name}': {reason}")]
    Resolve {
        /// The name as given.
        name: String,
        /// What the resolver said.
        reason: io::Error,
    },
}

impl TargetError {
    /// True when the error is in the text itself (a usage error) rather than in the world.
    pub fn is_usage(&self) -> bool {
        !matches!(self, TargetError::Resolve { .. })
    }
}

/// One target as written, parsed but not yet resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    /// A literal address, `192.0.2.1` or `::1`.
    Addr(IpAddr),
    /// A CIDR block: the first address (host bits cleared) and the prefix length.
    Net(IpAddr, u8),
    /// A host name, resolved later.
    Name(String),
}

impl TargetSpec {
    /// Parses one target without touching the network.
    ///
    /// # Errors
    /// [`TargetError::Invalid`], [`TargetError::BadPrefix`] or [`TargetError::TooLarge`].
    ///
    /// ```
    /// use tcpkit::scan::TargetSpec;
    /// assert!(matches!(TargetSpec::parse("198.18.0.0/30"), Ok(TargetSpec::Net(_, 30))));
    /// assert!(matches!(TargetSpec::parse("::1"), Ok(TargetSpec::Addr(_))));
    /// assert!(TargetSpec::parse("300.1.1.1").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Self, TargetError> {
        let t = text.trim();
        let t = t
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .unwrap_or(t);
        if let Ok(ip) = t.parse::<IpAddr>() {
            return Ok(TargetSpec::Addr(ip));
        }
        if let Some((addr, prefix)) = t.split_once('/') {
            let ip: IpAddr = addr
                .parse()
                .map_err(|_| TargetError::Invalid(text.to_string()))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let prefix: u8 = prefix
                .parse()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| TargetError::BadPrefix(text.to_string()))?;
            let host_bits = u32::from(max - prefix);
            if host_bits >= 64 || (1u64 << host_bits) > MAX_HOSTS {
                return Err(TargetError::TooLarge(text.to_string()));
            }
            return Ok(TargetSpec::Net(mask(ip, prefix), prefix));
        }
        let looks_numeric = t.bytes().all(|b| b.is_ascii_digit() || b == b'.');
        let valid_name = !t.is_empty()
            && t.len() <= 253
            && !looks_numeric
            && t.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if t.ends_with('.') && t.len() > 1 {
            // A fully qualified name with its trailing dot.
            return Self::parse(&t[..t.len() - 1]).map(|s| match s {
                TargetSpec::Name(n) => TargetSpec::Name(format!("{n}.")),
                other => other,
            });
        }
        if valid_name {
            Ok(TargetSpec::Name(t.to_string()))
        } else {
            Err(TargetError::Invalid(text.to_string()))
        }
    }

    /// How many hosts the spec covers.
    pub fn host_count(&self) -> u64 {
        match self {
            TargetSpec::Net(ip, prefix) => {
                let max = if ip.is_ipv4() { 32 } else { 128 };
                1u64 << (max - prefix)
            }
            _ => 1,
        }
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & m))
        }
        IpAddr::V6(a) => {
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix)
            };
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & m))
        }
    }
}

/// One host to scan: the name the user gave (or the address itself) and the address used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The host name as given, or the address in text form for addresses and CIDR members.
    pub name: String,
    /// The address connected to.
    pub ip: IpAddr,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.name == self.ip.to_string() {
            write!(f, "{}", self.ip)
        } else {
            write!(f, "{} ({})", self.name, self.ip)
        }
    }
}

#[derive(Debug, Clone)]
enum Entry {
    One(Target),
    Net { base: IpAddr, count: u64 },
}

/// The hosts of a scan, in the order given, each address once; blocks stay unexpanded.
#[derive(Debug, Clone, Default)]
pub struct TargetList {
    entries: Vec<Entry>,
    /// Host index at which each entry starts, for O(log n) lookup.
    starts: Vec<u64>,
    total: u64,
}

/// The system resolver: the first IPv4 address of `name`, else its first address.
///
/// # Errors
/// The resolver's error, or `NotFound` when the name has no address.
pub fn system_resolve(name: &str) -> io::Result<IpAddr> {
    let addrs: Vec<IpAddr> = (name, 0).to_socket_addrs()?.map(|a| a.ip()).collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address found"))
}

impl TargetList {
    /// Builds the list from parsed specs, resolving each name once with `resolve`.
    /// Single addresses that repeat (also through different names) are kept once.
    ///
    /// # Errors
    /// [`TargetError::Resolve`] for the first name that does not resolve;
    /// [`TargetError::TooLarge`] when the total passes [`MAX_HOSTS`].
    pub fn resolve(
        specs: &[TargetSpec],
        resolve: impl Fn(&str) -> io::Result<IpAddr>,
    ) -> Result<Self, TargetError> {
        let mut list = TargetList::default();
        let mut seen = std::collections::HashSet::new();
        for spec in specs {
            let entry = match spec {
                TargetSpec::Addr(ip) => Entry::One(Target {
                    name: ip.to_string(),
                    ip: *ip,
                }),
                TargetSpec::Name(name) => {
                    let ip = resolve(name).map_err(|reason| TargetError::Resolve {
                        name: name.clone(),
                        reason,
                    })?;
                    Entry::One(Target {
                        name: name.clone(),
                        ip,
                    })
                }
                TargetSpec::Net(base, _) => Entry::Net {
                    base: *base,
                    count: spec.host_count(),
                },
            };
            let count = match &entry {
                Entry::One(t) => {
                    if !seen.insert(t.ip) {
                        continue;
                    }
                    1
                }
                Entry::Net { count, .. } => *count,
            };
            if list.total + count > MAX_HOSTS {
                return Err(TargetError::TooLarge(format!("{spec:?}")));
            }
            list.starts.push(list.total);
            list.total += count;
            list.entries.push(entry);
        }
        Ok(list)
    }

    /// Number of hosts.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// True when there are no hosts.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The address of the host at `index` (0-based), without building its [`Target`].
    pub fn ip(&self, index: u64) -> Option<IpAddr> {
        if index >= self.total {
            return None;
        }
        let e = self.starts.partition_point(|&s| s <= index) - 1;
        Some(match &self.entries[e] {
            Entry::One(t) => t.ip,
            Entry::Net { base, .. } => {
                let off = index - self.starts[e];
                match base {
                    IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(*a) + off as u32)),
                    IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(*a) + u128::from(off))),
                }
            }
        })
    }

    /// The host at `index` (0-based), or `None` past the end.
    pub fn get(&self, index: u64) -> Option<Target> {
        if index >= self.total {
            return None;
        }
        let e = self.starts.partition_point(|&s| s <= index) - 1;
        match &self.entries[e] {
            Entry::One(t) => Some(t.clone()),
            Entry::Net { .. } => self.ip(index).map(|ip| Target {
                name: ip.to_string(),
                ip,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_dns(_: &str) -> io::Result<IpAddr> {
        Err(io::Error::new(io::ErrorKind::NotFound, "no dns in tests"))
    }

    #[test]
    fn cidr_expands_lazily_with_network_and_broadcast() {
        let spec = TargetSpec::parse("198.18.0.1/30").unwrap();
        assert_eq!(spec, TargetSpec::Net("198.18.0.0".parse().unwrap(), 30));
        let list = TargetList::resolve(&[spec], no_dns).unwrap();
        assert_eq!(list.len(), 4);
        assert_eq!(list.get(0).unwrap().ip.to_string(), "198.18.0.0");
        assert_eq!(list.get(3).unwrap().ip.to_string(), "198.18.0.3");
        assert!(list.get(4).is_none());
    }

    #[test]
    fn names_resolve_once_and_duplicates_drop() {
        let specs = [
            TargetSpec::parse("localhost").unwrap(),
            TargetSpec::parse("127.0.0.1").unwrap(),
            TargetSpec::parse("::1").unwrap(),
        ];
        let list = TargetList::resolve(&specs, |_| Ok(IpAddr::V4(Ipv4Addr::LOCALHOST))).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list.get(0).unwrap().to_string(), "localhost (127.0.0.1)");
        assert_eq!(list.get(1).unwrap().to_string(), "::1");
    }

    #[test]
    fn bad_targets_are_usage_errors() {
        for bad in [
            "300.1.1.1",
            "1.2.3.4/33",
            "::1/129",
            "a b",
            "",
            "bad!host",
            "10.0.0.0/1",
        ] {
            let err = TargetSpec::parse(bad).unwrap_err();
            assert!(err.is_usage(), "{bad}: {err}");
        }
        let err = TargetList::resolve(&[TargetSpec::parse("nowhere.invalid").unwrap()], no_dns)
            .unwrap_err();
        assert!(!err.is_usage());
        assert!(err.to_string().contains("nowhere.invalid"));
    }
}
