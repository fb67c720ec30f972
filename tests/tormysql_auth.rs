//! The TorMySQL example's authentication against a scripted MySQL server:
//! the plugins MariaDB does not have on the server side
//! (`caching_sha2_password`, `sha256_password`), every path of them — fast
//! auth, full auth over TLS (the password inside TLS), full auth in the
//! clear by RSA key exchange (the key asked for, or configured), a wrong
//! password, a refusal to send the password unprotected — and a server
//! that breaks the protocol on purpose (truncated packets, an oversized
//! length, junk keys, packets out of order), which must end in a typed
//! error, never a panic or a hang.
//!
//! The fake server is a thread with a std socket (and rustls for TLS): it
//! speaks the handshake and whatever its script says, and checks what the
//! client sends, decrypting RSA with its own private key. No MariaDB needed.

#[allow(dead_code)]
#[path = "../examples/tormysql/auth.rs"]
mod auth;
#[allow(dead_code)]
#[path = "../examples/tormysql/client.rs"]
mod client;
#[allow(dead_code)]
#[path = "../examples/tormysql/conn.rs"]
mod conn;
#[allow(dead_code)]
#[path = "../examples/tormysql/protocol.rs"]
mod protocol;

mod common;
#[path = "common/tls.rs"]
mod test_tls;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::{Oaep, RsaPrivateKey};
use sha1::Sha1;
use squall::{greenlet, Error, ErrorKind, IOLoop};

use client::Client;
use common::{ms, secs};
use conn::{MysqlError, Options};

const NONCE: &[u8; 20] = b"abcdefghijklmnopqrst";
/// A second nonce, for auth switches (the client must use the new one).
const SWITCH_NONCE: &[u8; 20] = b"ZYXWVUTSRQPONMLKJIHG";
const PASSWORD: &str = "s3cret-pw";

/// The tests take turns: they count the process's descriptors.
static SERIAL: Mutex<()> = Mutex::new(());

fn turn() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The fake server's RSA key (made once: key generation is slow unoptimised).
fn server_key() -> &'static RsaPrivateKey {
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("RSA key"))
}

fn server_key_pem() -> Vec<u8> {
    server_key()
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("PEM")
        .into_bytes()
}

/// What the client's handshake response said.
#[derive(Debug)]
struct Response {
    user: String,
    auth: Vec<u8>,
    plugin: String,
}

/// One accepted connection, from the server's side: packets with sequence
/// ids checked, over TCP or (after an SSLRequest) TLS.
struct Peer {
    io: Box<dyn ReadWrite>,
    /// The socket under `io`, to close its sending side.
    tcp: TcpStream,
    seq: u8,
}

trait ReadWrite: Read + Write + Send {}
impl<T: Read + Write + Send> ReadWrite for T {}

impl Peer {
    fn send(&mut self, payload: &[u8]) {
        let (bytes, next) = protocol::frame(payload, self.seq);
        self.seq = next;
        self.io.write_all(&bytes).expect("fake server write");
        self.io.flush().expect("fake server flush");
    }

    /// Sends the end of the stream (reading goes on).
    fn close_write(&mut self) {
        let _ = self.tcp.shutdown(std::net::Shutdown::Write);
    }

    fn read(&mut self) -> Vec<u8> {
        self.try_read().expect("a packet from the client")
    }

    fn try_read(&mut self) -> Option<Vec<u8>> {
        let mut h = [0; 4];
        self.io.read_exact(&mut h).ok()?;
        let (len, seq) = protocol::parse_header(&h);
        assert_eq!(seq, self.seq, "the client's sequence id");
        self.seq = seq.wrapping_add(1);
        let mut payload = vec![0; len];
        self.io.read_exact(&mut payload).ok()?;
        Some(payload)
    }

    fn ok(&mut self) {
        self.send(&[0, 0, 0, 2, 0, 0, 0]);
    }

    fn access_denied(&mut self) {
        self.send(b"\xff\x15\x04#28000Access denied for user 'u'@'localhost'");
    }

    /// Reads what is left until the client closes: the COM_QUIT of a
    /// client that logged in and closed, nothing from one that gave up.
    fn rest(mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        let _ = self.io.read_to_end(&mut rest);
        rest
    }

