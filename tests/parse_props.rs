//! Property tests of the scanner's input parsers: port lists and targets.

use proptest::prelude::*;
use tcpkit::scan::{PortList, PortsError, TargetSpec};

fn item() -> impl Strategy<Value = (u16, u16)> {
    (1u16..=65535, 0u16..300).prop_map(|(a, len)| (a, a.saturating_add(len)))
}

proptest! {
    /// Any list of valid ports and ranges parses to exactly the ports it names, sorted, once each.
    #[test]
    fn valid_lists_parse_to_their_ports(items in prop::collection::vec(item(), 1..12)) {
        let spec = items
            .iter()
            .map(|&(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") })
            .collect::<Vec<_>>()
            .join(",");
        let mut want: Vec<u16> = items.iter().flat_map(|&(a, b)| a..=b).collect();
        want.sort_unstable();
        want.dedup();
        let got = PortList::parse(&spec).unwrap();
        prop_assert_eq!(got.as_slice(), &want[..]);
        // The compact form parses back to the same list.
        prop_assert_eq!(PortList::parse(&got.to_string()).unwrap(), got);
    }

    /// Numbers past 65535 (and 0) are refused, naming the number.
    #[test]
    fn out_of_range_ports_are_refused(n in prop_oneof![Just(0u64), 65536u64..10_000_000]) {
        let err = PortList::parse(&format!("22,{n}")).unwrap_err();
        prop_assert_eq!(err, PortsError::BadPort(n.to_string()));
    }

    /// Reversed ranges are refused.
    #[test]
    fn reversed_ranges_are_refused(a in 2u16..=65535, d in 1u16..1000) {
        let b = a.saturating_sub(d).max(1);
        prop_assume!(b < a);
        let spec = format!("{a}-{b}");
        prop_assert_eq!(PortList::parse(&spec).unwrap_err(), PortsError::Reversed(spec.clone()));
    }

    /// No input makes the parsers panic.
    #[test]
    fn parsers_never_panic(s in "\\PC{0,40}") {
        let _ = PortList::parse(&s);
        let _ = TargetSpec::parse(&s);
    }

    /// Every IPv4 CIDR block up to the size limit parses and counts 2^(32-prefix) hosts.
    #[test]
    fn cidr_blocks_count_their_hosts(a in any::<u32>(), prefix in 8u8..=32) {
        let ip = std::net::Ipv4Addr::from(a);
        let spec = TargetSpec::parse(&format!("{ip}/{prefix}")).unwrap();
        prop_assert_eq!(spec.host_count(), 1u64 << (32 - prefix));
    }
}
