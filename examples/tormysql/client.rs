//! TorMySQL's `Client`: the blocking-style [`Connection`] made asynchronous
//! with `greenlet::async_call_method`. Each call runs the driver's
//! straight-line code in a child greenlet and returns a `Future`; the loop
//! runs while the child waits for its socket.
//!
//! The article's connect, in Python:
//!
//! ```text
//! def connect(self):
//!     future = Future()
//!     def on_connected(connection_future):
//!         if connection_future._exc_info is None:
//!             future.set_result(self)
//!         else:
//!             future.set_exc_info(connection_future.exc_info())
//!     child_gr = greenlet.greenlet(self._connection.connect)
//!     connection_future = child_gr.switch()
//!     IOLoop.current().add_future(connection_future, on_connected)
//!     return future
//! ```
//!
//! and the connect's own timeout (`add_timeout` when it starts,
//! `remove_timeout` when it completes either way) is [`Client::connect`].

use std::cell::RefCell;
use std::rc::Rc;

use squall::greenlet::{self, Stream};
use squall::{Error, Future, IOLoop};

use super::conn::{Connection, MysqlError, Options, ResultSet};

/// One asynchronous MySQL connection (TorMySQL's `Client`). Cheap to clone:
/// clones share the connection. One call at a time: a second call while
/// one is running fails with [`MysqlError::Busy`].
#[derive(Clone)]
pub struct Client {
    conn: Rc<RefCell<Connection>>,
    stream: Stream,
    connection_id: u32,
    server_version: Rc<str>,
}

impl Client {
    /// Connects and authenticates, in a child greenlet, under the connect
    /// timeout of `opts`: a timeout added on the loop when the connect
    /// starts and removed when it completes, on success and on every error.
    /// If it fires first, the future fails with [`MysqlError::ConnectTimeout`]
    /// (kind `Timeout`) and the socket is closed, which ends the child.
    pub fn connect(opts: Options) -> Future<Client> {
        let io_loop = IOLoop::current();
        let future: Future<Client> = Future::new();
        let socket: Rc<RefCell<Option<Stream>>> = Rc::new(RefCell::new(None));
        let after = opts.connect_timeout;
        let timeout = {
            let (future, socket) = (future.clone(), socket.clone());
            io_loop.add_timeout(after, move || {
                if let Some(stream) = socket.borrow_mut().take() {
                    stream.close();
                }
                future.try_set_error(MysqlError::ConnectTimeout(after).into_error());
            })
        };
        let connection = {
            let (socket, future) = (socket.clone(), future.clone());
            greenlet::async_call_method(move || {
                Connection::connect(&opts, |stream| {
                    if future.done() {
                        // Timed out while TCP was connecting: stop here.
                        stream.close();
                    } else {
                        *socket.borrow_mut() = Some(stream.clone());
                    }
                })
            })
        };
        let (l, out) = (io_loop.clone(), future.clone());
        io_loop.add_future(&connection, move |done: &Future<Connection>| {
            l.remove_timeout(timeout);
            socket.borrow_mut().take();
            match done.take_result() {
                Ok(mut conn) if out.done() => conn.close(), // too late: timed out
                Ok(conn) => {
                    out.try_set_result(Client::new(conn));
                }
                Err(err) => {
                    out.try_set_error(err);
                }
            }
        });
        future
    }

    /// Wraps a connection made in a child.
    pub fn new(conn: Connection) -> Client {
        Client {
            stream: conn.stream().clone(),
            connection_id: conn.connection_id,
            server_version: conn.server_version.as_str().into(),
            conn: Rc::new(RefCell::new(conn)),
        }
    }

    /// Runs `f` on the connection in a child greenlet.
    fn call<T: 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, Error> + 'static,
    ) -> Future<T> {
        let conn = self.conn.clone();
        greenlet::async_call_method(move || {
            let mut conn = conn
                .try_borrow_mut()
                .map_err(|_| MysqlError::Busy.into_error())?;
            f(&mut conn)
        })
    }

    /// Runs `sql` and reads its whole result (TorMySQL's `cursor.execute`
    /// then `fetchall`).
    pub fn query(&self, sql: impl Into<Vec<u8>>) -> Future<ResultSet> {
        let sql = sql.into();
        self.call(move |c| c.query(sql))
    }

    /// Inside a child: runs `sql` in *this* child (what
    /// `greenlet::wait(client.query(sql))` does, without a second child).
    ///
    /// # Errors
    /// As [`Connection::query`]; [`MysqlError::Busy`]; `NotInCoroutine`
    /// outside a child.
    pub fn query_here(&self, sql: impl AsRef<[u8]>) -> Result<ResultSet, Error> {
        if !greenlet::in_coroutine() {
            // Checked first: failing inside would close the connection.
            return Err(Error::new(
                squall::ErrorKind::NotInCoroutine,
                "Client::query_here outside a greenlet child",
            ));
        }
        let mut conn = self
            .conn
            .try_borrow_mut()
            .map_err(|_| MysqlError::Busy.into_error())?;
        conn.query(sql)
    }

    /// `COM_PING`.
    pub fn ping(&self) -> Future<()> {
        self.call(Connection::ping)
    }

    /// Sends `COM_QUIT` and closes; a busy connection is closed at once
    /// (its call fails).
    pub fn close(&self) -> Future<()> {
        if self.busy() {
            self.stream.close();
            return Future::ready(());
        }
        self.call(|c| {
            c.quit();
            Ok(())
        })
    }

    /// Whether a call is running on it.
    pub fn busy(&self) -> bool {
        self.conn.try_borrow().is_err()
    }

    /// Whether it can no longer be used (closed by either side or broken).
    pub fn closed(&self) -> bool {
        self.stream.closed() || self.conn.try_borrow().is_ok_and(|c| c.closed())
    }

    /// The server's id for this connection (for `KILL`).
    pub fn connection_id(&self) -> u32 {
        self.connection_id
    }

    /// The server's version string.
    pub fn server_version(&self) -> &str {
        &self.server_version
    }

    /// The raw fd (tests check for leaks).
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.stream.io_stream().fd()
    }

    /// The auth plugin the server accepted.
    pub fn auth_plugin(&self) -> Option<String> {
        self.conn.try_borrow().ok().map(|c| c.auth_plugin.clone())
    }

    /// Whether the connection is encrypted (`Options::ssl`); `None` while a
    /// query holds it.
    pub fn is_tls(&self) -> Option<bool> {
        self.conn.try_borrow().ok().map(|c| c.is_tls())
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("connection_id", &self.connection_id)
            .field("closed", &self.closed())
            .field("busy", &self.busy())
            .finish()
    }
}
