//! The session machine fed frames and instants: no socket, no sleep, no disk.

use std::time::{Duration, Instant};

use super::*;

/// Logging at `trace` for every test: each log line's arguments are evaluated
/// (a panic hiding in one shows), then dropped.
struct EveryLine;

impl log::Log for EveryLine {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let _ = format!("{}", record.args());
    }

    fn flush(&self) {}
}

fn trace_logging() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if log::set_logger(&EveryLine).is_ok() {
            log::set_max_level(log::LevelFilter::Trace);
        }
    });
}
use crate::codec::{crc16, Deframer, FileKind, Frame, InitPacket, Input, Limits};

const IMEI: u64 = 350612071913857;

/// Runs a session with an in-memory "storage": one file's bytes.
struct H<'c> {
    s: Session<'c>,
    now: Instant,
    /// Bytes the server sent since the last `take`.
    sent: Vec<u8>,
    file: Vec<u8>,
    /// Bytes a partial holds when the next file is opened.
    preset: Vec<u8>,
    stored: Vec<(FileRecord, Vec<u8>)>,
    abandoned: u32,
    ends: Vec<End>,
    refused: Vec<Refusal>,
}

impl<'c> H<'c> {
    fn new(cfg: &'c Config) -> H<'c> {
        trace_logging();
        let now = Instant::now();
        H {
            s: Session::new(cfg, "test".into(), now),
            now,
            sent: Vec::new(),
            file: Vec::new(),
            preset: Vec::new(),
            stored: Vec::new(),
            abandoned: 0,
            ends: Vec::new(),
            refused: Vec::new(),
        }
    }

    fn pump(&mut self, bytes: Option<&[u8]>) {
        self.sent.extend_from_slice(self.s.output());
        self.s.sent();
        while let Some(a) = self.s.poll_action() {
            match a {
                Action::Camera(_) => {}
                Action::Refused(r) => self.refused.push(r),
                Action::Open(_) => {
                    self.file = std::mem::take(&mut self.preset);
                    let n = self.file.len() as u64;
                    self.s.opened(self.now, Ok(n));
                }
                Action::Write { offset, .. } => {
                    assert_eq!(offset, self.file.len() as u64);
                    self.file.extend_from_slice(bytes.expect("file bytes"));
                }
                Action::Rewind { len } => {
                    self.file.truncate(len as usize);
                    let crc = crc16(0, &self.file);
                    self.s.rewound(self.now, Ok(crc));
                }
                Action::Finish(rec) => {
                    let from = rec.check.from as usize;
                    let r = if crc16(0, &self.file[from..]) == rec.check.crc {
                        self.stored.push((*rec, std::mem::take(&mut self.file)));
                        Ok(Published {
                            path: "x".into(),
                            size_bytes: 0,
                            crc16: 0,
                            duplicate: false,
                        })
                    } else {
                        Err(crate::file::StoreError::CrcMismatch {
                            expected: rec.check.crc,
                            found: crc16(0, &self.file[from..]),
                        })
                    };
                    self.s.finished(self.now, r);
                }
                Action::Abandon { .. } => self.abandoned += 1,
                Action::End(e) => self.ends.push(e),
            }
            self.sent.extend_from_slice(self.s.output());
            self.s.sent();
        }
    }

    fn init(&mut self, protocol_id: u16, settings: u32) {
        let init = InitPacket {
            protocol_id,
            imei: IMEI,
            settings,
        };
        assert!(self.s.expects_init(), "session does not expect an init");
        self.s.handle_input(self.now, Input::Init(init));
        self.pump(None);
    }

    fn frame(&mut self, f: Frame<'_>) {
        self.s.handle_input(self.now, Input::Frame(f));
        self.pump(f.file_bytes());
    }

    fn at(&mut self, after: Duration) {
        self.now += after;
        self.s.handle_timeout(self.now);
        self.pump(None);
    }

    /// What the server sent since the last call, as frames.
    fn take(&mut self) -> Vec<String> {
        let mut d = Deframer::new(Limits::SERVER);
        d.feed(&std::mem::take(&mut self.sent));
        let mut v = Vec::new();
        while let Some(f) = d.next_frame().unwrap() {
            v.push(match f {
                Frame::FileRequest { identifier } => {
                    format!("FILE REQ {}", String::from_utf8_lossy(identifier))
                }
                Frame::Resume { offset } => format!("RESUME {offset}"),
                Frame::MetadataRequest { identifier } => {
                    format!("METADATA REQ {}", String::from_utf8_lossy(identifier))
                }
                other => other.name().to_string(),
            });
        }
        assert_eq!(d.buffered(), 0);
        v
    }

    /// Sends packets of `data` (identifier flow) from packet `from` (1-based),
    /// chaining from `init`.
    fn packets(&mut self, data: &[u8], from: usize, mut crc: u16) -> u16 {
        for chunk in data.chunks(1024).skip(from - 1) {
            crc = crc16(crc, chunk);
            self.frame(Frame::Data {
                payload: chunk,
                crc,
            });
        }
        crc
    }
}

fn bits(kinds: &[FileKind]) -> u32 {
    InitPacket::settings_for(kinds) | 0x4000_0000
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 1024) as u8).collect()
}

