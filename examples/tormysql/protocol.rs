//! The MySQL client/server protocol's pieces that do not touch a socket:
//! packet headers, length-encoded integers and strings, the handshake, OK /
//! ERR / EOF packets, column definitions, text rows, and the password
//! scrambles. Everything here is pure, so it is tested on bytes.
//!
//! Reference: the MySQL and MariaDB client/server protocol documentation
//! ("Protocol::HandshakeV10", "Protocol::HandshakeResponse41",
//! "OK_Packet", "ERR_Packet", "EOF_Packet", "ColumnDefinition41",
//! "ResultsetRow"), and PyMySQL's `connections.py`, which this follows.

use std::fmt;

use sha1::{Digest, Sha1};
use sha2::Sha256;

/// A payload of this length is continued in the next packet.
pub const MAX_PAYLOAD: usize = 0xff_ffff;

// Capability flags (the ones this client speaks).
pub const CLIENT_LONG_PASSWORD: u32 = 1;
pub const CLIENT_FOUND_ROWS: u32 = 2;
pub const CLIENT_LONG_FLAG: u32 = 4;
pub const CLIENT_CONNECT_WITH_DB: u32 = 8;
pub const CLIENT_PROTOCOL_41: u32 = 0x200;
/// Set by a server that can switch to TLS; sent in an SSLRequest.
pub const CLIENT_SSL: u32 = 0x800;
pub const CLIENT_TRANSACTIONS: u32 = 0x2000;
pub const CLIENT_SECURE_CONNECTION: u32 = 0x8000;
pub const CLIENT_MULTI_RESULTS: u32 = 0x2_0000;
pub const CLIENT_PLUGIN_AUTH: u32 = 0x8_0000;

/// What this client asks for (minus `CONNECT_WITH_DB` without a database).
pub const CLIENT_CAPABILITIES: u32 = CLIENT_LONG_PASSWORD
    | CLIENT_FOUND_ROWS
    | CLIENT_LONG_FLAG
    | CLIENT_PROTOCOL_41
    | CLIENT_TRANSACTIONS
    | CLIENT_SECURE_CONNECTION
    | CLIENT_MULTI_RESULTS
    | CLIENT_PLUGIN_AUTH;

/// Server status: another result set follows this one.
pub const SERVER_MORE_RESULTS_EXISTS: u16 = 0x0008;

/// `utf8mb4_general_ci`.
pub const CHARSET_UTF8MB4: u8 = 45;

// Commands.
pub const COM_QUIT: u8 = 0x01;
pub const COM_QUERY: u8 = 0x03;
pub const COM_PING: u8 = 0x0e;

/// The auth plugins this client knows.
pub const NATIVE_PASSWORD: &str = "mysql_native_password";
pub const CACHING_SHA2_PASSWORD: &str = "caching_sha2_password";

/// The server broke the protocol (or the client misread it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub type Parsed<T> = Result<T, ProtocolError>;

fn short(what: &str) -> ProtocolError {
    ProtocolError(format!("packet too short for {what}"))
}

// ----- framing -----------------------------------------------------------------

/// The 4-byte header of one packet: 3 bytes of length, 1 of sequence id.
pub fn header(len: usize, seq: u8) -> [u8; 4] {
    debug_assert!(len <= MAX_PAYLOAD);
    [len as u8, (len >> 8) as u8, (len >> 16) as u8, seq]
}

/// `(length, sequence id)` of a header.
pub fn parse_header(h: &[u8; 4]) -> (usize, u8) {
    (
        h[0] as usize | (h[1] as usize) << 8 | (h[2] as usize) << 16,
        h[3],
    )
}

/// `payload` framed as packets starting at sequence id `seq`: split into
/// 16 MB - 1 pieces, with an empty packet after a payload that is a whole
/// number of them. Returns the bytes and the next sequence id.
pub fn frame(payload: &[u8], mut seq: u8) -> (Vec<u8>, u8) {
    let mut out = Vec::with_capacity(payload.len() + 4 * (payload.len() / MAX_PAYLOAD + 1));
    let mut rest = payload;
    loop {
        let n = rest.len().min(MAX_PAYLOAD);
        out.extend_from_slice(&header(n, seq));
        out.extend_from_slice(&rest[..n]);
        seq = seq.wrapping_add(1);
        rest = &rest[n..];
        if n < MAX_PAYLOAD {
            return (out, seq);
        }
    }
}

