//! Certificates and TLS servers for tests: a CA made for the occasion (by rcgen), server
//! certificates it signs for given host names or IP addresses, and an HTTPS server for an axum
//! router (tokio-rustls), so tests check TLS against real handshakes rather than flags.

use std::{path::PathBuf, sync::Arc};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, server::TlsStream};

/// A certificate authority that exists for one test run.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// Where [`TestCa::bundle_path`] writes the CA's certificate.
    dir: tempfile::TempDir,
}

/// A server's certificate (signed by a [`TestCa`]) and its private key, in PEM.
#[derive(Clone)]
pub struct ServerCertificate {
    pub certificate_pem: String,
    pub key_pem: String,
}

impl TestCa {
    /// A new CA; `name` is its common name (tell two apart in a failed handshake's message).
    pub fn new(name: &str) -> anyhow::Result<TestCa> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        Ok(TestCa {
            issuer,
            dir: tempfile::tempdir().context("a directory for the CA bundle")?,
        })
    }

    /// The CA's certificate, PEM.
    pub fn certificate_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A PEM file holding the CA's certificate (a CA bundle), removed with the CA.
    pub fn bundle_path(&self) -> anyhow::Result<PathBuf> {
        let path = self.dir.path().join("ca.pem");
        std::fs::write(&path, self.certificate_pem())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// A server certificate for `names`: DNS names (`localhost`) or IP addresses (`127.0.0.1`).
    pub fn server_certificate(&self, names: &[&str]) -> anyhow::Result<ServerCertificate> {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let mut params = CertificateParams::new(names.clone())?;
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate()?;
        let certificate = params.signed_by(&key, &self.issuer)?;
        Ok(ServerCertificate {
            certificate_pem: certificate.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

impl ServerCertificate {
    /// A rustls server configuration presenting this certificate.
    pub fn server_config(&self) -> anyhow::Result<rustls::ServerConfig> {
        let chain = CertificateDer::pem_slice_iter(self.certificate_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        Ok(rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?)
    }
}

/// Serves `router` over HTTPS on 127.0.0.1, any port, presenting `certificate`; returns the
/// base URL (`https://127.0.0.1:PORT`). A client that refuses the certificate only ends its
/// own connection.
pub async fn serve_https(
    router: axum::Router,
    certificate: &ServerCertificate,
) -> anyhow::Result<String> {
    let tcp = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("https://{}", tcp.local_addr()?);
    let address = tcp.local_addr()?;
    let acceptor = TlsAcceptor::from(Arc::new(certificate.server_config()?));
    let (handshaken, connections) = tokio::sync::mpsc::channel(64);
    tokio::spawn(accept_connections(tcp, acceptor, handshaken));
    let listener = TlsListener {
        connections,
        address,
    };
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(url)
}

/// How long one client may take over its TLS handshake before its connection is dropped.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Accepts TCP connections and does each one's TLS handshake in its own task (bounded by
/// [`HANDSHAKE_TIMEOUT`]), so a stalled client never holds up the connections after it; each
/// connection whose handshake succeeded goes to `handshaken`.
async fn accept_connections(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshaken: tokio::sync::mpsc::Sender<(TlsStream<TcpStream>, std::net::SocketAddr)>,
) {
    while !handshaken.is_closed() {
        let Ok((stream, address)) = tcp.accept().await else {
            // Out of file descriptors, most likely: let some close.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let acceptor = acceptor.clone();
        let handshaken = handshaken.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => {
                    // The server has stopped when nobody receives: the connection just closes.
                    let _ = handshaken.send((stream, address)).await;
                }
                Ok(Err(error)) => tracing::debug!(%error, "a TLS handshake failed"),
                Err(_) => tracing::debug!(%address, "a TLS handshake timed out"),
            }
        });
    }
}

/// Hands axum each connection once its TLS handshake succeeded.
struct TlsListener {
    connections: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, std::net::SocketAddr)>,
    address: std::net::SocketAddr,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.connections.recv().await {
            Some(connection) => connection,
            // The accepting task never ends while this receiver lives.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.address)
    }
}
