//! TorMySQL's `ConnectionPool`: at most `max_connections` connections,
//! idle ones closed after `idle_timeout`, callers queued (each with a wait
//! timeout) when all are in use, and `execute` / `begin` / `commit` /
//! `rollback` written as straight-line code in greenlet children.
//!
//! A connection is lent as a [`PooledConnection`], which goes back to the
//! pool when dropped — on every path, error or not, the way Python's
//! `with (yield pool.Connection()) as conn:` does. A connection that broke
//! (an IO or protocol error, a timeout, a call still running when it was
//! dropped) is closed instead, and its place goes to the next waiter.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use squall::greenlet;
use squall::ioloop::TimeoutHandle;
use squall::{Error, Future, IOLoop};

use super::client::Client;
use super::conn::{MysqlError, Options, ResultSet};

/// The pool's limits.
#[derive(Clone, Debug)]
pub struct PoolOptions {
    /// Connections open at once, in use or idle (TorMySQL's `max_connections`).
    pub max_connections: usize,
    /// An idle connection older than this is closed (`idle_seconds`).
    pub idle_timeout: Duration,
    /// How long a caller waits for a connection when all are in use
    /// (`wait_connection_timeout`).
    pub wait_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> PoolOptions {
        PoolOptions {
            max_connections: 32,
            idle_timeout: Duration::from_secs(7200),
            wait_timeout: Duration::from_secs(8),
        }
    }
}

/// What the pool holds right now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections counted against `max_connections` (idle, lent, connecting).
    pub open: usize,
    /// Idle ones.
    pub idle: usize,
    /// Callers waiting for one.
    pub waiting: usize,
}

struct Waiter {
    future: Future<Client>,
    timeout: TimeoutHandle,
}

#[derive(Default)]
struct State {
    /// Idle connections and when each was returned; the newest at the back.
    idle: VecDeque<(Client, Instant)>,
    open: usize,
    waiters: VecDeque<Waiter>,
    closed: bool,
    sweep: Option<TimeoutHandle>,
}

struct Inner {
    options: Options,
    limits: PoolOptions,
    io_loop: IOLoop,
    state: RefCell<State>,
}

/// A pool of [`Client`]s to one server. Cheap to clone (shared).
#[derive(Clone)]
pub struct ConnectionPool {
    inner: Rc<Inner>,
}

impl ConnectionPool {
    /// A pool on the current loop; it connects lazily.
    pub fn new(options: Options, limits: PoolOptions) -> ConnectionPool {
        assert!(limits.max_connections > 0, "max_connections must be > 0");
        ConnectionPool {
            inner: Rc::new(Inner {
                options,
                limits,
                io_loop: IOLoop::current(),
                state: RefCell::new(State::default()),
            }),
        }
    }

    /// Lends a connection: an idle one (the most recently used), a new one
    /// while fewer than `max_connections` are open, or else the first one
    /// returned, if it comes within the wait timeout.
    ///
    /// # Errors
    /// The connect's error; [`MysqlError::WaitTimeout`];
    /// [`MysqlError::PoolClosed`].
    pub fn connection(&self) -> Future<PooledConnection> {
        let client = self.get_client();
        let out = Future::new();
        let (o, pool) = (out.clone(), Rc::downgrade(&self.inner));
        client.add_done_callback(move |done: &Future<Client>| {
            o.try_complete(done.take_result().map(|client| PooledConnection {
                client: Some(client),
                pool,
            }));
        });
        out
    }

    fn get_client(&self) -> Future<Client> {
        let now = Instant::now();
        let mut stale = Vec::new();
        let outcome = {
            let mut st = self.inner.state.borrow_mut();
            if st.closed {
                return Future::failed(MysqlError::PoolClosed.into_error());
            }
            let mut found = None;
            while let Some((client, since)) = st.idle.pop_back() {
                // Closed by the server while idle (the stream saw the
                // end), or idle for too long: not lent.
                if client.closed() || now.duration_since(since) >= self.inner.limits.idle_timeout {
                    st.open -= 1;
                    stale.push(client);
                } else {
                    found = Some(client);
                    break;
                }
            }
            match found {
                Some(client) => Ok(client),
                None if st.open < self.inner.limits.max_connections => {
                    st.open += 1;
                    Err(true)
                }
                None => Err(false),
            }
        };
        for client in stale {
            drop(client.close());
        }
        match outcome {
            Ok(client) => Future::ready(client),
            Err(true) => {
                let future = Future::new();
                self.connect_for(future.clone());
                future
            }
            Err(false) => {
                let future: Future<Client> = Future::new();
                let after = self.inner.limits.wait_timeout;
                let (f, weak) = (future.clone(), Rc::downgrade(&self.inner));
                let timeout = self.inner.io_loop.add_timeout(after, move || {
                    if let Some(inner) = weak.upgrade() {
                        inner
                            .state
                            .borrow_mut()
                            .waiters
                            .retain(|w| !w.future.ptr_eq(&f));
                    }
                    f.try_set_error(MysqlError::WaitTimeout(after).into_error());
                });
                self.inner.state.borrow_mut().waiters.push_back(Waiter {
                    future: future.clone(),
                    timeout,
                });
                future
            }
        }
    }

