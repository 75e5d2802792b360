//! What the camera says of a file: its capture time and its metadata in the
//! layout of its family (DualCam binary, ADAS, DSM, protocol 6 JSON).

use super::*;

impl Camera {
    /// The local file offered under `id` (in the path flow, the path the
    /// camera offered).
    fn local_path(&self, id: &[u8]) -> Option<std::path::PathBuf> {
        self.pending
            .iter()
            .chain(&self.later)
            .find(|o| o.identifier == id || self.offered_path.as_deref() == Some(&o.identifier))
            .map(|o| o.path.clone())
    }

    /// The time a file's metadata reports: `--time`, else the local file's
    /// modification time (the same at every run, so a resume finds its
    /// partial), else now.
    pub(super) fn file_time(&self, id: &[u8]) -> i64 {
        if let Some(t) = self.cfg.meta_time {
            return t;
        }
        let local = self.local_path(id);
        local
            .and_then(|p| std::fs::metadata(p).ok()?.modified().ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(unix_now() as i64, |d| d.as_secs() as i64)
    }

    pub(super) fn metadata_for(&self, id: &[u8]) -> Vec<u8> {
        let now = self.file_time(id);
        let (lat, lon) = self.cfg.position;
        // This file's own frame rate and length, when given (--file-meta).
        let key = if id.is_empty() {
            self.offered_path.clone().unwrap_or_default()
        } else {
            id.to_vec()
        };
        let local = self.local_path(id);
        let (fps, vdur) = self
            .cfg
            .file_meta
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|&(_, f, d)| (f, d))
            .or_else(|| {
                let local = local.as_ref()?;
                self.cfg
                    .meta_by_file
                    .iter()
                    .find(|(p, _, _)| p == local)
                    .map(|&(_, f, d)| (f, d))
            })
            .unwrap_or((self.cfg.frame_rate, self.cfg.video_duration_s));
        if let Some(kind) = FileKind::from_identifier(id) {
            let dur = if kind.is_video() { vdur } else { 0 };
            return encode::dualcam(kind.bit(), now as u64 * 1000, 3, dur, fps, 120, lat, lon);
        }
        // The path flow asks without an identifier: the file just offered by PATH.
        let path = self.offered_path.clone().unwrap_or_default();
        let video = path.ends_with(b".mp4") || path.ends_with(b".h265");
        if self.cfg.protocol_id >= 6 {
            let json = serde_json::json!({
                "version": 1,
                "file": {"file_type": if video { 0 } else { 1 }, "file_timestamp": now,
                         "duration": if video { vdur } else { 0 }, "framerate": fps},
                "fm_trigger": {"type": 5},
                "location": {"latitude": lat, "longitude": lon},
                "cam_trigger": {"type": 3},
                "driver_name": "JONAS",
                "path": String::from_utf8_lossy(&path),
            });
            return json.to_string().into_bytes();
        }
        let family = Family::from_path(&path).unwrap_or(self.cfg.family);
        match family {
            Family::Adas => encode::adas(
                now as u32,
                !video as u8,
                5,
                lat,
                lon,
                if video { vdur.min(255) as u8 } else { 0 },
            ),
            Family::Dsm => encode::dsm(now as u32, !video as u8, 13, lat, lon, 0b1001, "JONAS"),
            Family::DualCam => {
                encode::dualcam(0x10, now as u64 * 1000, 3, vdur, fps, 120, lat, lon)
            }
        }
    }
}
