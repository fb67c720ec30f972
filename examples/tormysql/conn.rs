//! The blocking-style driver: PyMySQL's `Connection`, in straight-line code
//! over [`greenlet::Stream`]. Every read and write here *looks* blocking;
//! run inside a greenlet child, each one switches to the loop until the
//! socket is ready, and the loop serves every other connection meanwhile.
//!
//! [`client`](super::client) wraps this in futures (TorMySQL's shape);
//! code that already runs in a child may use it directly.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use squall::greenlet::Stream;
use squall::tls::ClientOptions;
use squall::{Error, ErrorKind};

use super::auth::{Auth, Credentials, Step};
use super::protocol::{
    self, frame, parse_header, Column, Handshake, ProtocolError, Row, ServerError,
    CLIENT_CAPABILITIES, CLIENT_CONNECT_WITH_DB, CLIENT_SSL, COM_PING, COM_QUERY, COM_QUIT,
    MAX_PAYLOAD, SERVER_MORE_RESULTS_EXISTS,
};

/// How much to ask the socket for at a time while a packet is incomplete
/// (more when the packet needs it).
const READ_CHUNK: usize = 64 * 1024;
/// The read buffer's size: a result of a few KB comes in one read,
/// straight from the socket into it.
const READ_BUFFER: usize = 16 * 1024;
/// An empty read buffer bigger than this (a large value went through) is
/// given back rather than kept for the connection's life.
const KEEP_BUFFER: usize = 256 * 1024;

/// Where and how to connect.
#[derive(Clone, Debug)]
pub struct Options {
    /// The server's address.
    pub addr: SocketAddr,
    /// The user name.
    pub user: String,
    /// The password (empty: none).
    pub password: String,
    /// The database to start in, if any.
    pub database: Option<String>,
    /// The bound on the whole connect: TCP connect, greeting and
    /// authentication (TorMySQL's `connect_timeout`).
    pub connect_timeout: Duration,
    /// The bound on each later read and write (PyMySQL's `read_timeout` /
    /// `write_timeout`): a query whose answer takes longer fails with kind
    /// `Timeout` and closes the connection. `None`: no bound.
    pub read_timeout: Option<Duration>,
    /// The auth plugin to answer the greeting with; `None`: the one the
    /// server proposes. (MariaDB answers an unknown choice with an auth
    /// switch request, which this client follows.)
    pub auth_plugin: Option<String>,
    /// Switch to TLS after the greeting (PyMySQL's `ssl`), verifying the
    /// server with these options; `None`: plain TCP. A server that cannot
    /// do TLS is then an error, never a silent fallback.
    pub ssl: Option<ClientOptions>,
    /// The name to check the server's certificate against; `None`: the
    /// address's IP.
    pub server_hostname: Option<String>,
    /// The server's RSA public key, PEM (PyMySQL's `server_public_key`):
    /// `sha256_password` and `caching_sha2_password`'s full authentication
    /// encrypt the password with it on a connection without TLS, whatever
    /// key the server sends.
    pub server_public_key: Option<Vec<u8>>,
    /// Whether the server may be asked for its public key when there is
    /// none above (libmysqlclient's `--get-server-public-key`; PyMySQL
    /// always asks, and so does this client by default). A key asked for on
    /// a plain connection is only as good as the network: turn this off and
    /// configure the key to be safe from a man in the middle. With neither,
    /// a password that would need RSA is not sent: [`MysqlError::Insecure`].
    pub get_server_public_key: bool,
    /// The largest packet (one logical payload: a row, a greeting) taken
    /// from the server (libmysqlclient's `max_allowed_packet`, 1 GiB by
    /// default). A longer one is refused from its headers, before its
    /// bytes are buffered, and the connection is closed.
    pub max_packet_size: usize,
}

impl Options {
    /// Options for `user`/`password` at `addr`, 10 s to connect, no read bound.
    pub fn new(addr: SocketAddr, user: &str, password: &str) -> Options {
        Options {
            addr,
            user: user.to_owned(),
            password: password.to_owned(),
            database: None,
            connect_timeout: Duration::from_secs(10),
            read_timeout: None,
            auth_plugin: None,
            ssl: None,
            server_hostname: None,
            server_public_key: None,
            get_server_public_key: true,
            max_packet_size: 1 << 30,
        }
    }
}

// ----- the client's own errors -------------------------------------------------

