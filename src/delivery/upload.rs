//! Uploads to the bucket and what depends on their proof: an object counts
//! once the store echoed the checksum of the bytes sent; the sidecar records
//! it; a local copy goes (`--s3-delete-local`, `--keep-days`) only once a
//! `HEAD` shows the object as sent.

use std::path::Path;
use std::sync::atomic::Ordering;

use anyhow::{anyhow, Context, Result};

use super::*;

impl Inner {
    pub(super) fn upload(&self, queued: &Queued, s3: &S3Client) -> Result<Outcome> {
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
