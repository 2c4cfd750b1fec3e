//! One non-blocking stream and one listener type over TCP and Unix sockets, so the
//! load generator and the echo server are written once for both.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream as StdUnixStream;

use mio::event::Source;
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use crate::Endpoint;

pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    /// Connects with a blocking connect (the load generator connects before it starts
    /// the clock), then switches to non-blocking for the measured part.
    pub fn connect(endpoint: &Endpoint) -> io::Result<Stream> {
        match endpoint {
            Endpoint::Tcp(address) => {
                let stream = std::net::TcpStream::connect(address)?;
                // Request/response ping-pong with Nagle on would measure the 40 ms
                // delayed-ACK timer, not the server.
                stream.set_nodelay(true)?;
                stream.set_nonblocking(true)?;
                Ok(Stream::Tcp(TcpStream::from_std(stream)))
            }
            Endpoint::Unix(path) => {
                let stream = StdUnixStream::connect(path)?;
                stream.set_nonblocking(true)?;
                Ok(Stream::Unix(UnixStream::from_std(stream)))
            }
        }
    }

    /// The mio socket inside, to register with a `Poll`. Handing out the inner socket once
    /// spares a forwarding `Source` impl per type; the dynamic call it costs happens at
    /// (de)registration only, never per request.
    pub fn source(&mut self) -> &mut dyn Source {
        match self {
            Stream::Tcp(stream) => stream,
            Stream::Unix(stream) => stream,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream) => stream.read(buf),
            Stream::Unix(stream) => stream.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream) => stream.write(buf),
            Stream::Unix(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    /// Binds the endpoint; `tcp:127.0.0.1:0` picks a free port, which `local_endpoint` tells.
    pub fn bind(endpoint: &Endpoint) -> io::Result<Listener> {
        match endpoint {
            Endpoint::Tcp(address) => Ok(Listener::Tcp(TcpListener::bind(*address)?)),
            Endpoint::Unix(path) => Ok(Listener::Unix(UnixListener::bind(path)?)),
        }
    }

    pub fn local_endpoint(&self) -> io::Result<Endpoint> {
        match self {
            Listener::Tcp(listener) => Ok(Endpoint::Tcp(listener.local_addr()?)),
            Listener::Unix(listener) => {
                let address = listener.local_addr()?;
                let path = address
                    .as_pathname()
                    .ok_or_else(|| io::Error::other("unnamed Unix socket"))?;
                Ok(Endpoint::Unix(path.to_path_buf()))
            }
        }
    }

    pub fn accept(&self) -> io::Result<Stream> {
        match self {
            Listener::Tcp(listener) => {
                let (stream, _) = listener.accept()?;
                stream.set_nodelay(true)?;
                Ok(Stream::Tcp(stream))
            }
            Listener::Unix(listener) => Ok(Stream::Unix(listener.accept()?.0)),
        }
    }

    /// The mio socket inside, to register with a `Poll` (see `Stream::source`).
    pub fn source(&mut self) -> &mut dyn Source {
        match self {
            Listener::Tcp(listener) => listener,
            Listener::Unix(listener) => listener,
        }
    }
}
