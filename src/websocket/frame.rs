//! RFC 6455 section 5: the frame header, parsed and written, and masking.
//!
//! ```text
//!  0               1               2               3
//!  F R R R opcode  M len7          extended length (0, 2 or 8 bytes)
//!  I S S S (4)     A (7)           then the masking key (0 or 4 bytes)
//!  N V V V         S
//!    1 2 3         K
//! ```
//!
//! Parsing checks everything the header alone can break: reserved bits
//! without an extension that owns them, reserved opcodes, a control frame
//! that is fragmented or longer than 125 bytes, a 64-bit length with its top
//! bit set, a mask where the other side must not send one (and none where it
//! must). The length is checked against a limit before any byte of the
//! payload is awaited, so a header that declares 2^63 bytes costs nothing.

use super::CloseCode;

/// What a frame carries (section 5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opcode {
    /// The next fragment of a message.
    Continuation,
    /// A text message (or its first fragment): UTF-8.
    Text,
    /// A binary message (or its first fragment).
    Binary,
    /// Close, with an optional status code and reason.
    Close,
    /// Ping: the peer answers with a pong carrying the same data.
    Ping,
    /// Pong.
    Pong,
}

impl Opcode {
    fn from_bits(bits: u8) -> Option<Opcode> {
        Some(match bits {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    /// Close, ping and pong: never fragmented, at most 125 bytes.
    pub fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }
}

/// A parsed frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The last fragment of its message.
    pub fin: bool,
    /// RSV1: for permessage-deflate, "this message is compressed".
    pub rsv1: bool,
    pub opcode: Opcode,
    /// The masking key, for frames a client sent.
    pub mask: Option<[u8; 4]>,
    /// The payload's length.
    pub len: u64,
    /// The header's own length (2 to 14 bytes).
    pub header_len: usize,
}

/// Why a frame header is refused: the close code to send, and what to log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameError {
    pub code: CloseCode,
    pub reason: &'static str,
}

fn refuse(code: CloseCode, reason: &'static str) -> FrameError {
    FrameError { code, reason }
}

/// What a side accepts: whether frames must be masked (a server reads
/// masked frames from clients; a client reads unmasked ones), whether RSV1
/// is in use (compression negotiated), and the longest payload.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    pub masked: bool,
    pub rsv1_allowed: bool,
    pub max_len: u64,
}