/// What the MySQL client adds to squall's errors (which it also returns
/// as they are: `Io`, `StreamClosed`, `Timeout`). Reach it from a
/// `squall::Error` with [`MysqlError::of`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MysqlError {
    /// The server answered with an ERR packet (a syntax error, a duplicate
    /// key, access denied...). After a query the connection goes on.
    Server(ServerError),
    /// The server broke the protocol; the connection is closed.
    Protocol(String),
    /// Something this client does not do (an auth plugin, LOCAL INFILE).
    Unsupported(String),
    /// The password would have gone unprotected (no TLS, no RSA key), so
    /// it was not sent; the connection is closed.
    Insecure(String),
    /// The server's RSA public key (sent or configured) cannot be used.
    PublicKey(String),
    /// The connect did not finish within its timeout.
    ConnectTimeout(Duration),
    /// The connection is in use by another call (one call at a time).
    Busy,
    /// The pool is closed.
    PoolClosed,
    /// No pooled connection became free within the pool's wait timeout.
    WaitTimeout(Duration),
}

impl fmt::Display for MysqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MysqlError::Server(e) => write!(f, "server error {e}"),
            MysqlError::Protocol(why) => write!(f, "protocol error: {why}"),
            MysqlError::Unsupported(what) => write!(f, "not supported: {what}"),
            MysqlError::Insecure(why) => write!(f, "password not sent: {why}"),
            MysqlError::PublicKey(why) => write!(f, "server public key: {why}"),
            MysqlError::ConnectTimeout(after) => {
                write!(f, "connect timed out after {} ms", after.as_millis())
            }
            MysqlError::Busy => f.write_str("the connection is busy with another call"),
            MysqlError::PoolClosed => f.write_str("the pool is closed"),
            MysqlError::WaitTimeout(after) => write!(
                f,
                "no pooled connection became free within {} ms",
                after.as_millis()
            ),
        }
    }
}

impl std::error::Error for MysqlError {}

impl MysqlError {
    /// As a `squall::Error`, with this error as its source.
    pub fn into_error(self) -> Error {
        let kind = match self {
            MysqlError::ConnectTimeout(_) | MysqlError::WaitTimeout(_) => ErrorKind::Timeout,
            MysqlError::Busy => ErrorKind::InvalidState,
            MysqlError::PoolClosed => ErrorKind::Closed,
            _ => ErrorKind::Other,
        };
        Error::with_source(kind, self.to_string(), self)
    }

    /// The MySQL error inside `err`, if it is one.
    pub fn of(err: &Error) -> Option<&MysqlError> {
        std::error::Error::source(err)?.downcast_ref()
    }