    /// Decrypts an RSA answer and undoes the XOR with `nonce`: the
    /// password the client meant, NUL and all.
    fn decrypt(answer: &[u8], nonce: &[u8]) -> Vec<u8> {
        let clear = server_key()
            .decrypt(Oaep::new::<Sha1>(), answer)
            .expect("RSA-OAEP(SHA-1) the server can decrypt");
        clear
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ nonce[i % nonce.len()])
            .collect()
    }
}

fn greeting(plugin: &str, tls: bool) -> Vec<u8> {
    let mut caps = protocol::CLIENT_CAPABILITIES | protocol::CLIENT_CONNECT_WITH_DB;
    if tls {
        caps |= protocol::CLIENT_SSL;
    }
    common::mysql_greeting(7, NONCE, caps, plugin)
}

fn parse_response(payload: &[u8]) -> Response {
    let mut r = protocol::Reader::new(payload);
    let caps = r.u32("caps").unwrap();
    r.bytes(28, "fixed part").unwrap();
    let user = String::from_utf8_lossy(r.nul_str()).into_owned();
    let n = r.u8("auth length").unwrap() as usize;
    let auth = r.bytes(n, "auth").unwrap().to_vec();
    if caps & protocol::CLIENT_CONNECT_WITH_DB != 0 {
        r.nul_str();
    }
    let plugin = String::from_utf8_lossy(r.nul_str()).into_owned();
    Response { user, auth, plugin }
}

/// A one-connection fake server: greets with `plugin` (and TLS when
/// `tls` is given: the client must then switch before it says who it is),
/// reads the handshake response, and hands the rest to `script`, whose
/// value the join handle returns.
fn fake_server<T: Send + 'static>(
    plugin: &'static str,
    tls: Option<Arc<rustls::ServerConfig>>,
    script: impl FnOnce(&mut Peer, Response) -> T + Send + 'static,
) -> (SocketAddr, JoinHandle<(T, Vec<u8>)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(secs(20))).unwrap();
        let mut peer = Peer {
            io: Box::new(s.try_clone().unwrap()),
            tcp: s.try_clone().unwrap(),
            seq: 0,
        };
        peer.send(&greeting(plugin, tls.is_some()));
        let mut first = peer.read();
        if let Some(config) = tls {
            // An SSLRequest: 32 bytes with CLIENT_SSL, then TLS.
            assert_eq!(first.len(), 32, "an SSLRequest");
            let caps = u32::from_le_bytes([first[0], first[1], first[2], first[3]]);
            assert_ne!(caps & protocol::CLIENT_SSL, 0);
            let conn = rustls::ServerConnection::new(config).unwrap();
            let seq = peer.seq;
            peer = Peer {
                io: Box::new(rustls::StreamOwned::new(conn, s.try_clone().unwrap())),
                tcp: s,
                seq,
            };
            first = peer.read();
        }
        let response = parse_response(&first);
        let value = script(&mut peer, response);
        (value, peer.rest())
    });
    (addr, server)
}

fn options(addr: SocketAddr) -> Options {
    let mut opts = Options::new(addr, "u", PASSWORD);
    opts.database = Some("db".to_owned());
    opts.connect_timeout = secs(10);
    opts
}

