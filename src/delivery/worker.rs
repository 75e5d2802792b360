//! The outbox's workers: each takes the next job that is due, tries it
//! (an upload to the bucket, an event to the webhook), and removes it only
//! once it is proved done; a failure waits (1 s doubling up to
//! `--retry-max`) and is tried again; a job that can never be done is set
//! aside, logged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};

use super::*;

impl Inner {
    pub(super) fn work(&self) {
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
    fn attempt(&self, queued: &Queued) -> Result<Outcome> {
        match &queued.job {
            Job::Upload { .. } => {
                let s3 = self.s3.as_ref().ok_or_else(|| {
                    anyhow!("an upload job, but no --s3-endpoint: kept for a start with S3 on")
                })?;
                self.upload(queued, s3)
            }
            Job::Webhook { id, body } => self.post_event(id, body),
        }
    }
}

pub(super) fn describe(job: &Job) -> String {
    match job {
        Job::Upload { path, key, .. } => format!("upload of {path} as {key}"),
        Job::Webhook { id, .. } => format!("event {id}"),
    }
}
