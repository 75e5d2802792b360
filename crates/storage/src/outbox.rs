//! The outbox: work that must reach another system (an object store, a
//! webhook receiver) kept as one small file per job under
//! `<output>/.outbox/`, written and fsynced before the camera is told its file
//! is stored, removed only once the other side confirmed it. A crash at any
//! point leaves the job to be done again: every job is idempotent (the same
//! object key with the same bytes; the same event id).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use serde::{Deserialize, Serialize};

use crate::error::{Ctx, Result, StoreError};
use crate::fsx;

const DIR: &str = ".outbox";
const EXT: &str = "job";
/// Beside a job: the id of the multipart upload it has begun.
const MULTIPART: &str = "multipart";
/// A job file larger than this is not a job.
const MAX_JOB: u64 = 1 << 20;
/// S3's own limit on a key's length (UTF-8 bytes).
pub const MAX_KEY: usize = 1024;
/// A job that can never be done (a hostile or torn job file): set aside.
pub const BAD: &str = "bad";
/// A job the other side refused for good (a 4xx that is not 408/429, a few
/// times over): set aside, kept for a person to look at; renamed back to
/// `.job` it is tried again at the next start.
pub const FAILED: &str = "failed";

/// Why an object key is refused, if it is: a key the server would never
/// make (a leading `/`, an empty, `.` or `..` segment, a control character,
/// over 1,024 bytes) is not uploaded.
pub fn key_problem(key: &str) -> Option<String> {
    if key.is_empty() {
        return Some("an empty key".into());
    }
    if key.len() > MAX_KEY {
        return Some(format!("a key of {} bytes (at most {MAX_KEY})", key.len()));
    }
    if key.starts_with('/') {
        return Some("a key with a leading '/'".into());
    }
    if key.chars().any(char::is_control) {
        return Some("a key with a control character".into());
    }
    if key
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Some("a key with an empty, '.' or '..' segment".into());
    }
    None
}

/// One piece of work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    /// A file under the output folder to put in the bucket under `key`.
    Upload {
        /// Relative to the output folder, `/`-separated.
        path: String,
        key: String,
        /// Its SHA-256 when known (a media file's, from its sidecar).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sha256: Option<crate::Sha256Digest>,
        /// The event to send once the object is confirmed (the webhook of
        /// a stored file says where its object is).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        then_event: Option<serde_json::Value>,
        /// The camera's media (not a sidecar or an mp4): recorded as uploaded
        /// in its sidecar once its object is confirmed, and removed locally
        /// then when `--s3-delete-local` is on.
        #[serde(default)]
        media: bool,
        /// The sidecar to upload once this object is confirmed (it then
        /// records the upload); `then_event` goes with the sidecar's job, so
        /// the event follows both objects.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        then_sidecar: Option<Object>,
    },
    /// An event to POST to the webhook; `id` is its idempotency key.
    Webhook { id: String, body: serde_json::Value },
}

/// A local file (relative to the output folder) and its object key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Object {
    pub path: String,
    pub key: String,
}

/// A job as found in the outbox.
#[derive(Debug, Clone)]
pub struct Queued {
    pub file: PathBuf,
    pub job: Job,
}

impl Job {
    /// Why this job can never be done as written, if it cannot: every key
    /// it names must be one the server would make.
    pub fn problem(&self) -> Option<String> {
        match self {
            Job::Upload {
                key, then_sidecar, ..
            } => key_problem(key).or_else(|| {
                then_sidecar
                    .as_ref()
                    .and_then(|o| key_problem(&o.key).map(|p| format!("its sidecar's: {p}")))
            }),
            Job::Webhook { id, .. } if id.is_empty() || id.len() > 4096 => {
                Some("an event without a usable id".into())
            }
            Job::Webhook { .. } => None,
        }
    }
}

impl Queued {
    /// When the job was written (ms since 1970, from its file name).
    pub fn queued_at_ms(&self) -> Option<u64> {
        let name = self.file.file_name()?.to_str()?;
        name.split('-').next()?.parse().ok()
    }
}

