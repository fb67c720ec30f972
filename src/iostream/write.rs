//! Writes: straight to the socket when it takes them, queued in order when
//! it does not, each future done once its bytes are with the kernel.
//!
//! ```
//! # use squall::{IOLoop, iostream::IOStream};
//! # let io_loop = IOLoop::new()?;
//! # let (a, _b) = std::os::unix::net::UnixStream::pair()?;
//! let stream = IOStream::with_loop(a, &io_loop)?;
//! let mut out = b"one batch".to_vec();
//! stream.write_from(&mut out)?; // handed over (or queued): `out` is empty
//! assert!(out.is_empty());
//! # Ok::<(), squall::Error>(())
//! ```

use std::io;

use super::{closed_error, IOStream, Socket, State};
use crate::error::{Error, ErrorKind};
use crate::future::Future;

impl IOStream {
    /// Writes the bytes of `buf` and leaves it empty, keeping its capacity
    /// when the socket took everything: a connection can build each batch
    /// of output in one reused vector, with no future and no allocation per
    /// write. What the socket does not take is queued (the vector's memory
    /// moves into the queue). [`flushed`](IOStream::flushed) says when it
    /// has all gone out.
    ///
    /// # Errors
    /// As [`write`](IOStream::write); `buf` is left as it was.
    pub fn write_from(&self, buf: &mut Vec<u8>) -> Result<(), Error> {
        if buf.is_empty() {
            return Ok(());
        }
        let failure = {
            let socket = self.inner.socket.borrow();
            let mut st = self.inner.state.borrow_mut();
            if st.closed {
                return Err(closed_error(st.error.as_ref()));
            }
            check_room(&st, buf.len())?;
            let (written, failure) = write_now(&mut st, socket.as_ref(), buf);
            let failure = failure.map(Error::from);
            if failure.is_none() {
                if written == buf.len() {
                    buf.clear();
                } else {
                    enqueue(&mut st, std::mem::take(buf), written);
                }
            }
            failure
        };
        if let Some(err) = failure {
            self.close_with(Some(err.clone()));
            return Err(err);
        }
        Ok(())
    }

    /// A future done when everything written so far has been handed to the
    /// kernel (at once if nothing is queued); it fails if the stream closes
    /// first.
    pub fn flushed(&self) -> Future<()> {
        let unsent = self.unsent_plaintext();
        let mut st = self.inner.state.borrow_mut();
        if st.closed {
            return Future::failed(closed_error(st.error.as_ref())).observed();
        }
        if st.wlen == 0 && unsent == 0 {
            return Future::ready(());
        }
        let future = Future::new();
        let mark = st.queued_total;
        st.write_futures.push_back((mark, future.clone()));
        future
    }

    // ----- writes (futures) -------------------------------------------------

    /// Writes `data`; the future is done when all of it has been handed to
    /// the kernel. Writes are attempted at once and queue in order.
    ///
    /// Fails with [`ErrorKind::BufferFull`] if it would grow the write buffer
    /// past [`set_max_write_buffer_size`](IOStream::set_max_write_buffer_size),
    /// and with [`ErrorKind::StreamClosed`] on a closed stream.
    ///
    /// What the kernel takes at once is written straight from `data`; only
    /// the rest is kept, so a borrowed slice is copied only when the socket
    /// cannot take it all, and an owned `Vec` or `String` is never copied.
    ///
    /// Ignoring the future is fine when only the order of writes matters
    /// (`drop(stream.write(..))`: a [`Future`] is `#[must_use]`): a write
    /// that fails also closes the stream, so the close callback and every
    /// pending read hear of it, and a write failed by the close is not
    /// logged as an error nobody read.
    pub fn write<D>(&self, data: D) -> Future<()>
    where
        D: AsRef<[u8]> + Into<Vec<u8>>,
    {
        let (future, failure) = {
            let socket = self.inner.socket.borrow();
            let mut st = self.inner.state.borrow_mut();
            if st.closed {
                return Future::failed(closed_error(st.error.as_ref())).observed();
            }
            if data.as_ref().is_empty() {
                return Future::ready(());
            }
            if let Err(err) = check_room(&st, data.as_ref().len()) {
                return Future::failed(err);
            }
            let bytes = data.as_ref();
            let (written, failure) = write_now(&mut st, socket.as_ref(), bytes);
            let failure = failure.map(Error::from);
            // All taken, and (under TLS) all of it out as ciphertext too.
            let out = socket.as_ref().map_or(0, Socket::unsent_plaintext) == 0;
            if written == bytes.len() && failure.is_none() && out {
                return Future::ready(());
            }
            let future = Future::new();
            if failure.is_none() {
                if written < bytes.len() {
                    enqueue(&mut st, data.into(), written);
                }
                let mark = st.queued_total;
                st.write_futures.push_back((mark, future.clone()));
            } else {
                let mark = st.queued_total + 1;
                st.write_futures.push_back((mark, future.clone()));
            }
            (future, failure)
        };
        if let Some(err) = failure {
            self.close_with(Some(err));
        }
        future
    }

