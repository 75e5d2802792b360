//! Two servers in one process, with different settings, each keep their
//! own: their output folders, allow-lists, per-address limits, counters,
//! live boards and galleries. Nothing the server is configured with is
//! process-wide state (issue 27): `app` owns each value and hands it down.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use dashcam_server::codec::FileKind;
use dashcam_server::simulator::run_camera;
use dashcam_server::tools::gallery::Gallery;

#[test]
fn two_servers_in_one_process_keep_their_own_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let (out_a, out_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let (cam_a, cam_b) = (350612071913001u64, 350612071913002u64);
    // A serves only camera A; B serves only camera B, one link per address.
    let a = start(&out_a, |c| {
        c.session.allow = Some(HashSet::from([cam_a]));
    });
    let b = start(&out_b, |c| {
        c.session.allow = Some(HashSet::from([cam_b]));
        c.max_per_ip = 1;
    });
    let gallery_a = Gallery::start(&out_a);
    let gallery_b = Gallery::start(&out_b);
    let photo = write_file(tmp.path(), "p.jpg", &content(3000, 1));
    for (srv, imei, gallery) in [(&a, cam_a, &gallery_a), (&b, cam_b, &gallery_b)] {
        let mut cam = srv.sim(imei);
        cam.files = vec![(FileKind::PhotoFront, photo.clone())];
        assert!(run_camera(&cam).unwrap().complete);
        gallery.handle().unwrap().changed();
    }
    // Each camera is refused by the other server's allow-list.
    for (srv, imei) in [(&a, cam_b), (&b, cam_a)] {
        let mut cam = srv.sim(imei);
        cam.files = vec![(FileKind::PhotoFront, photo.clone())];
        cam.timeout = Duration::from_secs(2);
        let complete = run_camera(&cam).map(|r| r.complete).unwrap_or(false);
        assert!(!complete, "{imei} refused");
    }
    // Files: each in its own folder, none in the other's.
    assert_eq!(media(&out_a, cam_a).len(), 1);
    assert_eq!(media(&out_b, cam_b).len(), 1);
    assert!(media(&out_a, cam_b).is_empty() && media(&out_b, cam_a).is_empty());
    // Counters and boards: each its own.
    for (srv, mine, other) in [(&a, cam_a, cam_b), (&b, cam_b, cam_a)] {
        let files = dashcam_server::ops::metrics::Metrics::get(&srv.stop.metrics().files);
        assert_eq!(files, 1, "one file stored by each server");
        // The cameras each board saw store a file.
        let board = srv.stop.board().snapshot();
        let seen: Vec<u64> = board["recent"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| !c["last_file"].is_null())
            .filter_map(|c| c["imei"].as_str()?.parse().ok())
            .collect();
        assert!(seen.contains(&mine) && !seen.contains(&other), "{seen:?}");
    }
    // Galleries: each lists its own camera; stopping one leaves the other.
    for (out, mine, other) in [(&out_a, cam_a, cam_b), (&out_b, cam_b, cam_a)] {
        let index = out.join("index.html");
        wait_for("each gallery lists its camera", || {
            std::fs::read_to_string(&index).is_ok_and(|t| t.contains(&mine.to_string()))
        });
        let text = std::fs::read_to_string(&index).unwrap();
        assert!(!text.contains(&other.to_string()), "{}", index.display());
    }
    gallery_a.stop(Duration::from_secs(10));
    let mut cam = b.sim(cam_b);
    let photo2 = write_file(tmp.path(), "q.jpg", &content(4000, 2));
    cam.files = vec![(FileKind::PhotoRear, photo2)];
    assert!(run_camera(&cam).unwrap().complete);
    let handle_b = gallery_b.handle().unwrap();
    handle_b.changed();
    wait_for("gallery B still rebuilds after A stopped", || {
        std::fs::read_to_string(out_b.join("index.html")).is_ok_and(|t| t.contains("photor"))
    });
    // A stop is prompt even while a handle is still held.
    let stopping = std::time::Instant::now();
    gallery_b.stop(Duration::from_secs(10));
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "{:?}",
        stopping.elapsed()
    );
    drop(handle_b);
}
