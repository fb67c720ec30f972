//! Future-returning reads (`read_until`, `read_bytes`, `read_into`...): the
//! pending read, how it is decided against the buffer, and the socket read
//! loop, which the read hook shares.
//!
//! ```
//! # use std::io::Write;
//! # use squall::{IOLoop, iostream::IOStream};
//! # let io_loop = IOLoop::new()?;
//! # let (a, mut b) = std::os::unix::net::UnixStream::pair()?;
//! b.write_all(b"HELO there\r\nrest")?;
//! let line = io_loop.run_sync(
//!     || IOStream::with_loop(a, &IOLoop::current()).unwrap().read_until(b"\r\n"),
//!     None,
//! )?;
//! assert_eq!(line, b"HELO there\r\n");
//! # Ok::<(), squall::Error>(())
//! ```

use std::io;

use super::buffer::{Lender, ReadBuffer};
use super::{closed_error, IOStream, Socket, State, READ_BUDGET, READ_CHUNK};
use crate::error::{Error, ErrorKind};
use crate::future::Future;

impl IOStream {
    /// Reads up to and including `delimiter` (Tornado's `read_until`). With
    /// no bound, the buffer grows until the delimiter comes or the stream's
    /// `max_buffer_size` is reached; on untrusted input give one with
    /// [`read_until_max_bytes`](IOStream::read_until_max_bytes).
    pub fn read_until(&self, delimiter: &[u8]) -> Future<Vec<u8>> {
        self.read_until_bounded(delimiter, None)
    }

    /// [`read_until`](IOStream::read_until) with Tornado's `max_bytes`: if
    /// that many bytes arrive without the delimiter, the read fails with
    /// [`ErrorKind::UnsatisfiableRead`] and the stream is closed.
    pub fn read_until_max_bytes(&self, delimiter: &[u8], max_bytes: usize) -> Future<Vec<u8>> {
        self.read_until_bounded(delimiter, Some(max_bytes))
    }

    fn read_until_bounded(&self, delimiter: &[u8], max_bytes: Option<usize>) -> Future<Vec<u8>> {
        if delimiter.is_empty() {
            return Future::failed(Error::new(
                ErrorKind::InvalidArgument,
                "read_until: empty delimiter",
            ));
        }
        self.start_read(ReadKind::Until {
            delimiter: delimiter.to_vec(),
            max_bytes,
            scanned: 0,
        })
    }

    /// Reads up to and including the end of the first match of `pattern`
    /// (Tornado's `read_until_regex`), a regular expression over bytes
    /// (`regex::bytes` syntax).
    ///
    /// The match is decided on the bytes at hand, as in Tornado: a pattern
    /// that could match more with more data (`[0-9]+`) ends where the data
    /// received so far ends, so anchor patterns on a terminator.
    ///
    /// Each arrival searches the whole buffer again (a regex cannot resume
    /// mid-search), so on untrusted input bound the read with
    /// [`read_until_regex_max_bytes`](IOStream::read_until_regex_max_bytes);
    /// compile once with
    /// [`read_until_regex_with`](IOStream::read_until_regex_with) when
    /// reading many messages. Needs the `regex` feature.
    #[cfg(feature = "regex")]
    pub fn read_until_regex(&self, pattern: &str) -> Future<Vec<u8>> {
        self.read_until_pattern(pattern, None)
    }

