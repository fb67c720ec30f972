//! File-descriptor handlers: the `Events` mask and the registry that maps mio
//! tokens to handlers.
//!
//! Each handler lives in a slot table (`slab.rs`) whose key *is* its mio
//! token. A key carries a version, so an event still queued for a handler
//! that was removed — even when the fd number was reused at once, or the
//! table's page was freed and made again — finds no handler and is dropped.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::ops::{BitAnd, BitOr, BitOrAssign};
use std::os::unix::io::{AsRawFd, BorrowedFd, RawFd};
use std::rc::Rc;

use mio::{Interest, Token};

use mio::unix::SourceFd;

use super::observer::{Span, SpanKind};
use super::slab::{slab_key, Slab, SlabKey};
use super::{closed, IOLoop, WAKER_TOKEN};
use crate::callback::{self, CallbackReturn, Origin};
use crate::error::{Error, ErrorKind};
use crate::stack_context::Context;

/// The IO events a handler asks for and receives: `READ`, `WRITE`, `ERROR`.
///
/// ```
/// use squall::ioloop::Events;
///
/// let both = Events::READ | Events::WRITE;
/// assert!(both.is_readable() && both.is_writable() && !both.is_error());
/// assert!(both.contains(Events::READ));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Events(u8);

impl Events {
    /// No events.
    pub const NONE: Events = Events(0);
    /// The fd is readable (or the peer closed its side: a read will say so).
    pub const READ: Events = Events(1);
    /// The fd is writable.
    pub const WRITE: Events = Events(2);
    /// An error or hang-up on the fd. Always reported, whether asked for or not.
    pub const ERROR: Events = Events(4);
    /// The peer has closed its writing side (`EPOLLRDHUP`): reported with
    /// `READ`, never asked for. A reader that sees a short read *without* it
    /// knows the socket is drained and can skip the read that would only say
    /// `WouldBlock`; with it, it must read on to the end of the stream.
    pub const READ_CLOSED: Events = Events(8);

    /// Whether every event of `other` is in `self`.
    pub fn contains(self, other: Events) -> bool {
        self.0 & other.0 == other.0
    }
    /// Whether `READ` is set.
    pub fn is_readable(self) -> bool {
        self.contains(Events::READ)
    }
    /// Whether `WRITE` is set.
    pub fn is_writable(self) -> bool {
        self.contains(Events::WRITE)
    }
    /// Whether `ERROR` is set.
    pub fn is_error(self) -> bool {
        self.contains(Events::ERROR)
    }
    /// Whether `READ_CLOSED` is set.
    pub fn is_read_closed(self) -> bool {
        self.contains(Events::READ_CLOSED)
    }
    /// Whether no event is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub(crate) fn from_mio(event: &mio::event::Event) -> Events {
        let mut events = Events::NONE;
        if event.is_readable() || event.is_read_closed() {
            events |= Events::READ;
        }
        if event.is_read_closed() {
            events |= Events::READ_CLOSED;
        }
        if event.is_writable() {
            events |= Events::WRITE;
        }
        if event.is_error() || (event.is_read_closed() && event.is_write_closed()) {
            events |= Events::ERROR;
        }
        events
    }

    /// The mio interest for a registration; mio needs one of read or write, so
    /// an `ERROR`-only handler registers for reads and has them masked out.
    pub(crate) fn to_interest(self) -> Interest {
        match (self.is_readable(), self.is_writable()) {
            (_, false) => Interest::READABLE,
            (false, true) => Interest::WRITABLE,
            (true, true) => Interest::READABLE | Interest::WRITABLE,
        }
    }
}

impl BitOr for Events {
    type Output = Events;
    fn bitor(self, rhs: Events) -> Events {
        Events(self.0 | rhs.0)
    }
}

