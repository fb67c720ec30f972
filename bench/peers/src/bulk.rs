//! The peers of `benches/iostream.rs`'s bulk transfer: `total` bytes through
//! one loopback connection, writer and reader on one thread, timed from the
//! first write to the last byte read.

use std::hint::black_box;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Builder;

/// Bytes per write (as squall's `BULK_WRITE`).
pub const WRITE: usize = 256 * 1024;
/// Bytes per read (as squall's `BULK_READ`).
pub const READ: usize = 64 * 1024;

/// tokio, current_thread runtime: one task `write_all`s chunks from one
/// buffer, the other `read`s into one buffer.
pub fn tokio_bulk(total: u64) -> Duration {
    let rt = Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("listening");
        let addr = listener.local_addr().expect("bound");
        let accept = tokio::spawn(async move { listener.accept().await });
        let mut writer = TcpStream::connect(addr).await.expect("connected");
        let (mut reader, _) = accept.await.expect("joined").expect("accepted");
        let start = Instant::now();
        let read = tokio::spawn(async move {
            let mut buf = vec![0u8; READ];
            let mut got = 0u64;
            while got < total {
                let n = reader.read(&mut buf).await.expect("read");
                assert!(n > 0, "early EOF");
                got += black_box(n) as u64;
            }
        });
        let chunk = vec![7u8; WRITE];
        let mut left = total;
        while left > 0 {
            let n = left.min(WRITE as u64) as usize;
            writer.write_all(&chunk[..n]).await.expect("write");
            left -= n as u64;
        }
        read.await.expect("reader");
        start.elapsed()
    })
}

/// A hand-written mio loop: edge-triggered, write until `WouldBlock` from
/// one buffer, read until `WouldBlock` into one buffer — the practical
/// limit of one core.
pub fn mio_bulk(total: u64) -> Duration {
    use mio::net::{TcpListener, TcpStream};
    use mio::{Events, Interest, Poll, Token};
    const W: Token = Token(0);
    const R: Token = Token(1);

    let mut poll = Poll::new().expect("poll");
    let listener = TcpListener::bind("127.0.0.1:0".parse().expect("addr")).expect("listening");
    let addr = listener.local_addr().expect("bound");
    let mut writer = TcpStream::connect(addr).expect("connecting");
    let mut reader = loop {
        match listener.accept() {
            Ok((conn, _)) => break conn,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
            Err(e) => panic!("accept: {e}"),
        }
    };
    poll.registry()
        .register(&mut writer, W, Interest::WRITABLE)
        .expect("register");
    poll.registry()
        .register(&mut reader, R, Interest::READABLE)
        .expect("register");
    let chunk = vec![7u8; WRITE];
    let mut buf = vec![0u8; READ];
    let (mut sent, mut got) = (0u64, 0u64);
    let mut events = Events::with_capacity(16);
    let start = Instant::now();
    while got < total {
        poll.poll(&mut events, None).expect("poll");
        for event in events.iter() {
            if event.token() == W {
                while sent < total {
                    let n = (total - sent).min(WRITE as u64) as usize;
                    match writer.write(&chunk[..n]) {
                        Ok(k) => sent += k as u64,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => panic!("write: {e}"),
                    }
                }
            } else {
                loop {
                    match reader.read(&mut buf) {
                        Ok(0) => panic!("early EOF"),
                        Ok(n) => got += black_box(n) as u64,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => panic!("read: {e}"),
                    }
                }
            }
        }
    }
    start.elapsed()
}
