//! Lose nothing: a stop at every step of publishing, symlinks planted where the
//! server writes, partials that do not match, a full disk, duplicates.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use dashcam_server::codec::{crc16, Family, FileKind};
use dashcam_server::session::{CrcCheck, End, FileRecord, Flow, OpenFile, Unit};
use dashcam_server::simulator::run_camera;
use dashcam_server::storage::StoreError;
use dashcam_server::storage::{FileSpec, PublishStep, Storage, StorageConfig};

const IMEI: u64 = 350612071913857;

fn cfg() -> StorageConfig {
    StorageConfig {
        min_free_bytes: 0,
        ..StorageConfig::default()
    }
}

fn open_file(total: u32) -> OpenFile {
    OpenFile {
        spec: FileSpec::from_path(b"/mnt/sd/mdas9/video/0001.mp4"),
        unit: Unit::Bytes,
        total,
        meta_timestamp_ms: None,
    }
}

fn record(open: &OpenFile, data: &[u8]) -> FileRecord {
    FileRecord {
        spec: open.spec.clone(),
        family: Family::Adas,
        flow: Flow::Path,
        unit: Unit::Bytes,
        start_total: open.total,
        start_field: 0,
        protocol_id: 5,
        metadata: None,
        crc_errors: 0,
        convention: None,
        check: CrcCheck {
            from: 0,
            crc: crc16(0, data),
        },
        resumed_from: None,
        data_frames: 1,
    }
}

/// Storage whose partials together stay under `cap` bytes.
fn capped(root: &Path, cap: u64) -> Storage {
    Storage::open(
        root,
        StorageConfig {
            max_partial_bytes: cap,
            ..cfg()
        },
    )
    .unwrap()
}

fn index_lines(root: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(root.join("downloads.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every index line is whole JSON"))
        .collect()
}

fn under_partial(root: &Path) -> Vec<PathBuf> {
    all_files(root)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".partial"))
        .collect()
}

/// Stops a publish before each of its steps, restarts storage (the recovery
/// pass), and checks the folder holds one of the two allowed results.
#[test]
fn a_stop_at_every_publish_step_leaves_the_partial_or_the_whole_result() {
    let data = content(1_500_000, 1);
    let mut outcomes = Vec::new();
    for step in PublishStep::ALL {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("out");
        let open = open_file(data.len() as u32);
        {
            let hook: dashcam_server::storage::FaultHook = Arc::new(move |s| s == step);
            let st = Storage::open_with(&root, cfg(), Some(hook)).unwrap();
            let mut p = st.begin(IMEI, &open).unwrap();
            for c in data.chunks(1000) {
                p.write_at(p.stored(), c).unwrap();
            }
            let err = p.finish(&record(&open, &data), "test").unwrap_err();
            assert!(format!("{err:#}").contains("injected"), "{step:?}: {err:#}");
        }
        // A new start: recovery runs.
        let st = Storage::open(&root, cfg()).unwrap();
        let stored = media(&root, IMEI);
        let lines = index_lines(&root);
        let outcome = if stored.is_empty() {
            // The resumable partial: nothing published, and it resumes.
            assert!(lines.is_empty(), "{step:?}: index line without a file");
            let jsons: Vec<_> = all_files(&root.join(IMEI.to_string()))
                .into_iter()
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect();
            assert!(jsons.is_empty(), "{step:?}: sidecar without a file");
            let mut p = st.begin(IMEI, &open).unwrap();
            // Kept: all but the last byte; resumed one unit (1 KiB) earlier,
            // so the camera sends that unit again and it is compared.
            let kept = data.len() as u64 - 1;
            assert_eq!(p.stored(), kept - 1024, "{step:?}: partial not resumable");
            p.write_at(p.stored(), &data[kept as usize - 1024..])
                .unwrap();
            p.finish(&record(&open, &data), "test").unwrap();
            "partial, resumed"
        } else {
            "published"
        };
        // Either way, now: the whole result and nothing else.
        let stored = media(&root, IMEI);
        assert_eq!(stored.len(), 1, "{step:?}");
        assert_eq!(std::fs::read(&stored[0]).unwrap(), data, "{step:?}");
        let sc = sidecar_of(&stored[0]);
        assert_eq!(sc.size_bytes, data.len() as u64);
        let lines = index_lines(&root);
        assert_eq!(lines.len(), 1, "{step:?}: {lines:?}");
        assert!(
            under_partial(&root).is_empty(),
            "{step:?}: {:?}",
            under_partial(&root)
        );
        outcomes.push(format!("{step:?}: {outcome}"));
    }
    eprintln!("{}", outcomes.join("\n"));
    assert!(outcomes.iter().any(|o| o.ends_with("partial, resumed")));
    assert!(outcomes.iter().any(|o| o.ends_with("published")));
}