impl BitOrAssign for Events {
    fn bitor_assign(&mut self, rhs: Events) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for Events {
    type Output = Events;
    fn bitand(self, rhs: Events) -> Events {
        Events(self.0 & rhs.0)
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = [
            (Events::READ, "READ"),
            (Events::WRITE, "WRITE"),
            (Events::ERROR, "ERROR"),
            (Events::READ_CLOSED, "READ_CLOSED"),
        ]
        .iter()
        .filter(|(e, _)| self.contains(*e))
        .map(|(_, n)| *n)
        .collect();
        if names.is_empty() {
            f.write_str("NONE")
        } else {
            f.write_str(&names.join(" | "))
        }
    }
}

/// What a handler watches: a [`RawFd`], or a *reference* to anything
/// [`AsRawFd`] (`&stream`), or a [`BorrowedFd`].
///
/// The loop never owns the fd, so an owned socket is refused at compile time:
/// `add_handler(stream, ..)` would close the socket as soon as it returned.
///
/// ```
/// use std::os::unix::io::AsRawFd;
/// use std::os::unix::net::UnixStream;
/// use squall::{Events, IOLoop};
///
/// let io_loop = IOLoop::new()?;
/// let (a, b) = UnixStream::pair()?;
/// io_loop.add_handler(&a, |_, _| (), Events::READ)?;
/// io_loop.add_handler(b.as_raw_fd(), |_, _| (), Events::READ)?;
/// assert!(io_loop.remove_handler(&a) && io_loop.remove_handler(&b));
/// # Ok::<(), squall::Error>(())
/// ```
///
/// ```compile_fail
/// # use squall::{Events, IOLoop};
/// let io_loop = IOLoop::new().unwrap();
/// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
/// io_loop.add_handler(a, |_, _| (), Events::READ); // would close `a` at once
/// ```
pub trait ToRawFd {
    /// The fd number.
    fn to_raw_fd(&self) -> RawFd;
}

impl ToRawFd for RawFd {
    #[inline]
    fn to_raw_fd(&self) -> RawFd {
        *self
    }
}

impl<T: AsRawFd + ?Sized> ToRawFd for &T {
    #[inline]
    fn to_raw_fd(&self) -> RawFd {
        (**self).as_raw_fd()
    }
}

impl ToRawFd for BorrowedFd<'_> {
    #[inline]
    fn to_raw_fd(&self) -> RawFd {
        self.as_raw_fd()
    }
}

/// How a handler is told about readiness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// Tornado's meaning: reported every iteration while the fd is ready.
    Level,
    /// Reported once per change of readiness; the handler drains until `WouldBlock`.
    Edge,
}

slab_key! {
    /// A handler's key in the table: its mio token.
    pub(crate) struct HandlerKey;
}

/// Shared with the dispatch that is calling it (see `dispatch_events`).
pub(crate) type HandlerFn = Rc<dyn Call>;

/// A handler closure in its `RefCell`, called through `&self`. A trait
/// object rather than `RefCell<dyn FnMut>`, whose every borrow would work
/// out the closure's offset from its alignment at run time.
pub(crate) trait Call {
    /// Calls the handler; does nothing if it is running already (which the
    /// loop's refusal to nest dispatch rules out).
    fn call(&self, fd: RawFd, events: Events) -> Result<(), Error>;
}

impl<F: FnMut(RawFd, Events) -> Result<(), Error>> Call for RefCell<F> {
    #[inline]
    fn call(&self, fd: RawFd, events: Events) -> Result<(), Error> {
        match self.try_borrow_mut() {
            Ok(mut f) => f(fd, events),
            Err(_) => Ok(()),
        }
    }
}

pub(crate) struct Handler {
    pub(crate) fd: RawFd,
    pub(crate) interest: Events,
    /// The events the handler is told of: `interest`, errors always, and a
    /// reader its peer's close (see [`delivered`]).
    pub(crate) mask: Events,
    pub(crate) trigger: Trigger,
    /// The handler; the table's borrow is released before it is called.
    pub(crate) f: HandlerFn,
    pub(crate) ctx: Context,
    pub(crate) name: &'static str,
    /// Where it was added, for the trace.
    #[cfg(feature = "trace")]
    pub(crate) site: &'static std::panic::Location<'static>,
}

impl Handler {
    /// Where it was added, if the build keeps that (feature `trace`).
    #[inline]
    fn site(&self) -> Option<&'static std::panic::Location<'static>> {
        #[cfg(feature = "trace")]
        return Some(self.site);
        #[cfg(not(feature = "trace"))]
        return None;
    }
}

#[derive(Default)]
pub(crate) struct Handlers {
    pub(crate) map: Slab<HandlerKey, Handler>,
    pub(crate) by_fd: HashMap<RawFd, HandlerKey>,
}

