//! Distribution links: one row per connected node (bytes and frames each way, bytes
//! waiting to be written), published as `orbit_dist_*{peer}` series.

use serde::Serialize;

/// One distribution link's figures.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LinkStats {
    /// The peer node's name.
    pub peer: String,
    /// Hidden connection (not in `nodes()`).
    pub hidden: bool,
    /// Bytes waiting to be written.
    pub queued_bytes: usize,
    /// Frames received.
    pub frames_in: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Frames sent.
    pub frames_out: u64,
    /// Bytes sent.
    pub bytes_out: u64,
}

/// The links of this node (none when distribution is not started).
pub fn read() -> Vec<LinkStats> {
    let Some(node) = orbit_dist::Node::current() else {
        return Vec::new();
    };
    let visible = node.list().into_iter().map(|n| (n, false));
    let hidden = node.list_hidden().into_iter().map(|n| (n, true));
    visible
        .chain(hidden)
        .filter_map(|(peer, hidden)| {
            let c = node.connection(&peer)?;
            let t = c.traffic();
            Some(LinkStats {
                peer,
                hidden,
                queued_bytes: c.queued(),
                frames_in: t.frames_in,
                bytes_in: t.bytes_in,
                frames_out: t.frames_out,
                bytes_out: t.bytes_out,
            })
        })
        .collect()
}

/// Publishes `orbit_dist_queued_bytes`, `orbit_dist_bytes_in_total`,
/// `orbit_dist_bytes_out_total`, `orbit_dist_messages_in_total`,
/// `orbit_dist_messages_out_total`, each labelled `peer`.
pub fn publish(links: &[LinkStats]) {
    for l in links {
        let peer = l.peer.clone();
        metrics::gauge!("orbit_dist_queued_bytes", "peer" => peer.clone())
            .set(l.queued_bytes as f64);
        metrics::counter!("orbit_dist_bytes_in_total", "peer" => peer.clone()).absolute(l.bytes_in);
        metrics::counter!("orbit_dist_bytes_out_total", "peer" => peer.clone())
            .absolute(l.bytes_out);
        metrics::counter!("orbit_dist_messages_in_total", "peer" => peer.clone())
            .absolute(l.frames_in);
        metrics::counter!("orbit_dist_messages_out_total", "peer" => peer).absolute(l.frames_out);
    }
}