/// A torn last index line (a stop in the middle of an append) is cut.
#[test]
fn a_torn_index_line_is_cut_at_start_up() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("out");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(
        root.join("downloads.jsonl"),
        b"{\"path\":\"a\"}\n{\"path\":\"b",
    )
    .unwrap();
    Storage::open(&root, cfg()).unwrap();
    assert_eq!(
        std::fs::read_to_string(root.join("downloads.jsonl")).unwrap(),
        "{\"path\":\"a\"}\n"
    );
}

/// A line torn in the middle of the index (an append that failed with a full
/// disk, and the next one glued to it) is set aside at start-up; every whole
/// line stays.
#[test]
fn a_torn_line_in_the_middle_of_the_index_is_set_aside_at_start_up() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("out");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(
        root.join("downloads.jsonl"),
        b"{\"path\":\"a\"}\n{\"path\":\"b.h265\",\"imei\"{\"path\":\"c\"}\n{\"path\":\"d\"}\n",
    )
    .unwrap();
    Storage::open(&root, cfg()).unwrap();
    assert_eq!(
        std::fs::read_to_string(root.join("downloads.jsonl")).unwrap(),
        "{\"path\":\"a\"}\n{\"path\":\"d\"}\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("downloads.jsonl.bad")).unwrap(),
        "{\"path\":\"b.h265\",\"imei\"{\"path\":\"c\"}\n"
    );
    // A second start finds nothing to repair.
    Storage::open(&root, cfg()).unwrap();
    assert_eq!(
        std::fs::read_to_string(root.join("downloads.jsonl"))
            .unwrap()
            .lines()
            .count(),
        2
    );
}

#[cfg(unix)]
#[test]
fn symlinks_planted_where_the_server_writes_are_never_followed() {
    use std::os::unix::fs::symlink;
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let victim = outside.join("victim");
    std::fs::write(&victim, b"untouched").unwrap();
    let data = content(5000, 2);
    let open = open_file(data.len() as u32);

    // The camera folder, then its .partial, as links to a folder outside.
    for planted in ["camera", "partial"] {
        let root = tmp.path().join(format!("out-{planted}"));
        let st = Storage::open(&root, cfg()).unwrap();
        let cam = root.join(IMEI.to_string());
        match planted {
            "camera" => symlink(&outside, &cam).unwrap(),
            _ => {
                std::fs::create_dir_all(&cam).unwrap();
                symlink(&outside, cam.join(".partial")).unwrap();
            }
        }
        let err = st.begin(IMEI, &open).err().expect("refused");
        assert!(format!("{err:#}").contains("symlink"), "{err:#}");
    }
    // The index, and every name the file could be published under.
    let root = tmp.path().join("out-files");
    let st = Storage::open(&root, cfg()).unwrap();
    symlink(&victim, root.join("downloads.jsonl")).unwrap();
    let cam = root.join(IMEI.to_string());
    std::fs::create_dir_all(&cam).unwrap();
    let now = chrono::Utc::now();
    for dt in -2..=5 {
        let t = now + chrono::Duration::seconds(dt);
        let stem = format!(
            "{}_{}",
            t.format("%Y%m%d_%H%M%S"),
            dashcam_server::storage::names::stem(&open.spec)
        );
        for ext in ["mp4", "json", "json.tmp"] {
            symlink(&victim, cam.join(format!("{stem}.{ext}"))).unwrap();
        }
    }
    let mut p = st.begin(IMEI, &open).unwrap();
    p.write_at(0, &data).unwrap();
    let r = p.finish(&record(&open, &data), "test");
    // The index is a link: nothing is written through it. The file itself is
    // in place, so it counts as stored (the camera must not send it again);
    // its index line waits for the next start.
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(std::fs::read(&victim).unwrap(), b"untouched");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
    // The media and sidecar went to names that were free, inside the folder.
    let stored: Vec<_> = std::fs::read_dir(&cam)
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| e.path())
        .collect();
    assert!(
        stored.iter().any(|p| std::fs::read(p).unwrap() == data),
        "{stored:?}"
    );
}