/// What a handler with this interest is told of: errors always, and a
/// reader its peer's close.
fn delivered(interest: Events) -> Events {
    let mut mask = interest | Events::ERROR;
    if interest.is_readable() {
        mask |= Events::READ_CLOSED;
    }
    mask
}

pub(crate) fn token_of(key: HandlerKey) -> Token {
    // A key is (version << 32 | index); the index never reaches u32::MAX,
    // so it can never equal the waker's token.
    Token(key.raw() as usize)
}

pub(crate) fn key_of(token: Token) -> HandlerKey {
    HandlerKey::from_raw(token.0 as u64)
}

impl IOLoop {
    /// Calls `handler(fd, events)` whenever `fd` is ready for `events`.
    ///
    /// Level-triggered, as Tornado's: an fd still readable after the handler
    /// returns is reported again on the next iteration, so a handler may read
    /// once and return. That costs one `epoll_ctl` per event to re-arm; a
    /// handler that drains until `WouldBlock` should use
    /// [`add_edge_handler`](IOLoop::add_edge_handler).
    ///
    /// `ERROR` is always reported. The handler captures the current stack
    /// context, and each call runs under it. The loop does not own `fd`:
    /// remove the handler before closing it.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidState`] if `fd` already has a handler;
    /// [`ErrorKind::Io`] if epoll refuses it; [`ErrorKind::Closed`] on a closed loop.
    #[cfg_attr(feature = "trace", track_caller)]
    pub fn add_handler<R, F>(
        &self,
        fd: impl ToRawFd,
        handler: F,
        events: Events,
    ) -> Result<(), Error>
    where
        R: CallbackReturn,
        F: FnMut(RawFd, Events) -> R + 'static,
    {
        self.register(fd.to_raw_fd(), handler, events, Trigger::Level)
    }

    /// Like [`add_handler`](IOLoop::add_handler), but edge-triggered: the
    /// handler hears of readiness once per change, and must read (or write)
    /// until `WouldBlock`, or it will not be told again. No extra syscall per
    /// event; this is what `IOStream` uses.
    ///
    /// # Errors
    /// As [`add_handler`](IOLoop::add_handler).
    #[cfg_attr(feature = "trace", track_caller)]
    pub fn add_edge_handler<R, F>(
        &self,
        fd: impl ToRawFd,
        handler: F,
        events: Events,
    ) -> Result<(), Error>
    where
        R: CallbackReturn,
        F: FnMut(RawFd, Events) -> R + 'static,
    {
        self.register(fd.to_raw_fd(), handler, events, Trigger::Edge)
    }

