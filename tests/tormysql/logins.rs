//! Connecting and logging in: each plugin MariaDB proposes or switches to
//! (native, ed25519), `caching_sha2_password` against a fake server, wrong
//! passwords, connect timeouts, and TLS (an account that requires it, a
//! certificate not trusted).

use super::*;

#[test]
fn connects_with_each_plugin_and_refuses_a_wrong_password_without_leaking() {
    let Some((_turn, db)) = server() else { return };
    let opts = options(&db);
    let fds_before = open_fds();
    let o = opts.clone();
    let (plugins, user, timers_left) = run(move || {
        let io_loop = IOLoop::current();
        let mut plugins = Vec::new();
        // (After a first switch: run_sync adds its own timeout once the
        // child has started.)
        greenlet::moment()?;
        let timers_before = io_loop.timer_stats().pending;
        // The plugin the server proposes (mysql_native_password).
        let client = wait(Client::connect(o.clone()))?;
        plugins.push(client.auth_plugin().unwrap_or_default());
        let user = wait(client.query("SELECT CURRENT_USER()"))?;
        wait(client.close())?;
        // The connect's timeout was removed when it completed.
        let timers_left = io_loop.timer_stats().pending - timers_before;
        // Answering with caching_sha2_password: MariaDB has no such plugin
        // and sends an AuthSwitchRequest to mysql_native_password.
        let mut switching = o.clone();
        switching.auth_plugin = Some(protocol::CACHING_SHA2_PASSWORD.to_owned());
        let client = wait(Client::connect(switching))?;
        plugins.push(client.auth_plugin().unwrap_or_default());
        assert_eq!(wait(client.query("SELECT 7"))?.scalar(), Some("7"));
        wait(client.close())?;
        // A user without a password.
        let mut nopw = o;
        nopw.user = "nopw".into();
        nopw.password = String::new();
        let client = wait(Client::connect(nopw))?;
        plugins.push(client.auth_plugin().unwrap_or_default());
        wait(client.close())?;
        Ok((plugins, user.scalar().map(str::to_owned), timers_left))
    })
    .expect("connects");
    assert_eq!(
        plugins,
        [
            "mysql_native_password",
            "mysql_native_password",
            "mysql_native_password"
        ]
    );
    assert_eq!(user.as_deref(), Some("native@%"));
    assert_eq!(timers_left, 0, "the connect timeout must be removed");

    // Wrong passwords: a typed error each time (1045, 28000), and every
    // socket closed.
    let o = opts.clone();
    let errors = run(move || {
        let mut errors = Vec::new();
        for _ in 0..20 {
            let mut wrong = o.clone();
            wrong.password = "not-the-password".into();
            errors.push(wait(Client::connect(wrong)).expect_err("a wrong password is refused"));
        }
        Ok(errors)
    })
    .unwrap();
    for err in &errors {
        let e = MysqlError::server(err).unwrap_or_else(|| panic!("not a server error: {err:?}"));
        assert_eq!((e.code, e.sql_state.as_str()), (1045, "28000"), "{e}");
        assert!(e.message.contains("Access denied"), "{e}");
    }
    assert_eq!(
        open_fds(),
        fds_before,
        "a refused login leaked a descriptor"
    );

    // A server that accepts but never greets: the connect's own timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut o = opts.clone();
    o.addr = silent.local_addr().unwrap();
    o.connect_timeout = ms(200);
    let started = Instant::now();
    let err = run(move || wait(Client::connect(o))).expect_err("times out");
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
    assert_eq!(
        MysqlError::of(&err),
        Some(&MysqlError::ConnectTimeout(ms(200)))
    );
    assert!(started.elapsed() < secs(5));
    // Nothing listening: refused, as an IO error.
    let mut o = opts;
    o.addr.set_port(mariadb::free_port().unwrap());
    let err = run(move || wait(Client::connect(o))).expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::Io, "{err:?}");
    drop(silent);
    assert_eq!(open_fds(), fds_before);
}

