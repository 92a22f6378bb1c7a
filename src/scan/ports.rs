//! Port lists: parse `22,80,1000-2000`, `all` or `-` into a sorted, de-duplicated set of ports.

use std::fmt;
use std::str::FromStr;

/// Why a port specification was refused; each message names the offending text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortsError {
    /// The whole specification was empty.
    #[error("empty port list: give ports like '22', '22,80,443', '1-1024' or 'all'")]
    Empty,
    /// An item between two commas was empty, as in `22,,80`.
    #[error("empty item in port list '{0}'")]
    EmptyItem(String),
    /// A number that is not a port (0, over 65535, or not a number at all).
    #[error("invalid port '{0}': ports are 1-65535")]
    BadPort(String),
    /// A range whose start is above its end, as in `100-50`.
    #[error("invalid port range '{0}': the start is above the end")]
    Reversed(String),
}

/// A sorted set of distinct TCP ports (1-65535), the ports a scan visits in ascending order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortList {
    /// Ascending, no duplicates, never empty, never 0.
    ports: Vec<u16>,
}

impl PortList {
    /// Every port, 1-65535: the scanner's default.
    pub fn all() -> Self {
        PortList {
            ports: (1..=u16::MAX).collect(),
        }
    }

    /// Parses a port specification: comma-separated items, each a port (`22`), a range (`1-1024`,
    /// `-1024` from 1, `60000-` to 65535), or `all`/`-` for every port.
    ///
    /// # Errors
    /// [`PortsError`] naming the bad item: port 0 or over 65535, a reversed range, an empty item.
    ///
    /// ```
    /// use tcpkit::scan::PortList;
    /// let p = PortList::parse("443,22,80-82,22").unwrap();
    /// assert_eq!(p.as_slice(), &[22, 80, 81, 82, 443]);
    /// assert!(PortList::parse("100-50").is_err());
    /// ```
    pub fn parse(spec: &str) -> Result<Self, PortsError> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(PortsError::Empty);
        }
        if spec.eq_ignore_ascii_case("all") || spec == "-" {
            return Ok(Self::all());
        }
        let mut seen = vec![false; 65536];
        for item in spec.split(',') {
            let item = item.trim();
            if item.is_empty() {
                return Err(PortsError::EmptyItem(spec.to_string()));
            }
            let (lo, hi) = match item.split_once('-') {
                None => {
                    let p = parse_port(item)?;
                    (p, p)
                }
                Some((a, b)) => {
                    let lo = if a.trim().is_empty() {
                        1
                    } else {
                        parse_port(a)?
                    };
                    let hi = if b.trim().is_empty() {
                        u16::MAX
                    } else {
                        parse_port(b)?
                    };
                    if lo > hi {
                        return Err(PortsError::Reversed(item.to_string()));
                    }
                    (lo, hi)
                }
            };
            for p in lo..=hi {
                seen[p as usize] = true;
            }
        }
        let ports = (1..=u16::MAX).filter(|&p| seen[p as usize]).collect();
        Ok(PortList { ports })
    }

    /// The ports, ascending.
    pub fn as_slice(&self) -> &[u16] {
        &self.ports
    }

    /// How many ports are in the list (at least 1).
    pub fn len(&self) -> usize {
        self.ports.len()
    }

    /// Always false: a parsed list holds at least one port. Present for API symmetry.
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }
}

impl FromStr for PortList {
    type Err = PortsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for PortList {
    /// Compact form: runs of consecutive ports as ranges, `1-1024,8080`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut i = 0;
        let mut first = true;
        while i < self.ports.len() {
            let start = self.ports[i];
            let mut end = start;
            while i + 1 < self.ports.len() && self.ports[i + 1] == end + 1 {
                i += 1;
                end = self.ports[i];
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if start == end {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{end}")?;
            }
            i += 1;
        }
        Ok(())
    }
}

fn parse_port(text: &str) -> Result<u16, PortsError> {
    let t = text.trim();
    let bad = || PortsError::BadPort(t.to_string());
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match t.parse::<u32>() {
        Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_items_ranges_and_all() {
        assert_eq!(PortList::parse("22").unwrap().as_slice(), &[22]);
        assert_eq!(PortList::parse("all").unwrap().len(), 65535);
        assert_eq!(PortList::parse("-").unwrap().len(), 65535);
        assert_eq!(PortList::parse("-3").unwrap().as_slice(), &[1, 2, 3]);
        assert_eq!(
            PortList::parse("65534-").unwrap().as_slice(),
            &[65534, 65535]
        );
        assert_eq!(
            PortList::parse("80, 22 ,1-2").unwrap().as_slice(),
            &[1, 2, 22, 80]
        );
    }

    #[test]
    fn refuses_bad_specs_naming_the_value() {
        assert_eq!(
            PortList::parse("70000").unwrap_err().to_string(),
            "invalid port '70000': ports are 1-65535"
        );
        assert!(matches!(PortList::parse("0"), Err(PortsError::BadPort(_))));
        assert!(matches!(
            PortList::parse("100-50"),
            Err(PortsError::Reversed(s)) if s == "100-50"
        ));
        assert!(matches!(
            PortList::parse("22,,80"),
            Err(PortsError::EmptyItem(_))
        ));
        assert!(matches!(
            PortList::parse("22,"),
            Err(PortsError::EmptyItem(_))
        ));
        assert!(matches!(PortList::parse(""), Err(PortsError::Empty)));
        assert!(matches!(
            PortList::parse("ssh"),
            Err(PortsError::BadPort(_))
        ));
        assert!(matches!(
            PortList::parse("+22"),
            Err(PortsError::BadPort(_))
        ));
    }

    #[test]
    fn display_compacts_ranges() {
        let p = PortList::parse("1-3,5,7-8").unwrap();
        assert_eq!(p.to_string(), "1-3,5,7-8");
    }
}