    /// [`read_until_regex`](IOStream::read_until_regex) with Tornado's
    /// `max_bytes`: fails with [`ErrorKind::UnsatisfiableRead`] (and closes
    /// the stream) if no match ends within `max_bytes`. Needs the `regex`
    /// feature.
    ///
    /// ```
    /// # use squall::{IOLoop, IOStream};
    /// # use std::io::Write;
    /// let io_loop = IOLoop::new()?;
    /// let (a, mut b) = std::os::unix::net::UnixStream::pair()?;
    /// let stream = IOStream::with_loop(a, &io_loop)?;
    /// b.write_all(b"HTTP/1.1 200 OK\r\n\r\nbody")?;
    /// let head = io_loop.run_sync(|| stream.read_until_regex_max_bytes(r"\r?\n\r?\n", 65536), None)?;
    /// assert_eq!(head, b"HTTP/1.1 200 OK\r\n\r\n");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "regex")]
    pub fn read_until_regex_max_bytes(&self, pattern: &str, max_bytes: usize) -> Future<Vec<u8>> {
        self.read_until_pattern(pattern, Some(max_bytes))
    }

    #[cfg(feature = "regex")]
    fn read_until_pattern(&self, pattern: &str, max_bytes: Option<usize>) -> Future<Vec<u8>> {
        match regex::bytes::Regex::new(pattern) {
            Ok(regex) => self.read_until_compiled(&regex, max_bytes),
            Err(err) => Future::failed(Error::new(
                ErrorKind::InvalidArgument,
                format!("read_until_regex: {err}"),
            )),
        }
    }

    /// [`read_until_regex`](IOStream::read_until_regex) with a compiled
    /// regex (cloning one is cheap). Needs the `regex` feature.
    #[cfg(feature = "regex")]
    pub fn read_until_regex_with(&self, regex: &regex::bytes::Regex) -> Future<Vec<u8>> {
        self.read_until_compiled(regex, None)
    }

    /// [`read_until_regex_max_bytes`](IOStream::read_until_regex_max_bytes)
    /// with a compiled regex. Needs the `regex` feature.
    #[cfg(feature = "regex")]
    pub fn read_until_regex_with_max_bytes(
        &self,
        regex: &regex::bytes::Regex,
        max_bytes: usize,
    ) -> Future<Vec<u8>> {
        self.read_until_compiled(regex, Some(max_bytes))
    }

    #[cfg(feature = "regex")]
    fn read_until_compiled(
        &self,
        regex: &regex::bytes::Regex,
        max_bytes: Option<usize>,
    ) -> Future<Vec<u8>> {
        self.start_read(ReadKind::Regex {
            regex: regex.clone(),
            max_bytes,
        })
    }

    /// Reads into `buf` until all of it is filled (Tornado's `read_into`).
    /// The future gives `buf` back, its length unchanged, with how many bytes
    /// at its start are new. Bytes already buffered are copied in; the rest
    /// goes from the socket straight into `buf`, so a caller that passes the
    /// same vector round copies nothing and allocates nothing: the way to
    /// move bulk data ([`read_into_partial`](IOStream::read_into_partial)
    /// takes what comes).
    pub fn read_into(&self, buf: Vec<u8>) -> Future<(Vec<u8>, usize)> {
        self.read_into_buf(buf, false)
    }

    /// [`read_into`](IOStream::read_into) with Tornado's `partial=True`:
    /// resolves as soon as at least one byte has arrived.
    ///
    /// ```no_run
    /// # use squall::iostream::IOStream;
    /// # fn f(stream: IOStream) {
    /// stream.read_into_partial(vec![0; 64 * 1024]).add_done_callback(|f| {
    ///     if let Ok((buf, n)) = f.take_result() {
    ///         println!("{n} new bytes: {:?}", &buf[..n]); // then pass `buf` again
    ///     }
    /// });
    /// # }
    /// ```
    pub fn read_into_partial(&self, buf: Vec<u8>) -> Future<(Vec<u8>, usize)> {
        self.read_into_buf(buf, true)
    }

    fn read_into_buf(&self, buf: Vec<u8>, partial: bool) -> Future<(Vec<u8>, usize)> {
        if buf.is_empty() {
            return Future::ready((buf, 0));
        }
        let future = Future::new();
        let kind = ReadKind::Into {
            buf,
            filled: 0,
            partial,
        };
        match self.begin_read(kind, ReadFuture::Into(future.clone())) {
            Ok(()) => future,
            Err(err) => Future::failed(err),
        }
    }