/// Loopback: a partial of another file with the same name and size; the
/// first frame after the resume matches neither reading, so the file starts
/// over in the same session and is stored byte-exact. (A camera that restarts
/// its CRC chain after SYNC passes the CRC; the overlap comparison catches it:
/// see tests/field.rs.)
#[test]
fn a_resume_that_does_not_match_starts_over_in_the_same_session() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |_| {});
    let old = content(8 * 1024, 10);
    let new = content(8 * 1024, 11);
    let mut cam = srv.sim(IMEI);
    cam.crc = dashcam_server::simulator::CrcMode::Chained;
    cam.files = vec![(
        FileKind::PhotoFront,
        write_file(tmp.path(), "old.jpg", &old),
    )];
    cam.drop_after = Some(4);
    assert!(!run_camera(&cam).unwrap().complete);
    srv.summary();
    cam.files = vec![(
        FileKind::PhotoFront,
        write_file(tmp.path(), "new.jpg", &new),
    )];
    cam.drop_after = None;
    let r = run_camera(&cam).unwrap();
    assert!(r.complete, "{r:?}");
    assert_eq!(
        r.resumes,
        vec![("%photof".to_string(), 4), ("%photof".to_string(), 1)]
    );
    assert_eq!(srv.summary().end, End::Completed);
    let stored = media(&out, IMEI);
    assert_eq!(stored.len(), 1);
    assert_eq!(std::fs::read(&stored[0]).unwrap(), new);
    assert!(under_partial(&out).is_empty());
}

#[test]
fn a_duplicate_is_not_stored_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |_| {});
    let bytes = content(3000, 12);
    let mut cam = srv.sim(IMEI);
    cam.files = vec![(
        FileKind::VideoFront,
        write_file(tmp.path(), "v.h265", &bytes),
    )];
    for _ in 0..2 {
        let r = run_camera(&cam).unwrap();
        assert!(r.complete, "{r:?}");
        srv.summary();
    }
    let stored = media(&out, IMEI);
    assert_eq!(stored.len(), 1, "{stored:?}");
    let lines = index_lines(&out);
    assert_eq!(lines.len(), 2);
    assert!(lines[0].get("duplicate_of").is_none());
    let first = lines[0]["path"].as_str().unwrap();
    assert_eq!(lines[1]["duplicate_of"], first);
    assert!(under_partial(&out).is_empty());
    // A different file under the same identifier is stored.
    cam.files = vec![(
        FileKind::VideoFront,
        write_file(tmp.path(), "w.h265", &content(3000, 13)),
    )];
    assert!(run_camera(&cam).unwrap().complete);
    assert_eq!(media(&out, IMEI).len(), 2);
}

/// A mounted tmpfs of a few MiB (needs root; CI runs as root).
struct SmallFs(PathBuf);

