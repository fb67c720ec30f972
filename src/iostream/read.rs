//! The pending read and how it is decided against the buffer.

use super::buffer::ReadBuffer;
use crate::error::{Error, ErrorKind};
use crate::future::Future;

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
    pub(super) fn set_error(&self, err: Error) {
        let _ = match self {
            ReadFuture::Bytes(f) => f.set_error(err),
            ReadFuture::Into(f) => f.set_error(err),
        };
    }

    /// Settles with the bytes read and how many of them are new (all of
    /// them but for `read_into`, whose buffer comes back whole).
    pub(super) fn settle(&self, outcome: Result<(Vec<u8>, usize), Error>) {
        let _ = match self {
            ReadFuture::Bytes(f) => f.complete(outcome.map(|(data, _)| data)),
            ReadFuture::Into(f) => f.complete(outcome),
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
