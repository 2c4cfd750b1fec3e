//! Where to connect or listen, in the one spelling the whole suite uses:
//! `tcp:127.0.0.1:8000` or `unix:/tmp/echo.sock`.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq)]
pub enum Endpoint {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl Endpoint {
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        if let Some(address) = text.strip_prefix("tcp:") {
            address
                .parse()
                .map(Endpoint::Tcp)
                .map_err(|error| format!("bad TCP address {address:?}: {error}"))
        } else if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("empty Unix socket path".into());
            }
            Ok(Endpoint::Unix(PathBuf::from(path)))
        } else {
            Err(format!(
                "endpoint {text:?} is neither tcp:HOST:PORT nor unix:PATH"
            ))
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(address) => write!(f, "tcp:{address}"),
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_kinds_and_prints_them_back() {
        for text in ["tcp:127.0.0.1:8000", "unix:/tmp/echo.sock"] {
            assert_eq!(Endpoint::parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn refuses_unknown_kinds() {
        assert!(Endpoint::parse("udp:127.0.0.1:1").is_err());
        assert!(Endpoint::parse("tcp:nowhere").is_err());
        assert!(Endpoint::parse("unix:").is_err());
    }
}
