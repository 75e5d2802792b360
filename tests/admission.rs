//! Let no one in: idle and slow sockets cannot lock cameras out, one address
//! cannot take every slot, and TLS carries a whole session byte-exact.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use dashcam_server::codec::{FileKind, InitPacket};
use dashcam_server::session::{End, Timeout};
use dashcam_server::simulator::run_camera;
use dashcam_server::simulator::Trust;

const IMEI: u64 = 350612071913857;

/// A TCP connection from a chosen loopback source address.
fn connect_from(src: [u8; 4], to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    let from = SocketAddr::from((src, 0));
    s.bind(&from.into())?;
    s.connect_timeout(&to.into(), Duration::from_secs(5))?;
    Ok(s.into())
}

#[test]
fn idle_and_slow_sockets_do_not_keep_a_camera_out() {
    // Both ends of every socket are in this process: 1,120 sockets take
    // 2,240 descriptors. Under a lower limit the test uses fewer, and says so.
    let limit = dashcam_server::net::server::raise_fd_limit().unwrap_or(u64::MAX);
    let n_idle = 1100u32.min((limit.saturating_sub(600) / 2) as u32).max(100);
    if n_idle < 1100 {
        eprintln!("the open-files limit is {limit}: {n_idle} idle sockets instead of 1,100");
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let init_timeout = Duration::from_secs(3);
    let srv = start(&out, |c| {
        c.max_connections = None;
        c.max_per_ip = 32;
        c.session.init_timeout = init_timeout;
    });
    // 1,100 idle sockets from 40 addresses (28 each, under the per-address limit).
    let mut idle = Vec::new();
    for i in 0..n_idle {
        let src = [127, 0, 1, (i % 40) as u8 + 2];
        idle.push(connect_from(src, srv.addr).expect("idle connect"));
    }
    // 20 slow-loris sockets: one byte of an init packet every 4 seconds.
    let mut slow: Vec<TcpStream> = (0..20)
        .map(|_| connect_from([127, 0, 2, 1], srv.addr).unwrap())
        .collect();
    for s in &mut slow {
        s.write_all(&[0]).unwrap();
    }
    let opened = Instant::now();
    let bytes = content(20_000, 1);
    let mut cam = srv.sim(IMEI);
    cam.files = vec![(
        FileKind::PhotoFront,
        write_file(tmp.path(), "p.jpg", &bytes),
    )];
    let r = run_camera(&cam).unwrap();
    let waited = opened.elapsed();
    assert!(r.complete, "{r:?}");
    assert_eq!(std::fs::read(&media(&out, IMEI)[0]).unwrap(), bytes);
    eprintln!("camera served in {waited:?} with {n_idle} idle and 20 slow-loris sockets open");
    assert!(
        waited < init_timeout,
        "served only after {waited:?}: the idle sockets had to time out first"
    );
    // The idle and the slow ones get CLOSE at the init timeout.
    for s in idle.iter_mut().step_by(97).chain(slow.iter_mut().take(3)) {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        assert_eq!(got, [0, 0, 0, 0]);
    }
    let mut timed_out = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    let all = n_idle as usize + 20;
    while timed_out < all && Instant::now() < deadline {
        if let Ok(s) = srv.summaries.recv_timeout(Duration::from_secs(5)) {
            timed_out += (s.end == End::TimedOut(Timeout::Init)) as usize;
        }
    }
    assert_eq!(timed_out, all);
}

#[test]
fn one_address_cannot_take_every_slot() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |c| c.max_per_ip = 3);
    let hog: Vec<TcpStream> = (0..3)
        .map(|_| connect_from([127, 0, 3, 7], srv.addr).unwrap())
        .collect();
    wait_for("the three connections", || srv.connections() == 3);
    let mut fourth = connect_from([127, 0, 3, 7], srv.addr).unwrap();
    fourth
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let began = Instant::now();
    let mut got = Vec::new();
    let _ = fourth.read_to_end(&mut got);
    assert_eq!(got, [0, 0, 0, 0], "CLOSE at once");
    assert!(began.elapsed() < Duration::from_secs(5));
    // Another address is served meanwhile.
    let mut cam = srv.sim(IMEI);
    cam.files = vec![(
        FileKind::PhotoFront,
        write_file(tmp.path(), "p.jpg", b"photo"),
    )];
    assert!(run_camera(&cam).unwrap().complete);
    drop(hog);
}

