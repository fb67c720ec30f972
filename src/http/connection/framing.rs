//! How a response goes on the wire: the head a handler's headers become
//! (the server's own `Server`, `Date`, `Content-Type`, and the framing
//! headers, every name and value checked), and each body piece framed by
//! `Content-Length`, chunks, the connection's end, or dropped for a
//! response that has no body. Apart from [`HTTPConnection`]'s methods
//! because this is HTTP/1.1's framing rules in one place, the part a
//! review of "can a handler frame a response wrong?" reads; the connection
//! file keeps the handle, the request cycle and the buffers.
//!
//! ```
//! use squall::http::{HTTPConnection, HTTPServer, HTTPServerRequest};
//! use squall::httputil::HTTPHeaders;
//!
//! // A length the handler declares is held to: writing more is an error.
//! let server = HTTPServer::new(|_req: &HTTPServerRequest, conn: &HTTPConnection| {
//!     let mut headers = HTTPHeaders::new();
//!     headers.add("Content-Length", "3");
//!     conn.write_headers(200, &headers)?;
//!     assert!(conn.write(b"four").is_err());
//!     Ok(())
//! });
//! # let _ = server;
//! ```

use super::Core;
use crate::error::{Error, ErrorKind};
use crate::http::heads::{write_hex, write_status_line, write_usize};
use crate::http::request::Version;
use crate::httputil::{self, HTTPHeaders};

#[cfg(doc)]
use super::HTTPConnection;

/// Where the response to the current request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Response {
    /// No request is being answered.
    Idle,
    /// A request is being answered and nothing is written yet (or only a
    /// 1xx interim head).
    Pending,
    /// The head is written; the body goes so.
    Body(Framing),
    /// Finished.
    Done,
}

/// How a response body is framed on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Framing {
    /// `Content-Length`: this many bytes still to come.
    Length(u64),
    Chunked,
    /// HTTP/1.0 without a length: the body ends when the connection does.
    UntilClose,
    /// No body may follow (`HEAD`, 1xx, 204, 304): what is written is dropped.
    None,
}

impl Core {
    /// The usual response: the cached head with the length, the blank
    /// line, the body.
    #[inline]
    pub(super) fn write_usual(&self, body: &[u8]) {
        let mut out = self.out.borrow_mut();
        // A `HEAD` answer says how long the body would be, and sends none.
        let sent = if self.head_request.get() {
            &[][..]
        } else {
            body
        };
        self.opts
            .heads
            .write_ok(self.stream.io_loop(), &mut out, body.len(), sent);
        self.response.set(Response::Done);
    }