    #[cfg_attr(feature = "trace", track_caller)]
    fn register<R, F>(
        &self,
        fd: RawFd,
        mut handler: F,
        events: Events,
        trigger: Trigger,
    ) -> Result<(), Error>
    where
        R: CallbackReturn,
        F: FnMut(RawFd, Events) -> R + 'static,
    {
        let polling = self.inner.poll.borrow();
        let Some(poll) = polling.as_ref() else {
            return Err(closed());
        };
        let mut handlers = self.inner.handlers.borrow_mut();
        if handlers.by_fd.contains_key(&fd) {
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!("fd {fd} already has a handler"),
            ));
        }
        let key = handlers.map.insert(Handler {
            fd,
            interest: events,
            mask: delivered(events),
            trigger,
            f: Rc::new(RefCell::new(move |fd, ev| handler(fd, ev).into_outcome())),
            ctx: Context::capture(),
            name: std::any::type_name::<F>(),
            #[cfg(feature = "trace")]
            site: std::panic::Location::caller(),
        });
        let token = token_of(key);
        if let Err(err) = poll
            .registry()
            .register(&mut SourceFd(&fd), token, events.to_interest())
        {
            let entry = handlers.map.remove(key);
            // The handler is user code: its drop may call back into the
            // loop (even close it), so no borrow is held over it.
            drop(handlers);
            drop(polling);
            drop(entry);
            return Err(Error::with_source(
                ErrorKind::Io,
                format!("cannot watch fd {fd}: {err}"),
                err,
            ));
        }
        handlers.by_fd.insert(fd, key);
        Ok(())
    }

    /// Changes the events `fd`'s handler is called for.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidState`] if `fd` has no handler; [`ErrorKind::Io`]
    /// if epoll refuses the change.
    pub fn update_handler(&self, fd: impl ToRawFd, events: Events) -> Result<(), Error> {
        let fd = fd.to_raw_fd();
        let poll = self.inner.poll.borrow();
        let Some(poll) = poll.as_ref() else {
            return Err(closed());
        };
        let mut handlers = self.inner.handlers.borrow_mut();
        let key = *handlers.by_fd.get(&fd).ok_or_else(|| {
            Error::new(ErrorKind::InvalidState, format!("fd {fd} has no handler"))
        })?;
        let entry = &mut handlers.map[key];
        entry.interest = events;
        entry.mask = delivered(events);
        poll.registry()
            .reregister(&mut SourceFd(&fd), token_of(key), events.to_interest())?;
        Ok(())
    }

    /// Stops watching `fd`. Returns whether it had a handler. An event for it
    /// already queued in this iteration is dropped.
    pub fn remove_handler(&self, fd: impl ToRawFd) -> bool {
        let fd = fd.to_raw_fd();
        let entry = {
            let mut handlers = self.inner.handlers.borrow_mut();
            let Some(key) = handlers.by_fd.remove(&fd) else {
                return false;
            };
            handlers.map.remove(key)
        };
        if let Some(poll) = self.inner.poll.borrow().as_ref() {
            // The fd may already be closed (epoll then forgot it itself).
            let _ = poll.registry().deregister(&mut SourceFd(&fd));
        }
        drop(entry);
        true
    }

    /// The number of fds with a handler.
    pub fn handler_count(&self) -> usize {
        self.inner.handlers.borrow().map.len()
    }

    pub(super) fn dispatch_events(&self) {
        let inner = &*self.inner;
        // The events stay borrowed while handlers run: only `poll` touches
        // them, and a handler cannot poll (the loop refuses a nested start).
        let polled = inner.events.borrow();
        for event in polled.iter() {
            let token = event.token();
            if token == WAKER_TOKEN {
                continue;
            }
            let events = Events::from_mio(event);
            let key = key_of(token);
            let taken = {
                let handlers = inner.handlers.borrow();
                match handlers.map.get(key) {
                    // Removed earlier in this batch, or replaced: not ours.
                    None => None,
                    Some(entry) => {
                        let events = events & entry.mask;
                        (!events.is_empty()).then(|| {
                            let site = entry.site();
                            let ctx = entry.ctx.clone();
                            let f = entry.f.clone();
                            (f, entry.fd, events, ctx, entry.name, site, entry.trigger)
                        })
                    }
                }
            };
            let Some((f, fd, events, ctx, name, site, trigger)) = taken else {
                continue;
            };
            // Our own reference: the handler may remove itself (or be
            // replaced) while it runs, and is then dropped here, after the
            // call, outside any borrow of the table. Nothing to put back,
            // so an edge-triggered handler costs one lookup per event.
            let span = || Span::new(SpanKind::Handler { fd, events }, name, site);
            self.observed(span, || {
                callback::invoke(&ctx, Origin::Handler(fd), name, || f.call(fd, events))
            });
            if trigger == Trigger::Level {
                // Unless it was removed while it ran (a key is never reused).
                let rearm = inner.handlers.borrow().map.get(key).map(|e| e.interest);
                if let Some(interest) = rearm {
                    self.rearm(fd, token, interest);
                }
            }
            drop(f);
        }
    }

    /// Level-triggered emulation: re-registering makes epoll re-check the fd
    /// and report it again if it is still ready.
    fn rearm(&self, fd: RawFd, token: Token, interest: Events) {
        if let Some(poll) = self.inner.poll.borrow().as_ref() {
            if let Err(err) =
                poll.registry()
                    .reregister(&mut SourceFd(&fd), token, interest.to_interest())
            {
                log::warn!("fd {fd} was closed without remove_handler: {err}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trip() {
        let mut map: Slab<HandlerKey, ()> = Slab::default();
        let a = map.insert(());
        map.remove(a);
        let b = map.insert(());
        assert_eq!(key_of(token_of(b)), b);
        assert_ne!(token_of(a), token_of(b), "a reused slot gets a new token");
        assert!(map.get(key_of(token_of(a))).is_none());
    }

    #[test]
    fn events_debug() {
        assert_eq!(
            format!("{:?}", Events::READ | Events::ERROR),
            "READ | ERROR"
        );
        assert_eq!(format!("{:?}", Events::NONE), "NONE");
    }
}