/// A self-signed certificate for localhost and 127.0.0.1, as PEM files.
fn test_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    (cert, key)
}

/// A server with TLS on one port and plain TCP on another.
struct TlsBeside {
    summaries: std::sync::mpsc::Receiver<dashcam_server::net::driver::Summary>,
    plain: SocketAddr,
    tls: SocketAddr,
    stop: dashcam_server::net::server::StopHandle,
    thread: std::thread::JoinHandle<anyhow::Result<()>>,
}

fn tls_beside_plain(out: &Path, cert: &Path, key: &Path) -> TlsBeside {
    let mut cfg = config(out);
    cfg.tls = Some((cert.to_path_buf(), key.to_path_buf()));
    cfg.tls_port = Some(0);
    let mut server = dashcam_server::net::server::Server::bind(cfg).unwrap();
    let summaries = server.summaries();
    let addrs = server.addrs();
    let stop = server.stop_handle();
    let thread = std::thread::spawn(move || server.run());
    TlsBeside {
        summaries,
        plain: addrs.iter().find(|a| !a.1).unwrap().0,
        tls: addrs.iter().find(|a| a.1).unwrap().0,
        stop,
        thread,
    }
}

#[test]
fn a_tls_session_is_byte_exact_and_plain_tcp_still_works_beside_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (cert, key) = test_cert(tmp.path());
    let TlsBeside {
        summaries,
        plain,
        tls,
        stop,
        thread: t,
    } = tls_beside_plain(&out, &cert, &key);

    let bytes = content(300_000, 7);
    let file = write_file(tmp.path(), "v.h265", &bytes);
    for (addr, trust, imei) in [
        (tls, Some(Trust::Ca(cert.clone())), IMEI),
        (tls, Some(Trust::Insecure), IMEI + 1),
        (plain, None, IMEI + 2),
    ] {
        let mut cam = dashcam_server::simulator::SimConfig::new(addr.to_string(), imei);
        cam.files = vec![(FileKind::VideoFront, file.clone())];
        cam.tls = trust;
        cam.corrupt_packets = vec![30];
        cam.max_write = 3000;
        let r = run_camera(&cam).unwrap();
        assert!(r.complete, "{r:?}");
        let s = summaries.recv_timeout(Duration::from_secs(20)).unwrap();
        assert_eq!(s.end, End::Completed);
        assert_eq!(
            std::fs::read(&media(&out, imei)[0]).unwrap(),
            bytes,
            "{addr}"
        );
    }
    // Plain TCP to the TLS port is not a camera: refused, not stored.
    let mut raw = TcpStream::connect(tls).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = raw.write_all(
        &InitPacket {
            protocol_id: 5,
            imei: 1,
            settings: 0x0400_0000,
        }
        .encode(),
    );
    let mut sink = Vec::new();
    let _ = raw.read_to_end(&mut sink);
    assert!(!matches!(
        summaries.recv_timeout(Duration::from_secs(10)).unwrap().end,
        End::Completed
    ));
    assert!(!out.join("1").exists());
    stop.stop();
    t.join().unwrap().unwrap();
}

/// An independent TLS client: `openssl s_client` (CI installs openssl).
#[test]
#[cfg_attr(
    not(have_openssl),
    ignore = "needs openssl on PATH (apt install openssl)"
)]
fn openssl_s_client_gets_close_for_an_init_that_offers_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (cert, key) = test_cert(tmp.path());
    let srv = start(&out, |c| c.tls = Some((cert.clone(), key)));
    let mut child = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-quiet",
            "-ign_eof",
            "-connect",
            &srv.addr.to_string(),
        ])
        .arg("-CAfile")
        .arg(&cert)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let init = InitPacket {
        protocol_id: 5,
        imei: IMEI,
        settings: 0x4000_0000,
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&init.encode())
        .unwrap();
    let mut got = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut got).unwrap();
    let _ = child.wait();
    assert_eq!(got, [0, 0, 0, 0], "CLOSE through TLS");
    let s = srv.summary();
    assert_eq!((s.imei, s.end), (Some(IMEI), End::Completed));
}