/// Connects (in a child, on a fresh loop), runs `SELECT`-free checks: the
/// plugin that authenticated, then closes with COM_QUIT.
fn connect(opts: Options) -> Result<String, Error> {
    let io_loop = IOLoop::new().expect("loop");
    io_loop.make_current();
    let result = io_loop.run_sync(
        move || {
            greenlet::async_call_method(move || {
                let c = greenlet::wait(Client::connect(opts))?;
                let plugin = c.auth_plugin().unwrap_or_default();
                greenlet::wait(c.close())?;
                Ok(plugin)
            })
        },
        Some(secs(30)),
    );
    io_loop.close();
    IOLoop::clear_current();
    result
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

const QUIT: [u8; 5] = [1, 0, 0, 0, protocol::COM_QUIT];

fn mysql_error(err: &Error) -> &MysqlError {
    MysqlError::of(err).unwrap_or_else(|| panic!("not a MySQL error: {err:?}"))
}

#[test]
fn caching_sha2_fast_path_and_full_auth_over_tls() {
    let _turn = turn();
    let fds = open_fds();
    // Fast path: the cached scramble is enough.
    let (addr, server) = fake_server("caching_sha2_password", None, |peer, response| {
        assert_eq!(response.plugin, "caching_sha2_password");
        assert_eq!(response.user, "u");
        assert_eq!(
            response.auth,
            protocol::scramble_caching_sha2(PASSWORD.as_bytes(), NONCE)
        );
        peer.send(&[1, 3]);
        peer.ok();
    });
    assert_eq!(connect(options(addr)).unwrap(), "caching_sha2_password");
    assert_eq!(server.join().unwrap().1, QUIT);

    // Full auth over TLS: the password itself, inside TLS, and nothing
    // (no key request) in between.
    let certs = test_tls::Certs::new("fake mysql CA");
    let (addr, server) = fake_server(
        "caching_sha2_password",
        Some(certs.server_config()),
        |peer, response| {
            assert_eq!(
                response.auth,
                protocol::scramble_caching_sha2(PASSWORD.as_bytes(), NONCE)
            );
            peer.send(&[1, 4]);
            let password = peer.read();
            peer.ok();
            password
        },
    );
    let mut opts = options(addr);
    opts.ssl = Some(squall::tls::ClientOptions::new().ca_certs(certs.ca.cert.as_bytes().to_vec()));
    assert_eq!(connect(opts).unwrap(), "caching_sha2_password");
    let (password, rest) = server.join().unwrap();
    assert_eq!(password, format!("{PASSWORD}\0").as_bytes());
    assert_eq!(rest, QUIT);

    // sha256_password over TLS: the password in the handshake response.
    let (addr, server) = fake_server(
        "sha256_password",
        Some(certs.server_config()),
        |peer, response| {
            peer.ok();
            (response.plugin, response.auth)
        },
    );
    let mut opts = options(addr);
    opts.ssl = Some(squall::tls::ClientOptions::new().ca_certs(certs.ca.cert.as_bytes().to_vec()));
    assert_eq!(connect(opts).unwrap(), "sha256_password");
    let ((plugin, auth), _) = server.join().unwrap();
    assert_eq!(plugin, "sha256_password");
    assert_eq!(auth, format!("{PASSWORD}\0").as_bytes());
    assert_eq!(open_fds(), fds);
}

#[test]
fn full_auth_in_the_clear_by_rsa_key_exchange() {
    let _turn = turn();
    let fds = open_fds();
    let pem = server_key_pem();

    // caching_sha2_password after an auth switch (a fresh nonce): fast auth
    // fails, the key is asked for (0x02) and the password comes encrypted.
    let key = pem.clone();
    let (addr, server) = fake_server("mysql_native_password", None, move |peer, response| {
        assert_eq!(response.plugin, "mysql_native_password");
        let mut switch = b"\xfecaching_sha2_password\0".to_vec();
        switch.extend_from_slice(SWITCH_NONCE);
        switch.push(0);
        peer.send(&switch);
        assert_eq!(
            peer.read(),
            protocol::scramble_caching_sha2(PASSWORD.as_bytes(), SWITCH_NONCE)
        );
        peer.send(&[1, 4]);
        assert_eq!(peer.read(), [2], "a public key request");
        let mut more = vec![1];
        more.extend_from_slice(&key);
        peer.send(&more);
        let answer = peer.read();
        assert_eq!(answer.len(), 256, "one 2048-bit RSA block");
        let password = Peer::decrypt(&answer, SWITCH_NONCE);
        peer.ok();
        password
    });
    assert_eq!(connect(options(addr)).unwrap(), "caching_sha2_password");
    let (password, rest) = server.join().unwrap();
    assert_eq!(password, format!("{PASSWORD}\0").as_bytes());
    assert_eq!(rest, QUIT);

    // A configured key: no request, the password encrypted at once, even
    // with asking forbidden.
    let (addr, server) = fake_server("caching_sha2_password", None, |peer, _| {
        peer.send(&[1, 4]);
        let password = Peer::decrypt(&peer.read(), NONCE);
        peer.ok();
        password
    });
    let mut opts = options(addr);
    opts.server_public_key = Some(pem.clone());
    opts.get_server_public_key = false;
    assert_eq!(connect(opts).unwrap(), "caching_sha2_password");
    assert_eq!(server.join().unwrap().0, format!("{PASSWORD}\0").as_bytes());

    // sha256_password in the clear: a key request in the handshake
    // response, the key, the password encrypted. A long password (past the
    // 20-byte nonce: the XOR wraps).
    let long = "a much longer password, well past twenty bytes".to_owned();
    let key = pem.clone();
    let (addr, server) = fake_server("sha256_password", None, move |peer, response| {
        assert_eq!(response.auth, [1], "a public key request");
        let mut more = vec![1];
        more.extend_from_slice(&key);
        peer.send(&more);
        let password = Peer::decrypt(&peer.read(), NONCE);
        peer.ok();
        password
    });
    let mut opts = options(addr);
    opts.password = long.clone();
    assert_eq!(connect(opts).unwrap(), "sha256_password");
    assert_eq!(server.join().unwrap().0, format!("{long}\0").as_bytes());
    assert_eq!(open_fds(), fds);
}

#[test]
fn wrong_passwords_and_unprotected_passwords_are_typed_errors() {
    let _turn = turn();
    let fds = open_fds();
    let pem = server_key_pem();

    // The RSA path with a password the server does not accept: its ERR,
    // code and state.
    let key = pem.clone();
    let (addr, server) = fake_server("caching_sha2_password", None, move |peer, _| {
        peer.send(&[1, 4]);
        assert_eq!(peer.read(), [2]);
        let mut more = vec![1];
        more.extend_from_slice(&key);
        peer.send(&more);
        let password = Peer::decrypt(&peer.read(), NONCE);
        peer.access_denied();
        password
    });
    let mut opts = options(addr);
    opts.password = "wrong".into();
    let err = connect(opts).unwrap_err();
    match mysql_error(&err) {
        MysqlError::Server(e) => {
            assert_eq!((e.code, e.sql_state.as_str()), (1045, "28000"));
            assert!(e.message.starts_with("Access denied"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    let (password, rest) = server.join().unwrap();
    assert_eq!(password, b"wrong\0");
    assert!(rest.is_empty(), "no COM_QUIT after a refused login");

    // Neither TLS nor a key, and asking forbidden: the client stops; the
    // server never sees the password in any form.
    for plugin in ["caching_sha2_password", "sha256_password"] {
        let (addr, server) = fake_server(plugin, None, |peer, response| {
            if response.plugin == "caching_sha2_password" {
                peer.send(&[1, 4]);
            } else {
                // (The client answered with mysql_native_password: switch.)
                let mut switch = b"\xfesha256_password\0".to_vec();
                switch.extend_from_slice(NONCE);
                switch.push(0);
                peer.send(&switch);
            }
            response.plugin
        });
        let mut opts = options(addr);
        opts.get_server_public_key = false;
        let err = connect(opts).unwrap_err();
        assert!(
            matches!(mysql_error(&err), MysqlError::Insecure(why) if why.contains(plugin)),
            "{err:?}"
        );
        let (answered, rest) = server.join().unwrap();
        assert!(rest.is_empty(), "{plugin}: sent {rest:?}");
        if plugin == "sha256_password" {
            assert_eq!(answered, "mysql_native_password");
        }
    }

    // A bad key from the server: a typed error, the password not sent.
    let (addr, server) = fake_server("caching_sha2_password", None, |peer, _| {
        peer.send(&[1, 4]);
        assert_eq!(peer.read(), [2]);
        peer.send(b"\x01-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n");
    });
    let err = connect(options(addr)).unwrap_err();
    assert!(
        matches!(mysql_error(&err), MysqlError::PublicKey(_)),
        "{err:?}"
    );
    assert!(server.join().unwrap().1.is_empty());

    // A configured key that is not one: the same.
    let (addr, server) = fake_server("sha256_password", None, |peer, _| {
        let mut more = vec![1];
        more.extend_from_slice(&server_key_pem());
        peer.send(&more);
    });
    let mut opts = options(addr);
    opts.server_public_key = Some(b"not a key".to_vec());
    let err = connect(opts).unwrap_err();
    assert!(
        matches!(mysql_error(&err), MysqlError::PublicKey(_)),
        "{err:?}"
    );
    server.join().unwrap();
    assert_eq!(open_fds(), fds);
}

/// Connects to a server that runs `script` right after accepting (no
/// greeting of ours), expecting an error within `bound`.
fn broken_server(
    opts_for: impl FnOnce(SocketAddr) -> Options,
    bound: Duration,
    script: impl FnOnce(&mut TcpStream) + Send + 'static,
) -> Error {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(secs(20))).unwrap();
        script(&mut s);
        // Wait for the client to give up (its close ends this read).
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    });
    let started = Instant::now();
    let err = connect(opts_for(addr)).expect_err("a broken server is an error");
    assert!(started.elapsed() < bound, "took {:?}", started.elapsed());
    server.join().expect("the fake server");
    err
}

fn framed(payload: &[u8], seq: u8) -> Vec<u8> {
    protocol::frame(payload, seq).0
}

#[test]
fn a_malicious_server_gets_typed_errors_not_panics_or_hangs() {
    let _turn = turn();
    let fds = open_fds();
    let kind = |err: &Error| err.kind();
    let protocol_error = |err: &Error| matches!(MysqlError::of(err), Some(MysqlError::Protocol(_)));

    // A greeting cut short, then the close: the stream's end, at once.
    let err = broken_server(options, secs(5), |s| {
        let g = framed(&greeting("mysql_native_password", false), 0);
        s.write_all(&g[..20]).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
    });
    assert_eq!(kind(&err), ErrorKind::StreamClosed, "{err:?}");

    // A whole greeting whose fields are cut short: a protocol error.
    let err = broken_server(options, secs(5), |s| {
        let g = greeting("mysql_native_password", false);
        s.write_all(&framed(&g[..12], 0)).unwrap();
    });
    assert!(protocol_error(&err), "{err:?}");

    // Another protocol version; a header with the wrong sequence id.
    let err = broken_server(options, secs(5), |s| {
        s.write_all(&framed(b"\x09old", 0)).unwrap();
    });
    assert!(protocol_error(&err), "{err:?}");
    let err = broken_server(options, secs(5), |s| {
        s.write_all(&framed(&greeting("mysql_native_password", false), 3))
            .unwrap();
    });
    assert!(protocol_error(&err), "{err:?}");

    // A header declaring 16 MB - 1, then a trickle and silence: the
    // client waits for bytes that never come only until its connect
    // timeout (and holds what arrived, not what was declared).
    let err = broken_server(
        |addr| {
            let mut o = options(addr);
            o.connect_timeout = ms(500);
            o
        },
        secs(5),
        |s| {
            s.write_all(&[0xff, 0xff, 0xff, 0, 10]).unwrap();
        },
    );
    assert_eq!(kind(&err), ErrorKind::Timeout, "{err:?}");

    // Past max_packet_size: refused from the header, before the bytes.
    let err = broken_server(
        |addr| {
            let mut o = options(addr);
            o.max_packet_size = 1 << 20;
            o
        },
        secs(5),
        |s| {
            // A 16 MB - 1 piece (continued) and a second one: 32 MB declared.
            let _ = s.write_all(&[0xff, 0xff, 0xff, 0]);
            let _ = s.write_all(&vec![b'x'; 1 << 16]);
        },
    );
    assert!(
        protocol_error(&err) && err.to_string().contains("max_packet_size"),
        "{err:?}"
    );

    // Auth conversations gone wrong: an ERR cut short, junk where a
    // verdict belongs, more data for a plugin without any, a short
    // ed25519 nonce, an unknown plugin.
    let cases: Vec<(&'static str, Vec<u8>)> = vec![
        ("caching_sha2_password", vec![0xff, 0x15]),
        ("caching_sha2_password", vec![1, 0x42]),
        ("caching_sha2_password", vec![0x07, 1, 2]),
        ("mysql_native_password", vec![1, 3]),
        (
            "mysql_native_password",
            b"\xfeclient_ed25519\0short".to_vec(),
        ),
    ];
    for (plugin, answer) in cases {
        let shown = answer.clone();
        let (addr, server) = fake_server(plugin, None, move |peer, _| peer.send(&answer));
        let err = connect(options(addr)).unwrap_err();
        assert!(protocol_error(&err), "{plugin} {shown:?}: {err:?}");
        assert!(server.join().unwrap().1.is_empty());
    }
    let (addr, server) = fake_server("mysql_native_password", None, |peer, _| {
        peer.send(b"\xfedialog\0nonce")
    });
    let err = connect(options(addr)).unwrap_err();
    assert!(
        matches!(mysql_error(&err), MysqlError::Unsupported(what) if what.contains("dialog")),
        "{err:?}"
    );
    server.join().unwrap();

    // Garbage after a good login: a column count of 2^62 with nothing
    // behind it must not reserve room for it.
    let (addr, server) = fake_server("mysql_native_password", None, |peer, _| {
        peer.ok();
        peer.seq = 0;
        let query = peer.read();
        assert_eq!(&query[1..], b"SELECT 1");
        peer.send(&[0xfe, 0, 0, 0, 0, 0, 0, 0, 0x40]);
        peer.close_write();
    });
    let opts = options(addr);
    let io_loop = IOLoop::new().expect("loop");
    io_loop.make_current();
    let err = io_loop
        .run_sync(
            move || {
                greenlet::async_call_method(move || {
                    let c = greenlet::wait(Client::connect(opts))?;
                    greenlet::wait(c.query("SELECT 1"))
                })
            },
            Some(secs(30)),
        )
        .expect_err("a column count with no columns");
    io_loop.close();
    IOLoop::clear_current();
    assert_eq!(kind(&err), ErrorKind::StreamClosed, "{err:?}");
    server.join().unwrap();
    assert_eq!(open_fds(), fds);
}

mod arbitrary_server_bytes {
    //! Whatever a server sends, the pure parsers and the auth state machine
    //! answer with a value or a typed error: never a panic, never a step
    //! that sends the password unprotected.
    use super::*;
    use proptest::prelude::*;

    fn packet() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            // Shapes the client looks at first: OK, more data, a switch, ERR.
            (
                prop_oneof![Just(0u8), Just(1), Just(0xfe), Just(0xff)],
                proptest::collection::vec(any::<u8>(), 0..48)
            )
                .prop_map(|(tag, rest)| [vec![tag], rest].concat()),
            Just(vec![1, 4]),
            Just(vec![1, 3]),
            Just(b"\xfecaching_sha2_password\0abcdefghijklmnopqrst\0".to_vec()),
            Just(b"\xfesha256_password\0abcdefghijklmnopqrst\0".to_vec()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..96), n in 0usize..6) {
            let _ = protocol::Handshake::parse(&bytes);
            let _ = protocol::Column::parse(&bytes);
            let _ = protocol::Ok::parse(&bytes);
            let _ = protocol::ServerError::parse(&bytes);
            let _ = protocol::parse_eof(&bytes);
            let _ = protocol::parse_auth_switch(&bytes);
            if let Ok(row) = protocol::Row::parse(&bytes, n) {
                prop_assert_eq!(row.len(), n);
                for i in 0..n {
                    let _ = row.get(i);
                }
            }
        }

        #[test]
        fn the_auth_conversation_never_panics_or_leaks_the_password(
            plugin in prop_oneof![
                Just("mysql_native_password"),
                Just("caching_sha2_password"),
                Just("sha256_password"),
                Just("client_ed25519"),
                Just("dialog"),
            ],
            packets in proptest::collection::vec(packet(), 1..6),
        ) {
            let creds = auth::Credentials {
                password: b"hunter2-secret".to_vec(),
                tls: false,
                server_public_key: None,
                get_server_public_key: false,
            };
            let (mut a, _) = auth::Auth::start(creds, plugin, NONCE);
            for p in packets {
                match a.on_packet(&p) {
                    Ok(auth::Step::Send(data)) => {
                        // Without TLS or a key, nothing sent may hold the
                        // password in the clear.
                        prop_assert!(
                            !data.windows(7).any(|w| w == b"hunter2"),
                            "sent {:?}", data
                        );
                    }
                    Ok(auth::Step::Read) => {}
                    Ok(auth::Step::Done) | Err(_) => break,
                }
            }
        }
    }
}
