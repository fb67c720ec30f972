//! Refusing a request: the server's own short answer, or the delegate's
//! error page when it gives one (the `on_protocol_error` hooks of
//! [`HTTPServerConnectionDelegate`] and [`HTTPMessageDelegate`]).
//!
//! All of it is off the path of a good request: a refusal ends its
//! connection, so nothing here is worth a cycle of a request that passes.

use super::{Conn, MAX_HEADERS};
use crate::callback::catch_value;
use crate::http::connection::{Core, Phase};
use crate::http::delegate::{HTTPMessageDelegate, HTTPServerConnectionDelegate};
use crate::http::request::{forwarded_https, forwarded_ip, HTTPServerRequest, Method, Version};
use crate::httputil;

impl<D: HTTPServerConnectionDelegate> Conn<D> {
    /// A bad request (or a body over the limit, or too slow) after its
    /// head was handed on: answered with `status` if nothing was answered
    /// yet (by the message delegate's error page if it gives one, else the
    /// server's), and the connection closes; the message delegate, unless
    /// it answered, hears the connection close.
    #[cold]
    #[inline(never)]
    pub(super) fn refuse(&self, status: u16) {
        let core = self.core();
        // A delegate whose response is still open will hear no `finish`.
        let tell = core.answering();
        if core.nothing_written() {
            // Out of its cell while it runs: it may write, and the
            // connection may call back into this reader.
            let message = self.message.take();
            if let Some(mut message) = message {
                core.refusing();
                // A hook that fails leaves the answer to the server.
                if let Err(err) = catch_value(|| message.on_protocol_error(status)) {
                    log::error!("on_protocol_error({status}) failed: {err}");
                }
                if self.refusal_answered(status) {
                    // Its response is finished: nothing to tell it.
                    drop(message);
                    return;
                }
                if tell && !core.detached.get() {
                    message.on_connection_close();
                }
                return;
            }
        }
        if core.nothing_written() || !core.answering() {
            core.error_response(status);
        } else {
            self.handle.abort();
        }
        if tell {
            let message = self.message.take();
            if let Some(mut message) = message {
                message.on_connection_close();
            }
        }
    }

    /// A request head refused with `status` (`buf` holds it, from its
    /// start): the server delegate may answer with its error page if the
    /// request line could be read; else, or if it gives none, the
    /// server's own answer goes.
    #[cold]
    #[inline(never)]
    pub(super) fn refuse_head(&self, status: u16, buf: &[u8]) {
        let core = self.core();
        let Some(request) = refused_request(core, buf, status) else {
            core.error_response(status);
            return;
        };
        core.begin(&request);
        core.refusing();
        let delegate = &self.delegate;
        if let Err(err) = catch_value(|| delegate.on_protocol_error(&self.handle, status, request))
        {
            log::error!("on_protocol_error({status}) failed: {err}");
        }
        self.refusal_answered(status);
    }

    /// After a delegate was asked to answer a refusal: `true` if it did
    /// (the connection closes once its answer is out). Otherwise its
    /// answer is completed here: the server's own if nothing was written,
    /// and a cut-off connection if a response was begun and left open.
    fn refusal_answered(&self, status: u16) -> bool {
        let core = self.core();
        if core.detached.get() {
            return true;
        }
        if core.nothing_written() {
            core.error_response(status);
            return false;
        }
        if core.answering() {
            log::error!(
                "the error page for {status} to {} was left unfinished; closing",
                core.peer
            );
            self.handle.abort();
            return false;
        }
        log::info!(
            "{status} bad request from {} ({}), answered by its delegate",
            core.peer,
            httputil::responses(status)
        );
        core.closing.set(true);
        core.phase.set(Phase::Done);
        core.send_now();
        true
    }
}

/// What can be read of a refused head, for a delegate's error page: its
/// request line, and its fields if the head is complete (not for a 431:
/// they are what was too large). `None` without a whole request line.
fn refused_request(core: &Core, buf: &[u8], status: u16) -> Option<Box<HTTPServerRequest>> {
    let skip = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    let buf = &buf[skip..];
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut fields);
    // httparse keeps the request line it read even when the fields fail.
    let parsed = req.parse(buf);
    let (Some(method), Some(path), Some(version)) = (req.method, req.path, req.version) else {
        return None;
    };
    let at = |part: &[u8]| part.as_ptr() as usize - buf.as_ptr() as usize;
    let path_at = at(path.as_bytes());
    let keep_fields = status != 431;
    let (head_len, headers) = match parsed {
        Ok(httparse::Status::Complete(n)) if keep_fields => (n, &*req.headers),
        // The request line only: up to its line feed (it was read whole).
        _ => {
            let end = memchr::memchr(b'\n', buf).map_or(buf.len(), |i| i + 1);
            (end, &[][..])
        }
    };
    let head = &buf[..head_len];
    let mut request = core
        .spare
        .take()
        .unwrap_or_else(|| Box::new(HTTPServerRequest::empty(core.peer, core.stream.is_tls())));
    // As the parser keeps it: bytes, text when asked (see `parse_head`).
    request.headers.reset_to_block(head);
    for h in headers {
        let (ns, vs) = (at(h.name.as_bytes()), at(h.value));
        request
            .headers
            .push_within(ns..ns + h.name.len(), vs..vs + h.value.len());
    }
    request.uri = path_at..path_at + path.len();
    // (httparse's target is UTF-8: its offsets are the text's.)
    request.query_at = path.find('?').unwrap_or(path.len());
    request.method = Method::parse(method);
    request.version = if version == 0 {
        Version::Http10
    } else {
        Version::Http11
    };
    request.keep_alive = false;
    if core.opts.xheaders {
        request.real_ip = forwarded_ip(&request.headers);
        request.forwarded_https = forwarded_https(&request.headers);
    }
    Some(request)
}