/// Sockets that trickle what comes before the init packet, one byte at a time.
fn tricklers(
    to: SocketAddr,
    n: usize,
    first: &[u8],
) -> (
    Vec<TcpStream>,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let socks: Vec<TcpStream> = (0..n)
        .map(|i| connect_from([127, 0, 4, (i % 4) as u8 + 1], to).unwrap())
        .collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clones: Vec<TcpStream> = socks.iter().map(|s| s.try_clone().unwrap()).collect();
    let first = first.to_vec();
    let done = stop.clone();
    std::thread::spawn(move || {
        let mut i = 0;
        while !done.load(std::sync::atomic::Ordering::Relaxed) && i < first.len() {
            for s in &mut clones {
                let _ = s.write_all(&first[i..i + 1]);
            }
            i += 1;
            std::thread::sleep(Duration::from_millis(400));
        }
    });
    (socks, stop)
}

/// 128 TLS handshakes trickled a byte at a time hold their slots only until
/// --init-timeout: the one deadline covers the handshake too. With the slots
/// full of them, a good TLS camera is served once the deadline has passed.
#[test]
fn trickling_tls_handshakes_are_cut_at_the_init_deadline() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (cert, key) = test_cert(tmp.path());
    let srv = start(&out, |c| {
        c.tls = Some((cert.clone(), key));
        c.max_connections = Some(129);
        c.max_per_ip = 1000;
        c.session.init_timeout = Duration::from_secs(2);
    });
    // A TLS ClientHello's first bytes (a handshake record).
    let hello = [
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03,
    ];
    let (mut socks, stop) = tricklers(srv.addr, 128, &hello);
    wait_for("128 trickling handshakes", || srv.connections() == 128);
    let began = Instant::now();
    // Each is closed at its deadline, though it keeps sending.
    for s in socks.iter_mut().step_by(16) {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    }
    let closed_after = began.elapsed();
    assert!(
        closed_after < Duration::from_secs(4),
        "closed after {closed_after:?}"
    );
    wait_for("the slots to come back", || srv.connections() == 0);
    let mut cam = srv.sim(IMEI);
    cam.tls = Some(Trust::Ca(cert));
    cam.files = vec![(
        FileKind::PhotoFront,
        write_file(tmp.path(), "p.jpg", &content(5000, 1)),
    )];
    let t = Instant::now();
    assert!(run_camera(&cam).unwrap().complete);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "served in {:?}",
        t.elapsed()
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// The same for PROXY headers trickled a byte at a time (from a trusted load
/// balancer's address); and a peer that is not a trusted load balancer is
/// refused at once.
#[test]
fn trickling_proxy_headers_are_cut_and_untrusted_peers_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |c| {
        c.proxy_protocol = true;
        c.max_connections = Some(101);
        c.session.init_timeout = Duration::from_secs(2);
    });
    let (_socks, stop) = tricklers(
        srv.addr,
        100,
        b"PROXY TCP4 127.0.0.9 127.0.0.1 5000 5000\r\n",
    );
    wait_for("100 trickling headers", || srv.connections() == 100);
    let began = Instant::now();
    wait_for("the slots to come back", || srv.connections() == 0);
    assert!(
        began.elapsed() < Duration::from_secs(4),
        "{:?}",
        began.elapsed()
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    // A good camera through the (trusted, loopback) balancer, served.
    let mut raw = connect_from([127, 0, 0, 1], srv.addr).unwrap();
    raw.write_all(b"PROXY TCP4 127.0.0.9 127.0.0.1 5000 5000\r\n")
        .unwrap();
    raw.write_all(
        &InitPacket {
            protocol_id: 5,
            imei: IMEI,
            settings: 0,
        }
        .encode(),
    )
    .unwrap();
    let mut got = Vec::new();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = raw.read_to_end(&mut got);
    assert_eq!(got, [0, 0, 0, 0], "nothing offered: CLOSE, after a session");
    let ours = (0..101)
        .map(|_| srv.summary())
        .find(|s| s.imei.is_some())
        .expect("the camera's session");
    assert_eq!(ours.imei, Some(IMEI));
}