impl SmallFs {
    fn mount(dir: &Path, mib: u32) -> Option<SmallFs> {
        std::fs::create_dir_all(dir).ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?
            .success();
        ok.then(|| SmallFs(dir.to_path_buf()))
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
#[cfg_attr(not(have_root), ignore = "needs root on Linux to mount a small tmpfs")]
fn a_full_disk_refuses_cleanly_and_the_next_camera_is_served() {
    let tmp = tempfile::tempdir().unwrap();
    let fs = SmallFs::mount(&tmp.path().join("small"), 4).expect("mount a 4 MiB tmpfs");
    let out = fs.0.join("out");
    let srv = start(&out, |c| c.storage.min_free_bytes = 1 << 20);
    // 3.5 MiB would leave less than 1 MiB of 4: refused before any byte.
    let big = write_file(tmp.path(), "big.h265", &content(3_500_000, 20));
    let mut cam = srv.sim(IMEI);
    cam.files = vec![(FileKind::VideoFront, big)];
    let r = run_camera(&cam).unwrap();
    assert!(!r.complete);
    assert_eq!(r.ended_by, "CLOSE");
    assert!(r.resumes.is_empty(), "no RESUME: nothing is written");
    assert!(
        matches!(srv.summary().end, End::Storage(StoreError::NoSpace { free, .. }) if free <= 4 << 20)
    );
    // The next camera, with a photo, right after.
    let photo = content(50_000, 21);
    let mut cam2 = srv.sim(IMEI + 1);
    cam2.files = vec![(
        FileKind::PhotoFront,
        write_file(tmp.path(), "p.jpg", &photo),
    )];
    assert!(run_camera(&cam2).unwrap().complete);
    assert_eq!(std::fs::read(&media(&out, IMEI + 1)[0]).unwrap(), photo);
    srv.shutdown();

    // ENOSPC in the middle of a file: that partial goes, the next file works.
    let st = Storage::open(&out, cfg()).unwrap();
    let open = open_file(2_000_000);
    let mut p = st.begin(IMEI + 2, &open).unwrap();
    let filler = out.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 3_900_000]);
    let chunk = content(64 * 1024, 22);
    let mut err = None;
    for _ in 0..40 {
        if let Err(e) = p.write_at(p.stored(), &chunk) {
            err = Some(e);
            break;
        }
    }
    let err = err.expect("the disk fills up");
    assert!(matches!(err, StoreError::NoSpace { .. }), "{err}");
    drop(p);
    assert!(under_partial(&out.join((IMEI + 2).to_string())).is_empty());
    std::fs::remove_file(&filler).unwrap();
    let small = content(10_000, 23);
    let open = open_file(small.len() as u32);
    let mut p = st.begin(IMEI + 2, &open).unwrap();
    p.write_at(0, &small).unwrap();
    p.finish(&record(&open, &small), "test").unwrap();
    drop(st);
    drop(fs);
}

#[test]
fn partials_over_the_cap_lose_the_oldest_first() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("out");
    let st = capped(&root, 250_000);
    for (i, imei) in [IMEI, IMEI + 1, IMEI + 2].into_iter().enumerate() {
        let open = open_file(100_000);
        let mut p = st.begin(imei, &open).unwrap();
        p.write_at(0, &content(90_000, i as u64)).unwrap();
        p.abandon(0);
        std::thread::sleep(Duration::from_millis(5));
    }
    let left: Vec<_> = under_partial(&root)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "part"))
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(
        !left
            .iter()
            .any(|p| p.starts_with(root.join(IMEI.to_string()))),
        "the oldest went"
    );
}

#[test]
fn an_unwritable_output_folder_exits_2_and_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let bad = file.join("downloads");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dashcam-server"))
        .args([
            "serve",
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--output-dir",
        ])
        .arg(&bad)
        .output()
        .unwrap();
    // A configuration error, before any work (README: exit status).
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&bad.display().to_string()), "{err}");
}

/// With metadata on, a START matching a stored file's identifier, metadata
/// time and size fetches only the file's last packet (or bytes) to confirm.
#[test]
fn a_file_already_stored_is_confirmed_by_its_last_packet_only() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |c| c.session.metadata = true);
    let bytes = content(10 * 1024 + 300, 30);
    for (family, protocol) in [(Family::DualCam, 5u16), (Family::Adas, 5)] {
        let imei = IMEI + protocol as u64 + family.name().len() as u64;
        let file = write_file(tmp.path(), &format!("{}.bin", family.name()), &bytes);
        let mut cam = srv.sim(imei);
        cam.meta_time = Some(1_764_000_000);
        cam.family = family;
        cam.protocol_id = protocol;
        match family {
            Family::DualCam => cam.files = vec![(FileKind::VideoFront, file)],
            _ => cam.paths = vec![(b"/mnt/sd/mdas9/video/1.mp4".to_vec(), file)],
        }
        assert!(run_camera(&cam).unwrap().complete);
        srv.summary();
        // The camera offers it again (it lost the end of the last session).
        let r = run_camera(&cam).unwrap();
        assert!(r.complete, "{r:?}");
        let (last_at, last_len) = match family {
            Family::DualCam => (11, 300),
            _ => (bytes.len() as u32 - 1024, 1024),
        };
        assert_eq!(r.resumes, vec![(r.taken[0].clone(), last_at)], "{family}");
        assert_eq!(r.bytes_sent, last_len, "{family}: only the end was fetched");
        let s = srv.summary();
        assert_eq!((s.end, s.stored, s.already_had), (End::Completed, 0, 1));
        assert_eq!(media(&out, imei).len(), 1, "{family}: stored once");
        let lines: Vec<_> = index_lines(&out)
            .into_iter()
            .filter(|l| l["imei"].as_str() == Some(imei.to_string().as_str()))
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["duplicate_of"], lines[0]["path"]);
    }
    // Same name, time and size, other bytes: the end differs, and the file
    // is downloaded whole in the same session (no CLOSE).
    let other = content(10 * 1024 + 300, 31);
    let mut cam = srv.sim(IMEI + 100);
    cam.meta_time = Some(1_764_000_000);
    cam.files = vec![(
        FileKind::VideoFront,
        write_file(tmp.path(), "a.bin", &bytes),
    )];
    assert!(run_camera(&cam).unwrap().complete);
    srv.summary();
    cam.files = vec![(
        FileKind::VideoFront,
        write_file(tmp.path(), "b.bin", &other),
    )];
    let r = run_camera(&cam).unwrap();
    assert!(r.complete, "{r:?}");
    // The last packet (11) first, then, once it differed, from packet 1.
    assert_eq!(
        r.resumes,
        vec![("%videof".to_string(), 11), ("%videof".to_string(), 1)]
    );
    assert_eq!(srv.summary().end, End::Completed);
    let got: Vec<Vec<u8>> = media(&out, IMEI + 100)
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert_eq!(got.len(), 2);
    assert!(got.contains(&bytes) && got.contains(&other));
}

