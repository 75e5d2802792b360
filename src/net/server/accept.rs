//! Accepting a connection: the accept loop of each listener, admission (a
//! slot, the address's claim), the connection's thread, and CLOSE for those
//! refused.

use std::io::Write;
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::conn::serve_camera;
use super::limits::spare_fd;
use super::*;

pub(super) fn accept_loop(
    shared: &Arc<Shared>,
    l: Listener,
    summaries: Option<std::sync::mpsc::Sender<Summary>>,
) {
    let mut spare = spare_fd();
    loop {
        let accepted = l.socket.accept();
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        match accepted {
            Ok((stream, peer)) => admit(shared, stream, peer, l.tls.clone(), summaries.clone()),
            Err(e) if e.raw_os_error() == Some(24) || e.raw_os_error() == Some(23) => {
                // EMFILE/ENFILE: free the spare, accept, CLOSE, take it back.
                drop(spare.take());
                if let Ok((s, peer)) = l.socket.accept() {
                    refuse(
                        shared,
                        &s,
                        Some(session::End::Refused(session::Refusal::MaxConnections)),
                        || format!("[{peer}] refused: out of file descriptors"),
                    );
                }
                spare = spare_fd();
                if spare.is_none() {
                    thread::sleep(Duration::from_millis(50));
                }
            }
            Err(e) => {
                log::warn!("accept failed: {e}");
                thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// CLOSE at once. `end`: counted here (None: the connection's thread counts
/// the summary it returns).
pub(super) fn refuse(
    shared: &Shared,
    stream: &TcpStream,
    end: Option<session::End>,
    why: impl FnOnce() -> String,
) {
    if let Some(end) = end {
        shared.metrics.ended(&end);
    }
    shared.refusals.warn(why);
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = (&*stream).write_all(&Frame::Close.to_vec());
    let _ = stream.shutdown(Shutdown::Both);
}

fn admit(
    shared: &Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    summaries: Option<std::sync::mpsc::Sender<Summary>>,
) {
    // One piece (over 80 lines): admission's steps in order (a slot, a
    // trusted proxy, the address, the thread); each refusal returns early
    // and the slot's Drop gives back what the earlier steps took.
    // Windows hands out sockets that inherit the listener's mode.
    let _ = stream.set_nonblocking(false);
    let stream = Arc::new(stream);
    // The count is checked and taken in one step (`Admission::take`), so
    // two listeners never both take the last slot.
    let admission = &shared.admission;
    let Some(taken) = admission.take(stream.clone()) else {
        return refuse(
            shared,
            &stream,
            Some(session::End::Refused(session::Refusal::MaxConnections)),
            || {
                format!(
                    "[{peer}] refused: {} connections open, all past their init packet (--max-connections)",
                    admission.max_connections()
                )
            },
        );
    };
    let slot = taken.slot;
    if let Some(id) = taken.evicted {
        Metrics::add(&shared.metrics.evicted_pre_init, 1);
        shared.refusals.warn(|| {
            format!(
                "connection {id} closed before its init packet to make room for {peer} (--max-connections {} full; cameras past their init are never closed)",
                admission.max_connections()
            )
        });
    }
    // Behind a load balancer only it may connect: a PROXY header from anyone
    // else could claim any camera's address. (The slot, dropped on return,
    // gives everything back.)
    if shared.proxy_protocol && !trusted_proxy(shared, peer.ip()) {
        return refuse(shared, &stream, Some(session::End::NotAllowed), || {
            format!("[{peer}] refused: not a trusted load balancer (--trusted-proxy; --proxy-protocol is on)")
        });
    }
    // Behind a load balancer the address is known only after the PROXY header.
    if !shared.proxy_protocol && !slot.claim_ip(peer.ip()) {
        return refuse(
            shared,
            &stream,
            Some(session::End::Refused(session::Refusal::MaxPerIp)),
            || {
                format!(
                    "[{peer}] refused: {} connections from {} already (--max-per-ip): {PER_IP_HINT}",
                    admission.max_per_ip(),
                    peer.ip()
                )
            },
        );
    }
    let spawned = thread::Builder::new()
        .name(format!("camera-{peer}"))
        .stack_size(CAMERA_STACK)
        .spawn({
            let shared = shared.clone();
            let stream = stream.clone();
            move || {
                // The slot goes back when this closure ends, however it ends
                // (and before the summary is out: whoever reads it may connect at once).
                let slot = slot;
                let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    serve_camera(&shared, &slot, stream, peer, tls)
                }));
                let summary = served.unwrap_or_else(|panic| {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".into());
                    Metrics::add(&shared.metrics.panics, 1);
                    log::error!("[{peer}] the camera's thread failed ({what}): this is a bug; its slot is given back");
                    Summary::ended(session::End::Internal(what))
                });
                drop(slot);
                shared.metrics.ended(&summary.end);
                if let session::End::NotACamera(why) = &summary.end {
                    shared.metrics.not_a_camera(why.kind());
                    // A bad PROXY header was logged as a refusal.
                    if !matches!(why, session::NotACamera::Proxy(_)) {
                        shared
                            .not_cameras
                            .warn(|| format!("[{peer}] not a camera: {why}"));
                    }
                }
                (shared.on_end)(&summary);
                if let Some(tx) = summaries {
                    let _ = tx.send(summary);
                }
            }
        });
    if let Err(e) = spawned {
        // The closure (and the slot in it) is dropped: the slot is back.
        log::error!("[{peer}] could not start a thread for the camera: {e}");
        let _ = (&*stream).write_all(&Frame::Close.to_vec());
    }
}

fn trusted_proxy(shared: &Shared, ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    if shared.trusted_proxies.is_empty() {
        ip.is_loopback()
    } else {
        shared.trusted_proxies.contains(&ip)
    }
}
