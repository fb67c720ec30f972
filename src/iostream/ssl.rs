//! `SSLIOStream`: the same [`IOStream`] over TLS, and STARTTLS.

use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;

use super::tls::TlsSocket;
use super::{IOStream, IntoSocket, Socket};
use crate::error::{Error, ErrorKind};
use crate::future::Future;
use crate::ioloop::IOLoop;
use crate::tls::SslOptions;

/// `SSLIOStream`: the same [`IOStream`] over TLS, and STARTTLS.
///
/// ```
/// use squall::iostream::IOStream;
/// use squall::tls::{ClientOptions, ServerOptions};
/// use squall::IOLoop;
///
/// let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
/// let (cert_pem, key_pem) = (cert.cert.pem(), cert.key_pair.serialize_pem());
/// let server_config = ServerOptions::new(cert_pem.as_bytes(), key_pem.as_bytes()).build()?;
/// let client_config = ClientOptions::new().ca_certs(cert_pem.as_bytes()).build()?;
///
/// let io_loop = IOLoop::new()?;
/// let (a, b) = std::os::unix::net::UnixStream::pair()?;
/// // Both start in plain text (as after an SMTP "STARTTLS" exchange)...
/// let server = IOStream::with_loop(a, &io_loop)?;
/// let client = IOStream::with_loop(b, &io_loop)?;
/// // ...and each side upgrades; the futures resolve after the handshake.
/// let server = server.start_tls(server_config);
/// let client = client.start_tls_server_hostname(client_config, "localhost");
/// let server = io_loop.run_sync(move || server, None)?;
/// let client = io_loop.run_sync(move || client, None)?;
/// client.write(&b"hello over TLS\n"[..]);
/// let got = io_loop.run_sync(move || server.read_until(b"\n"), None)?;
/// assert_eq!(got, b"hello over TLS\n");
/// # Ok::<(), squall::Error>(())
/// ```
///
/// Everything else (`read_until`, `read_bytes`, `read_until_close`, the
/// read hook, `write`, `flushed`, buffer limits, half-close) works as on a
/// plain stream; `close` sends `close_notify`. See `tls.rs` beside this file
/// for how the layer below behaves, and why a peer that ends without
/// `close_notify` fails `read_until_close`.
///
/// Tornado's `SSLIOStream`: an [`IOStream`] whose socket speaks TLS. The
/// same type; build one with [`IOStream::with_ssl`] or
/// [`IOStream::start_tls`].
pub type SSLIOStream = IOStream;

impl IOStream {
    /// An `SSLIOStream` over a connected socket, on `io_loop`: Tornado's
    /// `SSLIOStream(socket, ssl_options=...)`. The side is the options'
    /// ([`SslOptions::Server`] or [`SslOptions::Client`]). The handshake
    /// starts at once (a client sends its hello) and runs as data comes;
    /// reads wait for it and writes queue behind it. A client verifies the
    /// certificate against the peer's IP address; give it the name to ask
    /// for (SNI) and verify with
    /// [`with_ssl_server_hostname`](IOStream::with_ssl_server_hostname).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] for a client whose peer has no IP
    /// address; as [`with_loop`](IOStream::with_loop) otherwise.
    pub fn with_ssl(
        socket: impl IntoSocket,
        ssl_options: impl Into<SslOptions>,
        io_loop: &IOLoop,
    ) -> Result<SSLIOStream, Error> {
        IOStream::ssl_stream(socket, ssl_options.into(), None, io_loop)
    }

    /// [`with_ssl`](IOStream::with_ssl) with Tornado's `server_hostname`:
    /// the name a client asks for (SNI) and verifies the certificate
    /// against (a server ignores it).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] for a client with a name that cannot
    /// be a TLS server name; as [`with_loop`](IOStream::with_loop) otherwise.
    pub fn with_ssl_server_hostname(
        socket: impl IntoSocket,
        ssl_options: impl Into<SslOptions>,
        server_hostname: &str,
        io_loop: &IOLoop,
    ) -> Result<SSLIOStream, Error> {
        IOStream::ssl_stream(socket, ssl_options.into(), Some(server_hostname), io_loop)
    }

