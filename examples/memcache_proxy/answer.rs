//! Answers on their way to a client of the proxy: the slots of its answer
//! queue, the windows a `get` is answered in, and the pieces they are
//! written in (values moved, never copied).
//!
//! A `get` is fetched and written window by window (see `session.rs`): each
//! [`Window`] holds one entry per key it asked for and the error of an
//! upstream that failed its part; [`GetStream`] remembers, across the
//! windows of one `get`, whether a value went out already (after that an
//! error can no longer be the answer).

use std::cell::Cell;
use std::rc::Rc;

use super::protocol::Keys;
use super::reply::Item;

/// Answer pieces at least this big are written as they are, not copied.
const BIG_PIECE: usize = 16 * 1024;

/// A `get` being answered window by window.
pub struct GetStream {
    /// Its keys, in the order asked.
    pub keys: Keys,
    /// `gets`: with each value's CAS unique.
    pub cas: bool,
    /// The first key not yet asked for.
    pub next: Cell<usize>,
    /// A value of it has been written: an error can no longer be its answer.
    pub sent: Cell<bool>,
    /// It was answered with an error line: what is left of it writes nothing.
    pub aborted: Cell<bool>,
}

/// One window's values (one entry per key), and the error of an upstream
/// that failed to answer its part.
pub struct Window {
    /// The `get` it is part of.
    pub get: Rc<GetStream>,
    /// One entry per key of the window, in order (`None`: a miss, or a
    /// key of the failed upstream).
    pub values: Vec<Option<Item>>,
    /// The answer line for the first upstream that failed its keys.
    pub error: Option<String>,
    /// It holds the last keys: `END` follows it.
    pub last: bool,
}

/// A command's answer.
pub enum Answer {
    /// Ready bytes.
    Bytes(Vec<u8>),
    /// A window of a `get`.
    Window(Window),
}

impl Answer {
    /// Its size on the wire (near enough, for the stats).
    pub fn size(&self) -> usize {
        match self {
            Answer::Bytes(bytes) => bytes.len(),
            Answer::Window(w) => w
                .values
                .iter()
                .flatten()
                .map(|item| item.data.len() + item.key.len() + 48)
                .sum(),
        }
    }
}

/// A place in the answer queue.
pub struct Slot {
    /// `None` while the command is in flight.
    pub answer: Option<Answer>,
    /// Keys of a `get` window it reserves.
    pub keys: usize,
    /// Answer bytes counted in `Session::held`.
    pub bytes: usize,
}

/// Answer bytes on their way to one write each: small pieces gathered into
/// one buffer, big ones (values) kept as they are, so nothing large is copied.
#[derive(Default)]
pub struct Pieces {
    /// What to write, in order.
    pub pieces: Vec<Vec<u8>>,
}

impl Pieces {
    /// Adds `piece` at the end.
    pub fn push(&mut self, piece: Vec<u8>) {
        match self.pieces.last_mut() {
            _ if piece.is_empty() => {}
            Some(tail) if piece.len() < BIG_PIECE && tail.len() < BIG_PIECE => {
                tail.extend_from_slice(&piece)
            }
            _ => self.pieces.push(piece),
        }
    }

    /// Adds a copy of the small `bytes` at the end.
    pub fn push_slice(&mut self, bytes: &[u8]) {
        match self.pieces.last_mut() {
            Some(tail) if tail.len() < BIG_PIECE => tail.extend_from_slice(bytes),
            _ if bytes.is_empty() => {}
            _ => self.pieces.push(bytes.to_vec()),
        }
    }

    /// Adds a `VALUE` block: its line, the value itself (moved, not copied
    /// unless small), and its line end.
    pub fn push_item(&mut self, item: Item) {
        self.push_slice(b"VALUE ");
        self.push_slice(&item.key);
        let line_end = match item.cas {
            Some(cas) => format!(" {} {} {cas}\r\n", item.flags, item.data.len()),
            None => format!(" {} {}\r\n", item.flags, item.data.len()),
        };
        self.push_slice(line_end.as_bytes());
        self.push(item.data);
        self.push_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_moved_and_small_pieces_gathered() {
        let data = vec![7u8; 1024 * 1024];
        let at = data.as_ptr();
        let mut out = Pieces::default();
        out.push(b"VERSION x\r\n".to_vec());
        out.push_item(Item {
            key: b"k".to_vec(),
            flags: 3,
            data,
            cas: Some(9),
        });
        out.push_slice(b"END\r\n");
        out.push_item(Item {
            key: b"small".to_vec(),
            flags: 0,
            data: b"v".to_vec(),
            cas: None,
        });
        let pieces = &out.pieces;
        assert_eq!(
            pieces.len(),
            3,
            "line and VALUE line, the value, CRLF and END"
        );
        assert_eq!(pieces[0], b"VERSION x\r\nVALUE k 3 1048576 9\r\n");
        assert_eq!(
            pieces[1].as_ptr(),
            at,
            "the value is the one fetched, not a copy"
        );
        assert_eq!(pieces[2], b"\r\nEND\r\nVALUE small 0 1\r\nv\r\n");
    }
}
