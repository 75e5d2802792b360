//! One connection's life before and around its session: every byte before
//! the init packet within one deadline (a PROXY header, a TLS handshake),
//! then the driver.

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::accept::refuse;
use super::*;
use crate::net::deadline::Deadline;

/// What a passed init deadline says.
const INIT_PASSED: &str = "--init-timeout passed before the init packet";

/// A socket shared between a camera's thread and the registry that closes it
/// at stop: `Read`/`Write` through the `Arc`, so TLS can own it too.
pub(super) struct SharedSocket(Arc<TcpStream>);

impl std::io::Read for SharedSocket {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl Write for SharedSocket {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (&*self.0).write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        (&*self.0).flush()
    }
}

/// A TLS stream is a link like a socket: its read timeout is the socket's.
impl Link for rustls::StreamOwned<rustls::ServerConnection, SharedSocket> {
    fn set_read_timeout(&mut self, timeout: Duration) -> std::io::Result<()> {
        self.sock.0.set_read_timeout(Some(timeout))
    }
}

pub(super) fn serve_camera(
    shared: &Shared,
    slot: &Slot,
    stream: Arc<TcpStream>,
    peer: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Summary {
    let _ = stream.set_nodelay(true);
    let read_timeout = shared
        .session
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .read_timeout;
    let _ = stream.set_write_timeout(Some(read_timeout));
    // One deadline for every byte before the init packet: PROXY header, TLS
    // handshake and the init packet itself.
    let accepted = Instant::now();
    let until = accepted + shared.init_timeout;
    let mut peer = peer;
    if shared.proxy_protocol {
        let header =
            crate::net::proxy::read_header(&mut Deadline::new(&stream, until, INIT_PASSED));
        let refused = Summary::ended;
        match header {
            Ok(Some(real)) => {
                if !slot.claim_ip(real.ip()) {
                    refuse(shared, &stream, None, || {
                        format!(
                            "[{real} via {peer}] refused: {} connections from {} already (--max-per-ip): {PER_IP_HINT}",
                            shared.admission.max_per_ip(),
                            real.ip()
                        )
                    });
                    return refused(session::End::Refused(session::Refusal::MaxPerIp));
                }
                log::debug!("[{real}] through the load balancer at {peer}");
                peer = real;
            }
            Ok(None) => {
                let _ = stream.shutdown(Shutdown::Both);
                return refused(session::End::LinkLost(
                    "load balancer check (PROXY LOCAL)".into(),
                ));
            }
            Err(e) => {
                refuse(shared, &stream, None, || {
                    format!("[{peer}] refused: {e} (--proxy-protocol)")
                });
                return refused(session::End::NotACamera(session::NotACamera::Proxy(
                    e.to_string(),
                )));
            }
        }
    }
    log::debug!(
        "[{peer}] connected{}",
        if tls.is_some() { " (TLS)" } else { "" }
    );
    // A camera keeps one link: when it reconnects (a cellular drop the
    // server has not noticed yet), the older link is closed so its partial
    // is freed for resume.
    let on_camera = |imei: u64| {
        if shared.admission.one_link_per_camera(slot, imei) > 0 {
            log::info!("[{imei}] reconnected: closing its older link");
        }
    };
    let id = slot.id();
    let config = shared
        .session
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let env = Env {
        config: &config,
        storage: &shared.storage,
        shutdown: &shared.stopping,
        on_stored: &*shared.on_stored,
        on_camera: &on_camera,
        metrics: &shared.metrics,
        fast: &shared.fast,
        board: &shared.board,
        live: shared.live.as_deref(),
    };
    match tls {
        None => driver::run(&env, &*stream, peer.to_string(), id, accepted),
        Some(cfg) => serve_tls(&env, stream, peer, cfg, id, (accepted, until)),
    }
}

/// Kept out of line: a TLS connection's state is large, and a plain camera's
/// thread should not carry its stack frame.
#[inline(never)]
fn serve_tls(
    env: &Env<'_>,
    stream: Arc<TcpStream>,
    peer: SocketAddr,
    cfg: Arc<rustls::ServerConfig>,
    id: u64,
    (accepted, until): (Instant, Instant),
) -> Summary {
    let mut conn = match rustls::ServerConnection::new(cfg) {
        Ok(c) => c,
        Err(e) => {
            log::warn!("[{peer}] TLS setup failed: {e}");
            let _ = stream.shutdown(Shutdown::Both);
            return Summary::ended(session::End::NotACamera(session::NotACamera::Tls(
                e.to_string(),
            )));
        }
    };
    // The handshake, byte by byte if it must, within the init deadline.
    let mut io = Deadline::new(&stream, until, INIT_PASSED);
    while conn.is_handshaking() {
        // Why the handshake cannot go on, if it cannot.
        let failure: Option<String> = if conn.wants_write() {
            conn.write_tls(&mut io).err().map(|e| e.to_string())
        } else {
            match conn.read_tls(&mut io) {
                Ok(0) => Some("the peer closed the link during the handshake".into()),
                Ok(_) => conn.process_new_packets().err().map(|e| match e {
                    // A camera's init packet starts 00 00: plain TCP on the TLS port.
                    rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => {
                        format!("the peer speaks plain TCP, and this port speaks TLS: turn TLS on in the camera, or use the server's plain port ({e})")
                    }
                    e => e.to_string(),
                }),
                Err(e) => Some(e.to_string()),
            }
        };
        if let Some(why) = failure {
            // Tell the peer why (a TLS alert), when rustls has one to send.
            let _ = conn.write_tls(&mut io);
            let _ = stream.shutdown(Shutdown::Both);
            return Summary::ended(session::End::NotACamera(session::NotACamera::Tls(why)));
        }
    }
    // The socket's own timeouts back for the session.
    drop(io);
    let tls_stream = rustls::StreamOwned::new(conn, SharedSocket(stream.clone()));
    driver::run(env, tls_stream, format!("{peer} (TLS)"), id, accepted)
}
