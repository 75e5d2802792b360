//! The gallery with 10,000 stored files of one camera: build time and page
//! sizes. Thumbnails are there already (a rebuild's usual case: each file's
//! thumbnail is made once, by ffmpeg, when it first appears). Run:
//! `cargo bench --bench gallery` (median of 5 builds).

use std::time::{Duration, Instant};

use dashcam_server::codec::FileKind;
use dashcam_server::net::server::{Server, ServerConfig};
use dashcam_server::simulator::{run_camera, SimConfig};

const FILES: usize = 10_000;
const IMEI: u64 = 350612071913857;

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("out");
    let mut cfg = ServerConfig::new(&root);
    cfg.bind = "127.0.0.1".into();
    cfg.port = 0;
    cfg.storage.min_free_bytes = 0;
    let server = Server::bind(cfg).unwrap();
    let addr = server.local_addr();
    let stop = server.stop_handle();
    let t = std::thread::spawn(move || server.run());
    let photo = tmp.path().join("seed.jpg");
    std::fs::write(
        &photo,
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/samples/photo.jpg")).unwrap(),
    )
    .unwrap();
    let mut cam = SimConfig::new(addr.to_string(), IMEI);
    cam.files = vec![(FileKind::PhotoFront, photo)];
    assert!(run_camera(&cam).unwrap().complete);
    stop.stop();
    t.join().unwrap().unwrap();
    let dir = root.join(IMEI.to_string());
    let seed = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "jpg"))
        .unwrap();
    let text = std::fs::read_to_string(seed.with_extension("json")).unwrap();
    let thumbs = root.join(".thumbs").join(IMEI.to_string());
    std::fs::create_dir_all(&thumbs).unwrap();
    let jpg = std::fs::read(&seed).unwrap();
    for i in 0..FILES {
        let stem = format!("20260101_{:06}_photof", i);
        std::fs::write(dir.join(format!("{stem}.json")), &text).unwrap();
        std::fs::write(dir.join(format!("{stem}.jpg")), &jpg).unwrap();
        std::fs::write(thumbs.join(format!("{stem}.jpg")), &jpg).unwrap();
    }
    let mut times = Vec::new();
    for _ in 0..5 {
        let began = Instant::now();
        let n = dashcam_server::tools::gallery::build(&root).unwrap();
        times.push(began.elapsed());
        assert_eq!(n, FILES + 1);
    }
    times.sort();
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let pages: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "html"))
        .collect();
    let biggest = pages.iter().map(|p| size(p)).max().unwrap();
    println!(
        "gallery of {} files (one camera), median of 5 builds: {:?}\n\
         index.html: {} KiB; {} page(s) in all, the biggest {} KiB",
        FILES + 1,
        times[2],
        size(&root.join("index.html")) / 1024,
        pages.len(),
        biggest / 1024
    );
    let _: Duration = times[0];
}
