//! Nothing here: the benchmarks are in `benches/peers.rs`, which includes the
//! squall workloads from the root crate's `benches/ioloop.rs`.