// ----- reading fields ------------------------------------------------------------

/// A cursor over one payload.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn bytes(&mut self, n: usize, what: &str) -> Parsed<&'a [u8]> {
        if self.remaining() < n {
            return Err(short(what));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn u8(&mut self, what: &str) -> Parsed<u8> {
        Ok(self.bytes(1, what)?[0])
    }

    pub fn u16(&mut self, what: &str) -> Parsed<u16> {
        let b = self.bytes(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub fn u32(&mut self, what: &str) -> Parsed<u32> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A length-encoded integer; `None` for the NULL marker (0xfb).
    pub fn lenenc(&mut self, what: &str) -> Parsed<Option<u64>> {
        let first = self.u8(what)?;
        let n = match first {
            0..=0xfa => return Ok(Some(u64::from(first))),
            0xfb => return Ok(None),
            0xfc => 2,
            0xfd => 3,
            0xfe => 8,
            0xff => {
                return Err(ProtocolError(format!(
                    "bad length-encoded integer in {what}"
                )))
            }
        };
        let b = self.bytes(n, what)?;
        let mut v = 0u64;
        for (i, &byte) in b.iter().enumerate() {
            v |= u64::from(byte) << (8 * i);
        }
        Ok(Some(v))
    }

    /// A length-encoded integer that must not be NULL.
    pub fn lenenc_int(&mut self, what: &str) -> Parsed<u64> {
        self.lenenc(what)?
            .ok_or_else(|| ProtocolError(format!("unexpected NULL in {what}")))
    }

    /// A length-encoded string, as `(start, end)` offsets; `None` for NULL.
    pub fn lenenc_span(&mut self, what: &str) -> Parsed<Option<(usize, usize)>> {
        match self.lenenc(what)? {
            None => Ok(None),
            Some(len) => {
                let len = usize::try_from(len).map_err(|_| short(what))?;
                let start = self.pos;
                self.bytes(len, what)?;
                Ok(Some((start, start + len)))
            }
        }
    }

    /// A length-encoded string that must not be NULL.
    pub fn lenenc_str(&mut self, what: &str) -> Parsed<&'a [u8]> {
        match self.lenenc_span(what)? {
            Some((a, b)) => Ok(&self.buf[a..b]),
            None => Err(ProtocolError(format!("unexpected NULL in {what}"))),
        }
    }

    /// A NUL-terminated string (the NUL is consumed, not returned); a
    /// missing NUL takes the rest.
    pub fn nul_str(&mut self) -> &'a [u8] {
        let rest = &self.buf[self.pos..];
        match memchr::memchr(0, rest) {
            Some(i) => {
                self.pos += i + 1;
                &rest[..i]
            }
            None => {
                self.pos = self.buf.len();
                rest
            }
        }
    }

    pub fn rest(&mut self) -> &'a [u8] {
        let rest = &self.buf[self.pos..];
        self.pos = self.buf.len();
        rest
    }
}