/// Parses the header at the front of `buf`: `Ok(None)` if more bytes are
/// needed for it (never more than 14).
pub fn parse(buf: &[u8], rules: &Rules) -> Result<Option<Header>, FrameError> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    if b0 & 0x30 != 0 || (b0 & 0x40 != 0 && !rules.rsv1_allowed) {
        return Err(refuse(CloseCode::PROTOCOL, "reserved bits set"));
    }
    let opcode = Opcode::from_bits(b0 & 0x0F)
        .ok_or_else(|| refuse(CloseCode::PROTOCOL, "reserved opcode"))?;
    let fin = b0 & 0x80 != 0;
    let rsv1 = b0 & 0x40 != 0;
    if opcode.is_control() {
        if !fin {
            return Err(refuse(CloseCode::PROTOCOL, "fragmented control frame"));
        }
        if rsv1 {
            return Err(refuse(CloseCode::PROTOCOL, "compressed control frame"));
        }
    }
    let masked = b1 & 0x80 != 0;
    if masked != rules.masked {
        return Err(refuse(
            CloseCode::PROTOCOL,
            if rules.masked {
                "unmasked frame from a client"
            } else {
                "masked frame from a server"
            },
        ));
    }
    let (len, at) = match b1 & 0x7F {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => {
                let len = u64::from_be_bytes(b.try_into().expect("8 bytes"));
                if len >> 63 != 0 {
                    return Err(refuse(CloseCode::PROTOCOL, "length with its top bit set"));
                }
                (len, 10)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    if opcode.is_control() && len > 125 {
        return Err(refuse(CloseCode::PROTOCOL, "control frame over 125 bytes"));
    }
    if len > rules.max_len {
        return Err(refuse(CloseCode::TOO_BIG, "message too big"));
    }
    let (mask, header_len) = if masked {
        match buf.get(at..at + 4) {
            Some(k) => (Some([k[0], k[1], k[2], k[3]]), at + 4),
            None => return Ok(None),
        }
    } else {
        (None, at)
    };
    Ok(Some(Header {
        fin,
        rsv1,
        opcode,
        mask,
        len,
        header_len,
    }))
}

/// Appends a frame header for a payload of `len` bytes to `out`.
pub fn write_header(
    out: &mut Vec<u8>,
    fin: bool,
    rsv1: bool,
    opcode: Opcode,
    len: usize,
    mask: Option<[u8; 4]>,
) {
    let b0 = (u8::from(fin) << 7) | (u8::from(rsv1) << 6) | opcode.bits();
    let m = if mask.is_some() { 0x80 } else { 0 };
    out.push(b0);
    if len < 126 {
        out.push(m | len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        out.push(m | 126);
        out.extend_from_slice(&short.to_be_bytes());
    } else {
        out.push(m | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
}

/// XORs `data` with `key`, starting at byte `offset` of the key's cycle
/// (a payload unmasked in pieces continues where the last piece stopped).
/// Eight bytes at a time: masking runs over every byte a client sends.
pub fn apply_mask(data: &mut [u8], key: [u8; 4], offset: usize) {
    let mut key = key;
    key.rotate_left(offset % 4);
    let wide = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let word = u64::from_ne_bytes(chunk.try_into().expect("8 bytes")) ^ wide;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= key[i % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: Rules = Rules {
        masked: true,
        rsv1_allowed: false,
        max_len: 1 << 20,
    };
    const CLIENT: Rules = Rules {
        masked: false,
        rsv1_allowed: false,
        max_len: 1 << 20,
    };

    fn frame(fin: bool, opcode: Opcode, len: usize, mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut out = Vec::new();
        write_header(&mut out, fin, false, opcode, len, mask);
        out
    }

    #[test]
    fn round_trips_every_length_form() {
        for len in [0, 1, 125, 126, 65535, 65536, 1 << 20] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let bytes = frame(true, Opcode::Binary, len, mask);
                let rules = Rules {
                    masked: mask.is_some(),
                    ..SERVER
                };
                let h = parse(&bytes, &rules).unwrap().unwrap();
                assert_eq!(
                    (h.len, h.mask, h.header_len),
                    (len as u64, mask, bytes.len())
                );
                // Every strict prefix asks for more.
                for cut in 0..bytes.len() {
                    assert_eq!(
                        parse(&bytes[..cut], &rules),
                        Ok(None),
                        "len {len} cut {cut}"
                    );
                }
            }
        }
    }

    #[test]
    fn refuses_what_the_rfc_forbids() {
        let key = Some([9, 9, 9, 9]);
        let cases: Vec<(Vec<u8>, Rules, CloseCode)> = vec![
            (
                vec![0x80 | 0x20 | 0x1, 0x80, 0, 0, 0, 0],
                SERVER,
                CloseCode::PROTOCOL,
            ), // RSV2
            (
                vec![0x80 | 0x40 | 0x1, 0x80, 0, 0, 0, 0],
                SERVER,
                CloseCode::PROTOCOL,
            ), // RSV1, none agreed
            (
                vec![0x80 | 0x3, 0x80, 0, 0, 0, 0],
                SERVER,
                CloseCode::PROTOCOL,
            ), // opcode 3
            (
                vec![0x80 | 0xB, 0x80, 0, 0, 0, 0],
                SERVER,
                CloseCode::PROTOCOL,
            ), // opcode 11
            (
                frame(false, Opcode::Ping, 0, key),
                SERVER,
                CloseCode::PROTOCOL,
            ),
            (
                frame(true, Opcode::Ping, 126, key),
                SERVER,
                CloseCode::PROTOCOL,
            ),
            (
                frame(true, Opcode::Text, 5, None),
                SERVER,
                CloseCode::PROTOCOL,
            ), // unmasked
            (
                frame(true, Opcode::Text, 5, key),
                CLIENT,
                CloseCode::PROTOCOL,
            ), // masked
            (
                frame(true, Opcode::Binary, (1 << 20) + 1, key),
                SERVER,
                CloseCode::TOO_BIG,
            ),
        ];
        for (bytes, rules, code) in cases {
            assert_eq!(parse(&bytes, &rules).unwrap_err().code, code, "{bytes:?}");
        }
        // 2^63: refused from the header alone, before any payload.
        let mut huge = vec![0x82, 0x80 | 127];
        huge.extend_from_slice(&(1u64 << 63).to_be_bytes());
        huge.extend_from_slice(&[0; 4]);
        assert_eq!(parse(&huge, &SERVER).unwrap_err().code, CloseCode::PROTOCOL);
        let mut big = vec![0x82, 0x80 | 127];
        big.extend_from_slice(&((1u64 << 63) - 1).to_be_bytes());
        big.extend_from_slice(&[0; 4]);
        assert_eq!(parse(&big, &SERVER).unwrap_err().code, CloseCode::TOO_BIG);
    }

    #[test]
    fn masking_in_pieces_equals_masking_at_once() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let data: Vec<u8> = (0..100u8).collect();
        let mut whole = data.clone();
        apply_mask(&mut whole, key, 0);
        for i in 0..whole.len() {
            assert_eq!(whole[i], data[i] ^ key[i % 4]);
        }
        let mut pieces = data.clone();
        let (a, b) = pieces.split_at_mut(13);
        apply_mask(a, key, 0);
        apply_mask(b, key, 13);
        assert_eq!(pieces, whole);
        // RFC 6455 5.7: "Hello" masked with 37 fa 21 3d.
        let mut hello = b"Hello".to_vec();
        apply_mask(&mut hello, key, 0);
        assert_eq!(hello, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }
}
