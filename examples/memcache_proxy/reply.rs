//! The server side of the memcached text protocol: requests written to a
//! server, and its replies parsed incrementally, each byte looked at once.
//!
//! A reply is parsed against the shape its request expects ([`Expect`]), so
//! a reply that does not fit (a stray line, more values than keys asked for,
//! a value past the item limit) is a [`ProtocolError`]: the connection
//! cannot be trusted after it and is closed.

use std::fmt;

use super::protocol::{key, number, strip_cr, StoreOp};

/// The longest reply line from a server (`VALUE <250-byte key> ...`).
const MAX_REPLY_LINE: usize = 1024;

/// Appends the wire form of a storage request (always with a reply).
pub fn encode_store(
    out: &mut Vec<u8>,
    op: StoreOp,
    key: &[u8],
    flags: u32,
    exptime: i64,
    data: &[u8],
    cas_unique: u64,
) {
    out.reserve(key.len() + data.len() + 64);
    out.extend_from_slice(op.name().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    let tail = if op == StoreOp::Cas {
        format!(" {flags} {exptime} {} {cas_unique}\r\n", data.len())
    } else {
        format!(" {flags} {exptime} {}\r\n", data.len())
    };
    out.extend_from_slice(tail.as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Appends `name KEY... ARGS\r\n` (a one-line request).
pub fn encode_line(out: &mut Vec<u8>, name: &str, keys: &[&[u8]], args: &str) {
    out.extend_from_slice(name.as_bytes());
    for key in keys {
        out.push(b' ');
        out.extend_from_slice(key);
    }
    if !args.is_empty() {
        out.push(b' ');
        out.extend_from_slice(args.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

// ----- replies from a server ---------------------------------------------------

/// One value of a `get` reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// The key.
    pub key: Vec<u8>,
    /// The client flags stored with it.
    pub flags: u32,
    /// The value.
    pub data: Vec<u8>,
    /// The CAS unique (`gets` only).
    pub cas: Option<u64>,
}

/// The one-word answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// `STORED`
    Stored,
    /// `NOT_STORED`
    NotStored,
    /// `EXISTS` (a `cas` lost the race)
    Exists,
    /// `NOT_FOUND`
    NotFound,
    /// `DELETED`
    Deleted,
    /// `TOUCHED`
    Touched,
    /// `OK` (`flush_all`)
    Ok,
}

impl Status {
    /// The word on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Stored => "STORED",
            Status::NotStored => "NOT_STORED",
            Status::Exists => "EXISTS",
            Status::NotFound => "NOT_FOUND",
            Status::Deleted => "DELETED",
            Status::Touched => "TOUCHED",
            Status::Ok => "OK",
        }
    }

    fn parse(line: &[u8]) -> Option<Status> {
        Some(match line {
            b"STORED" => Status::Stored,
            b"NOT_STORED" => Status::NotStored,
            b"EXISTS" => Status::Exists,
            b"NOT_FOUND" => Status::NotFound,
            b"DELETED" => Status::Deleted,
            b"TOUCHED" => Status::Touched,
            b"OK" => Status::Ok,
            _ => return None,
        })
    }
}

/// The shape of reply a request expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// `VALUE` blocks then `END`; at most this many values.
    Values(usize),
    /// One status word.
    Status,
    /// A number (`incr`/`decr`) or `NOT_FOUND`.
    Number,
    /// `VERSION x`.
    Version,
}

/// A server's reply, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The values found, in the server's order.
    Values(Vec<Item>),
    /// A status word.
    Status(Status),
    /// The new value of a counter.
    Number(u64),
    /// The server's version string.
    Version(String),
    /// `ERROR`, `CLIENT_ERROR ...` or `SERVER_ERROR ...`: the whole line.
    Refused(String),
}

/// A reply that breaks the protocol: the connection cannot go on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The incremental reply parser of one server connection. It keeps the
/// values of a `get` reply parsed so far, so each byte is looked at once.
#[derive(Debug)]
pub struct ReplyParser {
    values: Vec<Item>,
    max_value: usize,
}

