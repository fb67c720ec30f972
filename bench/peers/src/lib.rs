//! The benchmarks are in `benches/peers.rs`, which includes the squall
//! workloads from the root crate's `benches/*.rs`. Here: peers too long to
//! sit in it — the tokio and mio sides of the echo ping-pong and of the bulk
//! transfer.

pub mod bulk;
pub mod echo;
