//! The answer's body, one [`Exchange`]'s reading of it: by length, chunked
//! or to the close, each bounded by `max_body_size`; and, with the `gzip`
//! feature, its decoding once it has all come.

use std::rc::Rc;

use super::{BodyStep, ExState, Exchange, Next, CLOSE_READ, MAX_CHUNK_LINE};
use crate::error::{Error, ErrorKind};
use crate::future::Future;
use crate::httpclient::parse::protocol_error;
#[cfg(feature = "gzip")]
use crate::httpclient::parse::Head;
use crate::httputil::{ChunkedDecoder, ChunkedWants};

impl Exchange {
    pub(super) fn read_body(self: &Rc<Self>, attempt: u32, mut step: BodyStep) {
        loop {
            let Some(stream) = self.stream_if_current(attempt) else {
                return;
            };
            let read = match step {
                BodyStep::Length(n) => stream.read_bytes(n),
                // Exactly the next line or chunk, never past the body: what
                // follows stays buffered, and keeps the connection out of
                // the pool. Lines are read to LF, not CRLF, so that the
                // decoder sees a bare LF and refuses it.
                BodyStep::Chunked => match self.chunked_wants() {
                    ChunkedWants::Line => stream.read_until_max_bytes(
                        b"\n",
                        MAX_CHUNK_LINE.max(self.pool.config.max_header_size),
                    ),
                    // At most max_body_size + 2: the decoder checked the size.
                    ChunkedWants::Bytes(n) => stream.read_bytes(n as usize),
                    // Never here (the read that completed the body
                    // finished the exchange), but never hang either.
                    ChunkedWants::Done => return self.finish(Ok(())),
                },
                BodyStep::UntilClose => stream.read_bytes_partial(CLOSE_READ),
            };
            if !read.done() {
                let me = self.clone();
                read.add_done_callback(move |read: &Future<Vec<u8>>| {
                    if !me.current(attempt) {
                        return;
                    }
                    let mut step = step;
                    if let Next::More = me.on_body(&mut step, read.take_result()) {
                        me.read_body(attempt, step);
                    }
                });
                return;
            }
            if let Next::Stop = self.on_body(&mut step, read.take_result()) {
                return;
            }
        }
    }

    /// How much of the body had come when the connection closed, for the
    /// error: a `Content-Length` body is read whole, so its part is still
    /// in the stream's buffer.
    fn body_received(&self, step: &BodyStep) -> String {
        let st = self.st.borrow();
        match *step {
            BodyStep::Length(n) => {
                let got = st.stream.as_ref().map_or(0, |s| s.buffered());
                format!("{got} of {n} bytes received")
            }
            _ => format!("{} bytes received", st.body.len()),
        }
    }

    fn on_body(self: &Rc<Self>, step: &mut BodyStep, data: Result<Vec<u8>, Error>) -> Next {
        let max = self.pool.config.max_body_size;
        let data = match data {
            Ok(data) => data,
            Err(err) => {
                let eof = err.kind() == ErrorKind::StreamClosed
                    && self
                        .st
                        .borrow()
                        .stream
                        .as_ref()
                        .is_some_and(|s| s.error().is_none());
                let err = match *step {
                    BodyStep::UntilClose if eof => {
                        self.finish(Ok(()));
                        return Next::Stop;
                    }
                    BodyStep::Chunked if err.kind() == ErrorKind::UnsatisfiableRead => {
                        protocol_error("chunk-size or trailer line too long")
                    }
                    _ if err.kind() == ErrorKind::StreamClosed => {
                        let got = self.body_received(step);
                        Error::with_source(
                            ErrorKind::StreamClosed,
                            format!(
                                "connection closed in the middle of the body from {} ({got})",
                                self.url
                            ),
                            err,
                        )
                    }
                    _ => err,
                };
                self.finish(Err(err));
                return Next::Stop;
            }
        };
        match *step {
            BodyStep::Length(_) => {
                self.st.borrow_mut().body = data;
                self.finish(Ok(()));
                Next::Stop
            }
            BodyStep::Chunked => {
                let (decoded, done) = {
                    let mut st = self.st.borrow_mut();
                    let ExState { chunked, body, .. } = &mut *st;
                    let decoder = chunked.as_mut().expect("a chunked body has a decoder");
                    (decoder.decode(&data, body), decoder.is_done())
                };
                match decoded {
                    Err(err) if err.kind() == ErrorKind::BufferFull => {
                        self.finish(Err(protocol_error(format!(
                            "chunked response body exceeds max_body_size ({max} bytes)"
                        ))));
                        Next::Stop
                    }
                    Err(err) => {
                        self.finish(Err(err));
                        Next::Stop
                    }
                    // Read as the decoder asked, so it takes every byte.
                    Ok(used) if used != data.len() => {
                        self.finish(Err(protocol_error("chunked body framing out of step")));
                        Next::Stop
                    }
                    Ok(_) if done => {
                        self.finish(Ok(()));
                        Next::Stop
                    }
                    Ok(_) => Next::More,
                }
            }
            BodyStep::UntilClose => {
                let mut st = self.st.borrow_mut();
                if st.body.len() + data.len() > max {
                    let n = (st.body.len() + data.len()) as u64;
                    drop(st);
                    self.finish(Err(too_large(n, max)));
                    return Next::Stop;
                }
                st.body.extend_from_slice(&data);
                Next::More
            }
        }
    }

    fn chunked_wants(&self) -> ChunkedWants {
        self.st
            .borrow()
            .chunked
            .as_ref()
            .map_or(ChunkedWants::Done, ChunkedDecoder::wants)
    }
}

#[cfg(feature = "gzip")]
impl Exchange {
    /// The body as the caller wants it: a gzipped one decoded (with
    /// `decompress_response`), its `Content-Encoding` renamed
    /// `X-Consumed-Content-Encoding`, as Tornado's client does. Decoded
    /// after the whole body came, within `max_body_size` both ways.
    pub(super) fn decoded(&self, head: &mut Head, body: Vec<u8>) -> Result<Vec<u8>, Error> {
        use crate::httputil::gzip::{gunzip, GunzipError};

        if !self.request.decompress_response {
            return Ok(body);
        }
        let Some(coding) = head.headers.get("Content-Encoding") else {
            return Ok(body);
        };
        if !coding.trim().eq_ignore_ascii_case("gzip") {
            return Ok(body);
        }
        let coding = coding.to_owned();
        head.headers.add("X-Consumed-Content-Encoding", coding);
        head.headers.remove("Content-Encoding");
        let max = self.pool.config.max_body_size;
        match gunzip(&body, max) {
            Ok(decoded) => Ok(decoded),
            Err(GunzipError::TooLarge) => Err(protocol_error(format!(
                "gzipped response body from {} exceeds max_body_size ({max} bytes) decoded",
                self.url
            ))),
            Err(GunzipError::Corrupt) => Err(protocol_error(format!(
                "response body from {} is not valid gzip",
                self.url
            ))),
        }
    }
}

pub(super) fn too_large(n: u64, max: usize) -> Error {
    protocol_error(format!(
        "response body of {n} bytes or more exceeds max_body_size ({max} bytes)"
    ))
}
