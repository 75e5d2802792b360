//! `--convert mp4`: the vendor's ffmpeg recipe, run off the cameras' threads.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::storage::{self, derived, Stored};

/// Queue of finished videos and one worker converting them (the camera threads
/// never wait for ffmpeg).
pub struct Converter {
    tx: Sender<Stored>,
    stop: Arc<AtomicBool>,
    worker: JoinHandle<()>,
}

/// Where camera threads hand finished videos to the converter.
#[derive(Clone)]
pub struct ConvertQueue(Sender<Stored>);

impl ConvertQueue {
    /// Queues a stored file; only raw H.265 video is converted.
    pub fn submit(&self, stored: &Stored) {
        let is_h265 = stored
            .path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("h265"));
        if is_h265 {
            let _ = self.0.send(stored.clone());
        }
    }
}

/// True when `ffmpeg -version` runs.
pub fn ffmpeg_available() -> bool {
    Command::new("ffmpeg")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Converter {
    /// None (and one warning) when ffmpeg is missing. `trim` seconds are cut
    /// from the start (the vendor's recipe cuts 0.9 s); each result is
    /// recorded in the index of `root` as a `converted` line.
    pub fn start(default_fps: u32, trim: f64, root: PathBuf) -> Option<Converter> {
        if !ffmpeg_available() {
            log::warn!("--convert mp4: ffmpeg not found on PATH; videos are stored as .h265 only (install ffmpeg to convert)");
            return None;
        }
        let (tx, rx) = mpsc::channel::<Stored>();
        let stop = Arc::new(AtomicBool::new(false));
        let worker_stop = stop.clone();
        let worker = thread::Builder::new()
            .name("convert".into())
            .spawn(move || loop {
                if worker_stop.load(Ordering::SeqCst) {
                    let left = rx.try_iter().count();
                    if left > 0 {
                        log::info!(
                            "server stopping: {left} video(s) left unconverted (.h265 kept)"
                        );
                    }
                    return;
                }
                match rx.recv_timeout(Duration::from_millis(200)) {
                    Ok(mut stored) => {
                        convert_one(&mut stored, default_fps, trim, &root);
                        crate::gallery::notify_changed(&root);
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            })
            .ok()?;
        Some(Converter { tx, stop, worker })
    }

    pub fn queue(&self) -> ConvertQueue {
        ConvertQueue(self.tx.clone())
    }

    /// Lets the conversion running now finish; skips the rest of the queue.
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        drop(self.tx);
        let _ = self.worker.join();
    }
}

fn convert_one(stored: &mut Stored, default_fps: u32, trim: f64, root: &Path) {
    let fps = stored
        .sidecar
        .metadata
        .as_ref()
        .and_then(|m| m.frame_rate)
        .filter(|f| (1..=120).contains(f))
        .map_or(default_fps, u32::from);
    // ffmpeg writes a temp file storage created (never through a link);
    // storage renames it into place.
    let target = match derived::begin_mp4(&stored.path) {
        Ok(t) => t,
        Err(e) => {
            log::warn!(
                "[{}] cannot convert {}: {e}",
                stored.sidecar.imei,
                stored.path.display()
            );
            return;
        }
    };
    let out = target.dest().to_path_buf();
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-r"])
        .arg(fps.to_string())
        .arg("-i")
        .arg(&stored.path);
    if trim > 0.0 {
        cmd.arg("-ss").arg(format!("{trim:.3}"));
    }
    let result = cmd
        .args(["-c:a", "copy", "-c:v", "libx264", "-f", "mp4"])
        .arg(target.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    let outcome = match result {
        Ok(o) if o.status.success() => target.commit().map(|_| ()).map_err(|e| e.to_string()),
        Ok(o) => {
            let text = String::from_utf8_lossy(&o.stderr);
            let lines: Vec<&str> = text.lines().rev().take(5).collect();
            let last: Vec<&str> = lines.into_iter().rev().collect();
            Err(format!(
                "ffmpeg failed ({}): {}",
                o.status,
                last.join(" | ")
            ))
        }
        Err(e) => Err(format!("could not run ffmpeg: {e}")),
    };
    match outcome {
        Ok(()) => {
            let name = out
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            log::info!(
                "[{}] converted {} to {name} at {fps} fps",
                stored.sidecar.imei,
                stored.path.display()
            );
            stored.sidecar.mp4 = Some(name);
        }
        Err(e) => {
            log::warn!(
                "[{}] conversion of {} failed: {e}",
                stored.sidecar.imei,
                stored.path.display()
            );
            stored.sidecar.conversion_error = Some(e);
        }
    }
    let rel = |p: &Path| {
        p.strip_prefix(root)
            .unwrap_or(p)
            .to_string_lossy()
            .replace('\\', "/")
    };
    let event = serde_json::json!({
        "event": "converted",
        "path": rel(&stored.path),
        "imei": stored.sidecar.imei,
        "mp4": stored.sidecar.mp4.as_ref().map(|m| rel(&stored.path.with_file_name(m))),
        "fps": fps,
        "trim_s": trim,
        "error": stored.sidecar.conversion_error,
        "at": crate::storage::sidecar::rfc3339(chrono::Utc::now()),
    });
    if let Err(e) = storage::publish::append_index_event(root, &event) {
        log::warn!(
            "[{}] could not record the conversion in the index: {e:#}",
            stored.sidecar.imei
        );
    }
    if let Err(e) = storage::write_sidecar(stored) {
        log::warn!(
            "[{}] could not update {}: {e:#}",
            stored.sidecar.imei,
            stored.sidecar_path.display()
        );
    }
}
