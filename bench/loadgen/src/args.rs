//! `--name value` flags, enough for two small binaries without a parsing dependency.

use std::collections::HashMap;
use std::str::FromStr;

pub struct Args {
    values: HashMap<String, String>,
}

impl Args {
    /// Reads `--name value` pairs; `known` lists the accepted names, so a typo fails loudly.
    pub fn parse(raw: impl Iterator<Item = String>, known: &[&str]) -> Result<Args, String> {
        let mut values = HashMap::new();
        let mut raw = raw.peekable();
        while let Some(flag) = raw.next() {
            let name = flag
                .strip_prefix("--")
                .ok_or_else(|| format!("expected a --flag, got {flag:?}"))?;
            if !known.contains(&name) {
                return Err(format!(
                    "unknown flag --{name} (known: --{})",
                    known.join(", --")
                ));
            }
            let value = raw
                .next()
                .ok_or_else(|| format!("--{name} needs a value"))?;
            values.insert(name.to_string(), value);
        }
        Ok(Args { values })
    }

    pub fn get<T: FromStr>(&self, name: &str, default: Option<T>) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        match self.values.get(name) {
            Some(text) => text
                .parse()
                .map_err(|error| format!("--{name} {text:?}: {error}")),
            None => default.ok_or_else(|| format!("--{name} is required")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Args, String> {
        Args::parse(
            line.split_whitespace().map(String::from),
            &["size", "connect"],
        )
    }

    #[test]
    fn reads_values_and_defaults() {
        let args = parse("--size 1024").unwrap();
        assert_eq!(args.get::<usize>("size", None).unwrap(), 1024);
        assert_eq!(args.get::<f64>("connect", Some(1.5)).unwrap(), 1.5);
        assert!(args.get::<usize>("connect", None).is_err());
    }

    #[test]
    fn refuses_typos_and_missing_values() {
        assert!(parse("--sise 1").is_err());
        assert!(parse("--size").is_err());
        assert!(parse("size 1").is_err());
    }
}
