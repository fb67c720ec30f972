#![no_main]
//! See fuzz/README.md; the check is squall::__fuzz::usual_head.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| squall::__fuzz::usual_head(data));