#[test]
fn one_file_per_init_in_the_reference_order_then_close() {
    let cfg = Config::default();
    let mut h = H::new(&cfg);
    h.init(5, bits(&FileKind::ALL));
    assert_eq!(h.take(), ["FILE REQ %videor"]);
    let d = data(1500);
    h.frame(Frame::Start { total: 2, field: 0 });
    assert_eq!(h.take(), ["RESUME 1"]);
    h.frame(Frame::Sync { offset: 1 });
    h.packets(&d, 1, 0);
    // REPEAT INIT is exactly `00 09`.
    assert_eq!(h.sent, [0x00, 0x09]);
    assert_eq!(h.take(), ["REPEAT INIT"]);
    assert_eq!(h.stored[0].1, d);
    for (kind, left) in [
        (
            "%videof",
            &[
                FileKind::VideoFront,
                FileKind::PhotoRear,
                FileKind::PhotoFront,
            ][..],
        ),
        ("%photor", &[FileKind::PhotoRear, FileKind::PhotoFront][..]),
        ("%photof", &[FileKind::PhotoFront][..]),
    ] {
        h.init(5, bits(left));
        assert_eq!(h.take(), [format!("FILE REQ {kind}")]);
        h.frame(Frame::Start { total: 1, field: 0 });
        h.frame(Frame::Sync { offset: 1 });
        h.packets(&d[..10], 1, 0);
        assert_eq!(h.take(), ["RESUME 1", "REPEAT INIT"]);
    }
    h.init(5, bits(&[]));
    assert_eq!(h.take(), ["CLOSE"]);
    assert_eq!(h.ends, [End::Completed]);
    assert_eq!(h.stored.len(), 4);
    assert!(h
        .stored
        .iter()
        .all(|(r, _)| r.flow == Flow::Identifier && r.family == Family::DualCam));
}

#[test]
fn a_camera_offering_nothing_gets_close_and_no_path_request() {
    let cfg = Config::default();
    for (protocol, settings) in [(5, 0x4000_0400), (6, 0x4000_0000), (5, 0)] {
        let mut h = H::new(&cfg);
        h.init(protocol, settings);
        assert_eq!(
            h.sent,
            [0, 0, 0, 0],
            "protocol {protocol} settings {settings:#x}"
        );
        assert_eq!(h.ends, [End::Completed]);
    }
}

#[test]
fn auto_picks_the_flow_per_init_and_fixed_modes_take_only_their_own() {
    let auto = Config::default();
    let mut h = H::new(&auto);
    h.init(5, 0x0200_0000);
    assert_eq!(h.sent, [0x00, 0x0C, 0x00, 0x02, 0x00, 0x00]);
    let mut h = H::new(&auto);
    h.init(6, bits(&[FileKind::VideoFront]));
    assert_eq!(
        h.take(),
        ["PATH REQ"],
        "protocol 6 always uses the path flow"
    );
    let adas = Config {
        mode: Mode::Adas,
        ..Config::default()
    };
    let mut h = H::new(&adas);
    h.init(5, bits(&[FileKind::VideoFront]));
    assert_eq!(h.take(), ["CLOSE"]);
    let dual = Config {
        mode: Mode::Dualcam,
        ..Config::default()
    };
    let mut h = H::new(&dual);
    h.init(5, 0x0200_0000);
    assert_eq!(h.take(), ["CLOSE"]);
    let mut h = H::new(&dual);
    h.init(6, 0x0200_0000);
    assert_eq!(h.take(), ["PATH REQ"]);
}