/// Appends `v` as a length-encoded integer.
pub fn put_lenenc(out: &mut Vec<u8>, v: u64) {
    match v {
        0..=0xfa => out.push(v as u8),
        0xfb..=0xffff => {
            out.push(0xfc);
            out.extend_from_slice(&(v as u16).to_le_bytes());
        }
        0x1_0000..=0xff_ffff => {
            out.push(0xfd);
            out.extend_from_slice(&(v as u32).to_le_bytes()[..3]);
        }
        _ => {
            out.push(0xfe);
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

// ----- the handshake ----------------------------------------------------------

/// The server's greeting (Protocol::HandshakeV10).
#[derive(Clone, Debug)]
pub struct Handshake {
    pub server_version: String,
    pub connection_id: u32,
    /// The 20-byte nonce (both parts, without the trailing NUL).
    pub nonce: Vec<u8>,
    pub capabilities: u32,
    pub charset: u8,
    pub status: u16,
    /// The plugin the server proposes (`mysql_native_password` if it names none).
    pub auth_plugin: String,
}

impl Handshake {
    /// Parses a greeting (an ERR packet is the caller's to check first).
    pub fn parse(payload: &[u8]) -> Parsed<Handshake> {
        let mut r = Reader::new(payload);
        let version = r.u8("protocol version")?;
        if version != 10 {
            return Err(ProtocolError(format!(
                "unsupported protocol version {version} (only 10)"
            )));
        }
        let server_version = String::from_utf8_lossy(r.nul_str()).into_owned();
        let connection_id = r.u32("connection id")?;
        let mut nonce = r.bytes(8, "auth data")?.to_vec();
        r.u8("filler")?;
        let mut capabilities = u32::from(r.u16("capabilities")?);
        let (mut charset, mut status, mut auth_plugin) = (0, 0, NATIVE_PASSWORD.to_owned());
        if r.remaining() > 0 {
            charset = r.u8("charset")?;
            status = r.u16("status")?;
            capabilities |= u32::from(r.u16("capabilities")?) << 16;
            let data_len = r.u8("auth data length")?;
            r.bytes(10, "reserved")?;
            if capabilities & CLIENT_SECURE_CONNECTION != 0 {
                let n = (usize::from(data_len).saturating_sub(8)).max(13);
                let part2 = r.bytes(n.min(r.remaining()), "auth data part 2")?;
                // The part ends with a NUL that is not part of the nonce.
                let part2 = part2.strip_suffix(&[0]).unwrap_or(part2);
                nonce.extend_from_slice(part2);
            }
            if capabilities & CLIENT_PLUGIN_AUTH != 0 && r.remaining() > 0 {
                let name = r.nul_str();
                if !name.is_empty() {
                    auth_plugin = String::from_utf8_lossy(name).into_owned();
                }
            }
        }
        if capabilities & CLIENT_PROTOCOL_41 == 0 {
            return Err(ProtocolError(
                "the server does not speak protocol 4.1".to_owned(),
            ));
        }
        Ok(Handshake {
            server_version,
            connection_id,
            nonce,
            capabilities,
            charset,
            status,
            auth_plugin,
        })
    }
}

/// The client's answer (Protocol::HandshakeResponse41).
pub fn handshake_response(
    capabilities: u32,
    user: &str,
    auth: &[u8],
    database: Option<&str>,
    plugin: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + user.len() + auth.len() + plugin.len());
    out.extend_from_slice(&capabilities.to_le_bytes());
    out.extend_from_slice(&(MAX_PAYLOAD as u32).to_le_bytes());
    out.push(CHARSET_UTF8MB4);
    out.extend_from_slice(&[0; 23]);
    out.extend_from_slice(user.as_bytes());
    out.push(0);
    out.push(auth.len() as u8);
    out.extend_from_slice(auth);
    if let Some(db) = database {
        out.extend_from_slice(db.as_bytes());
        out.push(0);
    }
    if capabilities & CLIENT_PLUGIN_AUTH != 0 {
        out.extend_from_slice(plugin.as_bytes());
        out.push(0);
    }
    out
}

/// SSLRequest: the handshake response's fixed 32 bytes (capabilities with
/// [`CLIENT_SSL`], packet size, charset, filler) and nothing else. The
/// client sends it instead of saying who it is, switches to TLS, and then
/// sends the whole handshake response inside.
pub fn ssl_request(capabilities: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    out.extend_from_slice(&(capabilities | CLIENT_SSL).to_le_bytes());
    out.extend_from_slice(&(MAX_PAYLOAD as u32).to_le_bytes());
    out.push(CHARSET_UTF8MB4);
    out.extend_from_slice(&[0; 23]);
    out
}

/// `mysql_native_password`: `SHA1(password) XOR SHA1(nonce + SHA1(SHA1(password)))`;
/// empty for an empty password.
pub fn scramble_native(password: &[u8], nonce: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = Sha1::digest(password);
    let stage2 = Sha1::digest(stage1);
    let mut h = Sha1::new();
    h.update(&nonce[..nonce.len().min(20)]);
    h.update(stage2);
    let mix = h.finalize();
    stage1.iter().zip(mix.iter()).map(|(a, b)| a ^ b).collect()
}

/// `caching_sha2_password`'s fast path: `SHA256(password) XOR
/// SHA256(SHA256(SHA256(password)) + nonce)`; empty for an empty password.
pub fn scramble_caching_sha2(password: &[u8], nonce: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let p1 = Sha256::digest(password);
    let p2 = Sha256::digest(p1);
    let mut h = Sha256::new();
    h.update(p2);
    h.update(&nonce[..nonce.len().min(20)]);
    let p3 = h.finalize();
    p1.iter().zip(p3.iter()).map(|(a, b)| a ^ b).collect()
}

/// The scramble for `plugin`, or `None` for a plugin this client lacks.
pub fn scramble(plugin: &str, password: &[u8], nonce: &[u8]) -> Option<Vec<u8>> {
    match plugin {
        NATIVE_PASSWORD => Some(scramble_native(password, nonce)),
        CACHING_SHA2_PASSWORD => Some(scramble_caching_sha2(password, nonce)),
        _ => None,
    }
}

/// An AuthSwitchRequest (0xfe): the plugin to use and its data, as sent.
/// (The data is not trimmed: the 20-byte scrambles are followed by a NUL
/// their plugins ignore, and `client_ed25519`'s 32-byte nonce, which has
/// none, may end in a zero byte.)
pub fn parse_auth_switch(payload: &[u8]) -> Parsed<(String, Vec<u8>)> {
    let mut r = Reader::new(payload);
    r.u8("auth switch")?;
    let plugin = String::from_utf8_lossy(r.nul_str()).into_owned();
    Ok((plugin, r.rest().to_vec()))
}

// ----- OK, ERR, EOF -----------------------------------------------------------

/// An OK packet (or the EOF that ends a result set, with its status).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ok {
    pub affected_rows: u64,
    pub last_insert_id: u64,
    pub status: u16,
    pub warnings: u16,
    pub info: String,
}

impl Ok {
    pub fn parse(payload: &[u8]) -> Parsed<Ok> {
        let mut r = Reader::new(payload);
        r.u8("OK header")?;
        let affected_rows = r.lenenc_int("affected rows")?;
        let last_insert_id = r.lenenc_int("last insert id")?;
        let status = r.u16("status")?;
        let warnings = r.u16("warnings")?;
        let info = String::from_utf8_lossy(r.rest()).into_owned();
        Ok(Ok {
            affected_rows,
            last_insert_id,
            status,
            warnings,
            info,
        })
    }
}

/// An EOF packet's `(warnings, status)`.
pub fn parse_eof(payload: &[u8]) -> Parsed<(u16, u16)> {
    let mut r = Reader::new(payload);
    r.u8("EOF header")?;
    if r.remaining() < 4 {
        return Ok((0, 0));
    }
    Ok((r.u16("warnings")?, r.u16("status")?))
}

/// Whether a payload is an EOF packet (0xfe and short: a row that starts
/// with 0xfe is an 8-byte length, so at least 9 bytes).
pub fn is_eof(payload: &[u8]) -> bool {
    payload.first() == Some(&0xfe) && payload.len() < 9
}

/// A server error (ERR_Packet): the client's typed error for it lives in
/// `client.rs`; this is what the packet says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerError {
    /// The error number (1064: syntax error, 1045: access denied...).
    pub code: u16,
    /// The five-character SQL state (`42000`, `28000`...); `HY000` if the
    /// server sent none.
    pub sql_state: String,
    /// The server's message.
    pub message: String,
}

