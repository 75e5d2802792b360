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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

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

    fn work(&self) {
        loop {
            let next = {
                let mut q = lock(&self.queue);
                loop {
                    if self.stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let now = Instant::now();
                    if let Some(i) = q.iter().position(|w| w.due <= now) {
                        break q.remove(i).expect("an index just found");
                    }
                    let wait = q
                        .iter()
                        .map(|w| w.due - now)
                        .min()
                        .unwrap_or(Duration::from_secs(1))
                        .min(Duration::from_secs(1));
                    q = self
                        .wake
                        .wait_timeout(q, wait)
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0;
                }
            };
            self.run(next);
        }
    }

    fn run(&self, mut w: Waiting) {
        let upload = matches!(w.job.job, Job::Upload { .. });
        let (queued, done, failed) = if upload {
            (
                &self.stats.uploads_queued,
                &self.stats.uploads_done,
                &self.stats.upload_failures,
            )
        } else {
            (
                &self.stats.webhooks_queued,
                &self.stats.webhooks_done,
                &self.stats.webhook_failures,
            )
        };
        if let Some(why) = w.job.job.problem() {
            log::error!(
                "outbox: {}: {why}: set aside as .{BAD}, not tried",
                w.job.file.display()
            );
            self.set_aside(&w.job, BAD, queued);
            return;
        }
        match self.attempt(&w.job) {
            Ok(Outcome::Bad(why)) => {
                log::error!(
                    "outbox: {}: {why}: set aside as .{BAD}",
                    describe(&w.job.job)
                );
                self.set_aside(&w.job, BAD, queued);
            }
            Ok(Outcome::Done) | Ok(Outcome::Gone) => {
                if let Err(e) = self.outbox.done(&w.job) {
                    log::error!("outbox: {e}");
                }
                queued.fetch_sub(1, Ordering::Relaxed);
                done.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                failed.fetch_add(1, Ordering::Relaxed);
                w.attempts += 1;
                let for_good = crate::delivery::s3::status_of(&e)
                    .is_some_and(|c| (400..500).contains(&c) && c != 408 && c != 429);
                w.refusals = if for_good { w.refusals + 1 } else { 0 };
                if w.refusals >= GIVE_UP_AFTER {
                    log::error!(
                        "outbox: {} refused for good ({} times: {e:#}): set aside as {}.{FAILED} \
                         (dashcam_outbox_set_aside_total); rename it back to .job to try again at the next start",
                        describe(&w.job.job),
                        w.refusals,
                        w.job.file.with_extension("").display()
                    );
                    self.set_aside(&w.job, FAILED, queued);
                    return;
                }
                let wait = Duration::from_secs(1u64 << w.attempts.min(16)).min(self.cfg.retry_max);
                log::warn!(
                    "outbox: {} failed (attempt {}): {e:#}; again in {} s",
                    describe(&w.job.job),
                    w.attempts,
                    wait.as_secs()
                );
                if w.attempts.is_multiple_of(10) {
                    log::error!(
                        "outbox: {} has failed {} times; it is kept and tried again (see dashcam_outbox_oldest_seconds)",
                        describe(&w.job.job),
                        w.attempts
                    );
                }
                w.due = Instant::now() + wait;
                lock(&self.queue).push_back(w);
            }
        }
    }

    /// A job that will not be tried again leaves the queue and the outbox's
    /// `.job` files (kept aside for a person).
    fn set_aside(&self, q: &Queued, ext: &str, queued: &AtomicU64) {
        if let Err(e) = self.outbox.set_aside(q, ext) {
            log::error!("outbox: {e}");
        }
        queued.fetch_sub(1, Ordering::Relaxed);
        self.stats.set_aside.fetch_add(1, Ordering::Relaxed);
    }

    /// An upload job: the file, then what follows it (the sidecar's job
    /// with the event, or the event), each pushed before this job is done.
    fn upload(&self, queued: &Queued, s3: &S3Client) -> Result<Outcome> {
        let Job::Upload {
            path,
            key,
            sha256,
            then_event,
            media,
            then_sidecar,
        } = &queued.job
        else {
            return Err(anyhow!("not an upload"));
        };
        let Some(local) = self.outbox.local(path) else {
            log::error!(
                "outbox: upload of {path:?} names no file under the output folder: dropped"
            );
            return Ok(Outcome::Gone);
        };
        // Only a plain file, never through a link, never a FIFO (which would
        // hold this worker for good).
        let mut f = match crate::storage::open_regular(&local) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Removed because its object was confirmed (a stop came
                // between the removal and this job's end), or gone by another
                // hand before it went up.
                let confirmed = crate::storage::removed_on_purpose(&local);
                if confirmed {
                    log::info!("outbox: {} is uploaded already", local.display());
                } else {
                    log::warn!(
                        "outbox: {} is gone before its upload: dropped",
                        local.display()
                    );
                }
                // Its sidecar, the record of what the camera sent, still goes
                // up; with the event only when the object is there.
                if let Some(sc) = then_sidecar {
                    self.push(sidecar_job(sc, then_event.clone().filter(|_| confirmed)))?;
                }
                return Ok(Outcome::Gone);
            }
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
                // A link, a FIFO, a folder: never a file the server stored.
                return Ok(Outcome::Bad(format!("{e}")));
            }
            Err(e) => return Err(e).with_context(|| format!("opening {}", local.display())),
        };
        self.abort_cut_off(queued, s3, key)?;
        let len = f.metadata()?.len();
        let proof = s3.put_file_noting(key, &mut f, len, *sha256, &mut |id| {
            self.outbox
                .note_multipart(queued, id)
                .map_err(|e| anyhow!("{e}"))
        })?;
        drop(f);
        log::info!(
            "uploaded {} ({len} bytes) to {} (the store echoed its checksum)",
            local.display(),
            s3.config().location(key)
        );
        // The media's (or the mp4's) sidecar records the object.
        if *media || then_sidecar.is_some() {
            record_upload(&local, s3, key, &proof);
        }
        if *media && self.cfg.delete_local {
            if self.cfg.converting && crate::storage::derived::awaits_conversion(&local) {
                log::info!(
                    "{}: kept until its mp4 is made (then removed locally)",
                    local.display()
                );
            } else {
                self.remove_uploaded(&local);
            }
        }
        // The sidecar follows its file (recording the upload and any local
        // removal), and the event follows the sidecar.
        if let Some(sc) = then_sidecar {
            self.push(sidecar_job(sc, then_event.clone()))?;
        } else if let Some(event) = then_event {
            if self.cfg.webhook.is_some() {
                self.push_event(event.clone())?;
            }
        }
        Ok(Outcome::Done)
    }

    /// A multipart upload a crash (or a store gone mid-upload) cut off: the
    /// store is told to drop its parts before the upload begins again.
    fn abort_cut_off(&self, queued: &Queued, s3: &S3Client, key: &str) -> Result<()> {
        let Some(id) = self.outbox.noted_multipart(queued) else {
            return Ok(());
        };
        match s3.abort_multipart(key, &id)? {
            None => log::info!("outbox: aborted the cut-off multipart upload {id} of {key}"),
            // Completed or aborted already, most likely; if not, its parts
            // wait for the bucket's lifecycle rule.
            Some(why) => log::warn!(
                "outbox: the store did not abort the cut-off multipart upload {id} of {key} ({why}): beginning again"
            ),
        }
        self.outbox
            .note_multipart(queued, None)
            .map_err(|e| anyhow!("{e}"))
    }

    fn attempt(&self, queued: &Queued) -> Result<Outcome> {
        match &queued.job {
            Job::Upload { .. } => {
                let s3 = self.s3.as_ref().ok_or_else(|| {
                    anyhow!("an upload job, but no --s3-endpoint: kept for a start with S3 on")
                })?;
                self.upload(queued, s3)
            }
            Job::Webhook { id, body } => {
                let url = self.cfg.webhook.as_ref().ok_or_else(|| {
                    anyhow!("an event, but no --webhook: kept for a start with it")
                })?;
                let bytes = serde_json::to_vec(body)?;
                let mut req = self
                    .http
                    .post(url)
                    .set("Content-Type", "application/json")
                    .set("Idempotency-Key", id)
                    .set("X-Dashcam-Event", body["event"].as_str().unwrap_or("event"));
                if let Some(secret) = &self.cfg.webhook_secret {
                    let sig = crate::delivery::s3::hmac_hex(secret.as_bytes(), &bytes);
                    req = req.set("X-Dashcam-Signature", &format!("sha256={sig}"));
                }
                match req.send_bytes(&bytes) {
                    Ok(r) if (200..300).contains(&r.status()) => {
                        log::debug!("webhook: {id} delivered");
                        Ok(Outcome::Done)
                    }
                    Ok(r) => {
                        let code = r.status();
                        let to = r
                            .header("Location")
                            .unwrap_or("no Location given")
                            .to_string();
                        Err(anyhow::Error::new(crate::delivery::s3::StatusError(code)).context(format!(
                            "the webhook answered HTTP {code} (a redirect, to {to}): events are \
                             delivered only to the URL itself, redirects are not followed; fix --webhook"
                        )))
                    }
                    Err(ureq::Error::Status(code, _)) => {
                        Err(anyhow::Error::new(crate::delivery::s3::StatusError(code))
                            .context(format!("the receiver answered HTTP {code}")))
                    }
                    Err(e) => Err(anyhow!("{e}")),
                }
            }
        }
    }
}

