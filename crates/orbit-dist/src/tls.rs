//! TLS distribution, wire-compatible with OTP's `-proto_dist inet_tls`.
//!
//! Contract (`lib/ssl/src/inet_tls_dist.erl`, OTP 25):
//! - EPMD is unchanged: the node listens on an ordinary TCP port and registers it as
//!   usual; a peer cannot tell from EPMD whether a node speaks TLS;
//! - TLS comes first, right after the TCP connect/accept; the initiator sends the host
//!   part of the peer's node name as SNI (an IP address host is verified against the
//!   certificate's IP address names);
//! - inside TLS the handshake messages are framed with a **4-byte** length (the TLS socket
//!   is `{packet,4}` from the start), not the 2-byte length of plain TCP; after the
//!   handshake the frames are the usual `[Len:32][Payload]`;
//! - TLS 1.2 and 1.3 are both offered: a BEAM node offers only TLS 1.2 unless its
//!   `versions` option says otherwise.
//!
//! [`TlsOptions`] holds this node's certificate chain and key, the CA roots it trusts,
//! whether peers must present a trusted certificate (`verify_peer`, on by default: mutual
//! TLS, as `verify verify_peer` + `fail_if_no_peer_cert true` on the BEAM) and whether a
//! plain-TCP peer is refused (`required`, on by default). Where it differs from OTP: with
//! `required(false)` the node also accepts plain-TCP peers on the same port (it tells
//! them apart by the first byte: a TLS record starts with 22, a plain `send_name` with a
//! zero length byte); it always dials with TLS. OTP has no such mixed mode. With
//! `verify_peer(false)` the node neither asks for nor checks client certificates and, as
//! a BEAM client with `verify_none`, does not check the server's certificate.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use tokio::net::TcpStream;

use crate::error::DistError;

/// The certificate and key types of [`TlsOptions`] (`rustls-pki-types`).
pub use rustls::pki_types;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

/// The first byte of a TLS handshake record; a plain distribution handshake starts with
/// the high byte of a 2-byte length, 0 for any real `send_name`.
const TLS_HANDSHAKE_RECORD: u8 = 22;

/// How a node protects its distribution connections with TLS (see the module doc).
pub struct TlsOptions {
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    roots: Vec<CertificateDer<'static>>,
    verify_peer: bool,
    required: bool,
}

impl Clone for TlsOptions {
    fn clone(&self) -> Self {
        TlsOptions {
            certs: self.certs.clone(),
            key: self.key.clone_key(),
            roots: self.roots.clone(),
            verify_peer: self.verify_peer,
            required: self.required,
        }
    }
}

impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("TlsOptions")
            .field("certs", &self.certs.len())
            .field("roots", &self.roots.len())
            .field("verify_peer", &self.verify_peer)
            .field("required", &self.required)
            .finish_non_exhaustive()
    }
}

impl TlsOptions {
    /// TLS with this certificate chain (leaf first) and key, trusting certificates that
    /// chain to `ca_roots`; peers must present a trusted certificate and plain-TCP peers
    /// are refused.
    pub fn new(
        cert_chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        ca_roots: Vec<CertificateDer<'static>>,
    ) -> TlsOptions {
        TlsOptions {
            certs: cert_chain,
            key,
            roots: ca_roots,
            verify_peer: true,
            required: true,
        }
    }

    /// [`new`](Self::new) from PEM files, as `-ssl_dist_optfile`'s `certfile`, `keyfile`
    /// and `cacertfile`.
    pub fn from_pem_files(
        certfile: &Path,
        keyfile: &Path,
        cacertfile: &Path,
    ) -> Result<TlsOptions, DistError> {
        let certs = pem_certs(certfile)?;
        let key = PrivateKeyDer::from_pem_file(keyfile).map_err(|e| {
            DistError::Tls(format!(
                "cannot read a private key from {}: {e}",
                keyfile.display()
            ))
        })?;
        Ok(TlsOptions::new(certs, key, pem_certs(cacertfile)?))
    }

    /// Whether both sides must present a certificate that chains to the CA roots
    /// (default true). False: as a BEAM node with `verify verify_none` (no certificate is
    /// checked; the connection is encrypted but not authenticated beyond the cookie).
    pub fn verify_peer(mut self, on: bool) -> TlsOptions {
        self.verify_peer = on;
        self
    }

    /// Whether plain-TCP peers are refused (default true). False: they are accepted on
    /// the same port too (outgoing connections always use TLS).
    pub fn required(mut self, on: bool) -> TlsOptions {
        self.required = on;
        self
    }

