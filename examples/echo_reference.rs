//! The reference echo server of `bench/echo.py`: the textbook std design, one thread per
//! client (default stack), a 1 KiB buffer, read then write_all. tcpkit's echo server is
//! measured against it.
//!
//! Usage: `echo_reference 127.0.0.1:PORT`

use std::io::{Read, Write};
use std::net::TcpListener;

fn main() {
    let addr = std::env::args().nth(1).expect("usage: echo_reference ADDR");
    let listener = TcpListener::bind(&addr).expect("bind");
    println!("listening on {}", listener.local_addr().unwrap());
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let _ = stream.set_nodelay(true);
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            loop {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if stream.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
}
