//! Name resolution for `loop.getaddrinfo`: IP literals answered at once (`numeric`), other
//! names looked up by the C library on a small native thread pool (`pool`) and handed back to
//! the loop as completions (`lookup`), without Python's executor in between.

pub mod lookup;
pub mod numeric;
pub mod pool;