/// A one-connection fake server that proposes `caching_sha2_password`
/// (which MariaDB does not implement), answers the client's scramble with
/// `0x01 verdict` (3: fast auth succeeded, 4: full auth needed) and, after
/// 3, an OK. Returns the scramble the client sent.
fn fake_caching_sha2_server(
    verdict: u8,
) -> (std::net::SocketAddr, std::thread::JoinHandle<Vec<u8>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(secs(10))).unwrap();
        let nonce = b"abcdefghijklmnopqrst";
        let caps = protocol::CLIENT_CAPABILITIES | protocol::CLIENT_CONNECT_WITH_DB;
        let g = common::mysql_greeting(1, nonce, caps, "caching_sha2_password");
        let send = |s: &mut std::net::TcpStream, payload: &[u8], seq: u8| {
            s.write_all(&protocol::frame(payload, seq).0).unwrap();
        };
        send(&mut s, &g, 0);
        let mut h = [0; 4];
        s.read_exact(&mut h).unwrap();
        let (len, seq) = protocol::parse_header(&h);
        assert_eq!(seq, 1);
        let mut response = vec![0; len];
        s.read_exact(&mut response).unwrap();
        let mut r = protocol::Reader::new(&response);
        r.bytes(32, "fixed part").unwrap();
        assert_eq!(r.nul_str(), b"native");
        let n = r.u8("auth length").unwrap() as usize;
        let auth = r.bytes(n, "auth").unwrap().to_vec();
        assert_eq!(r.nul_str(), mariadb::DATABASE.as_bytes());
        assert_eq!(r.nul_str(), b"caching_sha2_password");
        send(&mut s, &[0x01, verdict], 2);
        if verdict == 3 {
            send(&mut s, &[0, 0, 0, 2, 0, 0, 0], 3);
            // The client's COM_QUIT, then its close.
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest);
            assert_eq!(rest, [1, 0, 0, 0, protocol::COM_QUIT]);
        }
        auth
    });
    (addr, server)
}

#[test]
fn caching_sha2_password_fast_path_against_a_fake_server() {
    // No MariaDB needed (it has no caching_sha2_password); in turn with the
    // others all the same, for the descriptor count.
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (addr, server) = fake_caching_sha2_server(3);
    let mut opts = Options::new(addr, "native", "secret");
    opts.database = Some(mariadb::DATABASE.to_owned());
    let plugin = run(move || {
        let c = wait(Client::connect(opts))?;
        let plugin = c.auth_plugin();
        wait(c.close())?;
        Ok(plugin)
    })
    .expect("fast auth succeeds");
    assert_eq!(plugin.as_deref(), Some("caching_sha2_password"));
    // The scramble sent: the known vector (see protocol.rs's unit test).
    let auth = server.join().expect("fake server");
    let hex: String = auth.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "c76e2898612a4cf042c77fa8c4702c4c64c0c2c557c53c4d75595aaa6abae809"
    );

    // Full authentication (the server has no cached entry) needs TLS or
    // RSA; told not to ask for the server's key, and without one, the
    // client refuses to send the password (tests/tormysql_auth.rs has the
    // TLS and RSA paths).
    let (addr, server) = fake_caching_sha2_server(4);
    let mut opts = Options::new(addr, "native", "secret");
    opts.database = Some(mariadb::DATABASE.to_owned());
    opts.get_server_public_key = false;
    let err = run(move || wait(Client::connect(opts))).expect_err("full auth is refused");
    assert!(
        matches!(MysqlError::of(&err), Some(MysqlError::Insecure(what)) if what.contains("caching_sha2_password")),
        "{err:?}"
    );
    server.join().expect("fake server");
}

