//! The client side of the memcached text protocol: commands parsed
//! incrementally from a byte buffer, with limits (server replies are in
//! `reply.rs`).
//!
//! The parser takes the bytes received so far and says how many it used:
//! nothing while a command is incomplete, so the caller keeps reading.
//! Every buffer has a bound: a line longer than [`MAX_LINE`] (a `get`/`gets`
//! line: [`MAX_GET_LINE`]) is refused (the connection cannot be
//! resynchronised after it), a `get` of more than [`MAX_GET_KEYS`] keys is
//! refused, a value larger than the item limit is refused and its bytes
//! skipped without buffering, as memcached itself does. A connection whose
//! first byte is the binary protocol's request magic (0x80) is refused at
//! once, not left waiting for a line end that never comes.

/// memcached's longest key.
pub const MAX_KEY_LEN: usize = 250;
/// The longest command line accepted, but for `get`/`gets`.
pub const MAX_LINE: usize = 64 * 1024;
/// The longest `get`/`gets` line accepted: a multi-get is one line, and
/// memcached sets it no limit (memcslap's `--test=mget` sends 3,000 keys in
/// 120 KB); 2 MiB is over 8,000 keys of memcached's longest.
pub const MAX_GET_LINE: usize = 2 * 1024 * 1024;
/// The most keys in one `get`/`gets`.
pub const MAX_GET_KEYS: usize = 100_000;
/// The first byte of a binary-protocol request.
pub const BINARY_REQUEST_MAGIC: u8 = 0x80;
/// memcached's default item size limit (`-I 1m`): larger values are refused.
pub const ITEM_SIZE_MAX: usize = 1024 * 1024;

/// The keys of a `get`, in the order asked (duplicates kept): their bytes
/// in one buffer and where each ends, so a line of thousands of keys is
/// parsed with no allocation per key.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Keys {
    bytes: Vec<u8>,
    ends: Vec<u32>,
}

impl Keys {
    /// No keys, with room for `bytes` bytes of them.
    pub fn with_capacity(bytes: usize) -> Keys {
        Keys {
            bytes: Vec::with_capacity(bytes),
            ends: Vec::new(),
        }
    }

    /// Adds a key at the end.
    pub fn push(&mut self, key: &[u8]) {
        self.bytes.extend_from_slice(key);
        // Lines are bounded by MAX_GET_LINE, far below u32::MAX.
        self.ends.push(self.bytes.len() as u32);
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Key number `i`.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)? as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        Some(&self.bytes[start..end])
    }

    /// The keys, in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.len()).filter_map(move |i| self.get(i))
    }
}

impl<'a> FromIterator<&'a [u8]> for Keys {
    fn from_iter<I: IntoIterator<Item = &'a [u8]>>(iter: I) -> Keys {
        let mut keys = Keys::default();
        for key in iter {
            keys.push(key);
        }
        keys
    }
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.iter().map(String::from_utf8_lossy))
            .finish()
    }
}

/// The storage commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreOp {
    /// Store unconditionally.
    Set,
    /// Store only if absent.
    Add,
    /// Store only if present.
    Replace,
    /// Append to an existing value.
    Append,
    /// Prepend to an existing value.
    Prepend,
    /// Store only if unchanged since `gets` (check-and-set).
    Cas,
}

impl StoreOp {
    /// The command's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            StoreOp::Set => "set",
            StoreOp::Add => "add",
            StoreOp::Replace => "replace",
            StoreOp::Append => "append",
            StoreOp::Prepend => "prepend",
            StoreOp::Cas => "cas",
        }
    }
}

