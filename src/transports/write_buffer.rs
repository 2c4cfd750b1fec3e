//! The bytes a transport could not write yet, flushed with one vectored write.
//!
//! Chunks are kept as they were given (an immutable Python `bytes` is referenced, not
//! copied) and consumed from the front as the kernel accepts them.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::os::fd::RawFd;

use crate::sys;

/// At most this many chunks go into one `writev`/`sendmsg` (Linux's IOV_MAX is 1024; more
/// than this gains nothing once the socket buffer is full).
pub const MAX_IOVECS: usize = 64;

pub struct WriteBuffer<T: AsRef<[u8]>> {
    chunks: VecDeque<(T, usize)>,
    len: usize,
}

impl<T: AsRef<[u8]>> Default for WriteBuffer<T> {
    fn default() -> Self {
        WriteBuffer {
            chunks: VecDeque::new(),
            len: 0,
        }
    }
}

impl<T: AsRef<[u8]>> WriteBuffer<T> {
    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `chunk`, of which the first `skip` bytes were already written.
    pub fn push(&mut self, chunk: T, skip: usize) {
        let size = chunk.as_ref().len();
        if skip < size {
            self.len += size - skip;
            self.chunks.push_back((chunk, skip));
        }
    }

    /// The waiting bytes as io slices for a vectored write, oldest first, in `out`; returns
    /// how many it filled.
    pub fn io_slices<'a>(&'a self, out: &mut [IoSlice<'a>; MAX_IOVECS]) -> usize {
        let mut filled = 0;
        for (slot, (chunk, start)) in out.iter_mut().zip(&self.chunks) {
            *slot = IoSlice::new(&chunk.as_ref()[*start..]);
            filled += 1;
        }
        filled
    }

    /// Writes what the kernel takes of the waiting bytes with one vectored write (the io
    /// slices live on the stack: nothing is allocated per flush). Does not consume them.
    pub fn write_to(&self, fd: RawFd, is_socket: bool) -> io::Result<usize> {
        let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
        let filled = self.io_slices(&mut slices);
        sys::send_vectored(fd, &slices[..filled], is_socket)
    }

    /// Forgets the first `n` bytes (the kernel took them). Returns the chunks that were
    /// completely written, for the caller to drop when convenient.
    pub fn consume(&mut self, mut n: usize) -> Vec<T> {
        debug_assert!(n <= self.len);
        let mut done = Vec::new();
        self.len -= n.min(self.len);
        while n > 0 {
            let Some((chunk, start)) = self.chunks.front_mut() else {
                break;
            };
            let left = chunk.as_ref().len() - *start;
            if n < left {
                *start += n;
                break;
            }
            n -= left;
            if let Some((chunk, _)) = self.chunks.pop_front() {
                done.push(chunk);
            }
        }
        done
    }

    /// Empties the buffer, returning its chunks.
    pub fn take_all(&mut self) -> Vec<T> {
        self.len = 0;
        self.chunks.drain(..).map(|(chunk, _)| chunk).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(buffer: &WriteBuffer<Vec<u8>>) -> Vec<u8> {
        let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
        let filled = buffer.io_slices(&mut slices);
        slices[..filled].iter().flat_map(|s| s.to_vec()).collect()
    }

    #[test]
    fn push_skips_what_was_already_written() {
        let mut buffer = WriteBuffer::default();
        buffer.push(b"hello".to_vec(), 2);
        buffer.push(b"done".to_vec(), 4);
        buffer.push(b"!".to_vec(), 0);
        assert_eq!(buffer.len(), 4);
        assert_eq!(contents(&buffer), b"llo!");
    }

    #[test]
    fn consume_across_chunk_boundaries() {
        let mut buffer = WriteBuffer::default();
        for part in [&b"abc"[..], b"defg", b"hi"] {
            buffer.push(part.to_vec(), 0);
        }
        assert_eq!(buffer.consume(2).len(), 0);
        assert_eq!(contents(&buffer), b"cdefghi");
        assert_eq!(buffer.consume(5).len(), 2);
        assert_eq!(contents(&buffer), b"hi");
        assert_eq!(buffer.len(), 2);
        assert_eq!(buffer.consume(2).len(), 1);
        assert!(buffer.is_empty());
    }

    #[test]
    fn io_slices_are_capped() {
        let mut buffer = WriteBuffer::default();
        for _ in 0..(MAX_IOVECS + 10) {
            buffer.push(vec![1u8; 3], 0);
        }
        let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
        assert_eq!(buffer.io_slices(&mut slices), MAX_IOVECS);
        assert_eq!(buffer.take_all().len(), MAX_IOVECS + 10);
        assert_eq!(buffer.len(), 0);
    }
}