#[test]
fn with_proxy_protocol_only_trusted_load_balancers_may_connect() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |c| {
        c.proxy_protocol = true;
        c.trusted_proxies = vec!["127.0.0.7".parse().unwrap()];
    });
    let mut other = connect_from([127, 0, 0, 8], srv.addr).unwrap();
    other
        .write_all(b"PROXY TCP4 10.0.0.1 127.0.0.1 5000 5000\r\n")
        .unwrap();
    other
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut got = Vec::new();
    let _ = other.read_to_end(&mut got);
    assert_eq!(got, [0, 0, 0, 0], "refused with CLOSE");
    let mut lb = connect_from([127, 0, 0, 7], srv.addr).unwrap();
    lb.write_all(b"PROXY TCP4 10.0.0.1 127.0.0.1 5000 5000\r\n")
        .unwrap();
    lb.write_all(
        &InitPacket {
            protocol_id: 5,
            imei: IMEI,
            settings: 0,
        }
        .encode(),
    )
    .unwrap();
    lb.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let _ = lb.read_to_end(&mut got);
    assert_eq!(got, [0, 0, 0, 0]);
    let s = srv.summary();
    assert_eq!(
        s.imei,
        Some(IMEI),
        "the trusted balancer's camera had a session"
    );
}

/// The README's certificate recipe (deploy/make-tls-certs.sh) gives a server
/// certificate that `simulate --tls --tls-ca ca.pem` accepts by name.
#[test]
#[cfg_attr(
    not(have_openssl),
    ignore = "needs openssl on PATH (apt install openssl)"
)]
fn the_readmes_certificate_recipe_works() {
    let tmp = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/make-tls-certs.sh");
    let o = std::process::Command::new("sh")
        .arg(&script)
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = tmp.path().join("out");
    let srv = start(&out, |c| {
        c.tls = Some((tmp.path().join("server.pem"), tmp.path().join("server.key")));
    });
    let mut cam = srv.sim(IMEI);
    cam.server = format!("localhost:{}", srv.addr.port());
    cam.tls = Some(Trust::Ca(tmp.path().join("ca.pem")));
    cam.files = vec![(
        FileKind::PhotoFront,
        write_file(tmp.path(), "p.jpg", &content(2000, 3)),
    )];
    let r = run_camera(&cam).unwrap();
    assert!(r.complete, "{r:?}");
}

/// A camera with TLS on a plain port, and one without TLS on a TLS port, are
/// told (in the log and the session's end) which one this port speaks.
#[test]
fn each_port_says_whether_it_speaks_tls() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (cert, key) = test_cert(tmp.path());
    let TlsBeside {
        summaries,
        plain,
        tls,
        stop,
        thread: t,
    } = tls_beside_plain(&out, &cert, &key);
    let photo = write_file(tmp.path(), "p.jpg", &content(2000, 4));
    for (addr, trust, want) in [
        (plain, Some(Trust::Ca(cert.clone())), "speaks plain TCP"),
        (tls, None, "this port speaks TLS"),
    ] {
        let mut cam = dashcam_server::simulator::SimConfig::new(addr.to_string(), IMEI);
        cam.tls = trust;
        cam.timeout = Duration::from_secs(10);
        cam.files = vec![(FileKind::PhotoFront, photo.clone())];
        let _ = run_camera(&cam);
        let s = summaries.recv_timeout(Duration::from_secs(20)).unwrap();
        assert!(s.end.to_string().contains(want), "{}", s.end);
    }
    stop.stop();
    t.join().unwrap().unwrap();
}