    /// The server's error inside `err` (code, SQL state, message), if it is one.
    pub fn server(err: &Error) -> Option<&ServerError> {
        match MysqlError::of(err)? {
            MysqlError::Server(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ProtocolError> for MysqlError {
    fn from(e: ProtocolError) -> MysqlError {
        MysqlError::Protocol(e.0)
    }
}

fn protocol_error(e: ProtocolError) -> Error {
    MysqlError::from(e).into_error()
}

/// Whether the connection survives `err`: a server's ERR packet or a
/// refused feature leaves the protocol in step, anything else does not.
fn keeps_connection(err: &Error) -> bool {
    matches!(
        MysqlError::of(err),
        Some(MysqlError::Server(_) | MysqlError::Unsupported(_) | MysqlError::Busy)
    )
}

// ----- results ---------------------------------------------------------------

/// What a query returned: columns and rows for a `SELECT`, counts for the rest.
#[derive(Clone, Debug, Default)]
pub struct ResultSet {
    /// The columns (empty for a statement without a result set).
    pub columns: Vec<Column>,
    /// The rows, in order.
    pub rows: Vec<Row>,
    /// Rows changed (matched, with `CLIENT_FOUND_ROWS`).
    pub affected_rows: u64,
    /// `LAST_INSERT_ID()` after an insert.
    pub last_insert_id: u64,
    /// Warnings the statement raised.
    pub warnings: u16,
    /// The server's status flags after it.
    pub status: u16,
    /// The OK packet's human-readable info, if any.
    pub info: String,
}

impl ResultSet {
    /// The first value of the first row as text (`SELECT 1` -> `Some("1")`).
    pub fn scalar(&self) -> Option<&str> {
        self.rows.first().and_then(|r| r.str(0))
    }

    /// The index of the column called `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

// ----- the connection --------------------------------------------------------------

/// One MySQL connection, blocking-style: call it from inside a greenlet
/// child. After an IO or protocol error it is closed, and every later call
/// fails at once with kind `StreamClosed`.
pub struct Connection {
    stream: Stream,
    /// The read buffer: `buf[pos..end]` is unread; `buf.len()` is its room.
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    /// A packet past 16 MB, its pieces joined.
    joined: Vec<u8>,
    seq: u8,
    broken: bool,
    max_packet: usize,
    /// The server's version string.
    pub server_version: String,
    /// The server's id for this connection (`CONNECTION_ID()`, for `KILL`).
    pub connection_id: u32,
    /// The auth plugin that authenticated us.
    pub auth_plugin: String,
}

impl Connection {
    /// Connects and authenticates (inside a child). `on_socket` sees the
    /// stream as soon as TCP is connected, so that a timeout kept outside
    /// can close it.
    ///
    /// # Errors
    /// The connect's error; [`MysqlError::Server`] for a refused login
    /// (1045, `28000`: access denied); [`MysqlError::Unsupported`] for an
    /// auth plugin this client lacks. The socket is closed on every error.
    pub fn connect(opts: &Options, on_socket: impl FnOnce(&Stream)) -> Result<Connection, Error> {
        let stream = Stream::connect(opts.addr, Some(opts.connect_timeout))?;
        on_socket(&stream);
        let mut conn = Connection {
            stream,
            buf: Vec::new(),
            pos: 0,
            end: 0,
            joined: Vec::new(),
            seq: 0,
            broken: false,
            max_packet: opts.max_packet_size,
            server_version: String::new(),
            connection_id: 0,
            auth_plugin: String::new(),
        };
        if let Err(err) = conn.stream.io_stream().set_nodelay(true) {
            conn.stream.close();
            return Err(err);
        }
        match conn.handshake(opts) {
            Ok(()) => {
                conn.stream.set_timeout(opts.read_timeout);
                Ok(conn)
            }
            Err(err) => {
                conn.close();
                Err(err)
            }
        }
    }

    fn handshake(&mut self, opts: &Options) -> Result<(), Error> {
        let greeting = self.read_packet()?;
        if greeting.first() == Some(&0xff) {
            return Err(server_error(&greeting));
        }
        let hs = Handshake::parse(&greeting).map_err(protocol_error)?;
        self.server_version = hs.server_version.clone();
        self.connection_id = hs.connection_id;
        let mut caps = CLIENT_CAPABILITIES & hs.capabilities;
        if opts.database.is_some() {
            caps |= CLIENT_CONNECT_WITH_DB;
        }
        let tls = match &opts.ssl {
            Some(ssl) => {
                self.switch_to_tls(opts, ssl, hs.capabilities, caps)?;
                caps |= CLIENT_SSL;
                true
            }
            None => false,
        };
        // The plugin asked for, else the server's; the conversation that
        // follows (switches, verdicts, key requests) is auth.rs's.
        let plugin = opts
            .auth_plugin
            .clone()
            .unwrap_or_else(|| hs.auth_plugin.clone());
        let creds = Credentials {
            password: opts.password.as_bytes().to_vec(),
            tls,
            server_public_key: opts.server_public_key.clone(),
            get_server_public_key: opts.get_server_public_key,
        };
        let (mut auth, first) = Auth::start(creds, &plugin, &hs.nonce);
        let response = protocol::handshake_response(
            caps,
            &opts.user,
            &first,
            opts.database.as_deref(),
            auth.plugin(),
        );
        self.write_packet(&response)?;
        loop {
            let packet = self.read_packet()?;
            match auth.on_packet(&packet).map_err(MysqlError::into_error)? {
                Step::Done => break,
                Step::Read => {}
                Step::Send(data) => self.write_packet(&data)?,
            }
        }
        self.auth_plugin = auth.plugin().to_owned();
        Ok(())
    }

    /// SSLRequest, then the TLS handshake: the stream is replaced by its
    /// TLS form, and the sequence goes on inside it.
    fn switch_to_tls(
        &mut self,
        opts: &Options,
        ssl: &ClientOptions,
        server_caps: u32,
        caps: u32,
    ) -> Result<(), Error> {
        if server_caps & CLIENT_SSL == 0 {
            return Err(MysqlError::Unsupported(
                "TLS was asked for, and the server cannot do it".to_owned(),
            )
            .into_error());
        }
        self.write_packet(&protocol::ssl_request(caps))?;
        let hostname = opts
            .server_hostname
            .clone()
            .unwrap_or_else(|| opts.addr.ip().to_string());
        let config = ssl.build()?;
        // Bytes the server sent after the greeting would be lost in the
        // switch; it sends none before our TLS hello.
        debug_assert_eq!(self.pos, self.end);
        self.stream = self.stream.start_tls_server_hostname(config, &hostname)?;
        Ok(())
    }

    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        self.stream.io_stream().is_tls()
    }

    /// Runs `sql` (`COM_QUERY`) and reads its whole result. A statement
    /// that returns several result sets (a `CALL`) yields the first; the
    /// others are read and dropped.
    ///
    /// # Errors
    /// [`MysqlError::Server`] for the server's ERR (the connection goes
    /// on); kind `Timeout` past the read timeout, `StreamClosed`/`Io` if the
    /// connection dies (it is then closed).
    pub fn query(&mut self, sql: impl AsRef<[u8]>) -> Result<ResultSet, Error> {
        let sql = sql.as_ref();
        self.guard(|c| {
            c.send_command(COM_QUERY, sql)?;
            let first = c.read_result()?;
            let mut status = first.status;
            while status & SERVER_MORE_RESULTS_EXISTS != 0 {
                status = c.read_result()?.status;
            }
            Ok(first)
        })
    }

    /// `COM_PING`: whether the server answers.
    ///
    /// # Errors
    /// As [`query`](Connection::query).
    pub fn ping(&mut self) -> Result<(), Error> {
        self.guard(|c| {
            c.send_command(COM_PING, b"")?;
            let packet = c.read_packet()?;
            match packet.first() {
                Some(0x00) => Ok(()),
                Some(0xff) => Err(server_error(&packet)),
                _ => Err(protocol_error(ProtocolError("bad answer to ping".into()))),
            }
        })
    }

    /// `COM_QUIT`, then closes the socket (the server answers nothing).
    pub fn quit(&mut self) {
        if !self.broken && !self.stream.closed() {
            let _ = self.send_command(COM_QUIT, b"");
        }
        self.close();
    }

    /// Closes the socket at once (works anywhere, even outside a child).
    pub fn close(&mut self) {
        self.broken = true;
        self.stream.close();
    }

    /// Whether the connection can no longer be used.
    pub fn closed(&self) -> bool {
        self.broken || self.stream.closed()
    }

    /// The stream underneath (shared).
    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    /// Runs `f`, and closes the connection if it failed in a way that
    /// leaves the protocol out of step.
    fn guard<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, Error>) -> Result<T, Error> {
        if self.closed() {
            return Err(Error::new(
                ErrorKind::StreamClosed,
                "the MySQL connection is closed",
            ));
        }
        let result = f(self);
        if let Err(err) = &result {
            if !keeps_connection(err) {
                self.close();
            }
        }
        result
    }

    fn send_command(&mut self, command: u8, arg: &[u8]) -> Result<(), Error> {
        if self.pos != self.end {
            return Err(protocol_error(ProtocolError(
                "the server sent bytes nobody asked for".into(),
            )));
        }
        self.seq = 0;
        let len = 1 + arg.len();
        if len < MAX_PAYLOAD {
            // The usual case: one packet, one buffer.
            let mut out = Vec::with_capacity(4 + len);
            out.extend_from_slice(&protocol::header(len, 0));
            out.push(command);
            out.extend_from_slice(arg);
            self.seq = 1;
            return self.stream.write(out);
        }
        let mut payload = Vec::with_capacity(len);
        payload.push(command);
        payload.extend_from_slice(arg);
        self.write_packet(&payload)
    }

    /// Writes `payload` as one logical packet (split past 16 MB).
    fn write_packet(&mut self, payload: &[u8]) -> Result<(), Error> {
        let (bytes, next) = frame(payload, self.seq);
        self.seq = next;
        self.stream.write(bytes)
    }

    /// Makes at least `need` unread bytes available in `buf[pos..end]`. The
    /// buffer grows with the bytes that arrive, never with a length the
    /// server declared.
    fn fill(&mut self, need: usize) -> Result<(), Error> {
        while self.end - self.pos < need {
            if self.pos == self.end {
                // Nothing unread (the usual case, at a result's start): the
                // socket reads straight into the buffer, no allocation and
                // no copy.
                self.pos = 0;
                self.end = 0;
                if self.buf.len() < READ_BUFFER || self.buf.len() > KEEP_BUFFER {
                    self.buf = vec![0; READ_BUFFER];
                }
                let (buf, n) = self
                    .stream
                    .read_into_partial(std::mem::take(&mut self.buf))?;
                self.buf = buf;
                self.end = n;
            } else {
                // Part of a packet is here: keep it at the front, append
                // what comes.
                if self.pos > 0 {
                    self.buf.copy_within(self.pos..self.end, 0);
                    self.end -= self.pos;
                    self.pos = 0;
                }
                let chunk = self.stream.read_some((need - self.end).max(READ_CHUNK))?;
                let end = self.end + chunk.len();
                if end > self.buf.len() {
                    self.buf.resize(end, 0);
                }
                self.buf[self.end..end].copy_from_slice(&chunk);
                self.end = end;
            }
        }
        Ok(())
    }

    /// Reads one logical packet, checking sequence ids: its payload, in the
    /// read buffer (no copy), or, for one past 16 MB, its pieces joined.
    fn packet(&mut self) -> Result<&[u8], Error> {
        let mut joined: Option<Vec<u8>> = None;
        loop {
            self.fill(4)?;
            let h = &self.buf[self.pos..self.pos + 4];
            let (len, seq) = parse_header(&[h[0], h[1], h[2], h[3]]);
            if seq != self.seq {
                return Err(protocol_error(ProtocolError(format!(
                    "packet out of order: sequence id {seq}, expected {}",
                    self.seq
                ))));
            }
            self.seq = seq.wrapping_add(1);
            let so_far = joined.as_ref().map_or(0, Vec::len);
            if so_far + len > self.max_packet {
                return Err(protocol_error(ProtocolError(format!(
                    "a packet of over {} bytes (max_packet_size {})",
                    so_far + len,
                    self.max_packet
                ))));
            }
            self.pos += 4;
            self.fill(len)?;
            let start = self.pos;
            self.pos += len;
            match joined.as_mut() {
                None if len < MAX_PAYLOAD => return Ok(&self.buf[start..start + len]),
                None => joined = Some(self.buf[start..start + len].to_vec()),
                Some(j) => j.extend_from_slice(&self.buf[start..start + len]),
            }
            if len < MAX_PAYLOAD {
                self.joined = joined.unwrap_or_default();
                return Ok(&self.joined);
            }
        }
    }

    /// [`packet`](Connection::packet), owned (the handshake's few packets).
    fn read_packet(&mut self) -> Result<Vec<u8>, Error> {
        let packet = self.packet()?.to_vec();
        self.joined = Vec::new();
        Ok(packet)
    }

    /// Reads one result: an OK, an ERR, or a text result set. Packets are
    /// parsed where they lie in the read buffer; a row is copied once, into
    /// its own allocation.
    fn read_result(&mut self) -> Result<ResultSet, Error> {
        let first = self.packet()?;
        match first.first().copied() {
            Some(0x00) => {
                let ok = protocol::Ok::parse(first).map_err(protocol_error)?;
                Ok(ResultSet {
                    affected_rows: ok.affected_rows,
                    last_insert_id: ok.last_insert_id,
                    warnings: ok.warnings,
                    status: ok.status,
                    info: ok.info,
                    ..ResultSet::default()
                })
            }
            Some(0xff) => Err(server_error(first)),
            Some(0xfb) => {
                // LOAD DATA LOCAL INFILE: the server asks for a file. Send
                // none (an empty packet), read its verdict, and refuse.
                self.write_packet(b"")?;
                let verdict = self.packet()?;
                if verdict.first() == Some(&0xff) {
                    return Err(server_error(verdict));
                }
                Err(MysqlError::Unsupported("LOAD DATA LOCAL INFILE".into()).into_error())
            }
            Some(_) => {
                let count = protocol::Reader::new(first)
                    .lenenc_int("column count")
                    .map_err(protocol_error)? as usize;
                // The count is the server's word: room grows with the
                // definitions that actually arrive.
                let mut columns = Vec::with_capacity(count.min(256));
                for _ in 0..count {
                    let packet = self.packet()?;
                    columns.push(Column::parse(packet).map_err(protocol_error)?);
                }
                let eof = self.packet()?;
                if !protocol::is_eof(eof) {
                    return Err(protocol_error(ProtocolError(
                        "no EOF after the column definitions".into(),
                    )));
                }
                let mut rows = Vec::new();
                loop {
                    let packet = self.packet()?;
                    if protocol::is_eof(packet) {
                        let (warnings, status) =
                            protocol::parse_eof(packet).map_err(protocol_error)?;
                        self.joined = Vec::new();
                        return Ok(ResultSet {
                            columns,
                            rows,
                            warnings,
                            status,
                            ..ResultSet::default()
                        });
                    }
                    if packet.first() == Some(&0xff) {
                        // An error part-way (the query was killed, say).
                        return Err(server_error(packet));
                    }
                    rows.push(Row::parse(packet, count).map_err(protocol_error)?);
                }
            }
            None => Err(protocol_error(ProtocolError("empty packet".into()))),
        }
    }
}

fn server_error(packet: &[u8]) -> Error {
    match ServerError::parse(packet) {
        Ok(e) => MysqlError::Server(e).into_error(),
        Err(e) => protocol_error(e),
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("connection_id", &self.connection_id)
            .field("server_version", &self.server_version)
            .field("closed", &self.closed())
            .finish()
    }
}