#[test]
fn metadata_wait_ends_with_the_file_request_at_its_deadline() {
    let cfg = Config {
        metadata: true,
        ..Config::default()
    };
    let mut h = H::new(&cfg);
    h.init(5, bits(&[FileKind::PhotoFront]));
    assert_eq!(h.take(), ["METADATA REQ %photof"]);
    assert_eq!(h.s.poll_timeout(), Some(h.now + Duration::from_secs(5)));
    h.at(Duration::from_millis(4999));
    assert!(h.take().is_empty());
    h.at(Duration::from_millis(1));
    assert_eq!(h.take(), ["FILE REQ %photof"]);
}

#[test]
fn path_flow_metadata_request_is_empty_and_json_fills_the_record() {
    let cfg = Config {
        metadata: true,
        ..Config::default()
    };
    let mut h = H::new(&cfg);
    h.init(6, 0x4200_0000);
    assert_eq!(h.take(), ["PATH REQ"]);
    h.frame(Frame::Path {
        path: b"/mnt/sd/dsm/picture/0001.jpg\0",
    });
    assert_eq!(h.sent, [0, 0x0A, 0, 0]);
    assert_eq!(h.take(), ["METADATA REQ "]);
    h.frame(Frame::Metadata {
        payload: br#"{"file":{"file_timestamp":1704067200},"cam_trigger":{"type":1}}"#,
    });
    // The path is echoed exactly as the device sent it, NUL included (the reference does).
    let mut want = vec![0, 8, 0, 29];
    want.extend_from_slice(b"/mnt/sd/dsm/picture/0001.jpg\0");
    assert_eq!(h.sent, want);
    assert_eq!(h.take(), ["FILE REQ /mnt/sd/dsm/picture/0001.jpg\0"]);
    let d = data(3000);
    h.frame(Frame::Start {
        total: 3000,
        field: 0,
    });
    assert_eq!(h.take(), ["RESUME 0"]);
    h.frame(Frame::Sync { offset: 0 });
    let mut crc = 0;
    for (i, c) in d.chunks(700).enumerate() {
        crc = crc16(crc, c);
        h.frame(Frame::EnhancedData {
            offset: (i * 700) as u32,
            payload: c,
            crc,
        });
    }
    assert_eq!(h.take(), ["REPEAT INIT"]);
    let (rec, bytes) = &h.stored[0];
    assert_eq!(bytes, &d);
    assert_eq!(
        (rec.family, rec.flow, rec.unit),
        (Family::Dsm, Flow::Path, Unit::Bytes)
    );
    let m = &rec.metadata.as_ref().unwrap().1;
    assert_eq!(m.timestamp_ms, Some(1_704_067_200_000));
    assert_eq!(m.events.as_deref(), Some(&["drowsiness".to_string()][..]));
}

#[test]
fn resume_is_resent_every_sync_timeout_ten_times_then_the_session_gives_up() {
    let cfg = Config::default();
    let mut h = H::new(&cfg);
    h.init(5, bits(&[FileKind::VideoFront]));
    h.frame(Frame::Start { total: 4, field: 0 });
    assert_eq!(h.take(), ["FILE REQ %videof", "RESUME 1"]);
    for _ in 0..10 {
        h.at(Duration::from_millis(2999));
        assert!(h.take().is_empty());
        h.at(Duration::from_millis(1));
        assert_eq!(h.take(), ["RESUME 1"]);
    }
    h.at(Duration::from_secs(3));
    assert_eq!(h.take(), ["CLOSE"]);
    assert!(matches!(h.ends[..], [End::GaveUp(_)]));
    assert_eq!(h.abandoned, 1, "the partial is kept");
}