impl ServerError {
    pub fn parse(payload: &[u8]) -> Parsed<ServerError> {
        let mut r = Reader::new(payload);
        r.u8("ERR header")?;
        let code = r.u16("error code")?;
        let mut sql_state = "HY000".to_owned();
        if r.remaining() >= 6 && payload[r.pos()] == b'#' {
            r.u8("#")?;
            sql_state = String::from_utf8_lossy(r.bytes(5, "SQL state")?).into_owned();
        }
        let message = String::from_utf8_lossy(r.rest()).into_owned();
        Ok(ServerError {
            code,
            sql_state,
            message,
        })
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, {}) {}", self.code, self.sql_state, self.message)
    }
}

// ----- result sets ---------------------------------------------------------------

/// One column's definition (ColumnDefinition41).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub schema: String,
    pub table: String,
    pub name: String,
    pub charset: u16,
    pub length: u32,
    /// The MySQL type code (`MYSQL_TYPE_*`: 3 LONG, 8 LONGLONG, 253 VAR_STRING...).
    pub column_type: u8,
    pub flags: u16,
    pub decimals: u8,
}

impl Column {
    pub fn parse(payload: &[u8]) -> Parsed<Column> {
        let mut r = Reader::new(payload);
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        r.lenenc_str("catalog")?;
        let schema = text(r.lenenc_str("schema")?);
        let table = text(r.lenenc_str("table")?);
        r.lenenc_str("org_table")?;
        let name = text(r.lenenc_str("name")?);
        r.lenenc_str("org_name")?;
        r.lenenc_int("fixed fields length")?;
        let charset = r.u16("charset")?;
        let length = r.u32("column length")?;
        let column_type = r.u8("type")?;
        let flags = r.u16("flags")?;
        let decimals = r.u8("decimals")?;
        Ok(Column {
            schema,
            table,
            name,
            charset,
            length,
            column_type,
            flags,
            decimals,
        })
    }
}

