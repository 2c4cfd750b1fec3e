//! Shared by the load generator and the native echo server: endpoints written
//! `tcp:HOST:PORT` or `unix:PATH`, one stream type over both, and flag parsing.

pub mod args;
pub mod endpoint;
pub mod stream;

pub use endpoint::Endpoint;
pub use stream::{Listener, Stream};