#[derive(Debug, Clone)]
pub struct Outbox {
    root: PathBuf,
    dir: PathBuf,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Outbox {
    /// The outbox of an output folder (created).
    pub fn open(root: &Path) -> Result<Outbox> {
        let dir = root.join(DIR);
        fsx::ensure_dir(&dir).ctx(|| format!("outbox {}", dir.display()))?;
        Ok(Outbox {
            root: root.to_path_buf(),
            dir,
        })
    }

    /// Writes a job (fsynced, atomically) and returns it as queued.
    pub fn push(&self, job: Job) -> Result<Queued> {
        if !fsx::exists(&self.dir) {
            fsx::ensure_dir(&self.dir).ctx(|| format!("outbox {}", self.dir.display()))?;
        }
        let name = format!(
            "{:013}-{}-{:06}.{EXT}",
            chrono::Utc::now().timestamp_millis().max(0),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed) % 1_000_000
        );
        let file = self.dir.join(name);
        crate::publish::write_atomic(&file, &serde_json::to_vec(&job)?)?;
        Ok(Queued { file, job })
    }

    /// Every job waiting, oldest first. A job file that does not parse is
    /// set aside (renamed `.bad`) and logged, never retried for ever.
    pub fn pending(&self) -> Vec<Queued> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = Vec::new();
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_none_or(|x| x != EXT) {
                continue;
            }
            // The entry itself, never what a link points at.
            if e.file_type().is_ok_and(|t| t.is_file()) {
                files.push(p);
            } else {
                log::error!(
                    "{}: not a plain file (a link, a folder, a FIFO?): not a job, set aside as .{BAD}",
                    p.display()
                );
                let _ = fs::rename(&p, p.with_extension(BAD));
            }
        }
        files.sort();
        files
            .into_iter()
            .filter_map(|file| match fsx::read_json::<Job>(&file, MAX_JOB) {
                Some(job) => match job.problem() {
                    None => Some(Queued { file, job }),
                    Some(why) => {
                        let q = Queued { file, job };
                        log::error!("{}: {why}: set aside as .{BAD}", q.file.display());
                        let _ = self.set_aside(&q, BAD);
                        None
                    }
                },
                None => {
                    // Not a regular file (a FIFO, a link: never opened), or
                    // not a job's JSON.
                    log::error!("{}: not a job, set aside as .{BAD}", file.display());
                    let _ = fs::rename(&file, file.with_extension(BAD));
                    None
                }
            })
            .collect()
    }

    /// Sets a job aside (renamed `.bad` or `.failed`, with its multipart
    /// note): it is no longer tried, and stays for a person to look at.
    pub fn set_aside(&self, q: &Queued, ext: &str) -> Result<()> {
        let note = Self::multipart_note(q);
        if fsx::exists(&note) {
            let _ = fs::rename(&note, note.with_extension(format!("{MULTIPART}-{ext}")));
        }
        fs::rename(&q.file, q.file.with_extension(ext))
            .map_err(|e| StoreError::io(format!("setting {} aside", q.file.display()), e))?;
        fsx::sync_dir(&self.dir).ctx(|| format!("syncing {}", self.dir.display()))
    }

    /// Where an upload's multipart id is noted while it runs.
    fn multipart_note(q: &Queued) -> PathBuf {
        q.file.with_extension(MULTIPART)
    }

    /// Notes (Some, fsynced) or forgets (None) the multipart upload a job
    /// has begun, so a start after a crash can abort it.
    pub fn note_multipart(&self, q: &Queued, upload_id: Option<&str>) -> Result<()> {
        let note = Self::multipart_note(q);
        match upload_id {
            Some(id) => crate::publish::write_atomic(&note, &serde_json::to_vec(&id)?),
            None => match fs::remove_file(&note) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(StoreError::io(format!("removing {}", note.display()), e))
                }
                _ => Ok(()),
            },
        }
    }

    /// The multipart upload this job had begun when it was cut off, if any.
    pub fn noted_multipart(&self, q: &Queued) -> Option<String> {
        fsx::read_json::<String>(&Self::multipart_note(q), 4096)
    }

    /// The job is done: its file goes (and any note of it).
    pub fn done(&self, q: &Queued) -> Result<()> {
        let _ = fs::remove_file(Self::multipart_note(q));
        match fs::remove_file(&q.file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(StoreError::io(format!("removing {}", q.file.display()), e))
            }
            _ => {}
        }
        fsx::sync_dir(&self.dir).ctx(|| format!("syncing {}", self.dir.display()))
    }

    /// The local file a job names: under the output folder, plain names only,
    /// never through a symlink. None when it is not such a path.
    pub fn local(&self, rel: &str) -> Option<PathBuf> {
        crate::under_root(&self.root, rel, None)
    }

    /// A path under the output folder as a job names it.
    pub fn relative(&self, path: &Path) -> Option<String> {
        let rel = path.strip_prefix(&self.root).ok()?;
        let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
        Some(parts?.join("/"))
    }

    /// The local files uploads still waiting name.
    pub fn waiting_uploads(&self) -> std::collections::HashSet<PathBuf> {
        self.pending()
            .into_iter()
            .filter_map(|q| match q.job {
                Job::Upload { path, .. } => self.local(&path),
                Job::Webhook { .. } => None,
            })
            .collect()
    }

    /// Jobs waiting now (a count of files).
    pub fn len(&self) -> usize {
        fs::read_dir(&self.dir).map_or(0, |e| {
            e.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .filter(|e| e.path().extension().is_some_and(|x| x == EXT))
                .count()
        })
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_survive_a_reopen_in_order_and_leave_when_done() {
        let tmp = tempfile::tempdir().unwrap();
        let ob = Outbox::open(tmp.path()).unwrap();
        let a = ob
            .push(Job::Webhook {
                id: "a".into(),
                body: serde_json::json!({"n": 1}),
            })
            .unwrap();
        ob.push(Job::Upload {
            path: "1/x.jpg".into(),
            key: "p/1/x.jpg".into(),
            sha256: None,
            then_event: None,
            media: false,
            then_sidecar: None,
        })
        .unwrap();
        let again = Outbox::open(tmp.path()).unwrap().pending();
        assert_eq!(again.len(), 2);
        assert_eq!(again[0].job, a.job);
        ob.done(&again[0]).unwrap();
        assert_eq!(ob.pending().len(), 1);
        std::fs::write(tmp.path().join(".outbox/0-torn.job"), b"{\"kind\":").unwrap();
        assert_eq!(ob.pending().len(), 1, "a torn job is set aside");
        assert!(tmp.path().join(".outbox/0-torn.bad").exists());
    }

    #[test]
    fn a_multipart_note_survives_a_reopen_and_goes_with_its_job() {
        let tmp = tempfile::tempdir().unwrap();
        let ob = Outbox::open(tmp.path()).unwrap();
        let q = ob
            .push(Job::Upload {
                path: "1/x.h265".into(),
                key: "1/x.h265".into(),
                sha256: None,
                then_event: None,
                media: true,
                then_sidecar: None,
            })
            .unwrap();
        assert_eq!(ob.noted_multipart(&q), None);
        ob.note_multipart(&q, Some("upload-7")).unwrap();
        let again = Outbox::open(tmp.path()).unwrap().pending();
        assert_eq!(again.len(), 1, "a note is not a job");
        assert_eq!(ob.noted_multipart(&again[0]).as_deref(), Some("upload-7"));
        ob.note_multipart(&q, None).unwrap();
        assert_eq!(ob.noted_multipart(&q), None);
        ob.note_multipart(&q, Some("upload-8")).unwrap();
        ob.done(&q).unwrap();
        assert_eq!(std::fs::read_dir(tmp.path().join(DIR)).unwrap().count(), 0);
    }

    #[test]
    fn keys_the_server_would_never_make_are_refused() {
        assert_eq!(key_problem("fleet/350/x.jpg"), None);
        assert_eq!(key_problem(&"k".repeat(MAX_KEY)), None);
        for bad in ["", "/abs", "a/../b", "a//b", "./a", "a/", "a\nb"] {
            assert!(key_problem(bad).is_some(), "{bad:?}");
        }
        assert!(key_problem(&"k".repeat(MAX_KEY + 1)).is_some());
        let tmp = tempfile::tempdir().unwrap();
        let ob = Outbox::open(tmp.path()).unwrap();
        ob.push(Job::Upload {
            path: "1/x.jpg".into(),
            key: "/abs".into(),
            sha256: None,
            then_event: None,
            media: false,
            then_sidecar: None,
        })
        .unwrap();
        std::fs::create_dir(tmp.path().join(".outbox/0-dir.job")).unwrap();
        assert!(ob.pending().is_empty(), "both set aside");
        assert_eq!(ob.len(), 0);
        let bad = std::fs::read_dir(tmp.path().join(DIR))
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == BAD))
            .count();
        assert_eq!(bad, 2);
    }

    #[test]
    fn a_job_never_names_a_path_outside_the_output_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let ob = Outbox::open(tmp.path()).unwrap();
        for bad in [
            "../x",
            "/etc/passwd",
            "1/../../x",
            ".outbox/a.job",
            "1\\x",
            "",
        ] {
            assert_eq!(ob.local(bad), None, "{bad}");
        }
        assert_eq!(
            ob.local("1/x.jpg"),
            Some(tmp.path().join("1").join("x.jpg"))
        );
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/etc", tmp.path().join("2")).unwrap();
            assert_eq!(ob.local("2/passwd"), None, "never through a symlink");
        }
    }
}