    /// Reads exactly `n` bytes (Tornado's `read_bytes`).
    pub fn read_bytes(&self, n: usize) -> Future<Vec<u8>> {
        self.read_bytes_inner(n, false)
    }

    /// [`read_bytes`](IOStream::read_bytes) with Tornado's `partial=True`:
    /// resolves as soon as at least one byte (and at most `n`) is there.
    pub fn read_bytes_partial(&self, n: usize) -> Future<Vec<u8>> {
        self.read_bytes_inner(n, true)
    }

    fn read_bytes_inner(&self, n: usize, partial: bool) -> Future<Vec<u8>> {
        if n == 0 {
            return Future::ready(Vec::new());
        }
        self.start_read(ReadKind::Bytes { n, partial })
    }

    /// Reads everything until the peer closes its side of the stream. It
    /// resolves with the stream closed, unless writes were still queued:
    /// the stream then closes once they are out (see the
    /// [module docs](super#the-end-of-the-stream)).
    pub fn read_until_close(&self) -> Future<Vec<u8>> {
        self.start_read(ReadKind::UntilClose)
    }

    pub(super) fn start_read(&self, kind: ReadKind) -> Future<Vec<u8>> {
        let future = Future::new();
        match self.begin_read(kind, ReadFuture::Bytes(future.clone())) {
            Ok(()) => future,
            Err(err) => Future::failed(err),
        }
    }

