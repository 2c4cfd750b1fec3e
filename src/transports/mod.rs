//! Transports: the per-connection hot path, in Rust.

pub mod base;
pub mod datagram;
pub mod flow_control;
pub mod pipe;
pub mod report;
pub mod stream;
pub mod versions;
pub mod write_buffer;