/// A client command, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `get`/`gets KEY...`
    Get {
        /// The keys, in the order asked (duplicates kept).
        keys: Keys,
        /// `gets`: also return the CAS unique of each value.
        cas: bool,
    },
    /// `set`/`add`/`replace`/`append`/`prepend`/`cas`, with its data block.
    Store {
        /// Which one.
        op: StoreOp,
        /// The key.
        key: Vec<u8>,
        /// Opaque client flags.
        flags: u32,
        /// Expiry (seconds, or a Unix time; negative expires at once).
        exptime: i64,
        /// The value.
        data: Vec<u8>,
        /// `cas` only: the unique from `gets`.
        cas_unique: u64,
        /// The client wants no reply.
        noreply: bool,
    },
    /// `delete KEY [noreply]`
    Delete {
        /// The key.
        key: Vec<u8>,
        /// The client wants no reply.
        noreply: bool,
    },
    /// `incr`/`decr KEY DELTA [noreply]`
    Arith {
        /// `incr` (else `decr`).
        incr: bool,
        /// The key.
        key: Vec<u8>,
        /// By how much.
        delta: u64,
        /// The client wants no reply.
        noreply: bool,
    },
    /// `touch KEY EXPTIME [noreply]`
    Touch {
        /// The key.
        key: Vec<u8>,
        /// The new expiry.
        exptime: i64,
        /// The client wants no reply.
        noreply: bool,
    },
    /// `flush_all [DELAY] [noreply]`: every server forgets every item.
    FlushAll {
        /// Seconds from now (or a Unix time), if given.
        delay: Option<u32>,
        /// The client wants no reply.
        noreply: bool,
    },
    /// `version`
    Version,
    /// `stats` (the proxy answers with its own).
    Stats,
    /// `quit`: close the connection.
    Quit,
}

impl Command {
    /// Whether the client asked for no reply.
    pub fn noreply(&self) -> bool {
        match self {
            Command::Store { noreply, .. }
            | Command::Delete { noreply, .. }
            | Command::Arith { noreply, .. }
            | Command::Touch { noreply, .. }
            | Command::FlushAll { noreply, .. } => *noreply,
            _ => false,
        }
    }
}

/// What the command parser found.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A whole command.
    Command(Command),
    /// A bad command: answer with this line (no `\r\n`) and go on parsing.
    Error(String),
    /// A stream that cannot be resynchronised: answer with this line and close.
    Fatal(String),
}

/// The incremental client-command parser of one connection.
#[derive(Debug)]
pub struct CommandParser {
    /// Bytes of a refused data block still to skip.
    swallow: usize,
    max_value: usize,
    /// Some byte of the connection has been looked at.
    started: bool,
}

impl Default for CommandParser {
    fn default() -> Self {
        CommandParser::new(ITEM_SIZE_MAX)
    }
}

const BAD_FORMAT: &str = "CLIENT_ERROR bad command line format";

impl CommandParser {
    /// A parser refusing values larger than `max_value` bytes.
    pub fn new(max_value: usize) -> CommandParser {
        CommandParser {
            swallow: 0,
            max_value,
            started: false,
        }
    }