impl ReplyParser {
    /// A parser refusing values larger than `max_value`.
    pub fn new(max_value: usize) -> ReplyParser {
        ReplyParser {
            values: Vec::new(),
            max_value,
        }
    }

    /// Parses from the start of `buf` a reply of shape `expect`. Returns the
    /// bytes used and the reply once it is whole; call again with the rest.
    pub fn parse(
        &mut self,
        buf: &[u8],
        expect: Expect,
    ) -> Result<(usize, Option<Reply>), ProtocolError> {
        let mut pos = 0;
        loop {
            let rest = &buf[pos..];
            let Some(nl) = memchr::memchr(b'\n', &rest[..rest.len().min(MAX_REPLY_LINE)]) else {
                if rest.len() >= MAX_REPLY_LINE {
                    return Err(ProtocolError("reply line too long".into()));
                }
                return Ok((pos, None));
            };
            let line = strip_cr(&rest[..nl]);
            if let Some(refused) = refused(line) {
                if !self.values.is_empty() {
                    return Err(ProtocolError(format!(
                        "{refused:?} in the middle of values"
                    )));
                }
                return Ok((pos + nl + 1, Some(Reply::Refused(refused))));
            }
            match expect {
                Expect::Values(max) => {
                    if line == b"END" {
                        let values = std::mem::take(&mut self.values);
                        return Ok((pos + nl + 1, Some(Reply::Values(values))));
                    }
                    let (key, flags, bytes, cas) = parse_value_line(line)?;
                    if bytes > self.max_value {
                        return Err(ProtocolError(format!(
                            "value of {bytes} bytes is too large"
                        )));
                    }
                    let start = pos + nl + 1;
                    let end = start + bytes + 2;
                    if buf.len() < end {
                        return Ok((pos, None));
                    }
                    if &buf[end - 2..end] != b"\r\n" {
                        return Err(ProtocolError("bad data chunk".into()));
                    }
                    if self.values.len() >= max {
                        return Err(ProtocolError("more values than keys asked for".into()));
                    }
                    self.values.push(Item {
                        key,
                        flags,
                        data: buf[start..end - 2].to_vec(),
                        cas,
                    });
                    pos = end;
                }
                Expect::Status => {
                    let status = Status::parse(line).ok_or_else(|| unexpected(line))?;
                    return Ok((pos + nl + 1, Some(Reply::Status(status))));
                }
                Expect::Number => {
                    let reply = if line == b"NOT_FOUND" {
                        Reply::Status(Status::NotFound)
                    } else {
                        Reply::Number(number(line).ok_or_else(|| unexpected(line))?)
                    };
                    return Ok((pos + nl + 1, Some(reply)));
                }
                Expect::Version => {
                    let version = line
                        .strip_prefix(b"VERSION ")
                        .ok_or_else(|| unexpected(line))?;
                    let version = String::from_utf8_lossy(version).into_owned();
                    return Ok((pos + nl + 1, Some(Reply::Version(version))));
                }
            }
        }
    }
}

fn refused(line: &[u8]) -> Option<String> {
    let is_error = line == b"ERROR"
        || line.starts_with(b"CLIENT_ERROR ")
        || line.starts_with(b"SERVER_ERROR ");
    is_error.then(|| String::from_utf8_lossy(line).into_owned())
}

fn unexpected(line: &[u8]) -> ProtocolError {
    ProtocolError(format!(
        "unexpected reply {:?}",
        String::from_utf8_lossy(&line[..line.len().min(80)])
    ))
}

