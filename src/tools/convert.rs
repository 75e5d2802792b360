//! `--convert mp4`: the vendor's ffmpeg recipe, run off the cameras' threads.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::storage::{self, derived, media, Stored};

/// Queue of finished videos and one worker converting them (the camera threads
/// never wait for ffmpeg).
pub struct Converter {
    tx: SyncSender<Stored>,
    waiting: Arc<std::sync::atomic::AtomicUsize>,
    stats: Arc<ConvertStats>,
    stop: Arc<AtomicBool>,
    worker: JoinHandle<()>,
}

/// Where camera threads hand finished videos to the converter.
#[derive(Clone)]
pub struct ConvertQueue(SyncSender<Stored>, Arc<std::sync::atomic::AtomicUsize>);

/// Conversions since start, for `/metrics`.
#[derive(Debug, Default)]
pub struct ConvertStats {
    pub done: std::sync::atomic::AtomicU64,
    pub failed: std::sync::atomic::AtomicU64,
}

/// Called with each video whose mp4 was made, and the mp4's path.
pub type OnConverted = Box<dyn Fn(&Stored, &Path) + Send>;

/// Videos waiting for the converter. A camera thread never waits for it: when
/// it is full, the video is left for the next start (or `dashcam-server
/// convert`), which converts every stored video that has no mp4 yet.
const QUEUE: usize = 256;

impl ConvertQueue {
    /// Queues a stored video if it needs converting: the camera's container
    /// or a raw stream, by its first bytes (an `.mp4` that is an mp4 does not).
    pub fn submit(&self, stored: &Stored) {
        // A file sent again is the stored one: converted (or queued) when it
        // was stored, or by the backlog at the next start.
        if stored.duplicate_of.is_none() && needs_conversion(stored) {
            self.1.fetch_add(1, Ordering::Relaxed);
            if let Err(TrySendError::Full(s)) = self.0.try_send(stored.clone()) {
                self.1.fetch_sub(1, Ordering::Relaxed);
                log::warn!(
                    "[{}] conversion queue full ({QUEUE}): {} is converted at the next start or by 'dashcam-server convert'",
                    s.sidecar.imei,
                    s.path.display()
                );
            }
        }
    }
}

/// A video whose first bytes are the camera's container or a raw stream.
pub fn needs_conversion(stored: &Stored) -> bool {
    derived::is_convertible(&stored.sidecar, &stored.path)
}

/// The ffmpeg input arguments for a stored video: the camera's container is
/// split into its H.265 stream and its A-law sound first (temp files, removed
/// with the returned guards); a raw stream is read as it is.
struct Inputs {
    args: Vec<std::ffi::OsString>,
    fps: f64,
    audio: bool,
    container: bool,
    _scratch: Vec<derived::Derived>,
}