/// Attackers that keep 4x the table busy before their init packet (plain
/// bytes and TLS handshakes trickled, reconnecting as soon as they are
/// closed) do not keep cameras out: a new connection evicts the oldest one
/// still before its init, so a good camera, plain or TLS, is served within
/// a second, again and again; cameras past their init are never evicted.
#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one scenario read top to bottom: its steps share the server and camera they set up"
)]
fn a_table_full_of_pre_init_connections_never_locks_a_camera_out() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (cert, key) = test_cert(tmp.path());
    let mut cfg = config(&out);
    cfg.tls = Some((cert.clone(), key));
    cfg.tls_port = Some(0);
    cfg.max_connections = Some(100);
    cfg.max_per_ip = 10_000;
    let server = dashcam_server::net::server::Server::bind(cfg).unwrap();
    let addrs = server.addrs();
    let stop = server.stop_handle();
    let plain = addrs.iter().find(|a| !a.1).unwrap().0;
    let tls = addrs.iter().find(|a| a.1).unwrap().0;
    let thread = std::thread::spawn(move || server.run());
    // A camera past its init (it offers a photo, then says nothing more):
    // it must never be the one evicted.
    let mut held = TcpStream::connect(plain).unwrap();
    held.write_all(
        &InitPacket {
            protocol_id: 5,
            imei: IMEI + 100,
            settings: 0x4400_0000,
        }
        .encode(),
    )
    .unwrap();
    held.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut asked = [0u8; 4];
    held.read_exact(&mut asked).unwrap();
    // 400 attackers, half on each port: TLS ClientHello bytes on the TLS
    // port, the start of an init on the plain one, a byte every 200 ms.
    let hello: &[u8] = &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC];
    let init: &[u8] = &[0x00, 0x0F, 0x00, 0x01, 0x02, 0x03];
    let done = Arc::new(AtomicBool::new(false));
    let reconnects = Arc::new(AtomicU64::new(0));
    let attackers: Vec<_> = (0..4)
        .map(|t| {
            let (done, reconnects) = (done.clone(), reconnects.clone());
            let (to, first) = if t % 2 == 0 {
                (tls, hello.to_vec())
            } else {
                (plain, init.to_vec())
            };
            std::thread::spawn(move || {
                let src = [127, 0, 5, t as u8 + 1];
                let mut socks: Vec<(TcpStream, usize)> = (0..100)
                    .filter_map(|_| connect_from(src, to).ok().map(|s| (s, 0)))
                    .collect();
                for (s, _) in &socks {
                    s.set_nonblocking(true).unwrap();
                }
                while !done.load(Ordering::Relaxed) {
                    for (s, i) in socks.iter_mut() {
                        let mut probe = [0u8; 64];
                        let closed = matches!((&*s).read(&mut probe), Ok(0))
                            || (&*s).write_all(&first[*i % first.len()..][..1]).is_err();
                        *i += 1;
                        if closed {
                            if let Ok(n) = connect_from(src, to) {
                                n.set_nonblocking(true).unwrap();
                                *s = n;
                                *i = 0;
                                reconnects.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let photo = write_file(tmp.path(), "p.jpg", &content(5000, 7));
    let mut worst = Duration::ZERO;
    for round in 0..6 {
        let mut cam = dashcam_server::simulator::SimConfig::new(
            if round % 2 == 0 { plain } else { tls }.to_string(),
            IMEI + round,
        );
        if round % 2 == 1 {
            cam.tls = Some(Trust::Ca(cert.clone()));
        }
        cam.files = vec![(FileKind::PhotoFront, photo.clone())];
        cam.timeout = Duration::from_secs(10);
        let t = Instant::now();
        let r = run_camera(&cam).unwrap();
        let took = t.elapsed();
        assert!(r.complete, "round {round}: {r:?}");
        assert!(
            took < Duration::from_secs(1),
            "round {round}: served in {took:?}"
        );
        worst = worst.max(took);
    }
    eprintln!(
        "6 cameras served, the slowest in {worst:?}; {} attacker reconnects",
        reconnects.load(Ordering::Relaxed)
    );
    assert!(
        reconnects.load(Ordering::Relaxed) > 0,
        "the attackers were never evicted: the table was not full"
    );
    held.set_nonblocking(true).unwrap();
    let mut b = [0u8; 256];
    // (The rest of the server's request may still be unread.)
    match held.read(&mut b) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Ok(n) if n > 0 && b[..n] != [0, 0, 0, 0] => {}
        other => panic!("the camera past its init was closed: {other:?}"),
    }
    held.set_nonblocking(false).unwrap();
    held.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    assert!(
        !matches!(held.read(&mut b), Ok(0)),
        "the camera past its init was closed"
    );
    done.store(true, Ordering::Relaxed);
    for a in attackers {
        a.join().unwrap();
    }
    stop.stop();
    thread.join().unwrap().unwrap();
}
