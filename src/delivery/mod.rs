//! Delivery to the integrator's platform: objects to an S3-compatible bucket
//! and events to a webhook, from the durable outbox (`storage::outbox`), by a
//! few plain threads with blocking clients. A job is written (fsynced) on the
//! camera's thread before the camera is told its file is stored, and removed
//! only once the store or the receiver confirmed it; failures wait and retry
//! (1 s doubling up to `--retry-max`), logged. A kill at any point repeats at
//! most the job in flight: the same key with the same bytes, or the same
//! event with the same id (receivers drop repeats by `Idempotency-Key`).
//!
//! Done means proved: an object counts once the store echoed its checksum
//! (see `s3`), an event once the URL itself answered 2xx (no redirect is
//! followed), and a local copy goes only after a `HEAD` shows the object's
//! size and checksum. One party cannot stop delivery: every request has a
//! deadline, a few workers share the queue, a job file or a media file that
//! is not a plain file is never opened (no FIFO, no link), a job with a key
//! the server would never make is set aside (`.bad`), and one the other side
//! refuses for good (a 4xx but 408/429, [`GIVE_UP_AFTER`] times) is set aside
//! (`.failed`) with an error line and a metric.
//!
//! Owns: the outbox's workers and their HTTP clients. May use: storage (the
//! outbox, sidecars, derived files), `net` (a session's summary, for events
//! of refused files). Nothing here imports `cli`, `tools`, `web` or `app`.

pub mod s3;
pub mod sigv4;
mod upload;
mod webhook;
mod worker;

/// What delivery could not do, for the code that called it. Its message is
/// one whole line (the cause's words included); `source` is the cause.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// A stored file's upload or event could not be written to the outbox:
    /// the camera is not told it is stored, and sends it again.
    #[error("cannot queue {} for delivery: {why}", file.display())]
    Queue {
        file: std::path::PathBuf,
        why: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use serde_json::json;

use self::s3::{S3Client, S3Config};
use crate::lock;
use crate::storage::outbox::{Job, Object, Outbox, Queued, BAD, FAILED};
use crate::storage::Stored;

/// A job refused for good (a 4xx other than 408 and 429) this many times in
/// a row is set aside as `.failed`.
pub const GIVE_UP_AFTER: u32 = 3;

#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    pub s3: Option<S3Config>,
    pub webhook: Option<String>,
    pub webhook_secret: Option<String>,
    /// Remove the local media once its object is confirmed.
    pub delete_local: bool,
    /// `--convert mp4` is on: a video is removed locally only once its mp4
    /// is made (the converter needs it).
    pub converting: bool,
    /// Uploader threads.
    pub workers: usize,
    /// The longest wait between two attempts of a job.
    pub retry_max: Duration,
}