    /// Parses the next command at the start of `buf`. Returns the bytes used
    /// and what was found; `(0, None)` means "need more bytes". Bytes may be
    /// used with nothing found (skipping a refused value): call again.
    pub fn parse(&mut self, buf: &[u8]) -> (usize, Option<Parsed>) {
        if self.swallow > 0 {
            let n = self.swallow.min(buf.len());
            self.swallow -= n;
            return (n, None);
        }
        if !self.started && !buf.is_empty() {
            self.started = true;
            if buf[0] == BINARY_REQUEST_MAGIC {
                // A binary client waits for a 24-byte header, never for a
                // line: say so at once (a binary client reads it as a bad
                // magic and gives up) and close, rather than leave it hanging.
                return (
                    buf.len(),
                    Some(Parsed::Fatal(
                        "CLIENT_ERROR binary protocol is not supported".into(),
                    )),
                );
            }
        }
        let limit = if is_get_line(buf) {
            MAX_GET_LINE
        } else {
            MAX_LINE
        };
        let Some(nl) = memchr::memchr(b'\n', &buf[..buf.len().min(limit)]) else {
            if buf.len() >= limit {
                return (
                    buf.len(),
                    Some(Parsed::Fatal("CLIENT_ERROR line too long".into())),
                );
            }
            return (0, None);
        };
        let line_len = nl + 1;
        let line = strip_cr(&buf[..nl]);
        let mut tokens = line.split(|&b| b == b' ').filter(|t| !t.is_empty());
        let Some(name) = tokens.next() else {
            return (line_len, Some(Parsed::Error("ERROR".into())));
        };
        if name == b"get" || name == b"gets" {
            // Straight from the line: no vector of tokens for thousands of keys.
            let parsed = match parse_get(tokens, line.len(), name == b"gets") {
                Ok(command) => Parsed::Command(command),
                Err(line) => Parsed::Error(line),
            };
            return (line_len, Some(parsed));
        }
        let args: Vec<&[u8]> = tokens.collect();
        let store = match name {
            b"set" => Some(StoreOp::Set),
            b"add" => Some(StoreOp::Add),
            b"replace" => Some(StoreOp::Replace),
            b"append" => Some(StoreOp::Append),
            b"prepend" => Some(StoreOp::Prepend),
            b"cas" => Some(StoreOp::Cas),
            _ => None,
        };
        if let Some(op) = store {
            return self.parse_store(op, &args, buf, line_len);
        }
        let parsed = match name {
            b"delete" => parse_delete(&args),
            b"incr" | b"decr" => parse_arith(&args, name == b"incr"),
            b"touch" => parse_touch(&args),
            b"flush_all" => parse_flush_all(&args),
            b"version" if args.is_empty() => Ok(Command::Version),
            b"stats" if args.is_empty() => Ok(Command::Stats),
            b"quit" if args.is_empty() => Ok(Command::Quit),
            b"version" | b"stats" | b"quit" => Err(BAD_FORMAT.to_owned()),
            _ => Err("ERROR".to_owned()),
        };
        let parsed = match parsed {
            Ok(command) => Parsed::Command(command),
            Err(line) => Parsed::Error(line),
        };
        (line_len, Some(parsed))
    }

    fn parse_store(
        &mut self,
        op: StoreOp,
        args: &[&[u8]],
        buf: &[u8],
        line_len: usize,
    ) -> (usize, Option<Parsed>) {
        let want = if op == StoreOp::Cas { 5 } else { 4 };
        let noreply = args.len() == want + 1 && args[want] == b"noreply";
        if args.len() != want && !noreply {
            return (line_len, Some(Parsed::Error(BAD_FORMAT.into())));
        }
        let fields = (|| {
            let key = key(args[0])?;
            let flags: u32 = number(args[1])?;
            let exptime: i64 = number(args[2])?;
            let bytes: usize = number(args[3])?;
            let cas_unique: u64 = if op == StoreOp::Cas {
                number(args[4])?
            } else {
                0
            };
            Some((key, flags, exptime, bytes, cas_unique))
        })();
        let Some((key, flags, exptime, bytes, cas_unique)) = fields else {
            // The length is unknown: the data line, if any, will be parsed as
            // a command and refused, as memcached does.
            return (line_len, Some(Parsed::Error(BAD_FORMAT.into())));
        };
        if bytes > self.max_value {
            // Refuse it, and skip the data block as it arrives.
            self.swallow = bytes.saturating_add(2);
            return (
                line_len,
                Some(Parsed::Error(
                    "SERVER_ERROR object too large for cache".into(),
                )),
            );
        }
        let total = line_len + bytes + 2;
        if buf.len() < total {
            return (0, None);
        }
        if &buf[line_len + bytes..total] != b"\r\n" {
            return (
                total,
                Some(Parsed::Error("CLIENT_ERROR bad data chunk".into())),
            );
        }
        let command = Command::Store {
            op,
            key,
            flags,
            exptime,
            data: buf[line_len..line_len + bytes].to_vec(),
            cas_unique,
            noreply,
        };
        (total, Some(Parsed::Command(command)))
    }
}