enum Outcome {
    Done,
    /// Can never be done (the file is gone): dropped, logged.
    Gone,
    /// Can never be done (it names what is not a plain file): set aside.
    Bad(String),
}

impl DeliveryHandle {
    /// `--s3-delete-local`: the media goes once its sidecar records its
    /// upload and the store shows the object (size and checksum, `HEAD`).
    pub fn remove_uploaded(&self, local: &Path) {
        self.0.remove_uploaded(local)
    }

    /// Whether the store holds the object `local`'s sidecar records for it,
    /// as sent (`HEAD`: size and checksum); logs why not. False without S3.
    pub fn store_holds(&self, local: &Path) -> bool {
        self.0.store_holds(local)
    }
}

impl Inner {
    fn store_holds(&self, local: &Path) -> bool {
        let Some(s3) = &self.s3 else {
            return false;
        };
        let name = local
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let check = || -> Result<()> {
            let size = std::fs::symlink_metadata(local)
                .with_context(|| format!("{}", local.display()))?
                .len();
            let sc = crate::storage::read_sidecar(&crate::storage::derived::sidecar_path_of(local))
                .ok_or_else(|| anyhow!("its sidecar does not read"))?;
            let up = sc
                .uploaded
                .iter()
                .find(|u| u.file == name)
                .ok_or_else(|| anyhow!("its sidecar records no upload"))?;
            if up.bucket != s3.config().bucket {
                return Err(anyhow!(
                    "its upload went to bucket {}, not {}",
                    up.bucket,
                    s3.config().bucket
                ));
            }
            if up.size.is_some_and(|n| n != size) {
                return Err(anyhow!(
                    "its upload recorded {} bytes, the local file has {size}",
                    up.size.unwrap_or(0)
                ));
            }
            s3.confirm(
                &up.key,
                size,
                up.etag.as_deref(),
                up.checksum_sha256.as_deref(),
            )
        };
        match check() {
            Ok(()) => true,
            Err(e) => {
                self.stats.kept_unconfirmed.fetch_add(1, Ordering::Relaxed);
                log::warn!(
                    "{}: kept locally: the store does not show its object as sent ({e:#})",
                    local.display()
                );
                false
            }
        }
    }