#[test]
fn a_silent_peer_is_dropped_at_the_read_timeout_with_its_partial_kept() {
    let cfg = Config {
        read_timeout: Duration::from_secs(120),
        init_timeout: Duration::from_secs(1000),
        sync_timeout: Duration::from_secs(1000),
        ..Config::default()
    };
    let mut h = H::new(&cfg);
    h.at(Duration::from_secs(119));
    assert!(h.ends.is_empty());
    h.init(5, bits(&[FileKind::VideoFront]));
    h.frame(Frame::Start { total: 4, field: 0 });
    h.frame(Frame::Sync { offset: 1 });
    let d = data(4096);
    h.packets(&d[..2048], 1, 0);
    h.take();
    h.at(Duration::from_secs(119));
    assert!(h.ends.is_empty());
    h.at(Duration::from_secs(1));
    assert_eq!(h.ends, [End::TimedOut(Timeout::Silent)]);
    assert_eq!(h.take(), ["CLOSE"]);
    assert_eq!(h.abandoned, 1);
    assert_eq!(h.file.len(), 2048);
}

#[test]
fn bad_crc_discards_data_in_flight_and_either_convention_resumes() {
    for (chained, name) in [(false, Convention::Restart), (true, Convention::Chained)] {
        let cfg = Config::default();
        let mut h = H::new(&cfg);
        h.init(5, bits(&[FileKind::VideoFront]));
        let d = data(5 * 1024 + 100);
        h.frame(Frame::Start { total: 6, field: 0 });
        h.frame(Frame::Sync { offset: 1 });
        let c2 = h.packets(&d[..2048], 1, 0);
        // Packet 3 spoiled, packets 4 and 5 already in flight.
        h.frame(Frame::Data {
            payload: &d[2048..3072],
            crc: !crc16(c2, &d[2048..3072]),
        });
        assert_eq!(h.take(), ["FILE REQ %videof", "RESUME 1", "RESUME 3"]);
        for p in [&d[3072..4096], &d[4096..5120]] {
            h.frame(Frame::Data { payload: p, crc: 1 });
        }
        assert!(h.take().is_empty());
        h.frame(Frame::Sync { offset: 3 });
        let init = if chained { c2 } else { 0 };
        h.packets(&d, 3, init);
        assert_eq!(h.take(), ["REPEAT INIT"], "{name:?}");
        assert_eq!(h.stored[0].1, d);
        assert_eq!(h.s.convention(), Some(name));
        assert_eq!(h.stored[0].0.crc_errors, 1);
    }
}

#[test]
fn a_resumed_partial_starts_at_the_next_packet_and_a_wrong_convention_is_caught() {
    let cfg = Config::default();
    let d = data(4000);
    // The device restarts its chain: the server accepts it from 0.
    let mut h = H::new(&cfg);
    h.preset = d[..2048].to_vec();
    h.init(5, bits(&[FileKind::VideoFront]));
    h.frame(Frame::Start { total: 4, field: 0 });
    assert_eq!(h.take(), ["FILE REQ %videof", "RESUME 3"]);
    h.frame(Frame::Sync { offset: 3 });
    h.packets(&d, 3, 0);
    assert_eq!(h.stored[0].1, d);
    assert_eq!(h.stored[0].0.resumed_from, Some(2048));
    // Neither reading matches the first frame after a resume from disk: the
    // stored part is another file. It is dropped and the file starts over.
    let mut h = H::new(&cfg);
    h.preset = d[..2048].to_vec();
    h.init(5, bits(&[FileKind::VideoFront]));
    h.frame(Frame::Start { total: 4, field: 0 });
    h.frame(Frame::Sync { offset: 3 });
    h.take();
    h.packets(&d[..3072], 3, 0x1234);
    assert_eq!(h.take(), ["RESUME 1"]);
    assert!(h.file.is_empty());
    h.frame(Frame::Sync { offset: 1 });
    h.packets(&d, 1, 0);
    assert_eq!(h.stored[0].1, d);
    assert_eq!(h.stored[0].0.resumed_from, None);
}

