//! The kernel's floor for a loopback connect scan: N threads of blocking
//! socket + connect + close over a port range, no scanner logic at all.
//! Used by `bench/scan.py` as the yardstick for `tcpkit scan`.
//!
//! Usage: `scan_floor THREADS HOST LO-HI`; prints `Port N open` for accepted
//! connects (TCP self-connects dropped) and the elapsed time on stderr.

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: scan_floor THREADS HOST LO-HI");
        std::process::exit(2);
    }
    let threads: usize = args[1].parse().expect("THREADS is a number");
    let host: IpAddr = args[2].parse().expect("HOST is an IP address");
    let (lo, hi) = args[3].split_once('-').expect("LO-HI");
    let (lo, hi): (u32, u32) = (lo.parse().unwrap(), hi.parse().unwrap());
    let next = AtomicU32::new(lo);
    let t0 = Instant::now();
    let mut open: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut found = Vec::new();
                    loop {
                        let p = next.fetch_add(1, Ordering::Relaxed);
                        if p > hi {
                            break found;
                        }
                        let addr = SocketAddr::new(host, p as u16);
                        if let Ok(s) = TcpStream::connect(addr)
                            && s.local_addr().ok() != Some(addr)
                        {
                            found.push(p as u16);
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    open.sort_unstable();
    for p in open {
        println!("Port {p} open");
    }
    eprintln!("{:.3} s", t0.elapsed().as_secs_f64());
}
