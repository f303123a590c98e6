//! libcluster's Gossip heartbeat packet, byte for byte (`Cluster.Strategy.Gossip`).
//!
//! Without a secret a packet is `"heartbeat::" <> term_to_binary(%{node: Node})`.
//! With a secret it is `IV (16 random bytes) || AES-256-CBC(key = SHA-256(secret), IV,
//! PKCS#7-padded heartbeat)`: CBC without a MAC, exactly as libcluster 3.5 does, so
//! the secret keeps strangers from steering a node's connects but does not authenticate
//! the sender the way a MAC would (the distribution cookie still does).
//!
//! Contract: [`decode`] takes any bytes from the network and never panics; it returns
//! the announced node name or a [`Rejection`] saying why the packet was dropped.
//! Differences from libcluster: the term is decoded with bounded limits (libcluster calls
//! `binary_to_term/1` on whatever decrypts); a padding byte of 0 is refused (libcluster
//! accepts it as "no padding", which no sender produces); the node name must look like
//! `name@host` (libcluster tries to connect to any atom).

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use orbit_term::{DecodeLimits, Term};
use sha2::{Digest, Sha256};

type Enc = cbc::Encryptor<aes::Aes256>;
type Dec = cbc::Decryptor<aes::Aes256>;

/// The prefix of every heartbeat (inside the ciphertext when a secret is set).
pub const PREFIX: &[u8] = b"heartbeat::";

/// The largest packet considered; longer ones are dropped unread. A heartbeat for a
/// 255-character node name is under 300 bytes encrypted.
pub const MAX_PACKET: usize = 2048;

/// Why a received packet was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Larger than [`MAX_PACKET`].
    TooLarge(usize),
    /// No secret is set and the packet does not start with `heartbeat::`.
    NotHeartbeat,
    /// A secret is set and the packet is not IV + whole AES blocks.
    BadLength(usize),
    /// The padding after decryption is not PKCS#7 (a wrong secret, almost always).
    BadPadding,
    /// The term after the prefix is not valid ETF.
    BadTerm(String),
    /// The term is not `%{node: atom}`.
    NotNodeMap,
    /// The node atom is not of the form `name@host`.
    BadNodeName(String),
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::TooLarge(n) => write!(f, "packet of {n} bytes is larger than {MAX_PACKET}"),
            Rejection::NotHeartbeat => write!(f, "not a heartbeat (no `heartbeat::` prefix)"),
            Rejection::BadLength(n) => {
                write!(
                    f,
                    "encrypted packet of {n} bytes is not IV + whole AES blocks"
                )
            }
            Rejection::BadPadding => write!(f, "bad padding after decryption (wrong secret?)"),
            Rejection::BadTerm(e) => write!(f, "bad term: {e}"),
            Rejection::NotNodeMap => write!(f, "term is not %{{node: atom}}"),
            Rejection::BadNodeName(n) => write!(f, "node name {n:?} is not name@host"),
        }
    }
}

