//! The low-level read hook: a reader that sees the buffered bytes in place,
//! with no future per message (what the HTTP server parses requests with).
//!
//! ```
//! # use squall::{IOLoop, iostream::IOStream};
//! # let io_loop = IOLoop::new()?;
//! # let (a, _b) = std::os::unix::net::UnixStream::pair()?;
//! let stream = IOStream::with_loop(a, &io_loop)?;
//! // Count the bytes as they come, consuming all of them.
//! let mut seen = 0;
//! stream.set_read_hook(move |buf: &[u8], _eof: bool| {
//!     seen += buf.len();
//!     buf.len()
//! })?;
//! # Ok::<(), squall::Error>(())
//! ```

use std::io;

use super::buffer::{self, ReadBuffer};
use super::read::read_socket;
use super::{closed_error, IOStream, ReadHook, READ_CHUNK};
use crate::error::{Error, ErrorKind};

impl IOStream {
    /// Installs a low-level reader in place of future-returning reads.
    ///
    /// `hook(buffered, eof)` is called on the loop whenever new bytes arrive
    /// (and once now, if any are buffered or the socket has some): it sees
    /// every byte received and not yet consumed, in place, and returns how
    /// many it consumed (the rest stays buffered for its next call). `eof`
    /// says the peer has closed its side; the loop makes that call once, and
    /// the stream closes after it, once its queued writes (those the call
    /// made included) have gone out: a peer that only shut its write side
    /// still gets its reply. Until then the hook stays set, and
    /// [`resume_read_hook`](IOStream::resume_read_hook) runs it again (with
    /// `eof` set) over what it left. This is what the HTTP server parses
    /// requests with: no future and no copy per message.
    ///
    /// While a hook is set, `read_until` and friends fail with
    /// [`ErrorKind::InvalidState`]. Reading stops while the buffer holds
    /// `max_buffer_size` unconsumed bytes; after the hook's owner has
    /// consumed them out of band, [`resume_read_hook`](IOStream::resume_read_hook)
    /// goes on. The hook is dropped when the stream closes.
    ///
    /// A hook that panics closes the stream (its error has kind
    /// [`ErrorKind::Panic`]), and the panic is reported as a callback's is.
    ///
    /// ```
    /// use std::io::Write;
    /// use squall::{IOLoop, IOStream};
    ///
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let addr = listener.local_addr()?;
    /// let peer = std::thread::spawn(move || {
    ///     let (mut conn, _) = listener.accept().unwrap();
    ///     conn.write_all(b"one\ntwo\nthr").unwrap();
    /// });
    /// let io_loop = IOLoop::new()?;
    /// let lines = io_loop.run_sync(|| {
    ///     let done = squall::Future::new();
    ///     let d = done.clone();
    ///     IOStream::connect(addr).add_done_callback(move |f: &squall::Future<IOStream>| {
    ///         let stream = f.result().unwrap();
    ///         let mut lines = Vec::new();
    ///         stream.set_read_hook(move |buf: &[u8], eof: bool| {
    ///             // Consume whole lines only.
    ///             let mut used = 0;
    ///             while let Some(i) = buf[used..].iter().position(|&b| b == b'\n') {
    ///                 lines.push(String::from_utf8_lossy(&buf[used..used + i]).into_owned());
    ///                 used += i + 1;
    ///             }
    ///             if eof {
    ///                 d.try_set_result(std::mem::take(&mut lines));
    ///             }
    ///             used
    ///         });
    ///     });
    ///     done
    /// }, None)?;
    /// assert_eq!(lines, ["one", "two"]);
    /// peer.join().unwrap();
    /// # Ok::<(), squall::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::InvalidState`] if a future read is pending;
    /// [`ErrorKind::StreamClosed`] if the stream is closed.
    pub fn set_read_hook<F>(&self, hook: F) -> Result<(), Error>
    where
        F: FnMut(&[u8], bool) -> usize + 'static,
    {
        {
            let mut st = self.inner.state.borrow_mut();
            if st.closed {
                return Err(closed_error(st.error.as_ref()));
            }
            if st.read.is_some() {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    "a read is pending on this stream",
                ));
            }
            st.read_hook = Some(Box::new(hook));
            // Odd: a hook is installed (whether or not it is running).
            st.hook_gen = (st.hook_gen | 1) + 2;
        }
        self.pump_read_with(true);
        Ok(())
    }

    /// Removes the read hook (it may be running: it is then not put back).
    /// Unconsumed bytes stay buffered for future reads.
    pub fn clear_read_hook(&self) {
        let hook = {
            let mut st = self.inner.state.borrow_mut();
            st.hook_gen = (st.hook_gen + 1) & !1;
            st.read_hook.take()
        };
        drop(hook);
    }

    /// Runs the read hook now over what is buffered, then reads on: for a
    /// hook that declined bytes earlier (it was busy) and is ready for them.
    /// Does nothing without a hook, or from inside the hook.
    pub fn resume_read_hook(&self) {
        if self.is_open() && self.inner.state.borrow().read_hook.is_some() {
            self.pump_read_with(true);
        }
    }

    /// Runs the hook, taken out of the state with the buffer: no borrow is
    /// held while it runs, so it may write, close, or clear itself. Puts
    /// both back; `None` if the hook panicked (the stream is then closed),
    /// else what the caller looks at next: (the end was read, a future
    /// read is pending), read in the borrow that puts them back.
    ///
    /// `caught_above`: the caller is the loop, whose own catch reports a
    /// panic. Then a drop guard closes the stream if the hook panics,
    /// cheaper than a `catch_unwind` on every message. Otherwise (a hook run
    /// from `set_read_hook` or `resume_read_hook`, inside whatever user code
    /// called those) the panic is caught here, as a callback's would be.
    /// Always inlined, in its two callers: every request's path.
    #[inline(always)]
    fn run_taken_hook(
        &self,
        mut hook: ReadHook,
        mut rbuf: ReadBuffer,
        eof: bool,
        gen: u64,
        caught_above: bool,
    ) -> Option<(bool, bool)> {
        let data = rbuf.data();
        let len = data.len();
        let used = if caught_above {
            let guard = ClosesOnPanic(self);
            let used = hook(data, eof);
            std::mem::forget(guard);
            used
        } else {
            match crate::callback::catch_value(|| hook(data, eof)) {
                Ok(used) => used,
                Err(err) => {
                    log::error!("read hook on fd {} failed: {err}", self.inner.fd);
                    self.inner.state.borrow_mut().rbuf = rbuf;
                    drop(hook);
                    self.close_with(Some(err));
                    return None;
                }
            }
        };
        rbuf.skip(used.min(len));
        // Nothing left (the usual case): the region goes back to the thread.
        rbuf.give_back(self.inner.io_loop.read_spare());
        // `restore_hook`, inline: this is every request's path.
        let mut st = self.inner.state.borrow_mut();
        st.rbuf = rbuf;
        if st.hook_gen == gen && !st.closed {
            st.read_hook = Some(hook);
            Some((st.eof, st.read.is_some()))
        } else {
            // Replaced or closed while it ran; dropped unborrowed, as
            // its captures may own this stream.
            drop(st);
            drop(hook);
            let st = self.inner.state.borrow();
            Some((st.eof, st.read.is_some()))
        }
    }

    /// A read edge for a stream with a read hook (the HTTP server's path).
    pub(super) fn pump_hook(&self, force_hook: bool) {
        if !force_hook {
            match self.pump_hook_usual(false) {
                Usual::Idle | Usual::Done => return,
                Usual::ReadOn => return self.pump_hook_with(false, true),
                Usual::No => {}
            }
        }
        self.pump_hook_with(force_hook, false);
    }

    /// The usual read edge of a request/response connection, on a short,
    /// straight path: nothing buffered, and one read that drains the socket
    /// (a short one: a request or a pipelined batch), handed to the hook.
    /// What it does is what the general path (`pump_hook_with`) would,
    /// minus the cases it cannot meet here: a read that fills its chunk, or
    /// sees the end, goes on there (`ReadOn`); any other state goes there
    /// at once (`No`). It is every request's read in a raw server
    /// (`bench/http_callgrind.sh squallraw`).
    ///
    /// Its shape is the point: one borrow before the hook and one after,
    /// nothing else. The read lands in the loop's spare region, taken out
    /// of its cell as a plain `Vec` and given back once the hook has
    /// consumed it all (the usual case): the stream's own buffer is not
    /// touched (no moving it out and back in around the hook). Only bytes
    /// the hook leaves become the buffer's. The borrow after the hook reads
    /// what the caller would look at next; `Idle` says there is nothing
    /// (not closed, no end, no future read, nothing unsent on a plain
    /// socket, no handshake), so an edge costs no further borrow.
    ///
    /// `edge`: a new READ edge (not READ_CLOSED) is the caller: the socket
    /// may have something again, whatever the last read saw.
    #[inline]
    pub(super) fn pump_hook_usual(&self, edge: bool) -> Usual {
        let inner = &*self.inner;
        let lender = inner.io_loop.read_spare();
        let (mut hook, region, n, gen, plain) = {
            let held = inner.socket.borrow();
            let mut st = inner.state.borrow_mut();
            let Some(socket) = held.as_ref() else {
                return Usual::No;
            };
            if edge {
                st.drained = false;
            }
            // (No future read is pending while a hook is set.) A chunk
            // within the buffer's limit leaves a short read's bytes under
            // it: no "full" case.
            if st.read_hook.is_none()
                || !st.rbuf.is_unallocated()
                || st.closed
                || st.eof
                || st.drained
                || st.peer_closing
                || st.connecting.is_some()
                || st.read_chunk > st.max_buffer_size
            {
                return Usual::No;
            }
            let chunk = st.read_chunk;
            let mut region = lender.take();
            if region.len() < chunk {
                // (The first read of the loop: the general path makes one.)
                lender.set(region);
                return Usual::No;
            }
            let n = match socket.read(&mut region[..chunk]) {
                // A short read: the socket is drained.
                Ok(n) if n > 0 && n < chunk => {
                    st.drained = true;
                    n
                }
                // Anything else: what `fill_once` does with it.
                Ok(0) => {
                    st.eof = true;
                    buffer::return_region(lender, region);
                    return Usual::ReadOn;
                }
                // A full chunk: more may wait.
                Ok(n) => {
                    if chunk < READ_CHUNK {
                        st.read_chunk = chunk * 2;
                    }
                    st.rbuf = ReadBuffer::adopt(region, 0, n);
                    return Usual::ReadOn;
                }
                Err(e) => {
                    buffer::return_region(lender, region);
                    return match e.kind() {
                        // Nothing there after all: nothing new.
                        io::ErrorKind::WouldBlock => {
                            st.drained = true;
                            Usual::Done
                        }
                        io::ErrorKind::Interrupted => Usual::ReadOn,
                        _ => {
                            drop(st);
                            drop(held);
                            self.close_with(Some(e.into()));
                            Usual::Done
                        }
                    };
                }
            };
            let Some(hook) = st.read_hook.take() else {
                st.rbuf = ReadBuffer::adopt(region, 0, n);
                return Usual::ReadOn;
            };
            (hook, region, n, st.hook_gen, !socket.may_hold_output())
        };
        // No borrow is held while the hook runs: it may write, close, or
        // clear itself. (The loop above reports a panic; the guard closes
        // the stream then, as `run_taken_hook` does.)
        let guard = ClosesOnPanic(self);
        let used = hook(&region[..n], false).min(n);
        std::mem::forget(guard);
        let mut st = inner.state.borrow_mut();
        if used == n {
            buffer::return_region(lender, region);
        } else {
            // Bytes left (a partial head): the buffer's now, as the general
            // path leaves them (a small leftover in a region of its size).
            st.rbuf = ReadBuffer::adopt(region, used, n);
            st.rbuf.give_back(lender);
        }
        if st.hook_gen == gen && !st.closed {
            st.read_hook = Some(hook);
            let (eof, reading) = (st.eof, st.read.is_some());
            if !eof && !reading && plain && st.wlen == 0 && !st.handshaking {
                return Usual::Idle;
            }
            drop(st);
            self.after_hook(eof, reading);
        } else {
            // Replaced or closed while it ran; dropped unborrowed, as its
            // captures may own this stream.
            drop(st);
            drop(hook);
            let (eof, reading) = {
                let st = inner.state.borrow();
                (st.eof, st.read.is_some())
            };
            self.after_hook(eof, reading);
        }
        Usual::Done
    }

    /// After the hook's turn: the end, or a future read the hook began
    /// (it may have cleared itself), which the restored buffer may satisfy.
    #[inline]
    fn after_hook(&self, eof: bool, reading: bool) {
        if eof {
            self.end_of_stream();
        } else if reading {
            self.try_complete_read();
        }
    }

    /// `pump_read_with` for a stream with a read hook, in general: one
    /// borrow reads the socket and takes the hook and buffer out, one puts
    /// them back. (No future read is pending while a hook is set.) `fresh`:
    /// the caller has read new bytes into the buffer already.
    pub(super) fn pump_hook_with(&self, force_hook: bool, fresh: bool) {
        let inner = &*self.inner;
        let (read, taken) = {
            let socket = inner.socket.borrow();
            let mut st = inner.state.borrow_mut();
            let before = st.rbuf.len();
            // Ok(true): the socket is left undrained.
            let read = match socket.as_ref() {
                Some(socket) if !st.eof && !st.drained && st.connecting.is_none() => {
                    read_socket(&mut st, socket, inner.io_loop.read_spare())
                }
                _ => Ok(false),
            };
            let eof = st.eof || st.closed;
            // The end is news once: while the stream drains its writes,
            // every write edge comes here too, with nothing new to read.
            let news = st.eof && !st.hook_heard_eof;
            let run = read.is_ok()
                && (force_hook || fresh || news || st.rbuf.len() != before)
                && (st.rbuf.len() > 0 || eof);
            let taken = match st.read_hook.take() {
                Some(hook) if run => {
                    st.hook_heard_eof |= eof;
                    let full = st.rbuf.len() >= st.max_buffer_size;
                    let rbuf = std::mem::take(&mut st.rbuf);
                    Some((hook, rbuf, eof, st.hook_gen, full))
                }
                hook => {
                    st.read_hook = hook;
                    // Not run (nothing new, or the hook is busy): what the
                    // read borrowed goes back all the same.
                    st.rbuf.give_back(inner.io_loop.read_spare());
                    None
                }
            };
            (read, taken)
        };
        match read {
            Err(err) => return self.close_with(Some(err.into())),
            Ok(true) => self.schedule_pump(),
            Ok(false) => {}
        }
        if let Some((hook, rbuf, eof, gen, full)) = taken {
            // Forced runs come from `set_read_hook` / `resume_read_hook`,
            // called by user code rather than the loop.
            if self
                .run_taken_hook(hook, rbuf, eof, gen, !force_hook)
                .is_none()
            {
                return;
            }
            // Reading stopped at a full buffer, with bytes still in the
            // socket: no new edge will come for them (a peer blocked on a
            // full window sends nothing), so read again once the hook has
            // made room.
            let again = full && {
                let st = inner.state.borrow();
                !st.drained && !st.eof && st.rbuf.len() < st.max_buffer_size
            };
            if again {
                self.schedule_pump();
            }
        }
        let (eof, reading) = {
            let st = inner.state.borrow();
            (st.eof, st.read.is_some())
        };
        self.after_hook(eof, reading);
    }
}

/// What `pump_hook_usual` made of a read edge.
pub(super) enum Usual {
    /// Handled, and nothing else to do for this event: the stream is open,
    /// with nothing unsent, no end, no future read and no handshake.
    Idle,
    /// Handled.
    Done,
    /// Not the usual case: the general path takes it, from the start.
    No,
    /// Bytes (or the end) were read; the general path goes on reading.
    ReadOn,
}

/// Closes its stream when dropped, which only happens if the read hook
/// panics (the normal path forgets it). The close runs as a callback: it
/// runs close callbacks, user code, which must not run while unwinding.
struct ClosesOnPanic<'a>(&'a IOStream);

impl Drop for ClosesOnPanic<'_> {
    fn drop(&mut self) {
        let stream = self.0.clone();
        self.0.inner.io_loop.add_callback(move || {
            // The panic itself is reported where it is caught.
            stream.close_with(Some(Error::new(ErrorKind::Panic, "the read hook panicked")));
        });
    }
}
