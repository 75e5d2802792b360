//! The simulator's TLS client (rustls, the `ring` provider). It reads and
//! writes from two threads, so one `ClientConnection` is shared between them.
//! The "accept any certificate" verifier lives here, never in the server.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// How the simulator checks the server's certificate.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Trust certificates signed by this CA (PEM).
    Ca(std::path::PathBuf),
    /// Accept any certificate (test certificates only).
    Insecure,
}

#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
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
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

pub fn client_config(trust: &Trust) -> Result<Arc<rustls::ClientConfig>> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?;
    let cfg = match trust {
        Trust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider())))
            .with_no_client_auth(),
        Trust::Ca(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(path)
                .with_context(|| format!("reading the CA {}", path.display()))?
            {
                roots.add(c.with_context(|| format!("reading the CA {}", path.display()))?)?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(Arc::new(cfg))
}

/// One TLS client connection shared by a reading and a writing thread: each
/// side uses its own clone of the socket and takes the lock only to move
/// bytes through rustls, never while waiting on the network.
#[derive(Clone)]
pub struct SharedTls {
    conn: Arc<Mutex<rustls::ClientConnection>>,
    sock: Arc<TcpStream>,
}

impl SharedTls {
    /// Connects TLS over `sock` and completes the handshake.
    pub fn connect(
        sock: TcpStream,
        host: &str,
        cfg: Arc<rustls::ClientConfig>,
    ) -> Result<SharedTls> {
        let name = ServerName::try_from(host.to_string())
            .with_context(|| format!("{host} is not a valid TLS server name"))?;
        let conn = rustls::ClientConnection::new(cfg, name)?;
        let tls = SharedTls {
            conn: Arc::new(Mutex::new(conn)),
            sock: Arc::new(sock),
        };
        tls.sock.set_read_timeout(Some(Duration::from_secs(30)))?;
        loop {
            let handshaking = tls.conn.lock().unwrap().is_handshaking();
            if !handshaking {
                break;
            }
            tls.flush_tls()?;
            if tls.conn.lock().unwrap().is_handshaking() {
                tls.pull()?;
            }
        }
        tls.flush_tls()?;
        tls.sock.set_read_timeout(None)?;
        Ok(tls)
    }

    pub fn socket(&self) -> &TcpStream {
        &self.sock
    }

    fn flush_tls(&self) -> io::Result<()> {
        let mut conn = self.conn.lock().unwrap();
        while conn.wants_write() {
            conn.write_tls(&mut &*self.sock)?;
        }
        Ok(())
    }

    /// Reads TLS records from the socket (blocking, without the lock).
    fn pull(&self) -> io::Result<usize> {
        let mut buf = [0u8; 16 * 1024];
        let n = (&*self.sock).read(&mut buf)?;
        if n == 0 {
            return Ok(0);
        }
        let mut conn = self.conn.lock().unwrap();
        let mut slice = &buf[..n];
        while !slice.is_empty() {
            conn.read_tls(&mut slice)?;
            conn.process_new_packets().map_err(io::Error::other)?;
        }
        while conn.wants_write() {
            conn.write_tls(&mut &*self.sock)?;
        }
        Ok(n)
    }
}

impl Read for SharedTls {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            {
                let mut conn = self.conn.lock().unwrap();
                match conn.reader().read(out) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
            if self.pull()? == 0 {
                return Ok(0);
            }
        }
    }
}

impl Write for SharedTls {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut conn = self.conn.lock().unwrap();
        let n = conn.writer().write(buf)?;
        while conn.wants_write() {
            conn.write_tls(&mut &*self.sock)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_tls()
    }
}