    /// Opens a connection (already counted in `open`) for `future`.
    fn connect_for(&self, future: Future<Client>) {
        let weak = Rc::downgrade(&self.inner);
        Client::connect(self.inner.options.clone()).add_done_callback(
            move |done: &Future<Client>| {
                let pool = weak.upgrade().map(|inner| ConnectionPool { inner });
                match done.take_result() {
                    Ok(client) if future.done() => {
                        // Its caller gave up (a waiter that timed out): keep it.
                        match pool {
                            Some(pool) => pool.release(client),
                            None => drop(client.close()),
                        }
                    }
                    Ok(client) => {
                        future.try_set_result(client);
                    }
                    Err(err) => {
                        if let Some(pool) = &pool {
                            pool.inner.state.borrow_mut().open -= 1;
                        }
                        future.try_set_error(err);
                    }
                }
            },
        );
    }

    /// Takes a connection back: to the first waiter, or to the idle list;
    /// a broken or busy one is closed and a waiter gets a new connection.
    fn release(&self, client: Client) {
        let broken = client.closed() || client.busy();
        let closed = self.inner.state.borrow().closed;
        if broken || closed {
            drop(client.close());
            let waiter = {
                let mut st = self.inner.state.borrow_mut();
                st.open -= 1;
                let waiter = st.waiters.pop_front();
                if waiter.is_some() {
                    st.open += 1;
                }
                waiter
            };
            if let Some(waiter) = waiter {
                self.inner.io_loop.remove_timeout(waiter.timeout);
                self.connect_for(waiter.future);
            }
            return;
        }
        loop {
            let waiter = self.inner.state.borrow_mut().waiters.pop_front();
            let Some(waiter) = waiter else { break };
            self.inner.io_loop.remove_timeout(waiter.timeout);
            if !waiter.future.done() {
                // Completed with no borrow held: the waiter's callback may
                // use the pool at once.
                waiter.future.try_set_result(client);
                return;
            }
        }
        let mut st = self.inner.state.borrow_mut();
        st.idle.push_back((client, Instant::now()));
        if st.sweep.is_none() {
            st.sweep = Some(self.schedule_sweep(self.inner.limits.idle_timeout));
        }
    }

    fn schedule_sweep(&self, after: Duration) -> TimeoutHandle {
        let weak = Rc::downgrade(&self.inner);
        self.inner.io_loop.call_later(after, move || {
            if let Some(inner) = weak.upgrade() {
                ConnectionPool { inner }.sweep();
            }
        })
    }

    /// Closes the connections idle for longer than `idle_timeout`, and
    /// comes back when the oldest of the others is due.
    fn sweep(&self) {
        let limit = self.inner.limits.idle_timeout;
        let now = Instant::now();
        let mut expired = Vec::new();
        {
            let mut st = self.inner.state.borrow_mut();
            st.sweep = None;
            while let Some((_, since)) = st.idle.front() {
                if now.duration_since(*since) < limit {
                    break;
                }
                let (client, _) = st.idle.pop_front().expect("checked");
                st.open -= 1;
                expired.push(client);
            }
            if let Some((_, since)) = st.idle.front() {
                let due = limit.saturating_sub(now.duration_since(*since));
                st.sweep = Some(self.schedule_sweep(due.max(Duration::from_millis(1))));
            }
        }
        for client in expired {
            drop(client.close());
        }
    }

    /// Runs `sql` on a pooled connection (straight-line code in a child:
    /// get a connection, query, give it back — on every path).
    pub fn execute(&self, sql: impl Into<Vec<u8>>) -> Future<ResultSet> {
        let (pool, sql) = (self.clone(), sql.into());
        greenlet::async_call_method(move || {
            let conn = greenlet::wait(pool.connection())?;
            conn.query_here(sql)
            // `conn` is dropped here, whatever happened: back to the pool.
        })
    }