/// A rate as ffmpeg's `-r` takes it and a person reads it: "30", "29.97".
fn rate_text(r: f64) -> String {
    let s = format!("{r:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn inputs(stored: &Stored, default_fps: u32) -> Result<Inputs, String> {
    let meta_fps = stored
        .sidecar
        .metadata
        .as_ref()
        .and_then(|m| m.frame_rate)
        .filter(|f| (1..=120).contains(f))
        .map(u32::from);
    let kind = media::sniff_file(&stored.path).map_err(|e| e.to_string())?;
    if kind != dashcam_protocol::codec::container::Sniffed::Ptmf {
        // The stream's own timing (its SPS/VUI), else the metadata's rate,
        // else --fps: ffmpeg would otherwise assume 25 whatever it says.
        let fps = crate::tools::ffmpeg::stream_timing(&stored.path)
            .map(|(scale, tick)| f64::from(scale) / f64::from(tick))
            .filter(|r| (1.0..=240.0).contains(r))
            .or(meta_fps.map(f64::from))
            .unwrap_or(f64::from(default_fps));
        return Ok(Inputs {
            args: vec![
                "-r".into(),
                rate_text(fps).into(),
                "-i".into(),
                stored.path.clone().into(),
            ],
            fps,
            audio: false,
            container: false,
            _scratch: Vec::new(),
        });
    }
    let video = derived::scratch(&stored.path, "video.h265").map_err(|e| e.to_string())?;
    let audio = derived::scratch(&stored.path, "audio.alaw").map_err(|e| e.to_string())?;
    let (summary, stop) = {
        let mut v = std::io::BufWriter::new(video.file());
        let mut a = std::io::BufWriter::new(audio.file());
        let r = media::demux(&stored.path, &mut v, &mut a).map_err(|e| e.to_string())?;
        std::io::Write::flush(&mut v).map_err(|e| e.to_string())?;
        std::io::Write::flush(&mut a).map_err(|e| e.to_string())?;
        r
    };
    if summary.video_frames == 0 {
        return Err(format!(
            "no video frame in the container{}",
            stop.map_or(String::new(), |e| format!(" ({e})"))
        ));
    }
    // The container's own rate: what the camera recorded at.
    let fps = f64::from(
        summary
            .frame_rate
            .map(u32::from)
            .filter(|f| (1..=120).contains(f))
            .or(meta_fps)
            .unwrap_or(default_fps),
    );
    let mut args: Vec<std::ffi::OsString> = vec![
        "-r".into(),
        rate_text(fps).into(),
        "-f".into(),
        "hevc".into(),
        "-i".into(),
        video.path().into(),
    ];
    let has_audio = summary.audio_chunks > 0;
    if has_audio {
        for a in ["-f", "alaw", "-ar", "8000", "-ac", "1", "-i"] {
            args.push(a.into());
        }
        args.push(audio.path().into());
    }
    Ok(Inputs {
        args,
        fps,
        audio: has_audio,
        container: true,
        _scratch: vec![video, audio],
    })
}

/// Stored videos (of one camera, or all) that need an mp4 and have none, or
/// whose conversion was interrupted or failed; with `force`, every video.
pub fn pending(root: &Path, imei: Option<u64>, force: bool) -> Vec<Stored> {
    storage::catalog::all_files(root)
        .into_iter()
        .filter(|f| imei.is_none_or(|i| i == f.imei))
        .map(Stored::from)
        .filter(needs_conversion)
        .filter(|s| {
            force
                || derived::leftover_conversion(&s.path).is_some()
                || s.sidecar
                    .mp4
                    .as_ref()
                    .is_none_or(|m| !s.path.with_file_name(m).is_file())
        })
        .collect()
}

/// `dashcam-server convert`: converts what is pending, one line per file.
/// Returns (converted, failed).
pub fn convert_all(
    root: &Path,
    imei: Option<u64>,
    force: bool,
    fps: u32,
    trim: f64,
) -> (usize, usize) {
    let todo = pending(root, imei, force);
    let n = todo.len();
    println!("{n} video(s) to convert under {}", root.display());
    let (mut ok, mut failed) = (0, 0);
    for (i, mut s) in todo.into_iter().enumerate() {
        let began = std::time::Instant::now();
        convert_one(&mut s, fps, trim, root);
        let name = s
            .path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        match (&s.sidecar.mp4, &s.sidecar.conversion_error) {
            (Some(mp4), None) => {
                ok += 1;
                println!(
                    "[{}/{n}] {}/{name} -> {mp4} in {:.1} s",
                    i + 1,
                    s.sidecar.imei,
                    began.elapsed().as_secs_f64()
                );
            }
            (_, e) => {
                failed += 1;
                println!(
                    "[{}/{n}] {}/{name}: FAILED {}",
                    i + 1,
                    s.sidecar.imei,
                    e.as_deref().unwrap_or("(no mp4)")
                );
            }
        }
    }
    (ok, failed)
}

/// True when ffmpeg runs (beside the binary, or on PATH).
pub fn ffmpeg_available() -> bool {
    crate::tools::ffmpeg::available()
}

impl Converter {
    /// None (and one warning) when ffmpeg is missing. `trim` seconds are cut
    /// from the start (the vendor's recipe cuts 0.9 s); each result is
    /// recorded in the index of `root` as a `converted` line.
    pub fn start(
        default_fps: u32,
        trim: f64,
        root: PathBuf,
        on_converted: Option<OnConverted>,
    ) -> Option<Converter> {
        let root_for_backlog = root.clone();
        if !ffmpeg_available() {
            log::warn!("--convert mp4: {}; videos are stored as they came, with conversion_error in their sidecar, and converted at a later start once ffmpeg is installed (or by 'dashcam-server convert')", crate::tools::ffmpeg::HOW_TO_GET);
        }
        let (tx, rx) = mpsc::sync_channel::<Stored>(QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let worker_stop = stop.clone();
        let waiting = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let worker_waiting = waiting.clone();
        let stats = Arc::new(ConvertStats::default());
        let worker_stats = stats.clone();
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
                        match stored.sidecar.conversion_error {
                            None => &worker_stats.done,
                            Some(_) => &worker_stats.failed,
                        }
                        .fetch_add(1, Ordering::Relaxed);
                        let _ = worker_waiting.fetch_update(
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                            |n| Some(n.saturating_sub(1)),
                        );
                        if let (Some(hook), Some(mp4)) = (&on_converted, &stored.sidecar.mp4) {
                            if let Some(dir) = stored.path.parent() {
                                hook(&stored, &dir.join(mp4));
                            }
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            })
            .ok()?;
        // What a stop or a crash left unconverted (or a failure whose cause
        // may be gone): queued again, from a thread of its own.
        let backlog = tx.clone();
        let backlog_waiting = waiting.clone();
        let scan_root = root_for_backlog;
        let _ = thread::Builder::new()
            .name("convert-backlog".into())
            .spawn(move || {
                let todo = pending(&scan_root, None, false);
                if !todo.is_empty() {
                    log::info!(
                        "{} stored video(s) without their mp4: converting them",
                        todo.len()
                    );
                }
                for s in todo {
                    backlog_waiting.fetch_add(1, Ordering::Relaxed);
                    if backlog.send(s).is_err() {
                        return;
                    }
                }
            });
        Some(Converter {
            tx,
            waiting,
            stats,
            stop,
            worker,
        })
    }

    pub fn queue(&self) -> ConvertQueue {
        ConvertQueue(self.tx.clone(), self.waiting.clone())
    }

    /// Conversions done and failed since start.
    pub fn stats(&self) -> Arc<ConvertStats> {
        self.stats.clone()
    }

    /// Videos waiting for conversion now.
    pub fn waiting(&self) -> Arc<std::sync::atomic::AtomicUsize> {
        self.waiting.clone()
    }

    /// Lets the conversion running now finish (waiting up to `wait`); skips
    /// the rest of the queue. A conversion still running then is left (its
    /// video is converted at the next start).
    pub fn stop(self, wait: Duration) {
        self.stop.store(true, Ordering::SeqCst);
        drop(self.tx);
        if !crate::join_by(self.worker, std::time::Instant::now() + wait) {
            log::warn!(
                "a conversion still runs after {} s: left, converted again at the next start",
                wait.as_secs()
            );
        }
    }
}

fn convert_one(stored: &mut Stored, default_fps: u32, trim: f64, root: &Path) {
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
    let mut fps = f64::from(default_fps);
    let mut trimmed = 0.0;
    let outcome = inputs(stored, default_fps).and_then(|inp| {
        fps = inp.fps;
        trimmed = run_ffmpeg(&inp, trim, target.path())?;
        Ok(())
    });
    let outcome = outcome.and_then(|()| target.commit().map(|_| ()).map_err(|e| e.to_string()));
    match outcome {
        Ok(()) => {
            let name = out
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            log::info!(
                "[{}] converted {} to {name} at {} fps{}",
                stored.sidecar.imei,
                stored.path.display(),
                rate_text(fps),
                if trimmed > 0.0 {
                    format!(", the first {trimmed} s cut (--convert-trim)")
                } else {
                    String::new()
                }
            );
            stored.sidecar.mp4 = Some(name);
            stored.sidecar.conversion_error = None;
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
    record_conversion(stored, root, fps, trimmed);
}

/// Runs ffmpeg on a stored video's inputs, writing the mp4 at `dest`; the
/// seconds cut from its start (only a raw stream's, only when asked).
fn run_ffmpeg(inp: &Inputs, trim: f64, dest: &Path) -> Result<f64, String> {
    let mut trimmed = 0.0;
    let mut cmd = crate::tools::ffmpeg::command();
    cmd.args(["-hide_banner", "-nostdin", "-y", "-loglevel", "error"])
        .args(&inp.args);
    // The vendor's trim is for a raw stream's damaged start; a container
    // is read cleanly, every frame kept.
    if trim > 0.0 && !inp.container {
        trimmed = trim;
        cmd.arg("-ss").arg(format!("{trim:.3}"));
    }
    cmd.args(["-map", "0:v:0"]);
    if inp.audio {
        cmd.args(["-map", "1:a:0", "-c:a", "aac", "-b:a", "64k"]);
    }
    // H.264 in yuv420p with the index up front: every browser and
    // Windows' own player take it.
    cmd.args([
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-pix_fmt",
        "yuv420p",
        "-movflags",
        "+faststart",
        "-f",
        "mp4",
    ])
    .arg(dest)
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    match cmd.output() {
        Ok(o) if o.status.success() => Ok(trimmed),
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
    }
}

/// The conversion's result, in the index (an event line) and in the
/// sidecar as it is on disk now (another thread's change is kept).
fn record_conversion(stored: &Stored, root: &Path, fps: f64, trimmed: f64) {
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
        "trim_s": trimmed,
        "error": stored.sidecar.conversion_error,
        "at": crate::storage::sidecar::rfc3339(chrono::Utc::now()),
    });
    if let Err(e) = storage::publish::append_index_event(root, &event) {
        log::warn!(
            "[{}] could not record the conversion in the index: {e:#}",
            stored.sidecar.imei
        );
    }
    // The sidecar as it is on disk now gets the result: another thread's
    // change (a local removal) is kept.
    let (mp4, error) = (
        stored.sidecar.mp4.clone(),
        stored.sidecar.conversion_error.clone(),
    );
    if let Err(e) = storage::update_sidecar(&stored.sidecar_path, |sc| {
        sc.mp4 = mp4;
        sc.conversion_error = error;
        Ok(())
    }) {
        log::warn!(
            "[{}] could not update {}: {e:#}",
            stored.sidecar.imei,
            stored.sidecar_path.display()
        );
    }
}
