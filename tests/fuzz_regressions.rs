//! Replays fuzz/corpus/<target>/* through the functions the fuzz targets
//! call (no fuzzer needed), and the inputs of crashes the fuzzers found.
//! See fuzz/README.md.

use std::path::Path;

use squall::__fuzz;

#[allow(dead_code)]
#[path = "../examples/memcache_proxy/protocol.rs"]
mod protocol;

#[path = "../fuzz/memcache_check.rs"]
mod memcache_check;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        check(&data);
        n += 1;
    }
    assert!(n > 0, "empty corpus {}", dir.display());
}

#[test]
fn corpus_http_server() {
    replay("http_server", __fuzz::http_server);
}

#[test]
fn corpus_chunked() {
    replay("chunked", __fuzz::chunked);
}

#[test]
fn corpus_http_client_head() {
    replay("http_client_head", __fuzz::http_client_head);
}

#[test]
fn corpus_iostream_framing() {
    replay("iostream_framing", __fuzz::iostream_framing);
}

#[test]
fn corpus_memcache_parser() {
    replay("memcache_parser", memcache_check::memcache);
}

/// Found by the `chunked` target in its first second (2026-11-23): a body
/// cut inside the last-chunk line (`0;las`). The decoder rightly leaves an
/// incomplete line unconsumed; the check wrongly demanded it consume all.
#[test]
fn chunked_incomplete_last_chunk_line_is_left_unconsumed() {
    let input = b"seedseed5 ;ed5 ; a=b\r\nhello\r\n0;las";
    __fuzz::chunked(input);
    let mut d = squall::httputil::ChunkedDecoder::new(1 << 16);
    let mut body = Vec::new();
    let used = d.decode(&input[8..], &mut body).unwrap();
    assert_eq!(
        (body.as_slice(), &input[8 + used..]),
        (&b"hello"[..], &b"0;las"[..])
    );
    assert!(!d.is_done());
}
