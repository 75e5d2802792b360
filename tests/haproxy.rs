//! Past one box: three instances behind HAProxy with the project's own
//! `deploy/haproxy.cfg` (ports set here). Every camera is stored once, a
//! camera that drops resumes on the same instance, and the sidecars carry the
//! camera's address through the PROXY protocol. Runs when haproxy is
//! installed (CI installs it).

mod common;

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use dashcam_server::codec::FileKind;
use dashcam_server::simulator::run_camera;

struct Haproxy(Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn instance_of(outs: &[PathBuf], imei: u64) -> Vec<usize> {
    (0..outs.len())
        .filter(|&i| !media(&outs[i], imei).is_empty())
        .collect()
}

/// HAProxy with `cfg`, once its front (`front`) takes connections.
fn start_haproxy(cfg: &Path, front: u16) -> (Haproxy, SocketAddr) {
    let haproxy = Haproxy(
        Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let front_addr: SocketAddr = format!("127.0.0.1:{front}").parse().unwrap();
    let began = Instant::now();
    while TcpStream::connect(front_addr).is_err() {
        assert!(
            began.elapsed() < Duration::from_secs(20),
            "haproxy did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (haproxy, front_addr)
}

#[test]
#[cfg_attr(
    not(have_haproxy),
    ignore = "needs haproxy on PATH (apt install haproxy)"
)]
fn three_instances_behind_haproxy_pin_each_camera_and_see_its_address() {
    let tmp = tempfile::tempdir().unwrap();
    let outs: Vec<PathBuf> = (0..3).map(|i| tmp.path().join(format!("out{i}"))).collect();
    let servers: Vec<TestServer> = outs
        .iter()
        .map(|o| start(o, |c| c.proxy_protocol = true))
        .collect();
    let front = free_port();
    let cfg = tmp.path().join("haproxy.cfg");
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    std::fs::write(&cfg, haproxy_config(front, &addrs)).unwrap();
    let (_haproxy, front_addr) = start_haproxy(&cfg, front);
    let camera_ip = "127.0.0.5".parse().unwrap();
    // 30 cameras at once, from their own address.
    let photo = content(5000, 1);
    let photo_path = write_file(tmp.path(), "p.jpg", &photo);
    let first = 350000000000100u64;
    let handles: Vec<_> = (0..30u64)
        .map(|i| {
            let mut cam =
                dashcam_server::simulator::SimConfig::new(front_addr.to_string(), first + i);
            cam.timeout = Duration::from_secs(30);
            cam.source_ip = Some(camera_ip);
            cam.files = vec![(FileKind::PhotoFront, photo_path.clone())];
            std::thread::spawn(move || run_camera(&cam).unwrap())
        })
        .collect();
    for h in handles {
        let r = h.join().unwrap();
        assert!(r.complete, "{r:?}");
    }
    let mut used = [0usize; 3];
    for i in 0..30 {
        let at = instance_of(&outs, first + i);
        assert_eq!(at.len(), 1, "camera {i} stored on {at:?}");
        used[at[0]] += 1;
        let f = &media(&outs[at[0]], first + i)[0];
        assert_eq!(std::fs::read(f).unwrap(), photo);
        let sc = sidecar_of(f);
        assert!(
            sc.remote_addr.starts_with("127.0.0.5:"),
            "the camera's address, not HAProxy's: {}",
            sc.remote_addr
        );
    }
    assert!(
        used.iter().filter(|&&n| n > 0).count() >= 2,
        "all on one instance: {used:?}"
    );

    // A camera drops mid-file, comes back through HAProxy, and resumes on the
    // instance that holds its partial.
    let video = content(40 * 1024 + 77, 2);
    let imei = 350000000000999u64;
    let mut cam = dashcam_server::simulator::SimConfig::new(front_addr.to_string(), imei);
    cam.timeout = Duration::from_secs(30);
    cam.source_ip = Some(camera_ip);
    cam.files = vec![(
        FileKind::VideoFront,
        write_file(tmp.path(), "v.h265", &video),
    )];
    cam.drop_after = Some(12);
    assert!(!run_camera(&cam).unwrap().complete);
    let with_partial: Vec<usize> = (0..3)
        .filter(|&i| outs[i].join(imei.to_string()).join(".partial").exists())
        .collect();
    assert_eq!(with_partial.len(), 1, "{with_partial:?}");
    wait_for("the dropped link to end", || {
        servers.iter().all(|s| s.connections() == 0)
    });
    cam.drop_after = None;
    let r = run_camera(&cam).unwrap();
    assert!(r.complete, "{r:?}");
    assert_eq!(r.resumes.len(), 1);
    assert!(
        r.resumes[0].1 > 1,
        "resumed, not started over: {:?}",
        r.resumes
    );
    assert_eq!(
        instance_of(&outs, imei),
        with_partial,
        "resumed on another instance"
    );
    let f = &media(&outs[with_partial[0]], imei)[0];
    assert_eq!(std::fs::read(f).unwrap(), video);
    assert_eq!(
        sidecar_of(f).resumed_from_byte,
        Some((r.resumes[0].1 as u64 - 1) * 1024)
    );

    // Straight to an instance, without the PROXY header: refused.
    let mut raw = Raw::connect(servers[0].addr);
    raw.init(1, &[FileKind::PhotoFront]);
    assert_eq!(raw.rest(), [0, 0, 0, 0]);
}
