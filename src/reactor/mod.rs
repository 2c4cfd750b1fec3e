//! OS readiness: which file descriptors can be read or written now.
//!
//! A plain Rust module with no Python in it. The loop core registers fds with an [`Interest`],
//! blocks in [`Poller::wait`] with the GIL released, and turns each [`Event`] into callbacks.
//!
//! The poller is epoll in *level-triggered* mode, which is what asyncio's `add_reader` contract
//! needs: a reader that consumes only part of the pending data is called again on the next
//! iteration. An edge-triggered poller (mio) would force every reader to drain the fd until
//! `EAGAIN`, an extra `recv` per request on the hot path.

mod epoll;
mod waker;

pub use epoll::{Event, Events, Poller};
pub use waker::Waker;

/// What a registered fd is watched for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Interest {
    pub readable: bool,
    pub writable: bool,
}

impl Interest {
    pub const NONE: Interest = Interest {
        readable: false,
        writable: false,
    };
    pub const READABLE: Interest = Interest {
        readable: true,
        writable: false,
    };
    pub const WRITABLE: Interest = Interest {
        readable: false,
        writable: true,
    };

    pub fn is_empty(self) -> bool {
        !self.readable && !self.writable
    }
}
