//! The ceiling: a single-threaded Rust echo server on edge-triggered epoll (mio), the best a
//! one-threaded event loop can do on this machine. Same readiness line as the Python servers:
//!
//!     native_echo --listen tcp:127.0.0.1:0     # prints "READY tcp:127.0.0.1:PORT", serves until killed
//!     native_echo --listen unix:/tmp/echo.sock

use std::io::{self, ErrorKind, Read, Write};
use std::process::ExitCode;

use ferroloop_loadgen::args::Args;
use ferroloop_loadgen::{Endpoint, Listener, Stream};
use mio::{Events, Interest, Poll, Token};

const LISTENER: Token = Token(usize::MAX);

struct Connection {
    stream: Stream,
    /// Echo bytes the socket would not take yet; while any wait, the connection reads no more
    /// (back-pressure, as an asyncio server pausing reading would).
    unsent: Vec<u8>,
}

enum Outcome {
    Open,
    Closed,
}

impl Connection {
    fn drive(&mut self, scratch: &mut [u8]) -> io::Result<Outcome> {
        loop {
            if !self.unsent.is_empty() {
                match self.stream.write(&self.unsent) {
                    Ok(written) => {
                        self.unsent.drain(..written);
                        continue;
                    }
                    Err(error) if error.kind() == ErrorKind::WouldBlock => {
                        return Ok(Outcome::Open)
                    }
                    Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                    Err(error) => return Err(error),
                }
            }
            let read = match self.stream.read(scratch) {
                Ok(0) => return Ok(Outcome::Closed),
                Ok(read) => read,
                Err(error) if error.kind() == ErrorKind::WouldBlock => return Ok(Outcome::Open),
                Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            };
            // Write straight from the read buffer; copy only what the socket refused.
            let mut written = 0;
            while written < read {
                match self.stream.write(&scratch[written..read]) {
                    Ok(count) => written += count,
                    Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                    Err(error) if error.kind() == ErrorKind::Interrupted => {}
                    Err(error) => return Err(error),
                }
            }
            self.unsent.extend_from_slice(&scratch[written..read]);
            if read < scratch.len() && self.unsent.is_empty() {
                // A short read drained the socket and later bytes raise a new edge: no
                // read-until-EAGAIN, one recv and one send per request, the floor.
                return Ok(Outcome::Open);
            }
        }
    }
}

fn serve(endpoint: &Endpoint) -> io::Result<()> {
    let mut listener = Listener::bind(endpoint)?;
    let mut poll = Poll::new()?;
    poll.registry()
        .register(listener.source(), LISTENER, Interest::READABLE)?;
    println!("READY {}", listener.local_endpoint()?);
    let mut connections: Vec<Option<Connection>> = Vec::new();
    let mut scratch = vec![0u8; 256 * 1024];
    let mut events = Events::with_capacity(1024);
    loop {
        match poll.poll(&mut events, None) {
            Err(error) if error.kind() == ErrorKind::Interrupted => continue,
            result => result?,
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                loop {
                    let mut stream = match listener.accept() {
                        Ok(stream) => stream,
                        Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                        Err(error) => return Err(error),
                    };
                    let slot = connections
                        .iter()
                        .position(Option::is_none)
                        .unwrap_or_else(|| {
                            connections.push(None);
                            connections.len() - 1
                        });
                    poll.registry().register(
                        stream.source(),
                        Token(slot),
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    connections[slot] = Some(Connection {
                        stream,
                        unsent: Vec::new(),
                    });
                }
                continue;
            }
            let slot = event.token().0;
            let Some(connection) = connections[slot].as_mut() else {
                continue;
            };
            // A peer reset is the peer's business (the load generator exits mid-request).
            let closed = !matches!(connection.drive(&mut scratch), Ok(Outcome::Open));
            if closed {
                if let Some(mut connection) = connections[slot].take() {
                    poll.registry().deregister(connection.stream.source())?;
                }
            }
        }
    }
}

fn main() -> ExitCode {
    let endpoint = Args::parse(std::env::args().skip(1), &["listen"])
        .and_then(|args| args.get::<String>("listen", None))
        .and_then(|text| Endpoint::parse(&text));
    let endpoint = match endpoint {
        Ok(endpoint) => endpoint,
        Err(message) => {
            eprintln!("native_echo: {message}");
            return ExitCode::from(2);
        }
    };
    match serve(&endpoint) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("native_echo: {endpoint}: {error}");
            ExitCode::FAILURE
        }
    }
}
