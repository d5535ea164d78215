//! Benchmarks for users on their own machine or Pi, what `pstream bench`
//! runs: [`encode::EncodeBench`] times each encoder frame by frame and
//! checks what it made against its input.

pub mod encode;
pub mod list;
pub mod loopback;
pub mod stats;

pub use encode::{BenchCodec, EncodeBench, EncodeReport, RowResult};