fn parse_value_line(line: &[u8]) -> Result<(Vec<u8>, u32, usize, Option<u64>), ProtocolError> {
    let mut tokens = line.split(|&b| b == b' ');
    let fields = (|| {
        if tokens.next()? != b"VALUE" {
            return None;
        }
        let key = key(tokens.next()?)?;
        let flags = number(tokens.next()?)?;
        let bytes = number(tokens.next()?)?;
        let cas = match tokens.next() {
            Some(t) => Some(number(t)?),
            None => None,
        };
        tokens.next().is_none().then_some((key, flags, bytes, cas))
    })();
    fields.ok_or_else(|| unexpected(line))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse_in_pieces() {
        let mut parser = ReplyParser::new(1024);
        let reply = b"VALUE a 1 3 77\r\nabc\r\nVALUE b 0 0\r\n\r\nEND\r\nSTORED\r\n";
        // Fed one byte more at a time, the reply completes exactly once.
        let mut done = None;
        let mut used = 0;
        for end in 0..=reply.len() {
            let (n, r) = parser.parse(&reply[used..end], Expect::Values(2)).unwrap();
            used += n;
            if let Some(r) = r {
                done = Some(r);
                break;
            }
        }
        assert_eq!(
            done,
            Some(Reply::Values(vec![
                Item {
                    key: b"a".to_vec(),
                    flags: 1,
                    data: b"abc".to_vec(),
                    cas: Some(77)
                },
                Item {
                    key: b"b".to_vec(),
                    flags: 0,
                    data: Vec::new(),
                    cas: None
                },
            ]))
        );
        let (n, r) = parser.parse(&reply[used..], Expect::Status).unwrap();
        assert_eq!((n, r), (8, Some(Reply::Status(Status::Stored))));
        assert_eq!(
            parser.parse(b"42\r\n", Expect::Number).unwrap().1,
            Some(Reply::Number(42))
        );
        assert_eq!(
            parser
                .parse(b"SERVER_ERROR out of memory\r\n", Expect::Status)
                .unwrap()
                .1,
            Some(Reply::Refused("SERVER_ERROR out of memory".into()))
        );
        assert_eq!(
            parser
                .parse(b"VERSION 1.6.18\r\n", Expect::Version)
                .unwrap()
                .1,
            Some(Reply::Version("1.6.18".into()))
        );
    }

    #[test]
    fn bad_replies_are_protocol_errors() {
        let mut parser = ReplyParser::new(4);
        assert!(parser.parse(b"HELLO\r\n", Expect::Status).is_err());
        assert!(parser.parse(b"VALUE a 0 5\r\n", Expect::Values(1)).is_err());
        let mut parser = ReplyParser::new(4);
        assert!(parser
            .parse(
                b"VALUE a 0 1\r\nx\r\nVALUE a 0 1\r\nx\r\n",
                Expect::Values(1)
            )
            .is_err());
        let mut parser = ReplyParser::new(4);
        assert!(parser
            .parse(b"VALUE a 0 1\r\nxy\r\n", Expect::Values(1))
            .is_err());
        assert!(parser.parse(&[b'x'; 2000], Expect::Status).is_err());
    }

    /// Random replies never panic the parser, whatever it expects.
    #[test]
    fn random_replies_never_panic() {
        const WORDS: &[&[u8]] = &[
            b"VALUE ",
            b"k ",
            b"0 ",
            b"3 ",
            b"-1 ",
            b"99 ",
            b"abc",
            b"END",
            b"STORED",
            b"OK",
            b"42",
            b"VERSION 1",
            b"SERVER_ERROR x",
            b"\r\n",
            b"\n",
            b" ",
            b"\xff",
        ];
        let expects = [
            Expect::Values(3),
            Expect::Status,
            Expect::Number,
            Expect::Version,
        ];
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..3000 {
            let mut input = Vec::new();
            for _ in 0..(next() % 30) {
                input.extend_from_slice(WORDS[(next() % WORDS.len() as u64) as usize]);
            }
            let mut parser = ReplyParser::new(8);
            let expect = expects[(next() % 4) as usize];
            let mut used = 0;
            while let Ok((n, reply)) = parser.parse(&input[used..], expect) {
                used += n;
                if reply.is_none() {
                    break;
                }
            }
        }
    }
}