    fn ssl_stream(
        socket: impl IntoSocket,
        ssl_options: SslOptions,
        server_hostname: Option<&str>,
        io_loop: &IOLoop,
    ) -> Result<SSLIOStream, Error> {
        let socket = tls_socket(socket.into_socket()?, ssl_options, server_hostname)?;
        let stream = IOStream::open(socket, io_loop, None)?;
        // A client speaks first.
        stream.flush();
        Ok(stream)
    }

    /// STARTTLS: turns this plain stream into an [`SSLIOStream`] over the
    /// same connection and returns it once the handshake is done (Tornado's
    /// `start_tls`). The side is the options': Tornado's
    /// `start_tls(True, ssl_options=...)` is `start_tls(server_options)`. A
    /// client verifies the certificate against the peer's IP address; give
    /// it a name with
    /// [`start_tls_server_hostname`](IOStream::start_tls_server_hostname)
    /// ([`tls::default_client_config`](crate::tls::default_client_config)
    /// is Tornado's default client context: system roots, verification on).
    ///
    /// This stream is spent afterwards (closed, with its close callback
    /// dropped, the connection now the new stream's). It must be idle: no
    /// read pending, nothing buffered either way (what the peer sent after
    /// its "STARTTLS" belongs to the TLS layer, which would never see it).
    pub fn start_tls(&self, ssl_options: impl Into<SslOptions>) -> Future<SSLIOStream> {
        self.start_tls_as(ssl_options.into(), None)
    }

    /// [`start_tls`](IOStream::start_tls) with Tornado's `server_hostname`:
    /// `start_tls(False, ssl_options=..., server_hostname="mail.example")`
    /// is `start_tls_server_hostname(client_options, "mail.example")`.
    pub fn start_tls_server_hostname(
        &self,
        ssl_options: impl Into<SslOptions>,
        server_hostname: &str,
    ) -> Future<SSLIOStream> {
        self.start_tls_as(ssl_options.into(), Some(server_hostname))
    }

    fn start_tls_as(
        &self,
        options: SslOptions,
        server_hostname: Option<&str>,
    ) -> Future<SSLIOStream> {
        match self.upgrade_tls(options, server_hostname) {
            Ok(stream) => stream.wait_for_handshake(),
            Err(err) => Future::failed(err),
        }
    }

    /// `start_tls` giving the new stream at once, its handshake running:
    /// for owners that must be able to close it meanwhile (the HTTP
    /// client's connect deadline covers the handshake).
    pub(crate) fn upgrade_tls(
        &self,
        options: SslOptions,
        server_hostname: Option<&str>,
    ) -> Result<SSLIOStream, Error> {
        let plain = self.take_idle_socket()?;
        let (max_read, max_write) = {
            let st = self.inner.state.borrow();
            (st.max_buffer_size, st.max_write_buffer_size)
        };
        let stream = IOStream::open(
            tls_socket(plain, options, server_hostname)?,
            &self.inner.io_loop,
            None,
        )?;
        stream.set_max_buffer_size(max_read);
        stream.set_max_write_buffer_size(max_write);
        // A client speaks first.
        stream.flush();
        Ok(stream)
    }