    /// Makes `kind` the pending read, answered through `future`, and tries
    /// to settle it at once.
    pub(super) fn begin_read(&self, kind: ReadKind, future: ReadFuture) -> Result<(), Error> {
        {
            let mut st = self.inner.state.borrow_mut();
            if st.read.is_some() {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    "a read is already pending on this stream",
                ));
            }
            if st.hook_gen % 2 == 1 && !st.closed {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    "a read hook is set on this stream",
                ));
            }
            st.read = Some(PendingRead { kind, future });
        }
        // Buffered data satisfies the read at once, without a loop turn;
        // otherwise try the socket now: an edge may have come and gone.
        if !self.try_complete_read() {
            if self.is_open() {
                self.pump_read();
            } else {
                self.fail_read_if_ended();
            }
        }
        Ok(())
    }

    /// Reads what the socket has, settles the pending read if it can, and
    /// ends the stream if the peer closed its side (`end_of_stream`).
    pub(super) fn pump_read(&self) {
        self.pump_read_with(false);
    }

    /// `pump_read`; `force_hook` runs the read hook even with no new data.
    pub(super) fn pump_read_with(&self, force_hook: bool) {
        let (hooked, wants_data) = {
            let st = self.inner.state.borrow();
            (
                st.read_hook.is_some(),
                st.rbuf.len() < st.max_buffer_size && st.connecting.is_none(),
            )
        };
        if hooked {
            return self.pump_hook(force_hook);
        }
        if wants_data {
            self.read_from_socket();
        }
        let (eof, reading) = {
            let st = self.inner.state.borrow();
            (st.eof, st.read.is_some())
        };
        if eof {
            self.end_of_stream();
        } else if reading {
            self.try_complete_read();
        }
        // Whatever the read borrowed goes back if it is not holding bytes.
        let lender = self.inner.io_loop.read_spare();
        self.inner.state.borrow_mut().rbuf.give_back(lender);
    }

    /// The peer has closed its side (`eof`; maybe only its write side, and
    /// it still reads): delivers what the buffer satisfies, then closes the
    /// stream, or, with writes still queued, leaves it open to drain them;
    /// `flush` closes it once they are out. Runs again on every event while
    /// the stream drains, cheaply: nothing is read any more.
    pub(super) fn end_of_stream(&self) {
        // A read the buffer satisfies is delivered before deciding: its
        // callback may queue the reply that must then go out. Not a
        // `read_until_close`: the end is what it waits for, and it hears of
        // it with the stream closed if nothing is left to write.
        let until_close = matches!(
            self.inner.state.borrow().read.as_ref().map(|r| &r.kind),
            Some(ReadKind::UntilClose)
        );
        if !until_close {
            self.try_complete_read();
        } else if self.truncated() {
            self.fail_truncated_read();
        }
        let (closed, unsent) = {
            let st = self.inner.state.borrow();
            (st.closed, st.wlen > 0)
        };
        if closed {
            // The read's callback closed it, or found it unsatisfiable.
        } else if unsent {
            // Draining: the read side is over, the write side is not.
            if !self.try_complete_read() {
                self.fail_read_if_ended();
            }
        } else {
            // Close first: `close_with` settles the pending read from the
            // buffer, so a `read_until_close` (or a read that cannot be
            // satisfied) hears of the end with the stream already closed.
            self.close_with(None);
        }
    }

    /// Whether the peer ended a TLS stream without `close_notify`.
    fn truncated(&self) -> bool {
        self.inner
            .socket
            .borrow()
            .as_ref()
            .is_some_and(Socket::truncated)
    }

    /// A `read_until_close` on a TLS stream the peer cut off without
    /// `close_notify` fails: the end it waited for may be an attacker's
    /// (a truncated body), so it is not taken as the data's end. The data
    /// stays buffered. Other reads are delimited by their own framing and
    /// see an ordinary end.
    #[cold]
    fn fail_truncated_read(&self) {
        let read = self.inner.state.borrow_mut().read.take();
        if let Some(read) = read {
            read.future.set_error(Error::new(
                ErrorKind::Tls,
                "the peer closed the connection without a TLS close_notify: the data may be truncated",
            ));
        }
    }

    /// Settles the pending read if the buffer allows. Returns whether it did.
    pub(super) fn try_complete_read(&self) -> bool {
        let (future, outcome) = {
            let mut st = self.inner.state.borrow_mut();
            let outcome = match st.read.as_mut() {
                None => return false,
                Some(_) => {
                    let closed = st.closed || st.eof;
                    let max_buffer = st.max_buffer_size;
                    let State { rbuf, read, .. } = &mut *st;
                    evaluate_read(rbuf, read.as_mut().expect("checked"), closed, max_buffer)
                }
            };
            match outcome {
                ReadOutcome::Pending => return false,
                outcome => {
                    st.rbuf.give_back(self.inner.io_loop.read_spare());
                    (st.read.take().expect("checked").future, outcome)
                }
            }
        };
        match outcome {
            ReadOutcome::Done(result) => future.settle(result.map(|data| {
                let n = data.len();
                (data, n)
            })),
            ReadOutcome::Filled(buf, n) => future.settle(Ok((buf, n))),
            ReadOutcome::Unsatisfiable(err) => {
                // Close first: whoever hears of the failure finds the stream
                // closed, as Tornado's close-then-fail does.
                self.close_with(Some(err.clone()));
                future.set_error(err);
            }
            ReadOutcome::Pending => unreachable!(),
        }
        true
    }

    /// Fails the pending read if no more data can come: the stream is
    /// closed, or the peer closed its side and the stream only drains its
    /// writes (then the error says so; the kind is the same).
    pub(super) fn fail_read_if_ended(&self) {
        let (read, err) = {
            let mut st = self.inner.state.borrow_mut();
            let err = if st.closed {
                closed_error(st.error.as_ref())
            } else if st.eof {
                Error::new(ErrorKind::StreamClosed, "the peer closed the stream")
            } else {
                return;
            };
            match st.read.take() {
                Some(read) => (read, err),
                None => return,
            }
        };
        read.future.set_error(err);
        // Marked read, as Tornado does at a close: the end is news the close
        // callback brings too; a read future left unread must not log it.
        read.future.mark_observed();
    }

    /// Reads from the socket until it would block, the peer closes, or the
    /// buffer is full. Closes the stream on an error; the end of the stream
    /// only sets `eof`, for the caller to act on (`end_of_stream`).
    pub(super) fn read_from_socket(&self) {
        let result = {
            let socket = self.inner.socket.borrow();
            let Some(socket) = socket.as_ref() else {
                return;
            };
            let mut st = self.inner.state.borrow_mut();
            if st.eof || st.drained {
                return;
            }
            read_socket(&mut st, socket, self.inner.io_loop.read_spare())
        };
        match result {
            Err(err) => self.close_with(Some(err.into())),
            Ok(true) => self.schedule_pump(),
            Ok(false) => {}
        }
        // Reading may have finished a TLS handshake (its last message can
        // come with no event of its own to notice it by).
        self.check_handshake();
    }

    /// Reads again on the loop's next iteration: what an edge would do, for
    /// a socket left undrained.
    pub(super) fn schedule_pump(&self) {
        {
            let mut st = self.inner.state.borrow_mut();
            if st.pump_scheduled {
                return;
            }
            st.pump_scheduled = true;
        }
        let me = self.clone();
        self.inner.io_loop.spawn_callback(move || {
            me.inner.state.borrow_mut().pump_scheduled = false;
            if me.is_open() {
                me.pump_read();
                me.check_handshake();
            }
        });
    }
}

