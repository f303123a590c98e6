//! The embedded EPMD server, for nodes that run without an external `epmd`.
//!
//! It answers ALIVE2 (only from loopback addresses, as `epmd` does), PORT_PLEASE2 and
//! NAMES. A name stays registered while its ALIVE2 connection is open; a name already
//! taken is refused. Creations start from a random value and increase, never 0.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

#[derive(Clone)]
struct Entry {
    port: u16,
    node_type: u8,
    highest: u16,
    lowest: u16,
}

#[derive(Default)]
struct State {
    names: Mutex<HashMap<String, Entry>>,
    creation: AtomicU32,
}

/// Tries to listen on `port` on all interfaces; `Ok(None)` when something already
/// listens there (then the node uses that epmd).
pub async fn start(port: u16) -> std::io::Result<Option<tokio::task::JoinHandle<()>>> {
    let listener = match super::listen(port) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut seed = [0u8; 4];
    crate::handshake::fill_random(&mut seed);
    let state = Arc::new(State {
        names: Mutex::new(HashMap::new()),
        creation: AtomicU32::new(u32::from_be_bytes(seed) % 1_000_000 + 1),
    });
    tracing::info!(port, "embedded epmd listening");
    Ok(Some(tokio::spawn(async move {
        loop {
            let Ok((s, addr)) = listener.accept().await else {
                continue;
            };
            let state = state.clone();
            tokio::spawn(async move {
                if let Err(e) = serve(s, addr.ip().is_loopback(), &state).await {
                    tracing::debug!(%addr, error = %e, "epmd client closed");
                }
            });
        }
    })))
}

async fn serve(mut s: TcpStream, local: bool, state: &State) -> std::io::Result<()> {
    let len = s.read_u16().await? as usize;
    if len == 0 {
        return Ok(());
    }
    let mut req = vec![0u8; len];
    s.read_exact(&mut req).await?;
    match req[0] {
        ALIVE2_REQ if local => alive2(s, &req[1..], state).await,
        PORT_PLEASE2_REQ => {
            let name = String::from_utf8_lossy(&req[1..]).into_owned();
            let entry = state.names.lock().get(&name).cloned();
            let mut out = vec![PORT2_RESP];
            match entry {
                Some(e) => {
                    out.push(0);
                    out.extend_from_slice(&e.port.to_be_bytes());
                    out.push(e.node_type);
                    out.push(0);
                    out.extend_from_slice(&e.highest.to_be_bytes());
                    out.extend_from_slice(&e.lowest.to_be_bytes());
                    out.extend_from_slice(&(name.len() as u16).to_be_bytes());
                    out.extend_from_slice(name.as_bytes());
                    out.extend_from_slice(&0u16.to_be_bytes());
                }
                None => out.push(1),
            }
            s.write_all(&out).await
        }
        NAMES_REQ => {
            let mut out = (port() as u32).to_be_bytes().to_vec();
            for (n, e) in state.names.lock().iter() {
                out.extend_from_slice(format!("name {n} at port {}\n", e.port).as_bytes());
            }
            s.write_all(&out).await
        }
        _ => Ok(()),
    }
}

async fn alive2(mut s: TcpStream, body: &[u8], state: &State) -> std::io::Result<()> {
    let parsed = (|| {
        let port = u16::from_be_bytes([*body.first()?, *body.get(1)?]);
        let node_type = *body.get(2)?;
        let highest = u16::from_be_bytes([*body.get(4)?, *body.get(5)?]);
        let lowest = u16::from_be_bytes([*body.get(6)?, *body.get(7)?]);
        let nlen = u16::from_be_bytes([*body.get(8)?, *body.get(9)?]) as usize;
        let name = std::str::from_utf8(body.get(10..10 + nlen)?)
            .ok()?
            .to_string();
        Some((
            name,
            Entry {
                port,
                node_type,
                highest,
                lowest,
            },
        ))
    })();
    let Some((name, entry)) = parsed else {
        return s.write_all(&[ALIVE2_X_RESP, 1, 0, 0, 0, 0]).await;
    };
    let creation = {
        let mut names = state.names.lock();
        if names.contains_key(&name) {
            None
        } else {
            names.insert(name.clone(), entry);
            Some(state.creation.fetch_add(1, Ordering::Relaxed).max(1))
        }
    };
    let Some(creation) = creation else {
        return s.write_all(&[ALIVE2_X_RESP, 1, 0, 0, 0, 0]).await;
    };
    let mut out = vec![ALIVE2_X_RESP, 0];
    out.extend_from_slice(&creation.to_be_bytes());
    s.write_all(&out).await?;
    // Registered until the node closes the connection.
    let mut sink = [0u8; 64];
    while let Ok(n) = s.read(&mut sink).await {
        if n == 0 {
            break;
        }
    }
    state.names.lock().remove(&name);
    Ok(())
}