    /// Starts a transaction on a pooled connection (`BEGIN`).
    pub fn begin(&self) -> Future<Transaction> {
        let pool = self.clone();
        greenlet::async_call_method(move || {
            let conn = greenlet::wait(pool.connection())?;
            conn.query_here("BEGIN")?;
            Ok(Transaction { conn: Some(conn) })
        })
    }

    /// Counts of what the pool holds.
    pub fn stats(&self) -> PoolStats {
        let st = self.inner.state.borrow();
        PoolStats {
            open: st.open,
            idle: st.idle.len(),
            waiting: st.waiters.len(),
        }
    }

    /// Closes the idle connections and fails the waiters; lent connections
    /// are closed when they come back. Later calls fail with
    /// [`MysqlError::PoolClosed`].
    pub fn close(&self) {
        let (idle, waiters, sweep) = {
            let mut st = self.inner.state.borrow_mut();
            st.closed = true;
            st.open -= st.idle.len();
            (
                std::mem::take(&mut st.idle),
                std::mem::take(&mut st.waiters),
                st.sweep.take(),
            )
        };
        if let Some(sweep) = sweep {
            self.inner.io_loop.remove_timeout(sweep);
        }
        for (client, _) in idle {
            drop(client.close());
        }
        for waiter in waiters {
            self.inner.io_loop.remove_timeout(waiter.timeout);
            waiter
                .future
                .try_set_error(MysqlError::PoolClosed.into_error());
        }
    }
}

/// A connection lent by the pool; dropping it gives it back.
pub struct PooledConnection {
    client: Option<Client>,
    pool: Weak<Inner>,
}

impl PooledConnection {
    /// The client (for `query`, `ping`...).
    pub fn client(&self) -> &Client {
        self.client.as_ref().expect("present until dropped")
    }

    /// [`Client::query`].
    pub fn query(&self, sql: impl Into<Vec<u8>>) -> Future<ResultSet> {
        self.client().query(sql)
    }

    /// [`Client::query_here`]: inside a child, in that child.
    ///
    /// # Errors
    /// As [`Client::query_here`].
    pub fn query_here(&self, sql: impl AsRef<[u8]>) -> Result<ResultSet, Error> {
        self.client().query_here(sql)
    }

    /// Closes the connection instead of giving it back.
    pub fn discard(mut self) {
        if let Some(client) = self.client.take() {
            drop(client.close());
            self.give_back(client);
        }
    }

    fn give_back(&mut self, client: Client) {
        match self.pool.upgrade() {
            Some(inner) => ConnectionPool { inner }.release(client),
            None => drop(client.close()),
        }
    }
}

impl Drop for PooledConnection {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            self.give_back(client);
        }
    }
}

/// A transaction on a pooled connection: [`commit`](Transaction::commit) or
/// [`rollback`](Transaction::rollback) ends it and gives the connection
/// back. Dropped without either, it closes the connection (the server
/// rolls back) rather than lend a connection in the middle of a
/// transaction.
pub struct Transaction {
    conn: Option<PooledConnection>,
}

impl Transaction {
    /// Runs `sql` inside the transaction.
    pub fn execute(&self, sql: impl Into<Vec<u8>>) -> Future<ResultSet> {
        match &self.conn {
            Some(conn) => conn.query(sql),
            None => Future::failed(MysqlError::PoolClosed.into_error()),
        }
    }

    /// Inside a child: runs `sql` in that child.
    ///
    /// # Errors
    /// As [`Client::query_here`].
    pub fn execute_here(&self, sql: impl AsRef<[u8]>) -> Result<ResultSet, Error> {
        self.conn
            .as_ref()
            .expect("present until committed")
            .query_here(sql)
    }

    /// `COMMIT`, then the connection goes back (closed if COMMIT failed).
    pub fn commit(mut self) -> Future<()> {
        let conn = self.conn.take().expect("present until committed");
        finish(conn, "COMMIT")
    }

    /// `ROLLBACK`, then the connection goes back.
    pub fn rollback(mut self) -> Future<()> {
        let conn = self.conn.take().expect("present until committed");
        finish(conn, "ROLLBACK")
    }
}

fn finish(conn: PooledConnection, sql: &'static str) -> Future<()> {
    greenlet::async_call_method(move || match conn.query_here(sql) {
        Ok(_) => Ok(()),
        Err(err) => {
            conn.discard();
            Err(err)
        }
    })
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            log::warn!(
                "a transaction was dropped without commit or rollback; closing its connection"
            );
            conn.discard();
        }
    }
}