impl DeliveryConfig {
    pub fn is_on(&self) -> bool {
        self.s3.is_some() || self.webhook.is_some()
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct DeliveryStats {
    pub uploads_queued: AtomicU64,
    pub uploads_done: AtomicU64,
    pub upload_failures: AtomicU64,
    pub webhooks_queued: AtomicU64,
    pub webhooks_done: AtomicU64,
    pub webhook_failures: AtomicU64,
    /// Jobs set aside: refused for good, or not a job the server would make.
    pub set_aside: AtomicU64,
    /// Local copies kept because the store did not show the object as sent.
    pub kept_unconfirmed: AtomicU64,
}

struct Waiting {
    job: Queued,
    attempts: u32,
    /// Refusals for good in a row (4xx but 408/429).
    refusals: u32,
    due: Instant,
}

struct Inner {
    cfg: DeliveryConfig,
    outbox: Outbox,
    s3: Option<S3Client>,
    http: ureq::Agent,
    queue: Mutex<VecDeque<Waiting>>,
    wake: Condvar,
    stop: AtomicBool,
    stats: DeliveryStats,
}

pub struct Delivery {
    inner: Arc<Inner>,
    workers: Vec<JoinHandle<()>>,
}

/// A handle the camera threads and the HTTP endpoint keep.
#[derive(Clone)]
pub struct DeliveryHandle(Arc<Inner>);

impl Delivery {
    /// Opens the outbox of `root`, queues what a stop left in it, and starts
    /// the workers.
    pub fn start(root: &Path, cfg: DeliveryConfig) -> Result<Delivery> {
        let outbox = Outbox::open(root).map_err(|e| anyhow!("{e}"))?;
        let inner = Arc::new(Inner {
            s3: cfg.s3.clone().map(S3Client::new),
            // No redirect is followed: an event is delivered only by a 2xx
            // from the URL itself. The whole exchange has 30 s.
            http: ureq::AgentBuilder::new()
                .redirects(0)
                .timeout_connect(Duration::from_secs(10))
                .timeout(Duration::from_secs(30))
                .build(),
            cfg,
            outbox,
            queue: Mutex::new(VecDeque::new()),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            stats: DeliveryStats::default(),
        });
        let left = inner.outbox.pending();
        if !left.is_empty() {
            log::info!("outbox: {} job(s) a stop left, delivering them", left.len());
        }
        for q in left {
            inner.enqueue(q);
        }
        let workers = (0..inner.cfg.workers.max(1))
            .map(|i| {
                let inner = inner.clone();
                std::thread::Builder::new()
                    .name(format!("deliver-{i}"))
                    .spawn(move || inner.work())
                    .context("starting an uploader thread")
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Delivery { inner, workers })
    }

    pub fn handle(&self) -> DeliveryHandle {
        DeliveryHandle(self.inner.clone())
    }

    /// Stops after the jobs in flight (waits up to `wait` for them; what is
    /// not done stays in the outbox for the next start).
    pub fn stop(self, wait: Duration) {
        self.inner.stop.store(true, Ordering::SeqCst);
        self.inner.wake.notify_all();
        let deadline = Instant::now() + wait;
        for w in self.workers {
            crate::join_by(w, deadline);
        }
        let left = self.inner.outbox.len();
        if left > 0 {
            log::info!("outbox: {left} job(s) kept for the next start");
        }
    }
}

impl DeliveryHandle {
    pub fn stats(&self) -> &DeliveryStats {
        &self.0.stats
    }

    /// Jobs waiting (uploads, webhooks).
    /// How long the oldest job waiting has been in the outbox (zero when
    /// none waits): a store or receiver that keeps refusing shows here.
    pub fn oldest_waiting(&self) -> Duration {
        let now = chrono::Utc::now().timestamp_millis().max(0) as u64;
        let oldest = lock(&self.0.queue)
            .iter()
            .filter_map(|w| w.job.queued_at_ms())
            .min();
        oldest.map_or(Duration::ZERO, |t| {
            Duration::from_millis(now.saturating_sub(t))
        })
    }

    pub fn queued(&self) -> (u64, u64) {
        let s = &self.0.stats;
        (
            s.uploads_queued.load(Ordering::Relaxed),
            s.webhooks_queued.load(Ordering::Relaxed),
        )
    }

    /// A file is stored (or was already): its jobs are written before the
    /// camera is told. A file sent again repeats them (same keys, same bytes,
    /// same event id) only when they may never have been queued: a crash
    /// between the rename and this call loses nothing. Not when its sidecar
    /// records the upload or the local removal, nor while its upload waits.
    pub fn stored(&self, st: &Stored) -> Result<(), DeliveryError> {
        self.0.stored(st).map_err(|e| {
            log::error!(
                "[{}] outbox: cannot queue {} for delivery: {e:#}",
                st.sidecar.imei,
                st.path.display()
            );
            DeliveryError::Queue {
                file: st.path.clone(),
                why: format!("{e:#}"),
                source: e.into(),
            }
        })
    }

    /// A file the server refused (larger than `--max-file-mb`, a path it
    /// will not take): an event, so the platform knows it is not coming.
    pub fn refused(&self, summary: &crate::net::driver::Summary) {
        use crate::session::Refusal;
        let (Some(imei), true) = (summary.imei, self.0.cfg.webhook.is_some()) else {
            return;
        };
        for r in &summary.refused {
            let file = match r {
                Refusal::TooLarge { file, .. } => file.clone(),
                Refusal::Path { shown, .. } => shown.clone(),
                _ => continue,
            };
            let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            let event = json!({
                "event": "refused",
                "id": format!("{imei}:{file}:refused:{at}"),
                "imei": imei.to_string(),
                "file": file,
                "reason": r.to_string(),
                "at": at,
            });
            if let Err(e) = self.0.push_event(event) {
                log::error!("[{imei}] outbox: cannot queue the refusal event: {e:#}");
            }
        }
    }

    /// A video's mp4 is made: it goes up too (with its updated sidecar),
    /// with an event that names its object.
    pub fn converted(&self, st: &Stored, mp4: &Path) {
        let go = || -> Result<()> {
            let inner = &self.0;
            let rel = inner.rel(mp4)?;
            let event = json!({
                "event": "converted",
                "id": format!("{rel}:converted"),
                "imei": st.sidecar.imei,
                "path": rel,
                "source": inner.rel(&st.path)?,
                "sidecar": st.sidecar,
            });
            inner.deliver(&st.sidecar_path, rel, None, false, event)
        };
        if let Err(e) = go() {
            log::error!("outbox: cannot queue {}: {e:#}", mp4.display());
        }
    }
}

impl Inner {
    fn rel(&self, p: &Path) -> Result<String> {
        self.outbox
            .relative(p)
            .ok_or_else(|| anyhow!("{} is not under the output folder", p.display()))
    }

    fn enqueue(&self, job: Queued) {
        match job.job {
            Job::Upload { .. } => &self.stats.uploads_queued,
            Job::Webhook { .. } => &self.stats.webhooks_queued,
        }
        .fetch_add(1, Ordering::Relaxed);
        lock(&self.queue).push_back(Waiting {
            job,
            attempts: 0,
            refusals: 0,
            due: Instant::now(),
        });
        self.wake.notify_one();
    }

    fn push(&self, job: Job) -> Result<()> {
        let q = self.outbox.push(job).map_err(|e| anyhow!("{e}"))?;
        self.enqueue(q);
        Ok(())
    }

    fn push_event(&self, body: serde_json::Value) -> Result<()> {
        let id = body["id"].as_str().unwrap_or_default().to_string();
        self.push(Job::Webhook { id, body })
    }

    fn stored(&self, st: &Stored) -> Result<()> {
        if st.duplicate_of.is_some() {
            // The stored file's sidecar as it is now (one read).
            let on_disk = crate::storage::read_sidecar(&st.sidecar_path);
            if on_disk
                .as_ref()
                .is_some_and(|sc| crate::storage::removed_on_purpose_by(&st.path, sc))
            {
                // Sent again after its local copy was removed: its object was
                // confirmed (or, without S3, its event queued) before that.
                return Ok(());
            }
            if self.cfg.s3.is_some() {
                let name = st.path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if on_disk.is_some_and(|sc| sc.is_uploaded(name)) {
                    log::debug!(
                        "{}: sent again, its object is confirmed already",
                        st.path.display()
                    );
                    return Ok(());
                }
                // Its upload still waits: that job will do.
                let rel = self.rel(&st.path)?;
                let waiting = lock(&self.queue)
                    .iter()
                    .any(|w| matches!(&w.job.job, Job::Upload { path, .. } if *path == rel));
                if waiting {
                    log::debug!("{rel}: sent again, its upload waits already");
                    return Ok(());
                }
            }
        }
        let rel = self.rel(&st.path)?;
        let id = format!("{rel}:{}", st.sidecar.sha256.hex());
        let mut event = json!({
            "event": "stored",
            "id": id,
            "imei": st.sidecar.imei,
            "path": rel,
            "sidecar": st.sidecar,
        });
        // A duplicate's sidecar says so; the event is the stored file's.
        if let Some(sc) = event["sidecar"].as_object_mut() {
            sc.remove("duplicate_of");
        }
        let sha256 = Some(st.sidecar.sha256);
        self.deliver(&st.sidecar_path, rel, sha256, true, event)
    }

    /// With S3 on: the file's upload (`rel`); once confirmed, its sidecar's
    /// (which then records the media's object), whose confirmation sends
    /// `event` naming the file's object. Without: the event.
    fn deliver(
        &self,
        sidecar: &Path,
        rel: String,
        sha256: Option<crate::storage::Sha256Digest>,
        media: bool,
        mut event: serde_json::Value,
    ) -> Result<()> {
        let Some(s3) = &self.cfg.s3 else {
            if self.cfg.webhook.is_some() {
                self.push_event(event)?;
            }
            return Ok(());
        };
        let key = s3.key_for(&rel);
        event["object"] = json!({
            "bucket": s3.bucket,
            "key": key,
            "url": s3.location(&key),
        });
        let sc_rel = self.rel(sidecar)?;
        self.push(Job::Upload {
            path: rel,
            key,
            sha256,
            then_event: self.cfg.webhook.is_some().then_some(event),
            media,
            then_sidecar: Some(Object {
                key: s3.key_for(&sc_rel),
                path: sc_rel,
            }),
        })
    }
}

enum Outcome {
    Done,
    /// Can never be done (the file is gone): dropped, logged.
    Gone,
    /// Can never be done (it names what is not a plain file): set aside.
    Bad(String),
}

/// Jobs waiting in the outbox of the output folder `root` (a count of files).
pub fn outbox_len(root: &Path) -> usize {
    Outbox::open(root).map_or(0, |o| o.len())
}