#[test]
fn mariadb_ed25519_accounts() {
    // MariaDB's own plugin, against the real server: the account's plugin
    // is `ed25519`, the client's `client_ed25519` (the server switches to
    // it from the native answer, with a 32-byte nonce to sign). Passwords
    // of any length are seeds (SHA-512 of them), so a short, an exactly
    // 32-byte and a long one.
    let Some((_turn, db)) = server() else { return };
    let opts = options(&db);
    let fds_before = open_fds();
    let passwords = [
        "ed-secret".to_owned(),
        "0123456789abcdef0123456789abcdef".to_owned(),
        "a long ed25519 password ".repeat(8),
    ];
    let (users, wrong) = run(move || {
        let admin = wait(Client::connect(opts.clone()))?;
        // Already loaded is fine (error 1968 on a reused data directory).
        if let Err(err) = wait(admin.query("INSTALL SONAME 'auth_ed25519'")) {
            assert_eq!(server_code(&err).map(|c| c.0), Some(1968), "{err}");
        }
        let mut users = Vec::new();
        for (i, password) in passwords.iter().enumerate() {
            wait(admin.query(format!(
                "CREATE USER 'ed{i}'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('{password}')"
            )))?;
            let mut o = opts.clone();
            o.user = format!("ed{i}");
            o.password = password.clone();
            o.database = None;
            // Asking for client_ed25519 up front changes nothing: its nonce
            // only comes with the switch.
            if i == 1 {
                o.auth_plugin = Some("client_ed25519".into());
            }
            let client = wait(Client::connect(o))?;
            let who = wait(client.query("SELECT CURRENT_USER()"))?;
            users.push((
                client.auth_plugin().unwrap_or_default(),
                who.scalar().unwrap_or_default().to_owned(),
            ));
            wait(client.close())?;
        }
        let mut o = opts.clone();
        o.user = "ed0".into();
        o.password = "ed-secreT".into();
        o.database = None;
        let wrong = wait(Client::connect(o)).map(drop).unwrap_err();
        wait(admin.close())?;
        Ok((users, wrong))
    })
    .expect("ed25519 logins");
    for (i, (plugin, user)) in users.iter().enumerate() {
        assert_eq!(plugin, "client_ed25519");
        assert_eq!(user, &format!("ed{i}@%"));
    }
    assert_eq!(
        server_code(&wrong),
        Some((1045, "28000".to_owned())),
        "{wrong}"
    );
    assert_eq!(open_fds(), fds_before);
}

#[test]
fn tls_connections_and_an_account_that_requires_them() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !need::ready(&[Peer::Mariadb]) {
        return;
    }
    let certs = test_tls::Certs::new("squall mariadb test CA");
    let db = MariaDb::start_with_tls(&certs.server.cert, &certs.server.key)
        .expect("cannot start mariadbd with TLS");
    let trusted = squall::tls::ClientOptions::new().ca_certs(certs.ca.cert.as_bytes().to_vec());
    let stranger = test_tls::Certs::new("someone else");
    let untrusted =
        squall::tls::ClientOptions::new().ca_certs(stranger.ca.cert.as_bytes().to_vec());
    let plain = options(&db);
    let fds_before = open_fds();
    let (version, plain_is_tls, refused, bad_cert) = run(move || {
        // A normal account, over TLS: the session says which version.
        let mut o = plain.clone();
        o.ssl = Some(trusted.clone());
        let client = wait(Client::connect(o.clone()))?;
        assert_eq!(client.is_tls(), Some(true));
        let status = wait(client.query("SHOW SESSION STATUS LIKE 'Ssl_version'"))?;
        let version = status.rows[0].str(1).unwrap_or_default().to_owned();
        assert_eq!(wait(client.query("SELECT 40 + 2"))?.scalar(), Some("42"));
        wait(client.close())?;
        let client = wait(Client::connect(plain.clone()))?;
        let plain_is_tls = client.is_tls();
        wait(client.close())?;
        // The TLS-only account: refused in the clear, let in over TLS.
        let (user, password) = mariadb::TLS_USER;
        let mut tls_user = Options::new(plain.addr, user, password);
        tls_user.connect_timeout = secs(10);
        let refused = wait(Client::connect(tls_user.clone()))
            .map(drop)
            .unwrap_err();
        tls_user.ssl = Some(trusted);
        let client = wait(Client::connect(tls_user.clone()))?;
        assert_eq!(
            wait(client.query("SELECT CURRENT_USER()"))?
                .scalar()
                .map(|u| u.starts_with(user)),
            Some(true)
        );
        wait(client.close())?;
        // A server certificate we do not trust: a TLS error, not a login.
        tls_user.ssl = Some(untrusted);
        let bad_cert = wait(Client::connect(tls_user)).map(drop).unwrap_err();
        Ok((version, plain_is_tls, refused, bad_cert))
    })
    .unwrap();
    assert!(version.starts_with("TLSv1."), "{version:?}");
    assert_eq!(plain_is_tls, Some(false));
    assert_eq!(
        server_code(&refused).map(|(code, _)| code),
        Some(1045),
        "{refused}"
    );
    assert_eq!(bad_cert.kind(), ErrorKind::Tls, "{bad_cert}");
    assert_eq!(open_fds(), fds_before);
}
