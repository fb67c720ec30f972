//! Gzipped request bodies, decoded before the delegate sees them
//! (Tornado's `_GzipMessageDelegate`, on with
//! [`HTTPServer::set_decompress_request`](super::HTTPServer::set_decompress_request);
//! feature `gzip`).
//!
//! A request with `Content-Encoding: gzip` (any case) reaches its delegate
//! with the header renamed `X-Consumed-Content-Encoding`, and its body, as
//! it arrives, decoded. The decoded size counts against the body limit
//! (`max_body_size`, or what the delegate set from `headers_received`):
//! past it the request is answered 413 and the connection closes, so a
//! gzip bomb costs no memory beyond the limit; a body that is not valid
//! gzip (corrupt, truncated, bytes after its end) is answered 400. Other
//! codings are passed on as they came, header and all.
//!
//! ```
//! use squall::http::{HTTPConnection, HTTPServer, HTTPServerRequest};
//! use squall::httputil::HTTPHeaders;
//!
//! let server = HTTPServer::new(|req: &HTTPServerRequest, conn: &HTTPConnection| {
//!     // A gzipped upload arrives here decoded.
//!     let answer = format!("{} bytes", req.body().len());
//!     conn.write_response(200, &HTTPHeaders::new(), answer.as_bytes())
//! });
//! server.set_decompress_request(true);
//! server.set_max_body_size(1 << 20); // decoded bytes, for gzip bodies
//! # let _ = server;
//! ```

use super::request::HTTPServerRequest;
use crate::httputil::gzip::{Gunzip, GunzipError};

/// If `request`'s body is gzipped: renames its `Content-Encoding` to
/// `X-Consumed-Content-Encoding`, as Tornado does (what the delegate sees
/// is decoded), and says so.
pub(crate) fn take_gzip_coding(request: &mut HTTPServerRequest) -> bool {
    let headers = &mut request.headers;
    let Some(coding) = headers.get("Content-Encoding") else {
        return false;
    };
    if !coding.trim().eq_ignore_ascii_case("gzip") {
        return false;
    }
    let coding = coding.to_owned();
    headers.add("X-Consumed-Content-Encoding", coding);
    headers.remove("Content-Encoding");
    true
}

/// The decoder of one request body.
pub(crate) struct RequestGunzip {
    gunzip: Gunzip,
    /// Compressed bytes received but not decoded yet: the delegate paused
    /// the body part way through a read's worth (at most that much).
    rest: Vec<u8>,
}

impl RequestGunzip {
    /// Decodes at most `max` bytes.
    pub(crate) fn new(max: usize) -> RequestGunzip {
        RequestGunzip {
            gunzip: Gunzip::new(max),
            rest: Vec::new(),
        }
    }

    /// Decodes the next piece of the body (after what was kept back),
    /// handing what it makes to `deliver` piece by piece for as long as
    /// it returns `true` (the delegate did not pause); what is not decoded
    /// then is kept for the next feed (`feed(&[])` when the pause ends).
    /// `Err(status)` to refuse the request with.
    pub(crate) fn feed(
        &mut self,
        chunk: &[u8],
        deliver: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<(), u16> {
        let mut kept = std::mem::take(&mut self.rest);
        let input: &[u8] = if kept.is_empty() {
            chunk
        } else {
            kept.extend_from_slice(chunk);
            &kept
        };
        let used = self
            .gunzip
            .feed_until(input, deliver)
            .map_err(|e| self.refusal(e))?;
        if used < input.len() {
            let left = input.len() - used;
            if kept.is_empty() {
                kept.extend_from_slice(&chunk[used..]);
            } else {
                kept.drain(..used);
            }
            debug_assert_eq!(kept.len(), left);
        } else {
            kept.clear();
        }
        // (Its room kept for the next pause.)
        self.rest = kept;
        Ok(())
    }

    /// Whether compressed bytes wait to be decoded (see [`feed`](Self::feed)).
    pub(crate) fn has_rest(&self) -> bool {
        !self.rest.is_empty()
    }

    /// The body is complete: the last of it, or `Err(status)` if the gzip
    /// stream did not end properly.
    pub(crate) fn finish(&mut self, deliver: &mut dyn FnMut(&[u8])) -> Result<(), u16> {
        self.gunzip.finish(deliver).map_err(|e| self.refusal(e))
    }

    fn refusal(&self, err: GunzipError) -> u16 {
        match err {
            GunzipError::TooLarge => {
                log::info!(
                    "gzipped request body too large: over the limit after {} decoded bytes",
                    self.gunzip.total_out()
                );
                413
            }
            GunzipError::Corrupt => {
                log::info!("request body is not valid gzip");
                400
            }
        }
    }
}