#[test]
fn bytes_on_disk_that_differ_from_the_verified_ones_are_not_published() {
    let cfg = Config::default();
    let d = data(4000);
    for resumed in [false, true] {
        let mut h = H::new(&cfg);
        if resumed {
            h.preset = d[..2048].to_vec();
        }
        h.init(5, bits(&[FileKind::VideoFront]));
        h.frame(Frame::Start { total: 4, field: 0 });
        let from = if resumed { 3 } else { 1 };
        h.frame(Frame::Sync { offset: from });
        assert_eq!(h.take(), ["FILE REQ %videof", &format!("RESUME {from}")]);
        // Packet 3 verified, then damaged on its way to the disk.
        h.packets(&d[..3072], from as usize, 0);
        h.file[2500] ^= 0x40;
        let c3 = crc16(
            if resumed { 0 } else { crc16(0, &d[..2048]) },
            &d[2048..3072],
        );
        h.packets(&d, 4, c3);
        assert!(
            h.stored.is_empty(),
            "resumed {resumed}: the damaged file is published"
        );
        assert_eq!(h.take(), ["CLOSE"], "CLOSE, so the camera keeps the file");
        assert!(matches!(h.ends[..], [End::Storage(_)]));
    }
}

#[test]
fn sync_tolerance_zero_or_one_behind_ahead_and_outside() {
    let cfg = Config::default();
    let d = data(4096);
    let mut h = H::new(&cfg);
    h.preset = d[..2048].to_vec();
    h.init(5, bits(&[FileKind::VideoFront]));
    h.frame(Frame::Start { total: 4, field: 0 });
    assert_eq!(h.take(), ["FILE REQ %videof", "RESUME 3"]);
    // Ahead of what is stored, and outside the file: RESUME again.
    h.frame(Frame::Sync { offset: 4 });
    assert_eq!(h.take(), ["RESUME 3"]);
    h.frame(Frame::Sync { offset: 9 });
    assert_eq!(h.take(), ["RESUME 3"]);
    // Behind: packet 2 is received again and overwrites.
    h.frame(Frame::Sync { offset: 2 });
    assert_eq!(h.file.len(), 1024);
    h.packets(&d, 2, 0);
    assert_eq!(h.stored[0].1, d);
    // SYNC 0 is the start in the identifier flow.
    let mut h = H::new(&cfg);
    h.init(5, bits(&[FileKind::PhotoFront]));
    h.frame(Frame::Start { total: 1, field: 0 });
    h.frame(Frame::Sync { offset: 0 });
    h.packets(&d[..10], 1, 0);
    assert_eq!(h.stored.len(), 1);
}

#[test]
fn start_zero_stores_nothing_and_goes_on() {
    let cfg = Config::default();
    let mut h = H::new(&cfg);
    h.init(5, bits(&[FileKind::PhotoFront]));
    h.frame(Frame::Start { total: 0, field: 0 });
    assert_eq!(h.take(), ["FILE REQ %photof", "REPEAT INIT"]);
    // Offered again in this session: not asked again.
    h.init(5, bits(&[FileKind::PhotoFront]));
    assert_eq!(h.take(), ["CLOSE"]);
    assert!(h.stored.is_empty());
}

#[test]
fn a_failed_file_is_not_asked_again_and_status_0x11_ends_the_session() {
    let cfg = Config::default();
    let mut h = H::new(&cfg);
    h.init(5, bits(&[FileKind::VideoFront, FileKind::PhotoFront]));
    h.frame(Frame::Status { code: 9 });
    assert_eq!(h.take(), ["FILE REQ %videof", "REPEAT INIT"]);
    h.init(5, bits(&[FileKind::VideoFront, FileKind::PhotoFront]));
    assert_eq!(h.take(), ["FILE REQ %photof"]);
    h.frame(Frame::Status { code: 0x11 });
    assert_eq!(h.ends, [End::DeviceStatus(0x11)]);
}

