//! The EPMD client: register this node (ALIVE2), find a node's port (PORT_PLEASE2), list
//! names (NAMES).

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;
use crate::error::DistError;

/// A live registration: the node stays registered while this is kept.
#[derive(Debug)]
pub struct Registration {
    /// The connection epmd watches; dropping it unregisters the node.
    pub stream: TcpStream,
    /// The creation epmd assigned to this incarnation of the node.
    pub creation: u32,
}

/// Where a node listens, as epmd reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    /// Distribution port.
    pub port: u16,
    /// `77` normal or `72` hidden.
    pub node_type: u8,
    /// Highest protocol version supported.
    pub highest: u16,
    /// Lowest protocol version supported.
    pub lowest: u16,
}

async fn open(host: &str, port: u16) -> Result<TcpStream, DistError> {
    let s = TcpStream::connect((host, port))
        .await
        .map_err(DistError::io("connecting to epmd"))?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

async fn request(s: &mut TcpStream, req: &[u8]) -> Result<(), DistError> {
    let mut buf = Vec::with_capacity(req.len() + 2);
    buf.extend_from_slice(&(req.len() as u16).to_be_bytes());
    buf.extend_from_slice(req);
    s.write_all(&buf)
        .await
        .map_err(DistError::io("writing to epmd"))
}

/// Registers `alive` (the name before `@`) listening on `port`, on the epmd at
/// `127.0.0.1:epmd_port`.
pub async fn register(
    epmd_port: u16,
    alive: &str,
    port: u16,
    node_type: u8,
) -> Result<Registration, DistError> {
    let mut s = open("127.0.0.1", epmd_port).await?;
    let mut req = vec![ALIVE2_REQ];
    req.extend_from_slice(&port.to_be_bytes());
    req.push(node_type);
    req.push(0); // protocol: tcp/ip v4
    req.extend_from_slice(&6u16.to_be_bytes());
    req.extend_from_slice(&6u16.to_be_bytes());
    req.extend_from_slice(&(alive.len() as u16).to_be_bytes());
    req.extend_from_slice(alive.as_bytes());
    req.extend_from_slice(&0u16.to_be_bytes());
    request(&mut s, &req).await?;
    let tag = s
        .read_u8()
        .await
        .map_err(DistError::io("reading epmd reply"))?;
    let result = s
        .read_u8()
        .await
        .map_err(DistError::io("reading epmd reply"))?;
    let creation = match tag {
        ALIVE2_X_RESP => s.read_u32().await,
        ALIVE2_RESP => s.read_u16().await.map(u32::from),
        t => {
            return Err(DistError::Epmd(format!(
                "unexpected reply {t} to ALIVE2_REQ"
            )))
        }
    }
    .map_err(DistError::io("reading epmd reply"))?;
    if result != 0 {
        return Err(DistError::Epmd(format!(
            "registration of {alive:?} refused (result {result}): the name is taken by a running node"
        )));
    }
    Ok(Registration {
        stream: s,
        creation: creation.max(1),
    })
}

/// Asks the epmd on `host` where node `alive` listens; `None` when it is not registered.
pub async fn port_please(
    host: &str,
    epmd_port: u16,
    alive: &str,
) -> Result<Option<PortInfo>, DistError> {
    let mut s = open(host, epmd_port).await?;
    let mut req = vec![PORT_PLEASE2_REQ];
    req.extend_from_slice(alive.as_bytes());
    request(&mut s, &req).await?;
    let mut head = [0u8; 2];
    s.read_exact(&mut head)
        .await
        .map_err(DistError::io("reading epmd reply"))?;
    if head[0] != PORT2_RESP {
        return Err(DistError::Epmd(format!(
            "unexpected reply {} to PORT_PLEASE2_REQ",
            head[0]
        )));
    }
    if head[1] != 0 {
        return Ok(None);
    }
    let mut rest = [0u8; 8];
    s.read_exact(&mut rest)
        .await
        .map_err(DistError::io("reading epmd reply"))?;
    Ok(Some(PortInfo {
        port: u16::from_be_bytes([rest[0], rest[1]]),
        node_type: rest[2],
        highest: u16::from_be_bytes([rest[4], rest[5]]),
        lowest: u16::from_be_bytes([rest[6], rest[7]]),
    }))
}

/// The names registered on the epmd at `host`, with their ports.
pub async fn names(host: &str, epmd_port: u16) -> Result<Vec<(String, u16)>, DistError> {
    let mut s = open(host, epmd_port).await?;
    request(&mut s, &[NAMES_REQ]).await?;
    let mut all = Vec::new();
    s.read_to_end(&mut all)
        .await
        .map_err(DistError::io("reading epmd reply"))?;
    let text = String::from_utf8_lossy(all.get(4..).unwrap_or_default()).into_owned();
    Ok(text
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("name ")?;
            let (name, port) = rest.split_once(" at port ")?;
            Some((name.to_string(), port.trim().parse().ok()?))
        })
        .collect())
}