    /// The head; `whole` is the length of a body given whole.
    pub(super) fn write_head(
        &self,
        status: u16,
        headers: &HTTPHeaders,
        whole: Option<usize>,
    ) -> Result<(), Error> {
        if self.response.get() != Response::Pending || self.detached.get() {
            return Err(Error::new(
                ErrorKind::InvalidState,
                "write_headers(): the head was written already, or no request is being answered",
            ));
        }
        let mut declared: Option<u64> = None;
        let mut chunked_asked = false;
        let mut own = OwnHeaders::default();
        for (name, value) in headers.iter() {
            httputil::check_header(name, value)?;
            match name.len() {
                4 if name.eq_ignore_ascii_case("date") => own.date = true,
                6 if name.eq_ignore_ascii_case("server") => own.server = true,
                10 if name.eq_ignore_ascii_case("connection") => {
                    own.connection = true;
                    if httputil::has_token(value, "close") {
                        self.keep_alive.set(false);
                    }
                }
                12 if name.eq_ignore_ascii_case("content-type") => own.content_type = true,
                14 if name.eq_ignore_ascii_case("content-length") => {
                    let n = httputil::parse_content_length(value).map_err(|_| {
                        Error::new(
                            ErrorKind::InvalidArgument,
                            format!("bad Content-Length {value:?}"),
                        )
                    })?;
                    if declared.is_some_and(|d| d != n) {
                        return Err(Error::new(
                            ErrorKind::InvalidArgument,
                            "two different Content-Length headers",
                        ));
                    }
                    declared = Some(n);
                }
                17 if name.eq_ignore_ascii_case("transfer-encoding") => {
                    if !crate::httputil::trim_ows(value).eq_ignore_ascii_case("chunked") {
                        return Err(Error::new(
                            ErrorKind::InvalidArgument,
                            format!("Transfer-Encoding {value:?}: only chunked, and the connection frames it"),
                        ));
                    }
                    chunked_asked = true;
                }
                _ => {}
            }
        }
        let informational = status < 200;
        if (informational || status == 204) && declared.is_some() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("Content-Length in a {status} response"),
            ));
        }
        // 1xx, 204 and 304 have no body by their status; a HEAD answer has
        // none either, but says how long the body would be.
        let no_body_status = informational || status == 204 || status == 304;
        let bodiless = no_body_status || self.head_request.get();
        let framing = if bodiless {
            Framing::None
        } else if let Some(n) = declared {
            if chunked_asked {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    "Content-Length with Transfer-Encoding",
                ));
            }
            Framing::Length(n)
        } else if let Some(n) = whole {
            Framing::Length(n as u64)
        } else if self.version.get() == Version::Http11 {
            Framing::Chunked
        } else {
            Framing::UntilClose
        };
        if framing == Framing::UntilClose {
            self.keep_alive.set(false);
        }
        let mut out = self.out.borrow_mut();
        write_status_line(&mut out, status);
        self.opts
            .heads
            .write_common(self.stream.io_loop(), &mut out, own.server, own.date);
        if !own.content_type && !bodiless {
            if let Some(ct) = self.opts.default_content_type {
                out.extend_from_slice(b"Content-Type: ");
                out.extend_from_slice(ct.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
        for (name, value) in headers.iter() {
            if name.len() == 17 && name.eq_ignore_ascii_case("transfer-encoding") {
                continue; // the framing is the connection's, written below
            }
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        let length = match framing {
            Framing::Length(n) => Some(n),
            // HEAD: the length the body would have, as Tornado sends it.
            Framing::None if !no_body_status => whole.map(|n| n as u64),
            _ => None,
        };
        match length {
            Some(n) if declared.is_none() => {
                out.extend_from_slice(b"Content-Length: ");
                write_usize(&mut out, n as usize);
                out.extend_from_slice(b"\r\n");
            }
            _ if framing == Framing::Chunked => {
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
            }
            _ => {}
        }
        if !own.connection {
            match (self.version.get(), self.keep_alive.get()) {
                (Version::Http11, false) => out.extend_from_slice(b"Connection: close\r\n"),
                (Version::Http10, true) => out.extend_from_slice(b"Connection: keep-alive\r\n"),
                _ => {}
            }
        }
        out.extend_from_slice(b"\r\n");
        drop(out);
        if informational && status != 101 {
            // An interim head (100, 103): the real one follows.
            return Ok(());
        }
        if status == 101 {
            // The connection is to be handed over; if it is not, it closes.
            self.keep_alive.set(false);
        }
        self.response.set(Response::Body(framing));
        Ok(())
    }

    pub(super) fn write_body(&self, chunk: &[u8]) -> Result<(), Error> {
        let Response::Body(framing) = self.response.get() else {
            return Err(Error::new(
                ErrorKind::InvalidState,
                "write(): the head is not written, or the response is finished",
            ));
        };
        if chunk.is_empty() {
            return Ok(());
        }
        let mut out = self.out.borrow_mut();
        match framing {
            Framing::None => {
                log::debug!(
                    "dropping {} body bytes of a response that has none",
                    chunk.len()
                );
            }
            Framing::Length(left) => {
                let n = chunk.len() as u64;
                if n > left {
                    out.extend_from_slice(&chunk[..left as usize]);
                    drop(out);
                    log::error!(
                        "response to {} longer than its Content-Length; closing the connection",
                        self.peer
                    );
                    self.response.set(Response::Body(Framing::Length(0)));
                    self.closing.set(true);
                    return Err(Error::new(
                        ErrorKind::HttpProtocol,
                        "response body longer than its Content-Length",
                    ));
                }
                out.extend_from_slice(chunk);
                self.response.set(Response::Body(Framing::Length(left - n)));
            }
            Framing::Chunked => {
                write_hex(&mut out, chunk.len());
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(chunk);
                out.extend_from_slice(b"\r\n");
            }
            Framing::UntilClose => out.extend_from_slice(chunk),
        }
        Ok(())
    }

    /// The end of the body.
    pub(super) fn end(&self) -> Result<(), Error> {
        let Response::Body(framing) = self.response.get() else {
            return Err(Error::new(
                ErrorKind::InvalidState,
                "finish(): the head is not written, or the response is finished",
            ));
        };
        self.response.set(Response::Done);
        match framing {
            Framing::Chunked => self.out.borrow_mut().extend_from_slice(b"0\r\n\r\n"),
            Framing::UntilClose => self.closing.set(true),
            Framing::Length(left) if left > 0 => {
                log::error!(
                    "response to {} ended {left} bytes short of its Content-Length; closing the connection",
                    self.peer
                );
                self.closing.set(true);
                return Err(Error::new(
                    ErrorKind::HttpProtocol,
                    "response body shorter than its Content-Length",
                ));
            }
            Framing::Length(_) | Framing::None => {}
        }
        Ok(())
    }
}

/// Which of the headers the server writes by itself a response has set.
#[derive(Default)]
struct OwnHeaders {
    server: bool,
    date: bool,
    content_type: bool,
    connection: bool,
}
