//! Publishing a verified file, crash-safe. The steps, each durable before the next:
//!
//! 1. fsync the partial (`SyncPartial`);
//! 2. write `<key>.publish`, an intent naming the final file and holding its
//!    sidecar and index line, and fsync it and its folder (`WriteIntent`);
//! 3. rename the partial to its final name, fsync both folders (`RenameMedia`);
//! 4. write the sidecar (temp file, fsync, rename) (`WriteSidecar`);
//! 5. append the index line with one `O_APPEND` write and fsync it (`AppendIndex`);
//! 6. remove the state, then the intent (`RemoveState`).
//!
//! A stop anywhere leaves either the resumable partial (no intent, or an
//! intent whose rename never happened) or a renamed media file whose intent
//! lets [`recover`] write the missing sidecar and index line at the next start.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Ctx, Result, StoreError};
use serde::{Deserialize, Serialize};

use super::{fsx, IndexLine, Sidecar, Storage, Stored, PARTIAL_DIR};

/// The steps of a publish, for fault injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishStep {
    SyncPartial,
    WriteIntent,
    RenameMedia,
    WriteSidecar,
    AppendIndex,
    RemoveState,
}

impl PublishStep {
    pub const ALL: [PublishStep; 6] = [
        PublishStep::SyncPartial,
        PublishStep::WriteIntent,
        PublishStep::RenameMedia,
        PublishStep::WriteSidecar,
        PublishStep::AppendIndex,
        PublishStep::RemoveState,
    ];
}

#[derive(Debug, Serialize, Deserialize)]
struct Intent {
    /// File names in the camera's folder.
    media: String,
    sidecar: String,
    sidecar_json: Sidecar,
    index_line: String,
}

/// Writes `body` to `path` atomically: a temp file (`create_new`, never
/// through a link), fsynced, renamed over `path`, folder fsynced.
pub fn write_atomic(path: &Path, body: &[u8]) -> Result<()> {
    write_replace(path, body, true)
}

/// [`write_atomic`] without the fsyncs: for a partial's state, whose loss in a
/// power cut only costs a resume (its SHA-256 check makes a stale one harmless).
pub fn write_replace(path: &Path, body: &[u8], durable: bool) -> Result<()> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    let _ = fs::remove_file(&tmp);
    let mut f = fsx::create_new(&tmp).ctx(|| format!("writing {}", tmp.display()))?;
    f.write_all(body)
        .and_then(|_| if durable { f.sync_all() } else { Ok(()) })
        .ctx(|| format!("writing {}", tmp.display()))?;
    drop(f);
    fsx::rename(&tmp, path).ctx(|| format!("writing {}", path.display()))?;
    if let Some(dir) = path.parent().filter(|_| durable) {
        fsx::sync_dir(dir).ctx(|| format!("syncing {}", dir.display()))?;
    }
    Ok(())
}

fn index_line(storage: &Storage, media: &Path, sc: &Sidecar) -> Result<String> {
    let rel = media.strip_prefix(&storage.root).unwrap_or(media);
    let line = IndexLine {
        path: rel.to_string_lossy().replace('\\', "/"),
        sidecar: sc.clone(),
    };
    let mut text = serde_json::to_string(&line)?;
    text.push('\n');
    Ok(text)
}

/// Appends one JSON line (an event such as a conversion) to the index of
/// the output folder `root`.
pub fn append_index_event(root: &Path, event: &serde_json::Value) -> Result<()> {
    let mut line = serde_json::to_string(event)?;
    line.push('\n');
    append_index_at(&root.join(super::INDEX), &line)
}

/// One `O_APPEND` write of a whole line, then fsync.
fn append_index(storage: &Storage, line: &str) -> Result<()> {
    append_index_at(&storage.index_path(), line)
}

/// Appends to an index are one at a time in this process, so a failed one
/// can be cut back without cutting another's line.
static INDEX_APPEND: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn append_index_at(path: &Path, line: &str) -> Result<()> {
    let _one = crate::lock(&INDEX_APPEND);
    let mut f = fsx::open_append(path).ctx(|| format!("opening {}", path.display()))?;
    let before = f.metadata().map(|m| m.len()).ok();
    let written = f.write_all(line.as_bytes()).and_then(|_| f.sync_data());
    if let Err(e) = written {
        // Half a line (a full disk) must not glue itself to the next one:
        // cut back to the last whole line before anything else is written.
        if let Some(len) = before {
            if f.set_len(len).and_then(|_| f.sync_data()).is_err() {
                log::error!(
                    "{}: a failed append could not be cut back; the next start repairs it",
                    path.display()
                );
            }
        }
        return Err(StoreError::io(
            format!("appending to {}", path.display()),
            e,
        ));
    }
    Ok(())
}