    /// Builds the rustls configurations (done once, when the node starts).
    pub(crate) fn build(&self) -> Result<Tls, DistError> {
        let bad = |what: &str, e: rustls::Error| DistError::Tls(format!("{what}: {e}"));
        // The ring provider (deprecated in 0.23.48 only for lacking post-quantum key
        // exchange, which BEAM peers do not offer either): aws-lc-rs would need cmake.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: &[&rustls::SupportedProtocolVersion] =
            &[&rustls::version::TLS13, &rustls::version::TLS12];
        let mut roots = RootCertStore::empty();
        for c in &self.roots {
            roots
                .add(c.clone())
                .map_err(|e| bad("a CA root certificate is not usable", e))?;
        }
        if self.verify_peer && roots.is_empty() {
            return Err(DistError::Tls(
                "verify_peer needs at least one CA root certificate (or verify_peer(false))".into(),
            ));
        }
        let roots = Arc::new(roots);
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(|e| bad("TLS versions", e))?;
        let server = if self.verify_peer {
            let v = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                .build()
                .map_err(|e| DistError::Tls(format!("client certificate verifier: {e}")))?;
            server.with_client_cert_verifier(v)
        } else {
            server.with_no_client_auth()
        }
        .with_single_cert(self.certs.clone(), self.key.clone_key())
        .map_err(|e| bad("the certificate and key do not form a usable identity", e))?;

        let client = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(|e| bad("TLS versions", e))?;
        let client = if self.verify_peer {
            client.with_root_certificates(roots)
        } else {
            client
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
        }
        .with_client_auth_cert(self.certs.clone(), self.key.clone_key())
        .map_err(|e| bad("the certificate and key do not form a usable identity", e))?;
        Ok(Tls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
            connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
            required: self.required,
        })
    }
}

fn pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, DistError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            DistError::Tls(format!(
                "cannot read certificates from {}: {e}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(DistError::Tls(format!(
            "{} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// The built TLS side of a node.
#[derive(Clone)]
pub(crate) struct Tls {
    acceptor: tokio_rustls::TlsAcceptor,
    connector: tokio_rustls::TlsConnector,
    required: bool,
}

/// An authenticated-or-not byte stream to a peer: plain TCP or TLS over TCP.
pub(crate) enum Stream {
    /// Plain TCP (handshake framed with 2-byte lengths).
    Tcp(TcpStream),
    /// TLS (handshake framed with 4-byte lengths).
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>),
}

impl Stream {
    /// The width of the handshake messages' length prefix on this stream.
    pub(crate) fn framing(&self) -> crate::handshake::Framing {
        match self {
            Stream::Tcp(_) => crate::handshake::Framing::Tcp,
            Stream::Tls(_) => crate::handshake::Framing::Tls,
        }
    }
}

impl Tls {
    /// Wraps an accepted socket: TLS when the peer starts a TLS handshake; a plain peer
    /// is refused when TLS is required.
    pub(crate) async fn accept(&self, s: TcpStream) -> Result<Stream, DistError> {
        let mut first = [0u8; 1];
        let n = s
            .peek(&mut first)
            .await
            .map_err(DistError::io("reading from an incoming connection"))?;
        if n == 0 || first[0] != TLS_HANDSHAKE_RECORD {
            if self.required {
                return Err(DistError::handshake(
                    "incoming connection",
                    "the peer speaks plain TCP and this node requires TLS \
                     (start it with -proto_dist inet_tls, or TlsOptions::required(false) here)",
                ));
            }
            return Ok(Stream::Tcp(s));
        }
        let tls = self.acceptor.accept(s).await.map_err(|e| {
            DistError::handshake("incoming connection", format!("TLS handshake failed: {e}"))
        })?;
        Ok(Stream::Tls(Box::new(tls.into())))
    }

    /// Starts TLS on a socket connected to `peer` (`name@host`), with `host` as SNI.
    pub(crate) async fn connect(&self, s: TcpStream, peer: &str) -> Result<Stream, DistError> {
        let host = peer.split_once('@').map_or(peer, |(_, h)| h);
        let name = ServerName::try_from(host.to_string()).map_err(|e| {
            DistError::handshake(peer, format!("{host:?} is not a TLS server name: {e}"))
        })?;
        let tls = self
            .connector
            .connect(name, s)
            .await
            .map_err(|e| DistError::handshake(peer, format!("TLS handshake failed: {e}")))?;
        Ok(Stream::Tls(Box::new(tls.into())))
    }
}

/// A server certificate check that accepts any certificate (signatures are still
/// checked): `verify_peer(false)`, as a BEAM client with `verify_none`.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
