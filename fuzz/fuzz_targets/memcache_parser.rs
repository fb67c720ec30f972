#![no_main]
//! See fuzz/README.md; the check is fuzz/memcache_check.rs.

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../examples/memcache_proxy/protocol.rs"]
mod protocol;

#[path = "../memcache_check.rs"]
mod memcache_check;

fuzz_target!(|data: &[u8]| memcache_check::memcache(data));