pub(super) fn publish(
    storage: &Storage,
    imei: u64,
    key: &str,
    stem: &str,
    ext: &str,
    mut sc: Sidecar,
) -> Result<Stored> {
    let dir = storage.camera_dir(imei);
    let pdir = dir.join(PARTIAL_DIR);
    let part = pdir.join(format!("{key}.part"));
    let state = pdir.join(format!("{key}.state"));
    let intent_path = pdir.join(format!("{key}.publish"));
    let _guard = crate::lock(&storage.publish_lock);
    let (name, media, sidecar_path) = (0..10_000u32)
        .map(|n| {
            let name = if n == 0 {
                stem.to_string()
            } else {
                format!("{stem}_{n}")
            };
            let media = dir.join(format!("{name}.{ext}"));
            let sidecar = dir.join(format!("{name}.json"));
            (name, media, sidecar)
        })
        .find(|(_, m, s)| !fsx::exists(m) && !fsx::exists(s))
        .ok_or_else(|| {
            StoreError::failed(
                std::io::ErrorKind::AlreadyExists,
                format!("no free file name for {stem}.{ext} in {}", dir.display()),
            )
        })?;
    sc.duplicate_of = None;
    let intent = Intent {
        media: format!("{name}.{ext}"),
        sidecar: format!("{name}.json"),
        index_line: index_line(storage, &media, &sc)?,
        sidecar_json: sc.clone(),
    };
    storage.fault(PublishStep::WriteIntent)?;
    write_atomic(&intent_path, &serde_json::to_vec(&intent)?)?;
    storage.fault(PublishStep::RenameMedia)?;
    fsx::rename(&part, &media).ctx(|| format!("storing {}", media.display()))?;
    fsx::sync_dir(&dir)?;
    fsx::sync_dir(&pdir)?;
    let stored = Stored {
        path: media,
        sidecar_path,
        sidecar: sc,
        duplicate_of: None,
    };
    // The media file is in place: from here on the file is stored, whatever
    // fails. A failure leaves the intent for the recovery pass (the next
    // start finishes the sidecar and index line), and the camera is told the
    // file was taken: it must not send it again to be stored twice.
    storage.known.add(imei, &stored);
    let finish = || -> Result<()> {
        storage.fault(PublishStep::WriteSidecar)?;
        super::write_sidecar(&stored)?;
        storage.fault(PublishStep::AppendIndex)?;
        append_index(storage, &intent.index_line)?;
        storage.fault(PublishStep::RemoveState)?;
        let _ = fs::remove_file(&state);
        let _ = fs::remove_file(&intent_path);
        let _ = fsx::sync_dir(&pdir);
        Ok(())
    };
    match finish() {
        Ok(()) => Ok(stored),
        // A stop on purpose (tests): as a crash would, nothing more is done.
        Err(e @ StoreError::Interrupted(_)) => Err(e),
        Err(e) => {
            log::error!(
                "[{imei}] {} is stored, but its sidecar or index line could not be written ({e}): the next start finishes them",
                stored.path.display()
            );
            Ok(stored)
        }
    }
}

/// The same file is already stored: an index line that says so, nothing else.
pub(super) fn record_duplicate(
    storage: &Storage,
    imei: u64,
    existing: &Path,
    mut sc: Sidecar,
) -> Result<Stored> {
    let rel = existing.strip_prefix(&storage.root).unwrap_or(existing);
    sc.duplicate_of = Some(rel.to_string_lossy().replace('\\', "/"));
    log::info!(
        "[{imei}] already have {} ({} bytes, SHA-256 {}{}): not stored again",
        existing.display(),
        sc.size_bytes,
        sc.sha256.short(),
        if fsx::exists(existing) {
            ""
        } else {
            "; its local copy was removed on purpose"
        }
    );
    // The file is stored already: a line that cannot be written is logged,
    // and the camera is still told its file was taken.
    if let Err(e) = index_line(storage, existing, &sc).and_then(|l| append_index(storage, &l)) {
        log::error!("[{imei}] the index line of a duplicate could not be written: {e}");
    }
    Ok(Stored {
        path: existing.to_path_buf(),
        sidecar_path: existing.with_extension("json"),
        sidecar: sc,
        duplicate_of: Some(existing.to_path_buf()),
    })
}