pub fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Whether the buffered start of a line is a `get`/`gets` (those may be
/// longer than other lines). Only the first [`MAX_LINE`] bytes count, so
/// the answer is the same however the line arrives in pieces.
fn is_get_line(buf: &[u8]) -> bool {
    let head = &buf[..buf.len().min(MAX_LINE)];
    let start = head.iter().position(|&b| b != b' ').unwrap_or(head.len());
    let rest = &head[start..];
    rest.starts_with(b"get ") || rest.starts_with(b"gets ")
}

fn valid_key(token: &[u8]) -> bool {
    !token.is_empty() && token.len() <= MAX_KEY_LEN && token.iter().all(|&b| b > b' ' && b != 0x7f)
}

pub fn key(token: &[u8]) -> Option<Vec<u8>> {
    valid_key(token).then(|| token.to_vec())
}

pub fn number<T: std::str::FromStr>(token: &[u8]) -> Option<T> {
    std::str::from_utf8(token).ok()?.parse().ok()
}

fn parse_get<'a>(
    tokens: impl Iterator<Item = &'a [u8]>,
    line_len: usize,
    cas: bool,
) -> Result<Command, String> {
    let mut keys = Keys::with_capacity(line_len);
    for token in tokens {
        if !valid_key(token) {
            return Err(BAD_FORMAT.into());
        }
        if keys.len() == MAX_GET_KEYS {
            return Err("CLIENT_ERROR too many keys".into());
        }
        keys.push(token);
    }
    if keys.is_empty() {
        return Err("ERROR".into());
    }
    Ok(Command::Get { keys, cas })
}

fn parse_delete(args: &[&[u8]]) -> Result<Command, String> {
    // `delete KEY [0] [noreply]`: the old time argument must be 0.
    let (noreply, rest) = match args.split_last() {
        Some((&b"noreply", rest)) => (true, rest),
        _ => (false, args),
    };
    match rest {
        [k] | [k, b"0"] => Ok(Command::Delete {
            key: key(k).ok_or(BAD_FORMAT)?,
            noreply,
        }),
        [_, _] => {
            Err("CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]".into())
        }
        _ => Err("ERROR".into()),
    }
}

fn parse_arith(args: &[&[u8]], incr: bool) -> Result<Command, String> {
    let noreply = args.len() == 3 && args[2] == b"noreply";
    if args.len() != 2 && !noreply {
        return Err("ERROR".into());
    }
    let key = key(args[0]).ok_or(BAD_FORMAT)?;
    let delta = number(args[1]).ok_or("CLIENT_ERROR invalid numeric delta argument")?;
    Ok(Command::Arith {
        incr,
        key,
        delta,
        noreply,
    })
}

fn parse_flush_all(args: &[&[u8]]) -> Result<Command, String> {
    let (noreply, rest) = match args.split_last() {
        Some((&b"noreply", rest)) => (true, rest),
        _ => (false, args),
    };
    match rest {
        [] => Ok(Command::FlushAll {
            delay: None,
            noreply,
        }),
        [delay] => Ok(Command::FlushAll {
            delay: Some(number(delay).ok_or(BAD_FORMAT)?),
            noreply,
        }),
        _ => Err("ERROR".into()),
    }
}

