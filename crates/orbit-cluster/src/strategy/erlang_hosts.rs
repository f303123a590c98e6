//! `Cluster.Strategy.ErlangHosts`: the hosts in `.hosts.erlang`, each asked for its
//! nodes through its EPMD.
//!
//! Contract (libcluster's `erlang_hosts.ex`, `net_adm:host_file/0`, `net_adm:names/1`):
//! the file holds Erlang terms, each ended by `.`: host names as atoms (`'box.example.com'.`)
//! or strings; each host's EPMD (port 4369, or `ERL_EPMD_PORT`) lists its nodes, and
//! `name@host` is connected for each. Without `timeout` libcluster asks once;
//! [`Polling`](super::Polling) also retries failed and downed nodes with backoff. A host
//! whose EPMD does not answer is skipped (as `gather_node_names` does). The file is
//! read with [`parse_hosts_erlang`], a small parser for this one shape that refuses
//! anything else with the line it stopped at (not a general Erlang term reader).

use std::path::PathBuf;
use std::time::Duration;

use futures::future::BoxFuture;

use super::{Poll, StrategyContext, StrategyError};

/// The largest `.hosts.erlang` read.
const MAX_FILE: u64 = 1 << 20;

/// libcluster's ErlangHosts config keys, plus where the file is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErlangHostsConfig {
    /// Round every this long (`timeout`; none: `:infinity`).
    pub timeout: Option<Duration>,
    /// The file (Orbit's `hosts_file`; none: `./.hosts.erlang`, then `~/.hosts.erlang`,
    /// as `net_adm:host_file/0` looks).
    pub hosts_file: Option<PathBuf>,
    /// EPMD port on each host (none: `ERL_EPMD_PORT` or 4369).
    pub epmd_port: Option<u16>,
}

/// The ErlangHosts source.
#[derive(Debug, Clone)]
pub struct ErlangHosts(pub ErlangHostsConfig);

/// Parses a `.hosts.erlang` file: terms ended by `.`, each an atom (bare or quoted) or a
/// string; `%` starts a comment. Never panics; the error names the line.
pub fn parse_hosts_erlang(text: &str) -> Result<Vec<String>, String> {
    let b = text.as_bytes();
    let mut i = 0;
    let mut line = 1;
    let mut out = Vec::new();
    let mut want_dot = false;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\n' => {
                line += 1;
                i += 1;
            }
            c if c.is_ascii_whitespace() => i += 1,
            b'%' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'.' if want_dot => {
                want_dot = false;
                i += 1;
            }
            b'\'' | b'"' if !want_dot => {
                let q = c;
                i += 1;
                let mut s = Vec::new();
                loop {
                    match b.get(i) {
                        None => return Err(format!("line {line}: unterminated quote")),
                        Some(&x) if x == q => break,
                        Some(b'\\') => {
                            match b.get(i + 1) {
                                Some(&e @ (b'\\' | b'\'' | b'"')) => s.push(e),
                                _ => return Err(format!("line {line}: unsupported escape")),
                            }
                            i += 2;
                        }
                        Some(b'\n') => {
                            return Err(format!("line {line}: newline inside a host name"))
                        }
                        Some(&x) => {
                            s.push(x);
                            i += 1;
                        }
                    }
                }
                i += 1;
                let s = String::from_utf8(s)
                    .map_err(|_| format!("line {line}: host name is not UTF-8"))?;
                push_host(&mut out, s, line)?;
                want_dot = true;
            }
            c if c.is_ascii_lowercase() && !want_dot => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'@')
                {
                    i += 1;
                }
                let s = String::from_utf8_lossy(&b[start..i]).into_owned();
                push_host(&mut out, s, line)?;
                want_dot = true;
            }
            _ => {
                let what = if want_dot {
                    "expected `.` after a host"
                } else {
                    "expected a host name (atom or string)"
                };
                return Err(format!("line {line}: {what}"));
            }
        }
    }
    if want_dot {
        return Err(format!("line {line}: the last term has no `.`"));
    }
    Ok(out)
}

fn push_host(out: &mut Vec<String>, s: String, line: usize) -> Result<(), String> {
    if s.is_empty() || s.len() > 255 {
        return Err(format!("line {line}: a host name must be 1 to 255 bytes"));
    }
    out.push(s);
    Ok(())
}

impl ErlangHosts {
    fn read(&self) -> Result<Vec<String>, StrategyError> {
        let candidates: Vec<PathBuf> = match &self.0.hosts_file {
            Some(p) => vec![p.clone()],
            None => {
                let mut v = vec![PathBuf::from(".hosts.erlang")];
                if let Some(h) = std::env::var_os("HOME") {
                    v.push(PathBuf::from(h).join(".hosts.erlang"));
                }
                v
            }
        };
        for p in &candidates {
            let meta = match std::fs::metadata(p) {
                Ok(m) => m,
                Err(_) => continue,
            };
            if meta.len() > MAX_FILE {
                return Err(StrategyError::Discovery(format!(
                    "{} is larger than {MAX_FILE} bytes",
                    p.display()
                )));
            }
            let text = std::fs::read_to_string(p)
                .map_err(StrategyError::io(format!("reading {}", p.display())))?;
            return parse_hosts_erlang(&text)
                .map_err(|e| StrategyError::Discovery(format!("{}: {e}", p.display())));
        }
        Err(StrategyError::Discovery(format!(
            "couldn't find .hosts.erlang (looked at {candidates:?})"
        )))
    }
}

impl Poll for ErlangHosts {
    fn kind(&self) -> &'static str {
        "Cluster.Strategy.ErlangHosts"
    }
    fn interval(&self) -> Option<Duration> {
        self.0.timeout
    }
    fn discover<'a>(
        &'a mut self,
        _ctx: &'a StrategyContext,
    ) -> BoxFuture<'a, Result<Vec<String>, StrategyError>> {
        Box::pin(async move {
            let hosts = self.read()?;
            let port = self.0.epmd_port.unwrap_or_else(orbit_dist::epmd::port);
            let mut nodes = Vec::new();
            for host in hosts {
                match orbit_dist::epmd::client::names(&host, port).await {
                    Ok(names) => {
                        nodes.extend(names.into_iter().map(|(n, _)| format!("{n}@{host}")))
                    }
                    Err(e) => tracing::debug!(%host, error = %e, "no EPMD names from host"),
                }
            }
            Ok(nodes)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::parse_hosts_erlang;

    #[test]
    fn parses_atoms_strings_and_comments() {
        let f = "% hosts\n'box.example.com'.\nlocalhost. \"127.0.0.1\".\n'it\\'s'. % end\n";
        assert_eq!(
            parse_hosts_erlang(f).unwrap(),
            vec!["box.example.com", "localhost", "127.0.0.1", "it's"]
        );
        assert_eq!(parse_hosts_erlang("").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn refuses_other_shapes_with_the_line() {
        assert_eq!(
            parse_hosts_erlang("a.\nb").unwrap_err(),
            "line 2: the last term has no `.`"
        );
        assert!(parse_hosts_erlang("a b.")
            .unwrap_err()
            .contains("expected `.`"));
        assert!(parse_hosts_erlang("[a].")
            .unwrap_err()
            .starts_with("line 1"));
        assert!(parse_hosts_erlang("'a")
            .unwrap_err()
            .contains("unterminated"));
        assert!(parse_hosts_erlang("''.").is_err());
        assert!(parse_hosts_erlang("Host.").is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in ".{0,200}") {
            let _ = parse_hosts_erlang(&s);
        }
    }
}
