//! The engine under descriptor pressure: with far more connects asked in flight than the
//! open-files limit allows, the scan slows down and still settles every port correctly.
//! A test binary of its own, since it lowers the whole process's RLIMIT_NOFILE.

mod common;

use common::*;
use tcpkit::scan::{self, PortList, ScanConfig, ScanEvent, TargetList, TargetSpec, Timeout};

#[test]
fn running_out_of_descriptors_is_back_pressure_not_closed() {
    let open = listeners(8);
    let open_ports: Vec<u16> = open.iter().map(port_of).collect();
    let closed = released_ports(200);
    let mut all = open_ports.clone();
    all.extend(&closed);
    let ports = PortList::parse(&port_list(&all)).unwrap();

    // Use up every descriptor but the two the workers' epoll sets need, so that the first
    // socket of the scan meets EMFILE; a moment later one descriptor frees up and the scan goes
    // on through it, the two workers taking turns.
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    rlimit::setrlimit(rlimit::Resource::NOFILE, 256, hard).unwrap();
    let mut fillers = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        fillers.push(f);
    }
    fillers.truncate(fillers.len() - 2);
    let freed_later = fillers.pop().unwrap();
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(200));
        drop(freed_later);
    });

    let targets = TargetList::resolve(
        &[TargetSpec::parse("127.0.0.1").unwrap()],
        scan::system_resolve,
    )
    .unwrap();
    let config = ScanConfig {
        concurrency: 2000,
        threads: 2,
        timeout: Timeout::Fixed(std::time::Duration::from_secs(5)),
        retries: 0,
    };
    let mut seen = Vec::new();
    let summary = scan::scan(&targets, &ports, &config, |ev| {
        if let ScanEvent::Port { port, state, .. } = ev {
            seen.push((port, state));
        }
    })
    .unwrap();
    releaser.join().unwrap();
    drop(fillers);
    rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard).unwrap();

    let mut want_open = open_ports.clone();
    want_open.sort_unstable();
    let got_open: Vec<u16> = seen
        .iter()
        .filter(|(_, s)| *s == scan::PortState::Open)
        .map(|(p, _)| *p)
        .collect();
    assert_eq!(got_open, want_open);
    assert_eq!(summary.closed, closed.len() as u64, "{summary:?}");
    assert_eq!(summary.filtered, 0, "{summary:?}");
    assert_eq!(seen.len(), all.len());
    assert!(
        summary.pressure_events > 0,
        "the test never hit the limit: {summary:?}"
    );
    // In ascending port order, each once.
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0));
}
