//! The dashboard's HTTP API as `orbit top` reads it: a blocking HTTP/1.1 GET (no TLS:
//! the dashboard serves plain HTTP on loopback or behind a token) and the JSON it
//! answers.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde::Deserialize;

/// Where the dashboard is and how to authenticate.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `host:port`.
    pub authority: String,
    /// The token, if the dashboard requires one.
    pub token: Option<String>,
}

impl Endpoint {
    /// Parses `http://HOST:PORT[/]` (or `HOST:PORT`).
    pub fn parse(url: &str, token: Option<String>) -> Result<Endpoint, String> {
        if url.starts_with("https://") {
            return Err(format!(
                "{url}: orbit top speaks plain HTTP; the dashboard serves no TLS"
            ));
        }
        let rest = url.strip_prefix("http://").unwrap_or(url);
        let authority = rest.split('/').next().unwrap_or_default().to_string();
        if authority.is_empty() || !authority.contains(':') {
            return Err(format!(
                "{url}: expected http://HOST:PORT (the address given to --dashboard)"
            ));
        }
        Ok(Endpoint { authority, token })
    }

    /// GETs `path` and returns the body of a 200 answer.
    pub fn get(&self, path: &str) -> Result<String, String> {
        let addr = self
            .authority
            .to_socket_addrs()
            .map_err(|e| format!("{}: {e}", self.authority))?
            .next()
            .ok_or_else(|| format!("{}: no address", self.authority))?;
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
            .map_err(|e| format!("cannot reach the dashboard at {}: {e}", self.authority))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        let auth = match &self.token {
            Some(t) => format!("x-orbit-token: {t}\r\n"),
            None => String::new(),
        };
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{auth}\r\n",
            self.authority
        )
        .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf)
            .map_err(|e| format!("reading the answer: {e}"))?;
        let text = String::from_utf8_lossy(&buf);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or("a malformed HTTP answer")?;
        let status = head.split_whitespace().nth(1).unwrap_or("?");
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_string()
        };
        match status {
            "200" => Ok(body),
            "401" => {
                Err("the dashboard wants its token: pass --token (or ORBIT_DASHBOARD_TOKEN)".into())
            }
            s => Err(format!("GET {path}: HTTP {s}: {}", body.trim())),
        }
    }
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// `/api/processes`.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct Ranking {
    /// Processes ranked.
    pub total: u64,
    /// Server time for the ranking.
    pub took_ms: f64,
    /// The rows.
    pub rows: Vec<Row>,
}

/// One process.
#[derive(Debug, Clone, Deserialize)]
pub struct Row {
    pub pid: String,
    pub name: Option<String>,
    pub label: Option<String>,
    pub mailbox: u64,
    pub memory: u64,
    pub handled: u64,
    pub handling_ms: f64,
    pub mean_us: f64,
    pub rate: f64,
    pub long_handlers: u32,
}

/// `/api/node` (the fields `top` shows).
#[derive(Debug, Clone, Deserialize, Default)]
pub struct Node {
    pub node: String,
    pub processes: u64,
    pub messages_per_second: f64,
    pub handling_p99_us: f64,
    pub cpu_percent: Option<f64>,
    pub rss_bytes: Option<u64>,
    pub run_queue: u64,
}

/// `/api/process/{pid}` (the fields `top` shows).
#[derive(Debug, Clone, Deserialize)]
pub struct Page {
    pub row: Row,
    pub status: String,
    pub links: Vec<String>,
    pub monitors: Vec<String>,
    pub monitored_by: Vec<String>,
    pub trap_exit: bool,
}

/// Percent-encodes a pid for a path.
pub fn encode(pid: &str) -> String {
    pid.bytes()
        .map(|b| match b {
            b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b'.' | b'-' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
