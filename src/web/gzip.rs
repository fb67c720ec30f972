//! Compressed responses: Tornado's `GZipContentEncoding` output transform,
//! on when the application's [`Settings::compress_response`] is (feature
//! `gzip`).
//!
//! A response is gzipped when the request's `Accept-Encoding` accepts gzip
//! (q-values honoured: `gzip;q=0` refuses it, `*` accepts it), its status
//! may carry a body (not 1xx, 204 or 304), its `Content-Type` is
//! compressible (`text/*`, JSON, JavaScript, XML, SVG: Tornado's list; the
//! default `text/html` too), it has no `Content-Encoding` of its own, and,
//! when it is finished in one go, its body is at least [`MIN_LENGTH`]
//! bytes (shorter ones would hardly shrink). Every response gets
//! `Vary: Accept-Encoding` (added to a `Vary` it has), so caches keep the
//! two forms apart. A response sent in pieces with
//! [`Exchange::flush`] is compressed piece by piece, each flushed so the
//! client can decode everything sent so far; it goes chunked (any
//! `Content-Length` the handler set no longer holds). A whole one gets the
//! compressed length.
//!
//! ```
//! use squall::web::{Application, Exchange, RequestHandler, Settings};
//!
//! struct Page;
//! impl RequestHandler for Page {
//!     fn get(&mut self, x: &Exchange) -> Result<(), squall::Error> {
//!         x.write("<p>hello</p>".repeat(200)); // 2,400 bytes: gzipped
//!         Ok(())
//!     }
//! }
//! let app = Application::with_settings(Settings {
//!     compress_response: true,
//!     ..Default::default()
//! })
//! .route("/", || Page);
//! # let _ = app;
//! ```
//!
//! [`Settings::compress_response`]: super::Settings::compress_response

use super::Exchange;

/// Tornado's `GZipContentEncoding.MIN_LENGTH`: a response finished in one
/// go is compressed only from this many bytes on. A streamed one always is.
pub const MIN_LENGTH: usize = 1024;

/// Tornado's `GZipContentEncoding.CONTENT_TYPES`: the compressible types
/// beyond `text/*`.
pub const CONTENT_TYPES: [&str; 7] = [
    "application/javascript",
    "application/x-javascript",
    "application/xml",
    "application/atom+xml",
    "application/json",
    "application/xhtml+xml",
    "image/svg+xml",
];

/// Whether a media type (`Content-Type` without its parameters) is worth
/// compressing.
#[cfg(feature = "gzip")]
fn compressible(content_type: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or("").trim();
    media
        .get(..5)
        .is_some_and(|t| t.eq_ignore_ascii_case("text/"))
        || CONTENT_TYPES.iter().any(|t| t.eq_ignore_ascii_case(media))
}

impl Exchange {
    /// The output transform, for a response with `compress_response` on:
    /// `body` is what goes out next (replaced by its compressed form if the
    /// response is compressed); `first`, the head goes with it (then the
    /// headers are adjusted and the choice made); `finishing`, it is the
    /// last of the body.
    #[cfg(feature = "gzip")]
    #[inline(never)]
    pub(super) fn transform_output(&self, body: &mut Vec<u8>, first: bool, finishing: bool) {
        use crate::httputil::gzip::GzipStream;

        let inner = &self.inner;
        if first && !self.choose_gzip(body.len(), finishing) {
            return;
        }
        let mut gzip = inner.gzip.borrow_mut();
        let stream = match gzip.as_mut() {
            Some(stream) => stream,
            None if first => gzip.insert(GzipStream::new()),
            None => return, // not compressed
        };
        let mut out = Vec::with_capacity(body.len() / 3 + 64);
        stream.write(body, &mut out, finishing);
        if finishing {
            *gzip = None;
        }
        drop(gzip);
        *body = out;
        if first && finishing {
            let mut headers = inner.headers.borrow_mut();
            if headers.contains("Content-Length") {
                headers.set("Content-Length", body.len().to_string());
            }
        }
    }

    /// Without feature `gzip`: responses go as they are.
    #[cfg(not(feature = "gzip"))]
    #[inline]
    pub(super) fn transform_output(&self, _body: &mut Vec<u8>, _first: bool, _finishing: bool) {}

    /// Tornado's `transform_first_chunk`: adds `Vary`, and decides (and
    /// marks the headers) whether this response is compressed.
    #[cfg(feature = "gzip")]
    fn choose_gzip(&self, len: usize, finishing: bool) -> bool {
        use crate::httputil::{accepts_gzip, has_token};

        let inner = &self.inner;
        let status = self.get_status();
        if status < 200 {
            return false; // an interim or switching head: none of this applies
        }
        let mut headers = inner.headers.borrow_mut();
        let vary = headers.get_list("Vary");
        if vary.is_empty() {
            headers.set("Vary", "Accept-Encoding");
        } else if !vary
            .iter()
            .any(|v| has_token(v, "Accept-Encoding") || has_token(v, "*"))
        {
            let joined = format!("{}, Accept-Encoding", vary.join(", "));
            headers.set("Vary", joined);
        }
        let accepted = self
            .request()
            .headers()
            .get("Accept-Encoding")
            .is_some_and(accepts_gzip);
        let content_type = headers
            .get("Content-Type")
            .or(self.connection().core.opts.default_content_type)
            .unwrap_or("");
        let gzip = accepted
            && status != 204
            && status != 304
            && compressible(content_type)
            && !headers.contains("Content-Encoding")
            && (!finishing || len >= MIN_LENGTH);
        if gzip {
            headers.set("Content-Encoding", "gzip");
            if !finishing {
                // Its pieces' compressed sizes are not known yet: chunked.
                headers.remove("Content-Length");
            }
        }
        gzip
    }
}

#[cfg(all(test, feature = "gzip"))]
mod tests {
    #[test]
    fn compressible_types() {
        for (t, yes) in [
            ("text/html; charset=UTF-8", true),
            ("TEXT/PLAIN", true),
            ("text/css", true),
            ("application/json; charset=UTF-8", true),
            ("application/javascript", true),
            ("image/svg+xml", true),
            ("application/xhtml+xml", true),
            ("image/png", false),
            ("application/gzip", false),
            ("application/octet-stream", false),
            ("application/json-seq", false),
            ("", false),
            ("text", false),
        ] {
            assert_eq!(super::compressible(t), yes, "{t:?}");
        }
    }
}
