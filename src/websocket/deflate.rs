//! permessage-deflate (RFC 7692): the offer and the answer, and each
//! message's compression.
//!
//! A compressed message is a raw DEFLATE stream flushed with a sync flush,
//! minus the flush's final `00 00 ff ff`; the first frame says so with RSV1.
//! With context takeover (the default) both sides keep their LZ77 window
//! from message to message; `*_no_context_takeover` resets it per message.
//!
//! Window sizes: our compressor (flate2 on miniz_oxide) always uses a
//! 32 KiB window, so an offer that asks our side to compress with a smaller
//! one (`server_max_window_bits` < 15 to a server, `client_max_window_bits`
//! < 15 in a server's answer to a client) is declined; decompressing works
//! for every window size. Decompression is bounded: a message that inflates
//! past `max_message_size` fails with 1009 as its output grows, so a deflate
//! bomb never allocates past the limit.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The parameters both sides agreed on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Agreed {
    /// The server resets its compressor per message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor per message.
    pub client_no_context_takeover: bool,
}

/// Settings for compression (Tornado's `compression_options`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompressionOptions {
    /// zlib's level, 0-9 (Tornado's default is 6).
    pub compression_level: u32,
}

impl Default for CompressionOptions {
    fn default() -> CompressionOptions {
        CompressionOptions {
            compression_level: 6,
        }
    }
}

/// One extension offer's parameters, or `None` if it is not a
/// permessage-deflate offer we can take.
fn parse_params(offer: &str) -> Option<Vec<(String, Option<String>)>> {
    let mut parts = offer.split(';').map(str::trim);
    if !parts.next()?.eq_ignore_ascii_case("permessage-deflate") {
        return None;
    }
    let mut params = Vec::new();
    for part in parts.filter(|p| !p.is_empty()) {
        let (name, value) = match part.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"').to_string())),
            None => (part, None),
        };
        let name = name.to_ascii_lowercase();
        if params.iter().any(|(n, _)| *n == name) {
            return None; // a parameter twice: the offer is invalid
        }
        params.push((name, value));
    }
    Some(params)
}

fn window_bits(value: &Option<String>) -> Option<u8> {
    let bits: u8 = value.as_deref()?.parse().ok()?;
    (8..=15).contains(&bits).then_some(bits)
}

/// A server's choice among the client's offers (in order): the agreed
/// parameters and the `Sec-WebSocket-Extensions` answer.
pub fn accept_offer(offers: &[String]) -> Option<(Agreed, String)> {
    'offers: for offer in offers {
        let Some(params) = parse_params(offer) else {
            continue;
        };
        let mut agreed = Agreed::default();
        let mut answer = String::from("permessage-deflate");
        for (name, value) in &params {
            match name.as_str() {
                "server_no_context_takeover" if value.is_none() => {
                    agreed.server_no_context_takeover = true;
                    answer.push_str("; server_no_context_takeover");
                }
                "client_no_context_takeover" if value.is_none() => {
                    agreed.client_no_context_takeover = true;
                    answer.push_str("; client_no_context_takeover");
                }
                // Our compressor's window is 15 bits: only 15 will do.
                "server_max_window_bits" => match window_bits(value) {
                    Some(15) => answer.push_str("; server_max_window_bits=15"),
                    _ => continue 'offers,
                },
                // The client may use any window; ours decompresses all.
                "client_max_window_bits" => match value {
                    None => {}
                    Some(_) if window_bits(value).is_some() => {}
                    Some(_) => continue 'offers,
                },
                _ => continue 'offers,
            }
        }
        return Some((agreed, answer));
    }
    None
}

/// A client's offer. Without `client_max_window_bits`: that parameter
/// would let the server ask us to compress with a smaller window, which our
/// compressor cannot (Python's `websockets` asks for 12 bits when offered).
pub fn client_offer() -> &'static str {
    "permessage-deflate"
}

/// A client's reading of the server's answer.
pub fn accept_answer(answer: &str) -> Result<Agreed, &'static str> {
    let params = parse_params(answer).ok_or("an extension we did not offer")?;
    let mut agreed = Agreed::default();
    for (name, value) in &params {
        match name.as_str() {
            "server_no_context_takeover" if value.is_none() => {
                agreed.server_no_context_takeover = true
            }
            "client_no_context_takeover" if value.is_none() => {
                agreed.client_no_context_takeover = true
            }
            "server_max_window_bits" if window_bits(value).is_some() => {}
            // We compress with 15 bits and cannot do less.
            "client_max_window_bits" if window_bits(value) == Some(15) => {}
            _ => return Err("permessage-deflate parameters we cannot honour"),
        }
    }
    Ok(agreed)
}

/// The trailer a sync flush ends with, which the wire leaves out.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Compresses outgoing messages.
pub struct Deflater {
    compress: Compress,
    reset: bool,
}