/// One row of a text result set: its packet's payload and where each value
/// is in it (`None` for SQL NULL), in one allocation per row, whatever its
/// width: the payload, then each value's `(start, end)` as two
/// little-endian `u32`s (`u32::MAX` twice for NULL).
#[derive(Clone, PartialEq, Eq)]
pub struct Row {
    data: Vec<u8>,
    /// Where the spans start (the payload's length).
    spans: usize,
}

/// A NULL value's span.
const NULL_SPAN: u32 = u32::MAX;

impl Row {
    /// Parses a row of `columns` values from its packet's payload (copied).
    pub fn parse(payload: &[u8], columns: usize) -> Parsed<Row> {
        if payload.len() >= NULL_SPAN as usize {
            return Err(ProtocolError("a row of 4 GB or more".to_owned()));
        }
        // `columns` counts column definitions that arrived: bounded by bytes.
        // (Not `vec![0; n]`: calloc zeroes what the copy overwrites.)
        let mut data = Vec::with_capacity(payload.len() + 8 * columns);
        data.extend_from_slice(payload);
        data.resize(payload.len() + 8 * columns, 0);
        let spans = &mut data[payload.len()..];
        let mut pos = 0;
        for span in spans.chunks_exact_mut(8) {
            // The usual value is shorter than 251 bytes: its length is one
            // byte, read here; the rest go through the general reader.
            let (a, b) = match payload.get(pos) {
                Some(&len) if len < 0xfb => {
                    let (a, b) = (pos + 1, pos + 1 + usize::from(len));
                    if b > payload.len() {
                        return Err(short("row value"));
                    }
                    pos = b;
                    (a as u32, b as u32)
                }
                _ => {
                    let mut r = Reader { buf: payload, pos };
                    let value = r.lenenc_span("row value")?;
                    pos = r.pos;
                    match value {
                        Some((a, b)) => (a as u32, b as u32),
                        None => (NULL_SPAN, NULL_SPAN),
                    }
                }
            };
            span[..4].copy_from_slice(&a.to_le_bytes());
            span[4..].copy_from_slice(&b.to_le_bytes());
        }
        if pos != payload.len() {
            return Err(ProtocolError(format!(
                "{} bytes left over after a row of {columns} values",
                payload.len() - pos
            )));
        }
        Ok(Row {
            data,
            spans: payload.len(),
        })
    }