    /// Writes what is queued until the socket would block; settles the
    /// futures of what got through. After the peer's end of stream, closes
    /// the stream once the queue is empty: the close the end put off.
    pub(super) fn flush(&self) {
        let mut failure = None;
        let done: Vec<Future<()>> = {
            let socket = self.inner.socket.borrow();
            let Some(socket) = socket.as_ref() else {
                return;
            };
            let mut st = self.inner.state.borrow_mut();
            if st.connecting.is_some() {
                return;
            }
            while let Some(front) = st.wbuf.front() {
                match socket.write(&front[st.wpos..]) {
                    Ok(n) => {
                        st.wpos += n;
                        st.wlen -= n;
                        st.written_total += n as u64;
                        if st.wpos == st.wbuf.front().map_or(0, Vec::len) {
                            st.wbuf.pop_front();
                            st.wpos = 0;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        failure = Some(Error::from(e));
                        break;
                    }
                }
            }
            // TLS: ciphertext of earlier writes may wait below the queue.
            if failure.is_none() && st.wbuf.is_empty() {
                if let Err(e) = socket.flush_output() {
                    if e.kind() != io::ErrorKind::WouldBlock {
                        failure = Some(Error::from(e));
                    }
                }
            }
            // Under TLS the last write's plaintext may still wait as
            // ciphertext: its futures wait with it.
            let out = st.written_total - socket.unsent_plaintext() as u64;
            let mut done = Vec::new();
            while let Some((mark, _)) = st.write_futures.front() {
                if *mark > out {
                    break;
                }
                done.push(st.write_futures.pop_front().expect("checked").1);
            }
            done
        };
        for future in done {
            future.try_set_result(());
        }
        if let Some(err) = failure {
            self.close_with(Some(err));
            return;
        }
        // Checked after the futures' callbacks, which may have written more
        // (then the close waits for that too) or closed the stream.
        let drained = {
            let st = self.inner.state.borrow();
            st.eof && st.wlen == 0 && !st.closed
        } && !self.pending_output();
        if drained {
            self.close_with(None);
        }
    }
}

/// Refuses a write of `len` bytes that would grow the queue past
/// `max_write_buffer_size`.
#[inline]
fn check_room(st: &State, len: usize) -> Result<(), Error> {
    match st.max_write_buffer_size {
        Some(max) if st.wlen + len > max => Err(Error::new(
            ErrorKind::BufferFull,
            format!("write of {len} bytes would exceed max_write_buffer_size {max}"),
        )),
        _ => Ok(()),
    }
}

/// Writes what the socket takes of `bytes` at once: only with nothing
/// queued ahead (writes go out in order) and the connection made. Returns
/// how much went out, and the error that stopped it, if any. Always
/// inlined: left to itself, the compiler keeps it out of line when the
/// stream's code is split over codegen units (25 instructions a response).
#[inline(always)]
fn write_now(st: &mut State, socket: Option<&Socket>, bytes: &[u8]) -> (usize, Option<io::Error>) {
    let mut written = 0;
    let mut failure = None;
    if st.wlen == 0 && st.connecting.is_none() {
        if let Some(socket) = socket {
            while written < bytes.len() {
                match socket.write(&bytes[written..]) {
                    Ok(n) => written += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
        }
    }
    st.written_total += written as u64;
    st.queued_total += written as u64;
    (written, failure)
}

/// Queues `data`, whose first `written` bytes already went out: queued
/// whole, not copied, with `wpos` skipping them. Only a write into an empty
/// queue can have gone out in part.
fn enqueue(st: &mut State, data: Vec<u8>, written: usize) {
    let rest = data.len() - written;
    if st.wbuf.is_empty() {
        st.wpos = written;
    } else {
        debug_assert_eq!(written, 0);
    }
    st.wbuf.push_back(data);
    st.wlen += rest;
    st.queued_total += rest as u64;
}
