//! File-descriptor handlers: the `Events` mask and the registry that maps mio
//! tokens to handlers.
//!
//! Each handler lives in a slotmap whose key *is* its mio token. A key carries
//! a version, so an event still queued for a handler that was removed — even
//! when the fd number was reused at once — finds no handler and is dropped.

use std::collections::HashMap;
use std::fmt;
use std::ops::{BitAnd, BitOr, BitOrAssign};
use std::os::unix::io::{AsRawFd, BorrowedFd, RawFd};

use mio::{Interest, Token};
use slotmap::{new_key_type, Key, KeyData, SlotMap};

use crate::error::Error;
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
    /// Whether no event is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub(crate) fn from_mio(event: &mio::event::Event) -> Events {
        let mut events = Events::NONE;
        if event.is_readable() || event.is_read_closed() {
            events |= Events::READ;
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

new_key_type! {
    pub(crate) struct HandlerKey;
}

pub(crate) type HandlerFn = Box<dyn FnMut(RawFd, Events) -> Result<(), Error>>;

pub(crate) struct Handler {
    pub(crate) fd: RawFd,
    pub(crate) interest: Events,
    pub(crate) trigger: Trigger,
    /// `None` while the handler is running (it is taken out of the map so no
    /// borrow is held across user code).
    pub(crate) f: Option<HandlerFn>,
    pub(crate) ctx: Context,
    pub(crate) name: &'static str,
}

#[derive(Default)]
pub(crate) struct Handlers {
    pub(crate) map: SlotMap<HandlerKey, Handler>,
    pub(crate) by_fd: HashMap<RawFd, HandlerKey>,
}

pub(crate) fn token_of(key: HandlerKey) -> Token {
    // A slotmap key's ffi form is (version << 32 | index); the index never
    // reaches u32::MAX, so it can never equal the waker's token.
    Token(key.data().as_ffi() as usize)
}

pub(crate) fn key_of(token: Token) -> HandlerKey {
    HandlerKey::from(KeyData::from_ffi(token.0 as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trip() {
        let mut map: SlotMap<HandlerKey, ()> = SlotMap::with_key();
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