/// Once the media file is renamed into place it is stored, whatever fails
/// after: an index that cannot be written (here a folder in its place) still
/// gets the camera REPEAT INIT, the same file offered again is recognised,
/// and the next start writes the missing index line.
#[test]
fn a_failure_after_the_rename_never_stores_the_file_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir_all(out.join("downloads.jsonl")).unwrap();
    let srv = start(&out, |_| {});
    let bytes = content(12_000, 51);
    let mut cam = srv.sim(IMEI);
    cam.files = vec![(
        FileKind::PhotoFront,
        write_file(tmp.path(), "p.jpg", &bytes),
    )];
    for round in 0..3 {
        let r = run_camera(&cam).unwrap();
        assert!(r.complete, "round {round}: {r:?}");
        assert_eq!(srv.summary().end, End::Completed, "round {round}");
    }
    let stored = media(&out, IMEI);
    assert_eq!(stored.len(), 1, "stored once: {stored:?}");
    assert_eq!(std::fs::read(&stored[0]).unwrap(), bytes);
    assert!(
        stored[0].with_extension("json").exists(),
        "the sidecar was written"
    );
    srv.shutdown();
    // The folder is taken away; the next start finishes the index.
    std::fs::remove_dir(out.join("downloads.jsonl")).unwrap();
    Storage::open(&out, cfg()).unwrap();
    let lines = index_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0]["path"].as_str().unwrap().ends_with(".jpg"));
    assert!(
        under_partial(&out.join(IMEI.to_string())).is_empty(),
        "nothing left in .partial"
    );
}

/// The output folder (or a camera's folder) removed while the server runs is
/// made again at the next file, and cameras keep being served.
#[test]
fn a_removed_output_folder_is_made_again_at_the_next_file() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |_| {});
    let mut cam = srv.sim(IMEI);
    cam.files = vec![(
        FileKind::PhotoFront,
        write_file(tmp.path(), "a.jpg", &content(3000, 61)),
    )];
    assert!(run_camera(&cam).unwrap().complete);
    srv.summary();
    std::fs::remove_dir_all(&out).unwrap();
    let photo = content(4000, 62);
    cam.files = vec![(FileKind::PhotoRear, write_file(tmp.path(), "b.jpg", &photo))];
    let r = run_camera(&cam).unwrap();
    assert!(r.complete, "{r:?}");
    assert_eq!(srv.summary().end, End::Completed);
    let stored = media(&out, IMEI);
    assert_eq!(stored.len(), 1);
    assert_eq!(std::fs::read(&stored[0]).unwrap(), photo);
}

