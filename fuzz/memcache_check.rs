//! The memcached command parser's fuzz check, shared by
//! fuzz_targets/memcache_parser.rs and tests/fuzz_regressions.rs (both
//! include examples/memcache_proxy/protocol.rs as `crate::protocol`).
//!
//! Parsing the input whole and fed in random pieces (the first 8 bytes seed
//! the split) must give the same commands, and never use more bytes than it
//! was given.

use crate::protocol::{CommandParser, Parsed};

fn parse_all(parser: &mut CommandParser, buf: &mut Vec<u8>, out: &mut Vec<Parsed>) -> bool {
    loop {
        let (used, parsed) = parser.parse(buf);
        assert!(used <= buf.len(), "used {used} of {}", buf.len());
        buf.drain(..used);
        let fatal = matches!(parsed, Some(Parsed::Fatal(_)));
        if let Some(p) = parsed {
            out.push(p);
        }
        if fatal {
            return true;
        }
        if used == 0 {
            return false;
        }
    }
}

pub fn memcache(data: &[u8]) {
    let (seed, input) = data.split_at(data.len().min(8));
    let max_value = 64;

    let mut whole = Vec::new();
    let mut buf = input.to_vec();
    parse_all(&mut CommandParser::new(max_value), &mut buf, &mut whole);

    let mut s = seed.iter().fold(0x9e37_79b9_7f4a_7c15u64, |s, &b| {
        (s ^ u64::from(b)).wrapping_mul(0x1000_0000_01b3)
    }) | 1;
    let mut parser = CommandParser::new(max_value);
    let mut pieces = Vec::new();
    let mut buf = Vec::new();
    let mut at = 0;
    while at < input.len() {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        let n = 1 + (s.wrapping_mul(0x2545_f491_4f6c_dd1d) % 24) as usize;
        let end = (at + n).min(input.len());
        buf.extend_from_slice(&input[at..end]);
        at = end;
        if parse_all(&mut parser, &mut buf, &mut pieces) {
            break;
        }
    }
    assert_eq!(pieces, whole, "pieces and whole input parse differently");
}