fn parse_touch(args: &[&[u8]]) -> Result<Command, String> {
    let noreply = args.len() == 3 && args[2] == b"noreply";
    if args.len() != 2 && !noreply {
        return Err("ERROR".into());
    }
    let key = key(args[0]).ok_or(BAD_FORMAT)?;
    let exptime = number(args[1]).ok_or("CLIENT_ERROR invalid exptime argument")?;
    Ok(Command::Touch {
        key,
        exptime,
        noreply,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Vec<Parsed> {
        let mut parser = CommandParser::new(16);
        let mut pos = 0;
        let mut out = Vec::new();
        loop {
            let (n, parsed) = parser.parse(&input[pos..]);
            pos += n;
            match parsed {
                Some(p) => out.push(p),
                None if n == 0 => break,
                None => {}
            }
        }
        out
    }

    fn err(line: &str) -> Parsed {
        Parsed::Error(line.into())
    }

    #[test]
    fn commands_parse() {
        let got = parse_all(
            b"get a b a\r\ngets k\nset k 5 -1 3 noreply\r\nabc\r\ncas k 0 0 1 99\r\nx\r\n\
              delete k 0\r\nincr n 7\r\ndecr n 1 noreply\r\ntouch k 10\r\nflush_all\r\n\
              flush_all 10 noreply\r\nversion\r\n",
        );
        assert_eq!(
            got,
            vec![
                Parsed::Command(Command::Get {
                    keys: [&b"a"[..], b"b", b"a"].into_iter().collect(),
                    cas: false
                }),
                Parsed::Command(Command::Get {
                    keys: [&b"k"[..]].into_iter().collect(),
                    cas: true
                }),
                Parsed::Command(Command::Store {
                    op: StoreOp::Set,
                    key: b"k".to_vec(),
                    flags: 5,
                    exptime: -1,
                    data: b"abc".to_vec(),
                    cas_unique: 0,
                    noreply: true
                }),
                Parsed::Command(Command::Store {
                    op: StoreOp::Cas,
                    key: b"k".to_vec(),
                    flags: 0,
                    exptime: 0,
                    data: b"x".to_vec(),
                    cas_unique: 99,
                    noreply: false
                }),
                Parsed::Command(Command::Delete {
                    key: b"k".to_vec(),
                    noreply: false
                }),
                Parsed::Command(Command::Arith {
                    incr: true,
                    key: b"n".to_vec(),
                    delta: 7,
                    noreply: false
                }),
                Parsed::Command(Command::Arith {
                    incr: false,
                    key: b"n".to_vec(),
                    delta: 1,
                    noreply: true
                }),
                Parsed::Command(Command::Touch {
                    key: b"k".to_vec(),
                    exptime: 10,
                    noreply: false
                }),
                Parsed::Command(Command::FlushAll {
                    delay: None,
                    noreply: false
                }),
                Parsed::Command(Command::FlushAll {
                    delay: Some(10),
                    noreply: true
                }),
                Parsed::Command(Command::Version),
            ]
        );
    }

    #[test]
    fn bad_commands_get_error_lines_and_parsing_goes_on() {
        let long_key = "k".repeat(MAX_KEY_LEN + 1);
        let input = format!(
            "bogus\r\n\r\nget\r\nget {long_key}\r\nset k x 0 1\r\nset k 0 0 -1\r\n\
             incr k abc\r\nset k 0 0 2\r\nabcd\r\nversion\r\n"
        );
        assert_eq!(
            parse_all(input.as_bytes()),
            vec![
                err("ERROR"),
                err("ERROR"),
                err("ERROR"),
                err(BAD_FORMAT),
                err(BAD_FORMAT),
                err(BAD_FORMAT),
                err("CLIENT_ERROR invalid numeric delta argument"),
                err("CLIENT_ERROR bad data chunk"),
                // What follows the 2 bytes is parsed as a command, as memcached does.
                err("ERROR"),
                Parsed::Command(Command::Version),
            ]
        );
    }

    #[test]
    fn oversized_values_are_refused_and_skipped_in_pieces() {
        let mut parser = CommandParser::new(16);
        let (n, parsed) = parser.parse(b"set k 0 0 20\r\n0123456789");
        assert_eq!(n, 14);
        assert_eq!(parsed, Some(err("SERVER_ERROR object too large for cache")));
        assert_eq!(parser.parse(b"0123456789"), (10, None));
        assert_eq!(parser.parse(b"0123456789"), (10, None));
        assert_eq!(parser.parse(b"\r\nversion\r\n"), (2, None));
        assert_eq!(
            parser.parse(b"version\r\n"),
            (9, Some(Parsed::Command(Command::Version)))
        );
    }

    #[test]
    fn incomplete_input_waits_and_long_lines_are_fatal() {
        let mut parser = CommandParser::new(16);
        assert_eq!(parser.parse(b"get a"), (0, None));
        assert_eq!(parser.parse(b"set k 0 0 5\r\nab"), (0, None));
        let long = vec![b'a'; MAX_LINE];
        assert!(matches!(parser.parse(&long), (_, Some(Parsed::Fatal(_)))));
    }

    #[test]
    fn long_get_lines_up_to_their_own_bound() {
        // 3,000 keys of 40 bytes: past MAX_LINE, well within MAX_GET_LINE.
        let keys: Vec<String> = (0..3000).map(|i| format!("{i:040}")).collect();
        let line = format!("gets {}\r\n", keys.join(" "));
        assert!(line.len() > MAX_LINE);
        let mut parser = CommandParser::new(16);
        assert_eq!(parser.parse(&line.as_bytes()[..line.len() - 1]), (0, None));
        let (n, parsed) = parser.parse(line.as_bytes());
        assert_eq!(n, line.len());
        let Some(Parsed::Command(Command::Get {
            keys: got,
            cas: true,
        })) = parsed
        else {
            panic!("{parsed:?}");
        };
        assert_eq!(got.len(), 3000);
        assert!(got.iter().eq(keys.iter().map(String::as_bytes)));
        assert_eq!(got.get(3000), None);
        // Other commands keep the short bound; a get line past its own is fatal.
        let mut parser = CommandParser::new(16);
        let long_set = format!("set {}", "k".repeat(MAX_LINE));
        assert!(matches!(
            parser.parse(long_set.as_bytes()),
            (_, Some(Parsed::Fatal(_)))
        ));
        let mut parser = CommandParser::new(16);
        let mut long_get = b"get".to_vec();
        while long_get.len() <= MAX_GET_LINE {
            long_get.extend_from_slice(b" key");
        }
        assert_eq!(parser.parse(&long_get[..MAX_GET_LINE - 1]), (0, None));
        assert_eq!(
            parser.parse(&long_get),
            (
                long_get.len(),
                Some(Parsed::Fatal("CLIENT_ERROR line too long".into()))
            )
        );
        // More keys than MAX_GET_KEYS (short ones fit the line): refused, in sync.
        let mut parser = CommandParser::new(16);
        let many = format!("get{}\r\nversion\r\n", " k".repeat(MAX_GET_KEYS + 1));
        let (n, parsed) = parser.parse(many.as_bytes());
        assert_eq!(parsed, Some(err("CLIENT_ERROR too many keys")));
        assert_eq!(
            parser.parse(&many.as_bytes()[n..]),
            (9, Some(Parsed::Command(Command::Version)))
        );
    }

    #[test]
    fn a_binary_request_is_refused_at_its_first_byte() {
        let mut parser = CommandParser::new(16);
        assert_eq!(
            parser.parse(&[0x80, 0x00, 0x00]),
            (
                3,
                Some(Parsed::Fatal(
                    "CLIENT_ERROR binary protocol is not supported".into()
                ))
            )
        );
        // Only as the connection's first byte: later, 0x80 is junk in a line.
        let mut parser = CommandParser::new(16);
        assert_eq!(parser.parse(b"ver"), (0, None));
        assert_eq!(parser.parse(b"ver\x80\r\n"), (6, Some(err("ERROR"))));
    }

    /// Random mixes of protocol words, numbers and junk, fed in random
    /// pieces: the parser never panics, always makes progress when it can,
    /// and never holds more than a line plus a value's worth of input.
    #[test]
    fn random_input_never_panics_or_stalls() {
        const WORDS: &[&[u8]] = &[
            b"get ",
            b"gets ",
            b"set ",
            b"cas ",
            b"incr ",
            b"delete ",
            b"touch ",
            b"flush_all",
            b"noreply",
            b"k ",
            b"0 ",
            b"1 ",
            b"5 ",
            b"-1 ",
            b"99999999 ",
            b"\r\n",
            b"\n",
            b"\r",
            b" ",
            b"\0",
            b"\xff",
            b"abcde",
        ];
        let mut x: u64 = 0x853c_49e6_748f_ea9b;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..2000 {
            let mut input = Vec::new();
            for _ in 0..(next() % 40) {
                input.extend_from_slice(WORDS[(next() % WORDS.len() as u64) as usize]);
            }
            let mut parser = CommandParser::new(16);
            let (mut fed, mut used) = (0, 0);
            while used < input.len() {
                if fed < input.len() {
                    fed = (fed + 1 + (next() % 8) as usize).min(input.len());
                }
                let (n, parsed) = parser.parse(&input[used..fed]);
                used += n;
                if n == 0 && parsed.is_none() && fed == input.len() {
                    break; // waiting for more than there is
                }
                assert!(fed - used <= MAX_LINE + 16 + 2);
            }
        }
    }
}