/// After a restart the de-duplication lists come from the index (one pass);
/// a file the index does not name (the index replaced, a line lost) is still
/// known by its sidecar, and an index line whose media is gone matches nothing.
#[test]
fn duplicates_are_known_after_a_restart_from_the_index_and_from_sidecars() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let files: Vec<(FileKind, PathBuf)> = (0..3u64)
        .map(|i| {
            let f = write_file(tmp.path(), &format!("v{i}.jpg"), &content(2000, 40 + i));
            (FileKind::PhotoFront, f)
        })
        .collect();
    let send = |srv: &TestServer, which: usize| {
        let mut cam = srv.sim(IMEI);
        cam.files = vec![files[which].clone()];
        assert!(run_camera(&cam).unwrap().complete);
        srv.summary()
    };
    {
        let srv = start(&out, |_| {});
        for i in 0..3 {
            send(&srv, i);
        }
        srv.shutdown();
    }
    let stored = media(&out, IMEI);
    assert_eq!(stored.len(), 3);
    // The index loses file 1's line; file 2's media is removed by hand.
    let index = out.join("downloads.jsonl");
    let text = std::fs::read_to_string(&index).unwrap();
    let kept: String = text
        .lines()
        .filter(|l| !l.contains(stored[1].file_name().unwrap().to_str().unwrap()))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&index, kept).unwrap();
    std::fs::remove_file(&stored[2]).unwrap();
    std::fs::remove_file(stored[2].with_extension("json")).unwrap();
    let srv = start(&out, |_| {});
    for i in 0..3 {
        send(&srv, i);
    }
    let lines = index_lines(&out);
    let tail = &lines[lines.len() - 3..];
    // 0: known from the index; 1: known from its sidecar; 2: stored again.
    assert!(tail[0]["duplicate_of"].is_string(), "{:?}", tail[0]);
    assert!(tail[1]["duplicate_of"].is_string(), "{:?}", tail[1]);
    assert!(tail[2].get("duplicate_of").is_none(), "{:?}", tail[2]);
    assert_eq!(media(&out, IMEI).len(), 3);
}

fn open_named(total: u32, name: &str) -> OpenFile {
    OpenFile {
        spec: FileSpec::from_path(format!("/mnt/sd/mdas9/video/{name}.mp4").as_bytes()),
        ..open_file(total)
    }
}

fn parts_of(root: &Path, imei: u64) -> usize {
    under_partial(root)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "part"))
        .filter(|p| p.starts_with(root.join(imei.to_string())))
        .count()
}

/// `--max-partials-gb` is shared fairly: a camera over its share (the cap
/// divided by the cameras holding partials) gives up its own partials, never
/// the older partial of a camera within its share; a camera within its share
/// takes room only from cameras over theirs.
#[test]
fn the_partials_budget_is_shared_fairly_between_cameras() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("out");
    let st = capped(&root, 250_000);
    let (a, b, c) = (IMEI, IMEI + 1, IMEI + 2);
    let hold = |imei: u64, name: &str, len: usize| {
        let open = open_named(100_000, name);
        let mut p = st.begin(imei, &open).unwrap();
        p.write_at(0, &content(len, imei)).unwrap();
        p.abandon(0);
        std::thread::sleep(Duration::from_millis(5));
    };
    hold(b, "b1", 60_000); // the oldest, within its share
    hold(a, "a1", 90_000);
    hold(a, "a2", 90_000);
    // A holds 180,000 of 250,000 (share 125,000) and asks for 100,000 more:
    // only its own oldest goes, not B's older one.
    hold(a, "a3", 10_000);
    assert_eq!((parts_of(&root, a), parts_of(&root, b)), (2, 1));
    // C holds nothing (share 83,333): it may take from A (over its share),
    // never from B (within it), though B's is the oldest.
    hold(c, "c1", 10_000);
    assert_eq!(parts_of(&root, b), 1, "B's partial is kept");
    assert_eq!(parts_of(&root, a), 1, "A gave up its oldest");
    assert_eq!(parts_of(&root, c), 1);
}