impl Deflater {
    pub fn new(options: CompressionOptions, no_context_takeover: bool) -> Deflater {
        Deflater {
            compress: Compress::new(Compression::new(options.compression_level.min(9)), false),
            reset: no_context_takeover,
        }
    }

    /// One message's compressed payload.
    pub fn compress(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() / 2 + 64);
        let mut input = data;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(256));
            }
            let before = self.compress.total_in();
            // Status is always Ok for a sync flush into room we made.
            let _ = self
                .compress
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .expect("deflate into a growing buffer");
            input = &input[(self.compress.total_in() - before) as usize..];
            if input.is_empty() && out.ends_with(&TAIL) {
                break;
            }
        }
        out.truncate(out.len() - TAIL.len());
        if self.reset {
            self.compress.reset();
        }
        out
    }
}

/// Why a compressed message could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum InflateError {
    /// It inflates past the limit.
    TooBig,
    /// It is not valid DEFLATE data.
    Invalid,
}

/// Decompresses incoming messages.
pub struct Inflater {
    decompress: Decompress,
    reset: bool,
}

impl Inflater {
    pub fn new(no_context_takeover: bool) -> Inflater {
        Inflater {
            decompress: Decompress::new(false),
            reset: no_context_takeover,
        }
    }

    /// One message's payload, inflated to at most `max` bytes: the output
    /// grows as it is produced, 64 KiB at a time, and stops at the limit.
    pub fn inflate(&mut self, data: &[u8], max: usize) -> Result<Vec<u8>, InflateError> {
        let mut out: Vec<u8> = Vec::new();
        for part in [data, &TAIL[..]] {
            let mut input = part;
            loop {
                if out.len() == out.capacity() {
                    if out.len() > max {
                        return Err(InflateError::TooBig);
                    }
                    out.reserve_exact((64 * 1024).min(max + 1 - out.len()).max(1));
                }
                let before = self.decompress.total_in();
                let produced_before = out.len();
                let status = self
                    .decompress
                    .decompress_vec(input, &mut out, FlushDecompress::Sync)
                    .map_err(|_| InflateError::Invalid)?;
                if out.len() > max {
                    return Err(InflateError::TooBig);
                }
                input = &input[(self.decompress.total_in() - before) as usize..];
                let progressed = out.len() > produced_before;
                if matches!(status, Status::StreamEnd) {
                    break;
                }
                // Done with this part once it is consumed and no more
                // output comes with room to spare.
                if input.is_empty() && !progressed && out.len() < out.capacity() {
                    break;
                }
            }
        }
        if self.reset {
            self.decompress.reset(false);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_and_without_context_takeover() {
        for reset in [false, true] {
            let mut d = Deflater::new(CompressionOptions::default(), reset);
            let mut i = Inflater::new(reset);
            for message in [&b"Hello"[..], b"Hello", b"", &[7u8; 100_000]] {
                let packed = d.compress(message);
                assert!(!packed.ends_with(&TAIL));
                assert_eq!(i.inflate(&packed, 1 << 20).unwrap(), message);
            }
        }
        // RFC 7692 7.2.3.1: "Hello" compressed.
        let mut i = Inflater::new(false);
        assert_eq!(
            i.inflate(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], 100)
                .unwrap(),
            b"Hello"
        );
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        let mut d = Deflater::new(CompressionOptions::default(), false);
        let bomb = d.compress(&vec![0u8; 50 << 20]);
        assert!(bomb.len() < 100_000, "{}", bomb.len());
        let mut i = Inflater::new(false);
        assert_eq!(i.inflate(&bomb, 1 << 20), Err(InflateError::TooBig));
        assert_eq!(
            Inflater::new(false).inflate(&[0xff, 0xff, 0xff], 1 << 20),
            Err(InflateError::Invalid)
        );
    }

    #[test]
    fn negotiates_what_it_can_honour() {
        let offers = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (agreed, answer) =
            accept_offer(&offers(&["permessage-deflate; client_max_window_bits"])).unwrap();
        assert_eq!(
            (agreed, answer.as_str()),
            (Agreed::default(), "permessage-deflate")
        );
        let (agreed, _) = accept_offer(&offers(&[
            "permessage-deflate; server_max_window_bits=10",
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        ]))
        .unwrap();
        assert!(agreed.server_no_context_takeover && agreed.client_no_context_takeover);
        assert!(accept_offer(&offers(&["permessage-deflate; server_max_window_bits=9"])).is_none());
        assert!(accept_offer(&offers(&["permessage-deflate; unknown"])).is_none());
        assert!(accept_offer(&offers(&["x-webkit-deflate-frame"])).is_none());
        assert!(accept_answer("permessage-deflate; server_no_context_takeover").is_ok());
        assert!(accept_answer("permessage-deflate; client_max_window_bits=10").is_err());
    }
}
