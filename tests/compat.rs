//! The sidecar is a typed struct in memory, and its JSON on disk stays what
//! the 0.1.0 release wrote: users' scripts read these files.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use dashcam_server::codec::{Family, FileKind};
use dashcam_server::simulator::{run_camera, CrcMode};
use dashcam_server::storage::{IndexLine, Sidecar};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sidecars-0.1.0")
}

/// What 0.1.0 wrote, read into the typed sidecar and written back: the same bytes.
#[test]
fn sidecars_written_by_the_previous_release_round_trip_byte_exact() {
    for name in [
        "dualcam-videof.json",
        "dualcam-photor.json",
        "dsm-p6-photo.json",
        "adas-video.json",
    ] {
        let text = std::fs::read_to_string(fixtures().join(name)).unwrap();
        let sc: Sidecar = serde_json::from_str(&text).unwrap();
        let mut again = serde_json::to_string_pretty(&sc).unwrap();
        again.push('\n');
        assert_eq!(again, text, "{name}");
    }
    let index = std::fs::read_to_string(fixtures().join("downloads.jsonl")).unwrap();
    for line in index.lines() {
        let l: IndexLine = serde_json::from_str(line).unwrap();
        assert_eq!(serde_json::to_string(&l).unwrap(), line);
    }
}

/// Fields that differ from run to run.
fn stable(mut v: Value) -> Value {
    for k in ["remote_addr", "started_at", "completed_at"] {
        v[k] = Value::Null;
    }
    if let Some(m) = v.get_mut("metadata").filter(|m| m.is_object()) {
        m["timestamp"] = Value::Null;
        m["raw_hex"] = Value::Null;
        m["trigger_timestamp"] = Value::Null;
        if let Some(j) = m.get_mut("json").filter(|j| j.is_object()) {
            j["file"]["file_timestamp"] = Value::Null;
        }
    }
    v
}

/// The same cameras as the fixtures were made with, against this release:
/// the same keys in the same order, the same values but for times and
/// addresses; `media_info` is the one key added since.
#[test]
fn this_release_writes_the_same_sidecars() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let server = start(&out, |c| c.session.metadata = true);
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let mut cam = server.sim(350612071913857);
    cam.files = vec![
        (FileKind::VideoFront, samples.join("front.h265")),
        (FileKind::PhotoRear, samples.join("photo.jpg")),
    ];
    cam.corrupt_packets = vec![3];
    cam.frame_rate = 30; // simulate's default, with which the fixtures were made
    assert!(run_camera(&cam).unwrap().complete);
    let mut cam = server.sim(350612071913858);
    cam.family = Family::Dsm;
    cam.protocol_id = 6;
    cam.frame_rate = 30;
    cam.paths = vec![(
        b"dsm/picture/231020/231452.jpg".to_vec(),
        samples.join("photo.jpg"),
    )];
    assert!(run_camera(&cam).unwrap().complete);
    let mut cam = server.sim(350612071913859);
    cam.family = Family::Adas;
    cam.crc = CrcMode::Chained;
    cam.frame_rate = 30;
    cam.corrupt_packets = vec![2];
    cam.paths = vec![(
        b"/mnt/sd/mdas9/video/0001.mp4".to_vec(),
        samples.join("rear.h265"),
    )];
    assert!(run_camera(&cam).unwrap().complete);
    for (imei, stem, fixture) in [
        (350612071913857u64, "videof", "dualcam-videof.json"),
        (350612071913857, "photor", "dualcam-photor.json"),
        (350612071913858, "231452-3525c4", "dsm-p6-photo.json"),
        (350612071913859, "0001-251247", "adas-video.json"),
    ] {
        let got = media(&out, imei)
            .into_iter()
            .find(|m| m.file_stem().unwrap().to_string_lossy().ends_with(stem))
            .unwrap_or_else(|| panic!("{stem} stored"));
        let new: Value = sidecar_json(&got);
        let old: Value =
            serde_json::from_str(&std::fs::read_to_string(fixtures().join(fixture)).unwrap())
                .unwrap();
        // Keys added since 0.1.0 (what is inside the file) come on top; every
        // old key is still there, in its place, with the same value.
        let mut new = new;
        let added = new.as_object_mut().unwrap().remove("media_info");
        assert!(added.is_some(), "{fixture}: media_info recorded");
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&new), keys(&old), "{fixture}: keys and their order");
        assert_eq!(stable(new), stable(old), "{fixture}");
    }
    server.shutdown();
}
