//! A restart with 10,000 stored files: how long the server takes to start,
//! and how long a camera's first file takes right after, for a camera with
//! nothing stored and for the camera whose folder holds the 10,000 (its
//! de-duplication list is seeded from the index in the start-up pass that
//! checks it, then completed from one listing of its folder), and an hourly
//! `--keep-days` sweep over the same archive. Run: `cargo bench --bench restart` (medians of 5 restarts).

use std::path::Path;
use std::time::{Duration, Instant};

use dashcam_server::codec::FileKind;
use dashcam_server::net::server::{Server, ServerConfig};
use dashcam_server::simulator::{run_camera, SimConfig};

const FILES: usize = 10_000;
const BIG: u64 = 350000000000001;

fn fill(root: &Path) {
    // One real stored file, then its sidecar copied 10,000 times.
    let (srv, _) = serve(root);
    let photo = root.join("seed.jpg");
    std::fs::write(&photo, vec![7u8; 2000]).unwrap();
    let mut cam = SimConfig::new(srv.to_string(), BIG);
    cam.files = vec![(FileKind::PhotoFront, photo)];
    assert!(run_camera(&cam).unwrap().complete);
    let dir = root.join(BIG.to_string());
    let json = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .unwrap();
    let text = std::fs::read_to_string(&json).unwrap();
    // Each file has its line in the index, as a server that stored it wrote.
    let mut index = std::fs::OpenOptions::new()
        .append(true)
        .open(root.join("downloads.jsonl"))
        .unwrap();
    for i in 0..FILES {
        let stem = format!("20260101_{:06}_photof", i);
        // Each its own SHA-256, so none is a duplicate of another.
        let sha = format!("{:064x}", i as u128 * 0x9E37_79B9_7F4A_7C15 + 1);
        let body = text.replacen(
            &text[text.find("\"sha256\": \"").unwrap() + 11..][..64],
            &sha,
            1,
        );
        let mut line: serde_json::Value = serde_json::from_str(&body).unwrap();
        line["path"] = format!("{BIG}/{stem}.jpg").into();
        std::io::Write::write_all(&mut index, format!("{line}\n").as_bytes()).unwrap();
        std::fs::write(dir.join(format!("{stem}.json")), body).unwrap();
        std::fs::write(dir.join(format!("{stem}.jpg")), [0u8; 16]).unwrap();
    }
}

fn serve(root: &Path) -> (std::net::SocketAddr, Duration) {
    let mut cfg = ServerConfig::new(root);
    cfg.bind = "127.0.0.1".into();
    cfg.port = 0;
    cfg.storage.min_free_bytes = 0;
    let began = Instant::now();
    let server = Server::bind(cfg).unwrap();
    let addr = server.local_addr();
    std::thread::spawn(move || server.run());
    (addr, began.elapsed())
}

fn first_file(addr: std::net::SocketAddr, imei: u64, root: &Path, seed: u8) -> Duration {
    let photo = root.join(format!("p{imei}-{seed}.jpg"));
    std::fs::write(&photo, vec![seed; 3000]).unwrap();
    let mut cam = SimConfig::new(addr.to_string(), imei);
    cam.files = vec![(FileKind::PhotoRear, photo)];
    let began = Instant::now();
    assert!(run_camera(&cam).unwrap().complete);
    began.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("out");
    fill(&root);
    let (mut starts, mut other, mut own) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..5u8 {
        // A restart: a new server on the same folder (the old one keeps its
        // port; a fresh one is bound each time).
        let (addr, start) = serve(&root);
        starts.push(start);
        other.push(first_file(
            addr,
            350000000000100 + run as u64,
            tmp.path(),
            run,
        ));
        own.push(first_file(addr, BIG, tmp.path(), 100 + run));
    }
    // An hourly --keep-days sweep over the same archive when nothing is old
    // enough to go (the usual hour).
    let long_ago = std::time::SystemTime::UNIX_EPOCH;
    let sweeps: Vec<Duration> = (0..5)
        .map(|_| {
            let began = Instant::now();
            let (n, _) = dashcam_server::storage::retention::remove_older_than(
                &root,
                long_ago,
                false,
                |_| false,
            );
            assert_eq!(n, 0);
            began.elapsed()
        })
        .collect();
    println!(
        "restart with {FILES} stored files (one camera), medians of 5 on this machine:\n\
         server start (bind, recovery, sweep): {:?}\n\
         first file of another camera right after: {:?}\n\
         first file of the camera with the {FILES} files right after: {:?}\n\
         a --keep-days sweep with nothing to remove: {:?}",
        median(starts),
        median(other),
        median(own),
        median(sweeps)
    );
}
