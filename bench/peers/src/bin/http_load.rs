//! A fixed-count HTTP/1.1 load: `CONNS` keep-alive connections, each sending
//! `REQUESTS / CONNS` GETs one after the other (or `DEPTH` at a time, pipelined)
//! and reading every answer. `bench/http_callgrind.sh` drives servers under
//! callgrind with it, where wrk's fixed duration would give a different
//! request count on every run.
//!
//! ```text
//! http_load ADDR REQUESTS [CONNS] [DEPTH]
//! http_load 127.0.0.1:8888 20000 10 1
//! ```
//!
//! Exits non-zero if any answer is not a `200` with the expected body length.

use std::io::{Read, Write};
use std::net::TcpStream;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: http_load ADDR REQUESTS [CONNS] [DEPTH]";
    let addr = args.first().expect(usage).clone();
    let total: usize = args.get(1).expect(usage).parse().expect(usage);
    let conns: usize = args.get(2).map_or(10, |c| c.parse().expect(usage));
    let depth: usize = args.get(3).map_or(1, |d| d.parse().expect(usage));
    let per_conn = total / conns;
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || run(&addr, per_conn, depth))
        })
        .collect();
    let mut done = 0;
    for t in threads {
        done += t.join().expect("load thread panicked");
    }
    println!("{done} requests");
}

/// Sends `n` requests, `depth` per write; returns how many were answered.
fn run(addr: &str, n: usize, depth: usize) -> usize {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).unwrap();
    let req = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    let mut buf = vec![0u8; 64 * 1024];
    let mut have = 0;
    let mut answered = 0;
    while answered < n {
        let batch = depth.min(n - answered);
        let out: Vec<u8> = req.repeat(batch);
        s.write_all(&out).expect("write");
        let mut got = 0;
        while got < batch {
            // Parse every complete response in buf[..have].
            let mut used = 0;
            while got < batch {
                let Some(len) = response_len(&buf[used..have]) else {
                    break;
                };
                used += len;
                got += 1;
            }
            buf.copy_within(used..have, 0);
            have -= used;
            if got == batch {
                break;
            }
            let r = s.read(&mut buf[have..]).expect("read");
            assert!(r > 0, "server closed after {} answers", answered + got);
            have += r;
        }
        answered += batch;
    }
    answered
}

/// The length of the complete `200` response at the start of `b`, if any.
fn response_len(b: &[u8]) -> Option<usize> {
    let end = b.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&b[..end]).expect("head is not UTF-8");
    assert!(head.starts_with("HTTP/1.1 200"), "unexpected answer: {head}");
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .expect("no Content-Length");
    (b.len() >= end + len).then_some(end + len)
}