/// The AES-256 key libcluster derives from a secret: SHA-256 of its bytes.
pub fn key(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// The plaintext heartbeat for `node`: `"heartbeat::" <> term_to_binary(%{node: node})`.
pub fn heartbeat(node: &str) -> Vec<u8> {
    let term = Term::map(vec![(Term::atom("node"), Term::atom(node))]);
    let mut out = PREFIX.to_vec();
    term.encode_into(&mut out);
    out
}

/// The packet to send for `node`: the plain heartbeat, or, with a secret, IV and the
/// encrypted heartbeat under the given `iv` (use fresh random bytes for each packet).
pub fn encode(node: &str, secret: Option<&str>, iv: [u8; 16]) -> Vec<u8> {
    let plain = heartbeat(node);
    match secret {
        None => plain,
        Some(s) => {
            let ct = Enc::new(&key(s).into(), &iv.into()).encrypt_padded_vec_mut::<Pkcs7>(&plain);
            let mut out = iv.to_vec();
            out.extend_from_slice(&ct);
            out
        }
    }
}

/// The node a received packet announces, or why it was dropped. Never panics.
pub fn decode(packet: &[u8], secret: Option<&str>) -> Result<String, Rejection> {
    if packet.len() > MAX_PACKET {
        return Err(Rejection::TooLarge(packet.len()));
    }
    let plain;
    let body = match secret {
        None => packet,
        Some(s) => {
            if packet.len() < 32 || !packet.len().is_multiple_of(16) {
                return Err(Rejection::BadLength(packet.len()));
            }
            let (iv, ct) = packet.split_at(16);
            let iv: [u8; 16] = iv
                .try_into()
                .map_err(|_| Rejection::BadLength(packet.len()))?;
            plain = Dec::new(&key(s).into(), &iv.into())
                .decrypt_padded_vec_mut::<Pkcs7>(ct)
                .map_err(|_| Rejection::BadPadding)?;
            &plain[..]
        }
    };
    let rest = body.strip_prefix(PREFIX).ok_or(Rejection::NotHeartbeat)?;
    let limits = DecodeLimits {
        max_depth: 8,
        max_atoms: 64,
        max_uncompressed_size: 4096,
        max_big_int_bytes: 64,
    };
    let term = Term::decode_with(rest, &limits).map_err(|e| Rejection::BadTerm(e.to_string()))?;
    let node = match &term {
        Term::Map(entries) if entries.len() == 1 => term.map_get(&Term::atom("node")),
        _ => None,
    }
    .and_then(Term::as_atom)
    .ok_or(Rejection::NotNodeMap)?;
    match node.split_once('@') {
        Some((name, host)) if !name.is_empty() && !host.is_empty() && !host.contains('@') => {
            Ok(node.to_string())
        }
        _ => Err(Rejection::BadNodeName(node.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    const IV: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

    #[test]
    fn key_matches_the_reference() {
        assert_eq!(
            key("somepassword").to_vec(),
            hex("42a9798b99d4afcec9995e47a1d246b98ebc96be7a732323eee39d924006ee1d")
        );
    }

    #[test]
    fn encrypted_packet_matches_the_reference_vector() {
        let want = hex(
            "000102030405060708090a0b0c0d0e0f 0293fcf646d248542d82eea283216c73
             87beea77366350e4a31a703058e77b1a 523aefc2979ea844b239b06e4acd1f3b",
        );
        // The vector was made by OTP 25, which writes ATOM_EXT (100); decoding it must work.
        assert_eq!(
            decode(&want, Some("somepassword")),
            Ok("a@127.0.0.1".into())
        );
        // Encrypting OTP 25's plaintext under the vector's IV gives the vector's bytes.
        let plain = hex("6865617274626561743a3a 837400000001 6400046e6f6465
             64000b61403132372e302e302e31");
        let ct = Enc::new(&key("somepassword").into(), &IV.into())
            .encrypt_padded_vec_mut::<Pkcs7>(&plain);
        assert_eq!([IV.to_vec(), ct].concat(), want);
        // What we send (SMALL_ATOM_UTF8 atoms, as OTP 26+) round-trips.
        let ours = encode("a@127.0.0.1", Some("somepassword"), IV);
        assert_eq!(ours.len(), 64);
        assert_eq!(
            decode(&ours, Some("somepassword")),
            Ok("a@127.0.0.1".into())
        );
    }

    #[test]
    fn plain_packet_layout() {
        let p = encode("a@127.0.0.1", None, IV);
        assert!(p.starts_with(b"heartbeat::\x83t\x00\x00\x00\x01"));
        assert_eq!(decode(&p, None), Ok("a@127.0.0.1".into()));
        // OTP 25's exact bytes.
        let otp25 = hex("6865617274626561743a3a 837400000001 6400046e6f6465
             64000b61403132372e302e302e31");
        assert_eq!(decode(&otp25, None), Ok("a@127.0.0.1".into()));
    }

    #[test]
    fn hostile_packets_are_rejected() {
        let good = encode("a@h", Some("s"), IV);
        // A wrong key gives valid-looking padding about 1 time in 256; the prefix then fails.
        assert!(matches!(
            decode(&good, Some("wrong")),
            Err(Rejection::BadPadding | Rejection::NotHeartbeat)
        ));
        assert_eq!(
            decode(&good[..40], Some("s")),
            Err(Rejection::BadLength(40))
        );
        assert_eq!(decode(b"hello", None), Err(Rejection::NotHeartbeat));
        assert_eq!(decode(&[0u8; 4096], None), Err(Rejection::TooLarge(4096)));
        let not_atom = [
            PREFIX,
            &Term::map(vec![(Term::atom("node"), Term::Int(1))]).encode(),
        ]
        .concat();
        assert_eq!(decode(&not_atom, None), Err(Rejection::NotNodeMap));
        let not_map = [PREFIX, &Term::atom("a@b").encode()].concat();
        assert_eq!(decode(&not_map, None), Err(Rejection::NotNodeMap));
        let two = [
            PREFIX,
            &Term::map(vec![
                (Term::atom("node"), Term::atom("a@b")),
                (Term::atom("x"), Term::Int(1)),
            ])
            .encode(),
        ]
        .concat();
        assert_eq!(decode(&two, None), Err(Rejection::NotNodeMap));
        assert_eq!(
            decode(&encode("nohost", None, IV), None),
            Err(Rejection::BadNodeName("nohost".into()))
        );
        assert!(matches!(
            decode(b"heartbeat::\x83\x6c\xff\xff\xff\xff", None),
            Err(Rejection::BadTerm(_))
        ));
        let deep = [
            PREFIX,
            &(0..50)
                .fold(Term::atom("x"), |t, _| Term::tuple(vec![t]))
                .encode(),
        ]
        .concat();
        assert!(matches!(decode(&deep, None), Err(Rejection::BadTerm(_))));
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..3000)) {
            let _ = decode(&bytes, None);
            let _ = decode(&bytes, Some("secret"));
            let mut p = PREFIX.to_vec();
            p.extend_from_slice(&bytes);
            let _ = decode(&p, None);
        }

        #[test]
        fn mutated_heartbeats_never_panic(i in 0usize..64, b in proptest::num::u8::ANY, cut in 0usize..64) {
            let mut p = encode("node@127.0.0.1", None, IV);
            let n = p.len();
            p[i % n] = b;
            p.truncate(n - cut.min(n));
            let _ = decode(&p, None);
        }
    }
}