#[test]
fn forced_files_come_after_the_reported_ones() {
    let cfg = Config {
        files: Some(vec![FileKind::PhotoRear, FileKind::VideoFront]),
        ..Config::default()
    };
    let mut h = H::new(&cfg);
    h.init(5, bits(&[FileKind::VideoFront, FileKind::PhotoFront]));
    assert_eq!(h.take(), ["FILE REQ %videof"]);
    h.frame(Frame::Start { total: 0, field: 0 });
    h.init(5, bits(&[FileKind::PhotoFront]));
    assert_eq!(h.take(), ["REPEAT INIT", "FILE REQ %photor"]);
}

#[test]
fn max_files_bounds_a_session() {
    let cfg = Config {
        max_files: 3,
        ..Config::default()
    };
    let mut h = H::new(&cfg);
    for _ in 0..3 {
        h.init(5, bits(&[FileKind::PhotoFront]));
        h.frame(Frame::Start { total: 1, field: 0 });
        h.frame(Frame::Sync { offset: 1 });
        h.packets(b"photo", 1, 0);
    }
    assert_eq!(h.stored.len(), 3);
    assert!(h.take().ends_with(&["REPEAT INIT".to_string()]));
    assert!(h.ends.is_empty());
    h.init(5, bits(&[FileKind::PhotoFront]));
    assert_eq!(h.take(), ["CLOSE"]);
    assert_eq!(h.ends, [End::Completed]);
}

#[test]
fn path_flow_checks_offsets_and_sizes_and_refuses_unprintable_paths() {
    let cfg = Config::default();
    let mut h = H::new(&cfg);
    h.init(5, 0x0200_0000);
    h.frame(Frame::Path {
        path: b"/mnt/sd/mdas9/../video 1.mp4",
    });
    h.frame(Frame::Start {
        total: 100,
        field: 0,
    });
    assert_eq!(
        h.take(),
        [
            "PATH REQ",
            "FILE REQ /mnt/sd/mdas9/../video 1.mp4",
            "RESUME 0"
        ]
    );
    h.frame(Frame::Sync { offset: 0 });
    let d = data(100);
    // Past the end of the file: RESUME 0.
    h.frame(Frame::Data {
        payload: &data(101),
        crc: crc16(0, &data(101)),
    });
    assert_eq!(h.take(), ["RESUME 0"]);
    h.frame(Frame::Sync { offset: 0 });
    h.frame(Frame::Data {
        payload: &d[..60],
        crc: crc16(0, &d[..60]),
    });
    h.frame(Frame::Data {
        payload: &d[60..],
        crc: crc16(0, &d[60..]),
    });
    assert_eq!(
        h.take(),
        ["RESUME 60"],
        "restart reading after SYNC 0 is not a restart after 60"
    );
    h.frame(Frame::Sync { offset: 60 });
    h.frame(Frame::Data {
        payload: &d[60..],
        crc: crc16(0, &d[60..]),
    });
    assert_eq!(h.stored[0].1, d);
    assert_eq!(h.stored[0].0.family, Family::Adas);
    for bad in [&b"a\x01b.jpg"[..], b"a\0b.jpg", &[b'a'; 256]] {
        let mut h = H::new(&cfg);
        h.init(5, 0x0200_0000);
        h.frame(Frame::Path { path: bad });
        assert_eq!(h.take(), ["PATH REQ", "CLOSE"]);
        assert!(matches!(h.ends[..], [End::Refused(_)]));
    }
}

#[test]
fn data_in_flight_after_a_given_up_file_is_skipped_before_the_init() {
    let cfg = Config {
        max_crc_retries: 1,
        ..Config::default()
    };
    let mut h = H::new(&cfg);
    h.init(5, bits(&[FileKind::VideoFront, FileKind::PhotoFront]));
    h.frame(Frame::Start { total: 3, field: 0 });
    h.frame(Frame::Sync { offset: 1 });
    h.frame(Frame::Data {
        payload: &[1; 1024],
        crc: 0,
    });
    h.frame(Frame::Sync { offset: 1 });
    h.frame(Frame::Data {
        payload: &[1; 1024],
        crc: 0,
    });
    assert_eq!(
        h.take(),
        ["FILE REQ %videof", "RESUME 1", "RESUME 1", "REPEAT INIT"]
    );
    assert_eq!(h.abandoned, 1);
    h.frame(Frame::Data {
        payload: &[1; 1024],
        crc: 0,
    });
    h.init(5, bits(&[FileKind::VideoFront, FileKind::PhotoFront]));
    assert_eq!(h.take(), ["FILE REQ %photof"]);
}

