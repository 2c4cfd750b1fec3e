//! Name resolution for `loop.getaddrinfo`: IP literals answered at once (`numeric`), other
//! names looked up by the C library on a small native thread pool (`pool`) and handed back to
//! the loop as completions (`lookup`), without Python's executor in between.

pub mod lookup;
pub mod numeric;
pub mod pool;

use pyo3::prelude::*;
use pyo3::types::PyInt;

use crate::sys::Hints;

/// `getaddrinfo`'s four int arguments (family, type, proto, flags) when each is an int that
/// fits C's int (`socket.SOCK_STREAM` and the other enum members are ints), as
/// `socket.getaddrinfo` takes them; None leaves the call to it.
fn hints(values: [&Bound<'_, PyAny>; 4]) -> Option<Hints> {
    let mut ints = [0i32; 4];
    for (out, value) in ints.iter_mut().zip(values) {
        if !value.is_instance_of::<PyInt>() {
            return None;
        }
        *out = value.extract().ok()?;
    }
    let [family, socktype, protocol, flags] = ints;
    Some(Hints {
        family,
        socktype,
        protocol,
        flags,
    })
}