/// Checks every line of the index at start-up (and seeds the de-duplication
/// lists from it, in the same pass): a torn last line (a stop in
/// the middle of an append) is cut off; a line anywhere that is not a JSON
/// object is set aside in `downloads.jsonl.bad` and the index rewritten
/// without it. Returns how many lines were set aside.
fn repair_index(storage: &Storage) -> usize {
    use std::io::BufRead;
    let path = storage.index_path();
    let Ok(f) = fsx::open_read(&path) else {
        return 0;
    };
    let mut good = Vec::new();
    let mut bad: Vec<Vec<u8>> = Vec::new();
    let mut torn = false;
    let mut r = std::io::BufReader::new(f);
    let mut line = Vec::new();
    loop {
        line.clear();
        match r.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                log::warn!("{}: cannot read it to check it: {e}", path.display());
                return 0;
            }
        }
        if line.last() != Some(&b'\n') {
            torn = true;
            break;
        }
        // One parse per line: what de-duplication needs, the rest checked as
        // JSON; only a line of another shape is parsed a second time.
        let whole = match serde_json::from_slice::<super::dedup::IndexKey>(&line) {
            Ok(key) => {
                storage.known.seed(key);
                true
            }
            Err(_) => {
                serde_json::from_slice::<serde_json::Value>(&line).is_ok_and(|v| v.is_object())
            }
        };
        if whole {
            good.extend_from_slice(&line);
        } else if line.iter().any(|b| !b.is_ascii_whitespace()) {
            bad.push(line.clone());
        }
    }
    if !torn && bad.is_empty() {
        return 0;
    }
    if torn {
        log::warn!(
            "{}: cutting a torn last line ({} bytes)",
            path.display(),
            line.len()
        );
    }
    if !bad.is_empty() {
        let aside = path.with_extension("jsonl.bad");
        log::warn!(
            "{}: {} line(s) that are not whole JSON set aside in {}",
            path.display(),
            bad.len(),
            aside.display()
        );
        if let Err(e) = bad
            .iter()
            .try_for_each(|l| append_index_at(&aside, &String::from_utf8_lossy(l)))
        {
            log::error!("{}: {e}", aside.display());
            return 0;
        }
    }
    if let Err(e) = write_atomic(&path, &good) {
        log::error!("{}: could not rewrite it: {e}", path.display());
        return 0;
    }
    bad.len()
}

fn index_has(storage: &Storage, line: &str) -> bool {
    let Ok(f) = fsx::open_read(&storage.index_path()) else {
        return false;
    };
    let needle = line.trim_end();
    std::io::BufRead::lines(std::io::BufReader::new(f))
        .map_while(|l| l.ok())
        .any(|l| l == needle)
}

/// Finishes or rolls back every publish a stop interrupted. Returns how many.
pub(super) fn recover(storage: &Storage) -> usize {
    repair_index(storage);
    let mut n = 0;
    for pdir in storage.partial_dirs() {
        let Ok(entries) = fs::read_dir(&pdir) else {
            continue;
        };
        let intents: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "publish"))
            .collect();
        for intent_path in intents {
            n += 1;
            if let Err(e) = recover_one(storage, &pdir, &intent_path) {
                log::error!("recovering {}: {e:#}", intent_path.display());
            }
        }
    }
    n
}

fn recover_one(storage: &Storage, pdir: &Path, intent_path: &Path) -> Result<()> {
    let dir = pdir
        .parent()
        .ok_or_else(|| StoreError::Unsafe("partial folder without a camera folder".into()))?;
    let part = intent_path.with_extension("part");
    let state = intent_path.with_extension("state");
    let mut text = Vec::new();
    fsx::open_read(intent_path)?.read_to_end(&mut text)?;
    let Ok(intent) = serde_json::from_slice::<Intent>(&text) else {
        // Torn while being written: the rename never happened.
        fs::remove_file(intent_path)?;
        return Ok(());
    };
    if intent.media.contains(['/', '\\']) || intent.sidecar.contains(['/', '\\']) {
        return Err(StoreError::Unsafe(format!(
            "{} names a path outside the camera folder",
            intent_path.display()
        )));
    }
    let media = dir.join(&intent.media);
    let sidecar = dir.join(&intent.sidecar);
    if fsx::exists(&part) && !fsx::exists(&media) {
        // Stopped before the rename: the partial stays, resumable.
        log::info!(
            "{}: publish rolled back, the partial is kept",
            part.display()
        );
        fs::remove_file(intent_path)?;
        return Ok(());
    }
    if !fsx::exists(&media) {
        fs::remove_file(intent_path)?;
        let _ = fs::remove_file(&state);
        return Ok(());
    }
    if !fsx::exists(&sidecar) {
        let mut body = serde_json::to_vec_pretty(&intent.sidecar_json)?;
        body.push(b'\n');
        write_atomic(&sidecar, &body)?;
    }
    if !index_has(storage, &intent.index_line) {
        append_index(storage, &intent.index_line)?;
    }
    log::info!("{}: publish finished after a stop", media.display());
    let _ = fs::remove_file(&state);
    fs::remove_file(intent_path)?;
    fsx::sync_dir(pdir)?;
    Ok(())
}