    /// Takes the socket out of an idle stream, which is left closed
    /// without closing the connection.
    fn take_idle_socket(&self) -> Result<Socket, Error> {
        let callback;
        let socket = {
            let mut st = self.inner.state.borrow_mut();
            let busy = st.read.is_some()
                || st.wlen > 0
                || st.rbuf.len() > 0
                || st.connecting.is_some()
                || st.read_hook.is_some()
                || st.handshaking;
            if st.closed || st.eof {
                return Err(super::closed_error(st.error.as_ref()));
            }
            if busy {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    "start_tls: the stream is not idle (a read pending, data buffered or a handshake running)",
                ));
            }
            if matches!(self.inner.socket.borrow().as_ref(), Some(Socket::Tls(_))) {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    "start_tls: the stream is already TLS",
                ));
            }
            st.closed = true;
            st.error = Some(Error::new(
                ErrorKind::StreamClosed,
                "the connection moved to a TLS stream (start_tls)",
            ));
            callback = st.close_callback.take();
            self.inner.socket.borrow_mut().take()
        };
        // The loop's handler (and its hold on this stream) goes; the new
        // stream registers the same fd again.
        self.inner.io_loop.remove_handler(self.inner.fd);
        drop(callback);
        socket.ok_or_else(|| super::closed_error(None))
    }

    /// A future done (with this stream) when the TLS handshake is: at once
    /// on a plain stream or a finished handshake. It fails with the reason
    /// (kind [`ErrorKind::Tls`] for a refused certificate or a bad peer) if
    /// the stream closes first. Tornado's `wait_for_handshake`.
    pub fn wait_for_handshake(&self) -> Future<SSLIOStream> {
        let mut st = self.inner.state.borrow_mut();
        if st.closed {
            return Future::failed(super::closed_error(st.error.as_ref()));
        }
        if !st.handshaking {
            return Future::ready(self.clone());
        }
        let future = Future::new();
        st.handshake_waiters.push(future.clone());
        future
    }

    /// Closes the stream with [`ErrorKind::Timeout`] if its TLS handshake
    /// has not finished within `timeout` from now (servers set this for
    /// each connection: a client that stalls its handshake holds a socket
    /// and nothing else). No effect on a plain stream or a finished
    /// handshake.
    pub fn set_handshake_timeout(&self, timeout: Duration) {
        let old = {
            let mut st = self.inner.state.borrow_mut();
            if !st.handshaking || st.closed {
                return;
            }
            st.handshake_timeout.take()
        };
        if let Some(old) = old {
            self.inner.io_loop.remove_timeout(old);
        }
        let weak = Rc::downgrade(&self.inner);
        let handle = self.inner.io_loop.call_later(timeout, move || {
            if let Some(inner) = weak.upgrade() {
                let stream = IOStream { inner };
                stream.inner.state.borrow_mut().handshake_timeout = None;
                stream.close_with(Some(Error::new(
                    ErrorKind::Timeout,
                    format!("the TLS handshake did not finish in {timeout:?}"),
                )));
            }
        });
        self.inner.state.borrow_mut().handshake_timeout = Some(handle);
    }

    fn with_tls<T>(&self, f: impl FnOnce(&TlsSocket) -> Option<T>) -> Option<T> {
        match self.inner.socket.borrow().as_ref() {
            Some(Socket::Tls(tls)) => f(tls),
            _ => None,
        }
    }

    /// The protocol agreed by ALPN (e.g. `b"http/1.1"`), once the handshake
    /// is done: Tornado's `selected_alpn_protocol`.
    pub fn selected_alpn_protocol(&self) -> Option<Vec<u8>> {
        self.with_tls(TlsSocket::alpn_protocol)
    }

    /// The peer's certificate chain (DER, leaf first), once the handshake is
    /// done; on a server, only if the client presented one. Tornado's
    /// `getpeercert(binary_form=True)`, with the chain.
    pub fn peer_certificates(&self) -> Option<Vec<Vec<u8>>> {
        self.with_tls(TlsSocket::peer_certificates)
    }

    /// The host name a client asked for (SNI), on a server's stream.
    pub fn server_name(&self) -> Option<String> {
        self.with_tls(TlsSocket::server_name)
    }
}

/// Wraps `plain` in a TLS connection for the side `options` names.
fn tls_socket(
    plain: Socket,
    options: SslOptions,
    server_hostname: Option<&str>,
) -> Result<Socket, Error> {
    let conn: rustls::Connection = match options {
        SslOptions::Server(config) => crate::tls::server_connection(config)?.into(),
        SslOptions::Client(config) => {
            let name = match server_hostname {
                Some(name) => name.to_string(),
                None => peer_ip(&plain)
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::InvalidArgument,
                            "a TLS client needs a server_hostname (the peer has no IP address)",
                        )
                    })?
                    .to_string(),
            };
            crate::tls::client_connection(config, &name)?.into()
        }
    };
    Ok(Socket::Tls(Box::new(TlsSocket::new(plain, conn))))
}

fn peer_ip(socket: &Socket) -> Option<IpAddr> {
    match socket {
        Socket::Tcp(s) => s.peer_addr().ok().map(|a| a.ip()),
        _ => None,
    }
}