    fn remove_uploaded(&self, local: &Path) {
        if !local.exists() {
            // Removed already (the converter's hook and the upload's
            // confirmation may both get here).
            return;
        }
        if !self.store_holds(local) {
            return;
        }
        remove_confirmed(local);
    }
}

/// The local copy goes: its sidecar records the upload, the store showed it.
fn remove_confirmed(local: &Path) {
    match crate::storage::remove_local(local, "uploaded", true) {
        Ok(Some(_)) => log::info!(
            "{}: removed locally (its object is confirmed)",
            local.display()
        ),
        Ok(None) => log::debug!(
            "{}: kept: its sidecar does not record its upload (yet)",
            local.display()
        ),
        Err(e) => log::warn!("{}: cannot remove it: {e}", local.display()),
    }
}

/// The upload of a sidecar that follows its file, carrying the event.
fn sidecar_job(sc: &Object, then_event: Option<serde_json::Value>) -> Job {
    Job::Upload {
        path: sc.path.clone(),
        key: sc.key.clone(),
        sha256: None,
        then_event,
        media: false,
        then_sidecar: None,
    }
}

/// The file's sidecar records its confirmed object (a failure is logged:
/// the object is there; the file may then be uploaded again if sent again).
fn record_upload(local: &Path, s3: &S3Client, key: &str, proof: &crate::delivery::s3::Proof) {
    let name = local
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let up = crate::storage::Uploaded {
        file: name.clone(),
        bucket: s3.config().bucket.clone(),
        key: key.to_string(),
        at: crate::storage::sidecar::rfc3339(chrono::Utc::now()),
        size: Some(proof.size),
        etag: Some(proof.etag.clone()),
        checksum_sha256: proof.checksum_sha256.clone(),
    };
    // The mp4 of an ADAS `.mp4` is `X.converted.mp4`: its record goes on X's sidecar.
    let sc_path = crate::storage::derived::sidecar_path_of(local);
    if let Err(e) = crate::storage::update_sidecar(&sc_path, |sc| {
        sc.uploaded.retain(|u| u.file != name);
        sc.uploaded.push(up);
        Ok(())
    }) {
        log::warn!("{}: cannot record the upload: {e}", sc_path.display());
    }
}

fn describe(job: &Job) -> String {
    match job {
        Job::Upload { path, key, .. } => format!("upload of {path} as {key}"),
        Job::Webhook { id, .. } => format!("event {id}"),
    }
}

/// Jobs waiting in the outbox of the output folder `root` (a count of files).
pub fn outbox_len(root: &Path) -> usize {
    Outbox::open(root).map_or(0, |o| o.len())
}