#[test]
fn the_init_packet_and_every_frame_have_their_deadlines() {
    let cfg = Config {
        init_timeout: Duration::from_secs(10),
        frame_timeout: Duration::from_secs(60),
        ..Config::default()
    };
    // No init within 10 s.
    let mut h = H::new(&cfg);
    assert_eq!(h.s.poll_timeout(), Some(h.now + Duration::from_secs(10)));
    h.at(Duration::from_millis(9999));
    assert!(h.ends.is_empty());
    h.at(Duration::from_millis(1));
    assert_eq!(h.ends, [End::TimedOut(Timeout::Init)]);
    // Part of a frame, then nothing more for 60 s (a slow sender).
    let mut h = H::new(&cfg);
    h.init(5, bits(&[FileKind::VideoFront]));
    h.s.handle_bytes(h.now, true);
    h.at(Duration::from_secs(30));
    h.s.handle_bytes(h.now, true);
    assert!(h.ends.is_empty());
    h.at(Duration::from_secs(30));
    assert_eq!(h.ends, [End::TimedOut(Timeout::Frame)]);
    // A frame completed in time clears the deadline.
    let mut h = H::new(&cfg);
    h.init(5, bits(&[FileKind::VideoFront]));
    h.s.handle_bytes(h.now, true);
    h.at(Duration::from_secs(59));
    h.frame(Frame::Start { total: 2, field: 0 });
    h.s.handle_bytes(h.now, false);
    h.at(Duration::from_secs(2));
    assert!(h.ends.is_empty());
}

/// `--files videof,photor`: %videof is reported and fetched; once the camera
/// no longer reports it, it is not forced again (that asked the camera for a
/// file it had just sent, and STATUS 0x11 ended every such session). Each
/// wanted file is asked once.
#[test]
fn files_never_asks_again_for_a_file_fetched_in_the_session() {
    let cfg = Config {
        files: Some(vec![FileKind::VideoFront, FileKind::PhotoRear]),
        ..Config::default()
    };
    let mut h = H::new(&cfg);
    h.init(5, bits(&[FileKind::VideoFront]));
    assert_eq!(h.take(), ["FILE REQ %videof"]);
    h.frame(Frame::Start { total: 1, field: 0 });
    h.frame(Frame::Sync { offset: 1 });
    h.packets(b"video", 1, 0);
    assert_eq!(h.stored.len(), 1);
    h.take();
    h.init(5, bits(&[]));
    // Not %videof again: the forced %photor, once.
    assert_eq!(h.take(), ["FILE REQ %photor"]);
    h.frame(Frame::Start { total: 0, field: 0 });
    h.init(5, bits(&[]));
    assert_eq!(h.take(), ["REPEAT INIT", "CLOSE"]);
    assert_eq!(h.ends, [End::Completed]);
}

/// A fixed mode that does not take what the camera offers closes with the
/// reason in the log; the session ends Completed (nothing to fetch).
#[test]
fn a_mode_mismatch_closes_and_says_why() {
    for (mode, settings) in [
        (Mode::Dualcam, 0x0200_0000), // an ADAS camera's path-flow file
        (Mode::Adas, bits(&[FileKind::PhotoFront])),
    ] {
        let cfg = Config {
            mode,
            ..Config::default()
        };
        let mut h = H::new(&cfg);
        let reason = h.s.choose(&InitPacket {
            protocol_id: 5,
            imei: 1,
            settings,
        });
        let super::choose::Choice::Nothing(why) = reason else {
            panic!("{mode:?}: {reason:?}");
        };
        assert!(why.contains("--mode"), "{mode:?}: {why}");
        h.init(5, settings);
        assert_eq!(h.take(), ["CLOSE"], "{mode:?}");
        assert_eq!(h.ends, [End::Completed]);
    }
}