/// The read loop under a stream's borrows: reads until the socket would
/// block, the peer closes, the buffer is full, a pending read has its bytes,
/// or the turn's budget is spent. `Ok(true)`: stopped with the socket not
/// drained (read again on the next iteration; no new edge will come).
#[inline]
pub(super) fn read_socket(st: &mut State, socket: &Socket, lender: &Lender) -> io::Result<bool> {
    // A pending read_bytes needs this much buffered; past it, stop
    // and let it complete rather than drain a fast peer first.
    let target = match st.read.as_ref().map(|r| &r.kind) {
        Some(ReadKind::Bytes { partial: true, .. }) => Some(1),
        Some(ReadKind::Bytes { n, .. }) => Some(*n),
        _ => None,
    };
    let mut got = 0;
    while st.rbuf.len() < st.max_buffer_size {
        if got > 0 && (got >= READ_BUDGET || target.is_some_and(|t| st.rbuf.len() >= t)) {
            // Not drained: the socket owes us no new edge, so come
            // back on the next iteration (after the others' turn).
            return Ok(true);
        }
        // A pending read_into with nothing buffered: straight from the
        // socket into the caller's buffer, no copy.
        if st.rbuf.len() == 0 {
            if let Some(PendingRead {
                kind:
                    ReadKind::Into {
                        buf,
                        filled,
                        partial,
                    },
                ..
            }) = st.read.as_mut()
            {
                if into_satisfied(buf.len(), *filled, *partial) {
                    return Ok(true);
                }
                let room = buf.len() - *filled;
                match socket.read(&mut buf[*filled..]) {
                    Ok(0) => {
                        st.eof = true;
                        break;
                    }
                    Ok(n) => {
                        *filled += n;
                        got += n;
                        if n < room && !st.peer_closing {
                            st.drained = true;
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        st.drained = true;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
                continue;
            }
        }
        match fill_once(st, socket, lender) {
            Ok((n, go_on)) => {
                got += n;
                if !go_on {
                    break;
                }
            }
            Err(err) => return Err(err),
        }
    }
    Ok(false)
}

/// One `read` into the buffer's spare room: (bytes read, whether to read
/// on). It stops at the end of the stream, at `WouldBlock`, and at a short
/// read: that drained the socket, and the read after it would only say
/// `WouldBlock` (one syscall per request on a busy connection). Unless the
/// peer closed: data and FIN can come in one edge, and stopping at the data
/// would miss the end for good. (Data or a FIN arriving after this read is
/// a new edge.)
/// Always inlined: `read_socket` is every read's path but the read hook's
/// usual one (which does the same with a region of its own); left out of
/// line, it cost `hello_raw` 55 instructions a request.
#[inline(always)]
pub(super) fn fill_once(
    st: &mut State,
    socket: &Socket,
    lender: &Lender,
) -> io::Result<(usize, bool)> {
    let chunk = st.read_chunk;
    // (At least half a chunk: less where the buffer has that room already.)
    let spare = st.rbuf.spare(chunk, lender);
    let room = spare.len().min(chunk);
    match socket.read(&mut spare[..room]) {
        Ok(0) => {
            st.eof = true;
            Ok((0, false))
        }
        Ok(n) => {
            if n == chunk && chunk < READ_CHUNK {
                st.read_chunk = chunk * 2;
            }
            st.rbuf.commit(n);
            if n < room && !st.peer_closing {
                st.drained = true;
                return Ok((n, false));
            }
            Ok((n, true))
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            st.drained = true;
            Ok((0, false))
        }
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok((0, true)),
        Err(e) => Err(e),
    }
}

pub(super) enum ReadKind {
    Until {
        delimiter: Vec<u8>,
        max_bytes: Option<usize>,
        /// Bytes of the buffer already searched without a match.
        scanned: usize,
    },
    Bytes {
        n: usize,
        partial: bool,
    },
    UntilClose,
    /// Into the caller's buffer (`read_into`): `buf[..filled]` has arrived.
    Into {
        buf: Vec<u8>,
        filled: usize,
        partial: bool,
    },
    /// Up to and including the end of the first match.
    #[cfg(feature = "regex")]
    Regex {
        regex: regex::bytes::Regex,
        max_bytes: Option<usize>,
    },
}

pub(super) struct PendingRead {
    pub(super) kind: ReadKind,
    pub(super) future: ReadFuture,
}

/// Who hears of a pending read: `read_into` answers with its buffer and a
/// count, the others with the bytes.
pub(super) enum ReadFuture {
    Bytes(Future<Vec<u8>>),
    Into(Future<(Vec<u8>, usize)>),
}

impl ReadFuture {
    pub(super) fn mark_observed(&self) {
        match self {
            ReadFuture::Bytes(f) => f.mark_observed(),
            ReadFuture::Into(f) => f.mark_observed(),
        }
    }

    pub(super) fn set_error(&self, err: Error) {
        match self {
            ReadFuture::Bytes(f) => f.try_set_error(err),
            ReadFuture::Into(f) => f.try_set_error(err),
        };
    }

    /// Settles with the bytes read and how many of them are new (all of
    /// them but for `read_into`, whose buffer comes back whole).
    pub(super) fn settle(&self, outcome: Result<(Vec<u8>, usize), Error>) {
        match self {
            ReadFuture::Bytes(f) => f.try_complete(outcome.map(|(data, _)| data)),
            ReadFuture::Into(f) => f.try_complete(outcome),
        };
    }
}

pub(super) enum ReadOutcome {
    Pending,
    Done(Result<Vec<u8>, Error>),
    /// A `read_into` is done: its buffer (whole) and how much was filled.
    Filled(Vec<u8>, usize),
    /// The read can never be satisfied: fail it and close the stream.
    Unsatisfiable(Error),
}

/// Decides the pending read against the buffer.
pub(super) fn evaluate_read(
    rbuf: &mut ReadBuffer,
    read: &mut PendingRead,
    closed: bool,
    max_buffer: usize,
) -> ReadOutcome {
    let len = rbuf.len();
    match &mut read.kind {
        ReadKind::Until {
            delimiter,
            max_bytes,
            scanned,
        } => {
            let from = *scanned;
            let found = find(&rbuf.data()[from..], delimiter).map(|i| from + i);
            match found {
                Some(pos) => {
                    let end = pos + delimiter.len();
                    if max_bytes.is_some_and(|max| end > max) {
                        return ReadOutcome::Unsatisfiable(unsatisfiable(*max_bytes));
                    }
                    ReadOutcome::Done(Ok(rbuf.consume(end)))
                }
                None => {
                    if max_bytes.is_some_and(|max| len >= max) {
                        return ReadOutcome::Unsatisfiable(unsatisfiable(*max_bytes));
                    }
                    // Next time search only new bytes (keeping an overlap
                    // for a delimiter split across reads).
                    *scanned = len.saturating_sub(delimiter.len() - 1);
                    if len >= max_buffer {
                        return ReadOutcome::Unsatisfiable(buffer_full(max_buffer));
                    }
                    ReadOutcome::Pending
                }
            }
        }
        ReadKind::Bytes { n, partial } => {
            if len >= *n {
                ReadOutcome::Done(Ok(rbuf.consume(*n)))
            } else if *partial && len > 0 {
                ReadOutcome::Done(Ok(rbuf.consume(len)))
            } else if !*partial && *n > max_buffer {
                // (A partial read takes what fits, so it is never refused.)
                ReadOutcome::Unsatisfiable(buffer_full(max_buffer))
            } else {
                ReadOutcome::Pending
            }
        }
        #[cfg(feature = "regex")]
        ReadKind::Regex { regex, max_bytes } => {
            // A regex cannot resume a search where the last one stopped (a
            // match may start anywhere before), so each new arrival searches
            // the whole buffer again: `max_bytes` bounds that work.
            match regex.find(rbuf.data()) {
                Some(m) => {
                    if max_bytes.is_some_and(|max| m.end() > max) {
                        return ReadOutcome::Unsatisfiable(unsatisfiable(*max_bytes));
                    }
                    ReadOutcome::Done(Ok(rbuf.consume(m.end())))
                }
                None if max_bytes.is_some_and(|max| len >= max) => {
                    ReadOutcome::Unsatisfiable(unsatisfiable(*max_bytes))
                }
                None if len >= max_buffer => ReadOutcome::Unsatisfiable(buffer_full(max_buffer)),
                None => ReadOutcome::Pending,
            }
        }
        ReadKind::Into {
            buf,
            filled,
            partial,
        } => {
            // Buffered bytes first; the stream reads the rest straight into
            // `buf` (see `IOStream::read_from_socket`).
            let take = len.min(buf.len() - *filled);
            if take > 0 {
                buf[*filled..*filled + take].copy_from_slice(&rbuf.data()[..take]);
                rbuf.skip(take);
                *filled += take;
            }
            if into_satisfied(buf.len(), *filled, *partial) {
                ReadOutcome::Filled(std::mem::take(buf), *filled)
            } else {
                ReadOutcome::Pending
            }
        }
        ReadKind::UntilClose => {
            if closed {
                ReadOutcome::Done(Ok(rbuf.consume(len)))
            } else if len >= max_buffer {
                ReadOutcome::Unsatisfiable(buffer_full(max_buffer))
            } else {
                ReadOutcome::Pending
            }
        }
    }
}

/// Whether a `read_into` of `len` bytes with `filled` arrived is done.
pub(super) fn into_satisfied(len: usize, filled: usize, partial: bool) -> bool {
    filled == len || (partial && filled > 0)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.len() == 1 {
        memchr::memchr(needle[0], haystack)
    } else {
        memchr::memmem::find(haystack, needle)
    }
}

fn unsatisfiable(max_bytes: Option<usize>) -> Error {
    Error::new(
        ErrorKind::UnsatisfiableRead,
        format!(
            "delimiter not found within max_bytes ({})",
            max_bytes.unwrap_or_default()
        ),
    )
}

fn buffer_full(max: usize) -> Error {
    Error::new(
        ErrorKind::StreamClosed,
        format!("reached the maximum read buffer size ({max} bytes)"),
    )
}