    fn span(&self, i: usize) -> Option<(usize, usize)> {
        let at = self.spans + 8 * i;
        let s = &self.data[at..at + 8];
        let a = u32::from_le_bytes([s[0], s[1], s[2], s[3]]);
        let b = u32::from_le_bytes([s[4], s[5], s[6], s[7]]);
        (a != NULL_SPAN).then_some((a as usize, b as usize))
    }

    /// The number of values.
    pub fn len(&self) -> usize {
        (self.data.len() - self.spans) / 8
    }

    /// Whether the row has no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Value `i`'s bytes; `None` for NULL (panics past the end, like indexing).
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        assert!(i < self.len(), "value {i} of a row of {}", self.len());
        self.span(i).map(|(a, b)| &self.data[a..b])
    }

    /// Value `i` as text; `None` for NULL or for bytes that are not UTF-8.
    pub fn str(&self, i: usize) -> Option<&str> {
        self.get(i).and_then(|b| std::str::from_utf8(b).ok())
    }

    /// Value `i` parsed (`"42"` as 42); `None` for NULL or unparsable text.
    pub fn parse_value<T: std::str::FromStr>(&self, i: usize) -> Option<T> {
        self.str(i).and_then(|s| s.parse().ok())
    }

    /// All values, copied.
    pub fn values(&self) -> Vec<Option<Vec<u8>>> {
        (0..self.len())
            .map(|i| self.get(i).map(<[u8]>::to_vec))
            .collect()
    }
}

impl fmt::Debug for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut l = f.debug_list();
        for i in 0..self.len() {
            match self.get(i) {
                None => l.entry(&"NULL"),
                Some(b) if b.len() > 64 => l.entry(&format_args!("<{} bytes>", b.len())),
                Some(b) => l.entry(&String::from_utf8_lossy(b)),
            };
        }
        l.finish()
    }
}

