//! Echo load generator: N connections, each sending SIZE bytes and reading SIZE bytes back,
//! again and again; requests finished after the warmup and before the end are counted.
//! Prints one JSON object on stdout.
//!
//!     loadgen --connect tcp:127.0.0.1:8000 --connections 10 --size 1024 --warmup 0.5 --duration 2
//!
//! Single-threaded on edge-triggered epoll (mio): one core of it sustains several times what
//! a Python server does (check it against `native_echo`), so the server is what is measured.

use std::io::{self, ErrorKind, Read, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ferroloop_loadgen::args::Args;
use ferroloop_loadgen::{Endpoint, Stream};
use mio::{Events, Interest, Poll, Token};

struct Settings {
    endpoint: Endpoint,
    connections: usize,
    size: usize,
    warmup: Duration,
    duration: Duration,
}

/// One connection's request in flight.
struct Connection {
    stream: Stream,
    sent: usize,
    received: usize,
    started: Instant,
}

/// What the measured window saw.
struct Tally {
    measure_from: Instant,
    measure_until: Instant,
    latencies_ns: Vec<u64>,
    /// Requests completed since the start, warmup included: set beside the server's CPU time
    /// over the whole run, they give requests per CPU-second of the server.
    all_requests: u64,
}

impl Tally {
    fn record(&mut self, started: Instant, finished: Instant) {
        if finished < self.measure_until {
            self.all_requests += 1;
        }
        if finished >= self.measure_from && finished < self.measure_until {
            self.latencies_ns
                .push((finished - started).as_nanos() as u64);
        }
    }
}

impl Connection {
    /// Moves this connection as far as the socket allows: writes the rest of the request,
    /// reads the echo, starts the next request when one completes.
    ///
    /// Edge-triggered readiness needs every read to go on until the socket is drained, but a
    /// read that returns less than it asked for has drained it, and no echo can be waiting
    /// right after the request's last byte went out: bytes that arrive later raise a new
    /// edge. Skipping those reads that could only say EAGAIN saves one syscall in three per
    /// request, so the load generator stays well ahead of the fastest server.
    fn drive(&mut self, message: &[u8], scratch: &mut [u8], tally: &mut Tally) -> io::Result<()> {
        loop {
            let was_writing = self.sent < message.len();
            while self.sent < message.len() {
                match self.stream.write(&message[self.sent..]) {
                    Ok(0) => {
                        return Err(io::Error::new(
                            ErrorKind::WriteZero,
                            "server stopped reading",
                        ))
                    }
                    Ok(written) => self.sent += written,
                    Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                    Err(error) if error.kind() == ErrorKind::Interrupted => {}
                    Err(error) => return Err(error),
                }
            }
            if was_writing && self.sent == message.len() {
                return Ok(()); // the rest of the echo comes after this, with its own edge
            }
            loop {
                let wanted = (message.len() - self.received).min(scratch.len());
                match self.stream.read(&mut scratch[..wanted]) {
                    Ok(0) => {
                        return Err(io::Error::new(
                            ErrorKind::UnexpectedEof,
                            "server closed the connection",
                        ))
                    }
                    Ok(read) => {
                        self.received += read;
                        if self.received == message.len() {
                            break;
                        }
                        if read < wanted {
                            return Ok(()); // drained
                        }
                    }
                    Err(error) if error.kind() == ErrorKind::WouldBlock => return Ok(()),
                    Err(error) if error.kind() == ErrorKind::Interrupted => {}
                    Err(error) => return Err(error),
                }
            }
            let now = Instant::now();
            tally.record(self.started, now);
            self.sent = 0;
            self.received = 0;
            self.started = now;
        }
    }
}

fn run(settings: &Settings) -> io::Result<Tally> {
    let message = vec![b'x'; settings.size];
    let mut scratch = vec![0u8; 256 * 1024];
    let mut poll = Poll::new()?;
    let mut connections = Vec::with_capacity(settings.connections);
    for index in 0..settings.connections {
        let mut stream = Stream::connect(&settings.endpoint)?;
        poll.registry().register(
            stream.source(),
            Token(index),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        connections.push(Connection {
            stream,
            sent: 0,
            received: 0,
            started: Instant::now(),
        });
    }
    let start = Instant::now();
    let mut tally = Tally {
        measure_from: start + settings.warmup,
        measure_until: start + settings.warmup + settings.duration,
        latencies_ns: Vec::with_capacity(1 << 20),
        all_requests: 0,
    };
    for connection in &mut connections {
        connection.started = Instant::now();
        connection.drive(&message, &mut scratch, &mut tally)?;
    }
    let mut events = Events::with_capacity(1024);
    loop {
        let now = Instant::now();
        if now >= tally.measure_until {
            return Ok(tally);
        }
        match poll.poll(&mut events, Some(tally.measure_until - now)) {
            Err(error) if error.kind() == ErrorKind::Interrupted => continue,
            result => result?,
        }
        for event in events.iter() {
            connections[event.token().0].drive(&message, &mut scratch, &mut tally)?;
        }
    }
}

fn percentile_us(sorted_ns: &[u64], fraction: f64) -> f64 {
    if sorted_ns.is_empty() {
        return 0.0;
    }
    let index = ((sorted_ns.len() - 1) as f64 * fraction).round() as usize;
    sorted_ns[index] as f64 / 1000.0
}

fn report(settings: &Settings, mut tally: Tally) -> String {
    tally.latencies_ns.sort_unstable();
    let requests = tally.latencies_ns.len();
    let seconds = settings.duration.as_secs_f64();
    let rate = requests as f64 / seconds;
    format!(
        concat!(
            "{{\"endpoint\": \"{}\", \"connections\": {}, \"size\": {}, \"warmup_s\": {}, ",
            "\"duration_s\": {}, \"requests\": {}, \"all_requests\": {}, ",
            "\"requests_per_s\": {:.1}, \"bytes_per_s\": {:.1}, ",
            "\"latency_us\": {{\"p50\": {:.1}, \"p99\": {:.1}, \"max\": {:.1}}}}}"
        ),
        settings
            .endpoint
            .to_string()
            .replace('\\', "\\\\")
            .replace('"', "\\\""),
        settings.connections,
        settings.size,
        settings.warmup.as_secs_f64(),
        seconds,
        requests,
        tally.all_requests,
        rate,
        rate * settings.size as f64,
        percentile_us(&tally.latencies_ns, 0.50),
        percentile_us(&tally.latencies_ns, 0.99),
        percentile_us(&tally.latencies_ns, 1.0),
    )
}

fn settings() -> Result<Settings, String> {
    let known = ["connect", "connections", "size", "warmup", "duration"];
    let args = Args::parse(std::env::args().skip(1), &known)?;
    let settings = Settings {
        endpoint: Endpoint::parse(&args.get::<String>("connect", None)?)?,
        connections: args.get("connections", Some(10))?,
        size: args.get("size", Some(1024))?,
        warmup: Duration::from_secs_f64(args.get("warmup", Some(0.5))?),
        duration: Duration::from_secs_f64(args.get("duration", Some(2.0))?),
    };
    if settings.connections == 0 || settings.size == 0 || settings.duration.is_zero() {
        return Err("--connections, --size and --duration must be positive".into());
    }
    Ok(settings)
}

fn main() -> ExitCode {
    let settings = match settings() {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("loadgen: {message}");
            return ExitCode::from(2);
        }
    };
    match run(&settings) {
        Ok(tally) => {
            println!("{}", report(&settings, tally));
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("loadgen: {}: {error}", settings.endpoint);
            ExitCode::FAILURE
        }
    }
}
