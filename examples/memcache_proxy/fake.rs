//! An in-process fake memcached, for the self-test on machines without the
//! real one: a thread per connection over one shared map, speaking the
//! commands the client sends (expiry is ignored). It reuses the proxy's
//! command parser, so it is as strict about input as the proxy.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

use super::protocol::{Command, CommandParser, Parsed, StoreOp};

type Store = Arc<Mutex<HashMap<Vec<u8>, (u32, Vec<u8>, u64)>>>;

/// Starts a fake server on a free loopback port; it lives as long as the process.
pub fn start() -> io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let store = Store::default();
    thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let store = store.clone();
            thread::spawn(move || serve(conn, &store));
        }
    });
    Ok(addr)
}

fn serve(mut conn: TcpStream, store: &Store) -> io::Result<()> {
    let mut parser = CommandParser::default();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let mut next_cas = 1u64;
    loop {
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut used = 0;
        let mut out = Vec::new();
        loop {
            let (n, parsed) = parser.parse(&buf[used..]);
            used += n;
            match parsed {
                Some(Parsed::Command(Command::Quit)) => return Ok(()),
                Some(Parsed::Command(command)) => {
                    let mut store = store.lock().unwrap_or_else(|e| e.into_inner());
                    answer(command, &mut store, &mut next_cas, &mut out);
                }
                Some(Parsed::Error(line) | Parsed::Fatal(line)) => {
                    out.extend_from_slice(format!("{line}\r\n").as_bytes())
                }
                None if n == 0 => break,
                None => {}
            }
        }
        buf.drain(..used);
        conn.write_all(&out)?;
    }
}

fn answer(
    command: Command,
    store: &mut HashMap<Vec<u8>, (u32, Vec<u8>, u64)>,
    next_cas: &mut u64,
    out: &mut Vec<u8>,
) {
    let mut cas = || {
        *next_cas += 1;
        *next_cas
    };
    let line: String = match command {
        Command::Get {
            keys,
            cas: with_cas,
        } => {
            for key in keys.iter() {
                if let Some((flags, data, unique)) = store.get(key) {
                    out.extend_from_slice(b"VALUE ");
                    out.extend_from_slice(key);
                    let tail = if with_cas {
                        format!(" {flags} {} {unique}\r\n", data.len())
                    } else {
                        format!(" {flags} {}\r\n", data.len())
                    };
                    out.extend_from_slice(tail.as_bytes());
                    out.extend_from_slice(data);
                    out.extend_from_slice(b"\r\n");
                }
            }
            "END".into()
        }
        Command::Store {
            op,
            key,
            flags,
            data,
            cas_unique,
            ..
        } => {
            let present = store.get(&key).map(|(_, _, unique)| *unique);
            let stored = match (op, present) {
                (StoreOp::Set, _) | (StoreOp::Add, None) | (StoreOp::Replace, Some(_)) => {
                    store.insert(key, (flags, data, cas()));
                    "STORED"
                }
                (StoreOp::Cas, None) => "NOT_FOUND",
                (StoreOp::Cas, Some(unique)) if unique != cas_unique => "EXISTS",
                (StoreOp::Cas, Some(_)) => {
                    store.insert(key, (flags, data, cas()));
                    "STORED"
                }
                (StoreOp::Append | StoreOp::Prepend, Some(_)) => {
                    let unique = cas();
                    let entry = store.get_mut(&key).expect("present");
                    entry.1 = if op == StoreOp::Append {
                        [&entry.1[..], &data[..]].concat()
                    } else {
                        [&data[..], &entry.1[..]].concat()
                    };
                    entry.2 = unique;
                    "STORED"
                }
                _ => "NOT_STORED",
            };
            stored.into()
        }
        Command::Delete { key, .. } => match store.remove(&key) {
            Some(_) => "DELETED".into(),
            None => "NOT_FOUND".into(),
        },
        Command::Arith {
            incr, key, delta, ..
        } => {
            let unique = cas();
            match store.get_mut(&key) {
                None => "NOT_FOUND".into(),
                Some(entry) => match std::str::from_utf8(&entry.1)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                {
                    None => "CLIENT_ERROR cannot increment or decrement non-numeric value".into(),
                    Some(n) => {
                        let n = if incr {
                            n.wrapping_add(delta)
                        } else {
                            n.saturating_sub(delta)
                        };
                        entry.1 = n.to_string().into_bytes();
                        entry.2 = unique;
                        n.to_string()
                    }
                },
            }
        }
        Command::Touch { key, .. } => {
            if store.contains_key(&key) {
                "TOUCHED".into()
            } else {
                "NOT_FOUND".into()
            }
        }
        Command::FlushAll { .. } => {
            store.clear();
            "OK".into()
        }
        Command::Version => "VERSION 0.0.0-fake".into(),
        Command::Stats => "END".into(),
        Command::Quit => return,
    };
    out.extend_from_slice(line.as_bytes());
    out.extend_from_slice(b"\r\n");
}