/// Init + START from an IMEI that never stores anything leaves no folder:
/// an empty partial goes at once with its folders, a partial with bytes goes
/// with them when it ages out.
#[test]
fn folders_of_cameras_that_never_stored_anything_are_removed_with_their_last_partial() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("out");
    {
        let st = Storage::open(&root, cfg()).unwrap();
        for i in 0..20 {
            drop(st.begin(IMEI + i, &open_file(1000)).unwrap());
        }
        assert!(!root.join(IMEI.to_string()).exists());
        let mut p = st.begin(IMEI, &open_file(1000)).unwrap();
        p.write_at(0, &content(500, 1)).unwrap();
        p.abandon(0);
        assert_eq!(parts_of(&root, IMEI), 1, "a resumable partial is kept");
    }
    let names: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names,
        vec![IMEI.to_string()],
        "only the camera with bytes kept"
    );
    // A restart after the partial aged out: the folder goes with it.
    Storage::open(
        &root,
        StorageConfig {
            partial_max_age: Duration::ZERO,
            ..cfg()
        },
    )
    .unwrap();
    assert!(!root.join(IMEI.to_string()).exists());
}

/// `remove_local` (what `--keep-days` and `--s3-delete-local` use): the
/// sidecar records the removal before the file goes, so a stop between the
/// two leaves a stored file that is still listed; without a readable sidecar
/// nothing is removed.
#[test]
fn a_local_removal_is_recorded_in_the_sidecar_before_the_file_goes() {
    use dashcam_server::storage::{catalog, remove_local, removed_on_purpose, update_sidecar};
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    {
        let srv = start(&out, |_| {});
        for seed in [1, 2] {
            let mut cam = srv.sim(IMEI);
            let f = write_file(tmp.path(), &format!("p{seed}.jpg"), &content(2000, seed));
            cam.files = vec![(FileKind::PhotoFront, f)];
            assert!(run_camera(&cam).unwrap().complete);
        }
        srv.shutdown();
    }
    let stored = media(&out, IMEI);
    let camera_dir = out.join(IMEI.to_string());
    // A stop after the record, before the removal: still a stored file.
    let name = stored[0].file_name().unwrap().to_str().unwrap().to_string();
    update_sidecar(&stored[0].with_extension("json"), |sc| {
        sc.removed_locally
            .push(dashcam_server::storage::LocalRemoval {
                file: name.clone(),
                at: "2026-11-25T00:00:00Z".into(),
                why: "keep-days".into(),
            });
        Ok(())
    })
    .unwrap();
    assert_eq!(catalog::camera_files(&camera_dir, IMEI).len(), 2);
    assert!(!removed_on_purpose(&stored[0]), "it is still there");
    // The removal itself: recorded once, file gone, no longer listed.
    assert_eq!(
        remove_local(&stored[0], "keep-days", false).unwrap(),
        Some(2000)
    );
    assert!(!stored[0].exists());
    assert!(removed_on_purpose(&stored[0]));
    assert_eq!(sidecar_of(&stored[0]).removed_locally.len(), 1);
    assert_eq!(catalog::camera_files(&camera_dir, IMEI).len(), 1);
    // No sidecar to record it in: the file stays.
    std::fs::remove_file(stored[1].with_extension("json")).unwrap();
    assert!(remove_local(&stored[1], "uploaded", false).is_err());
    assert!(stored[1].exists());
}

/// The `--keep-days` sweep removes only what a sidecar names (media, mp4),
/// never another file that shares its name, and a second sweep finds
/// nothing more to do.
#[test]
fn the_retention_sweep_removes_only_the_media_a_sidecar_names() {
    use dashcam_server::storage::retention::remove_older_than;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    {
        let srv = start(&out, |_| {});
        let mut cam = srv.sim(IMEI);
        let f = write_file(tmp.path(), "p.jpg", &content(2000, 7));
        cam.files = vec![(FileKind::PhotoFront, f)];
        assert!(run_camera(&cam).unwrap().complete);
        srv.shutdown();
    }
    let photo = media(&out, IMEI).pop().unwrap();
    let stray = photo.with_extension("txt");
    std::fs::write(&stray, b"a note beside it").unwrap();
    let later = std::time::SystemTime::now() + Duration::from_secs(3600);
    // With S3 on, a file not recorded as uploaded stays.
    assert_eq!(remove_older_than(&out, later, true, |_| false), (0, 0));
    assert!(photo.exists());
    assert_eq!(remove_older_than(&out, later, false, |_| false), (1, 2000));
    assert!(!photo.exists());
    assert!(stray.exists(), "not named by the sidecar: kept");
    assert_eq!(remove_older_than(&out, later, false, |_| false), (0, 0));
    assert_eq!(sidecar_of(&photo).removed_locally.len(), 1);
}