/// Quotes `s` as an SQL string literal (escapes as `mysql_real_escape_string`
/// does with the default SQL mode: NUL, newlines, quotes, backslash, ^Z).
pub fn quote(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + 2);
    out.push(b'\'');
    for &b in s {
        match b {
            0 => out.extend_from_slice(b"\\0"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\'' => out.extend_from_slice(b"\\'"),
            b'"' => out.extend_from_slice(b"\\\""),
            0x1a => out.extend_from_slice(b"\\Z"),
            _ => out.push(b),
        }
    }
    out.push(b'\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    const NONCE: &[u8; 20] = b"abcdefghijklmnopqrst";

    /// Known vectors, computed independently with Python's hashlib from the
    /// formulas in PyMySQL (`_auth.scramble_native_password`,
    /// `_auth.scramble_caching_sha2`). MariaDB has no `caching_sha2_password`
    /// on the server side, so this vector is that plugin's only check here.
    #[test]
    fn scrambles_match_known_vectors() {
        assert_eq!(
            hex(&scramble_native(b"secret", NONCE)),
            "8817c50fa779daef010ee7577825b0847df9842e"
        );
        assert_eq!(
            hex(&scramble_caching_sha2(b"secret", NONCE)),
            "c76e2898612a4cf042c77fa8c4702c4c64c0c2c557c53c4d75595aaa6abae809"
        );
        assert!(scramble_native(b"", NONCE).is_empty());
        assert!(scramble_caching_sha2(b"", NONCE).is_empty());
        assert_eq!(scramble("dialog", b"x", NONCE), None);
    }

    #[test]
    fn lenenc_round_trips() {
        for v in [
            0u64,
            1,
            250,
            251,
            0xffff,
            0x1_0000,
            0xff_ffff,
            0x100_0000,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_lenenc(&mut out, v);
            assert_eq!(Reader::new(&out).lenenc("v").unwrap(), Some(v), "{v}");
        }
        assert_eq!(Reader::new(&[0xfb]).lenenc("v").unwrap(), None);
        assert!(Reader::new(&[0xfc, 1]).lenenc("v").is_err());
        assert!(Reader::new(&[0xff]).lenenc("v").is_err());
    }

    #[test]
    fn frames_split_at_16_mb_with_an_empty_tail_when_exact() {
        let (out, seq) = frame(b"abc", 7);
        assert_eq!(out, [3, 0, 0, 7, b'a', b'b', b'c']);
        assert_eq!(seq, 8);
        let big = vec![1u8; MAX_PAYLOAD];
        let (out, seq) = frame(&big, 255);
        assert_eq!(out.len(), MAX_PAYLOAD + 8);
        assert_eq!(
            parse_header(&[out[0], out[1], out[2], out[3]]),
            (MAX_PAYLOAD, 255)
        );
        assert_eq!(&out[MAX_PAYLOAD + 4..], &[0, 0, 0, 0]);
        assert_eq!(seq, 1);
        let (out, _) = frame(&vec![2u8; MAX_PAYLOAD + 10], 0);
        assert_eq!(out.len(), MAX_PAYLOAD + 10 + 8);
        let tail = MAX_PAYLOAD + 4;
        assert_eq!(&out[tail..tail + 4], &[10, 0, 0, 1]);
    }

    #[test]
    fn parses_packets() {
        let err = ServerError::parse(b"\xff\x28\x04#42000You have an error").unwrap();
        assert_eq!(err.code, 1064);
        assert_eq!(err.sql_state, "42000");
        assert_eq!(err.message, "You have an error");
        let err = ServerError::parse(b"\xff\x10\x04Too many").unwrap();
        assert_eq!((err.code, err.sql_state.as_str()), (1040, "HY000"));
        let ok = Ok::parse(b"\x00\x05\xfc\x00\x01\x02\x00\x01\x00").unwrap();
        assert_eq!(
            (ok.affected_rows, ok.last_insert_id, ok.status, ok.warnings),
            (5, 256, 2, 1)
        );
        assert!(is_eof(b"\xfe\x00\x00\x02\x00"));
        assert!(!is_eof(b"\xfe\x00\x00\x00\x00\x00\x00\x00\x00"));
        let row = Row::parse(b"\x011\xfb\x00", 3).unwrap();
        assert_eq!(row.len(), 3);
        assert_eq!(row.str(0), Some("1"));
        assert_eq!(row.get(1), None);
        assert_eq!(row.get(2), Some(&b""[..]));
        assert!(Row::parse(b"\x011", 2).is_err());
        assert!(Row::parse(b"\x011\x00", 1).is_err());
        assert!(Row::parse(b"", 0).unwrap().is_empty());
        assert_eq!(quote(b"a'b\\\0"), b"'a\\'b\\\\\\0'".to_vec());
    }

    #[test]
    fn parses_a_mariadb_greeting() {
        let mut g = vec![10];
        g.extend_from_slice(b"10.11.19-MariaDB\0");
        g.extend_from_slice(&7u32.to_le_bytes());
        g.extend_from_slice(&NONCE[..8]);
        g.push(0);
        let caps = CLIENT_CAPABILITIES | CLIENT_CONNECT_WITH_DB;
        g.extend_from_slice(&(caps as u16).to_le_bytes());
        g.push(45);
        g.extend_from_slice(&2u16.to_le_bytes());
        g.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
        g.push(21);
        g.extend_from_slice(&[0; 10]);
        g.extend_from_slice(&NONCE[8..]);
        g.push(0);
        g.extend_from_slice(b"mysql_native_password\0");
        let h = Handshake::parse(&g).unwrap();
        assert_eq!(h.server_version, "10.11.19-MariaDB");
        assert_eq!(h.connection_id, 7);
        assert_eq!(h.nonce, NONCE);
        assert_eq!(h.auth_plugin, NATIVE_PASSWORD);
        assert!(Handshake::parse(&[9]).is_err());
        assert!(Handshake::parse(&g[..20]).is_err());
    }
}
