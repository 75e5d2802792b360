//! A file being received: verified bytes on disk plus a small state file, so a
//! link that dies mid-file (or a server restart) loses nothing verified. The
//! CRC-16 and SHA-256 of what is stored are kept up to date as bytes arrive,
//! and recomputed from disk when a partial is resumed or cut back.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::names::fnv1a;
use super::{sidecar, MetadataJson, Sidecar, Storage, Stored};
use crate::codec::{crc16, hex};
use crate::session::{FileRecord, OpenFile, Unit};

const WRITE_BUFFER: usize = 64 * 1024;
const CLAIM_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    /// The identifier in hex: paths are device text.
    identifier_hex: String,
    unit: String,
    total: u32,
    started_at: DateTime<Utc>,
    /// Written when the link drops: bytes verified, and their CRC.
    verified_bytes: Option<u64>,
    crc: Option<u16>,
    crc_errors: u32,
}

fn unit_name(u: Unit) -> &'static str {
    match u {
        Unit::Packets => "packets",
        Unit::Bytes => "bytes",
    }
}

pub struct Partial<'s> {
    storage: &'s Storage,
    imei: u64,
    part_path: PathBuf,
    state_path: PathBuf,
    file: Option<BufWriter<File>>,
    state: State,
    len: u64,
    crc: u16,
    sha: Sha256,
    finished: bool,
}

impl<'s> Partial<'s> {
    pub(super) fn open(storage: &'s Storage, imei: u64, open: &OpenFile) -> Result<Partial<'s>> {
        let dir = storage.partial_dir(imei);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let key = format!("{}-{:016x}", open.spec.name, fnv1a(&open.spec.identifier));
        let part_path = dir.join(format!("{key}.part"));
        let state_path = dir.join(format!("{key}.state"));
        // A reconnecting camera's older link may still be letting go of the partial.
        let deadline = std::time::Instant::now() + CLAIM_WAIT;
        while !storage.claim(&part_path) {
            if std::time::Instant::now() > deadline {
                bail!(
                    "{} is already being received on another connection",
                    open.spec.display()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let mut p = Partial {
            storage,
            imei,
            part_path,
            state_path,
            file: None,
            state: State {
                identifier_hex: hex(&open.spec.identifier),
                unit: unit_name(open.unit).to_string(),
                total: open.total,
                started_at: Utc::now(),
                verified_bytes: None,
                crc: None,
                crc_errors: 0,
            },
            len: 0,
            crc: 0,
            sha: Sha256::new(),
            finished: false,
        };
        match p.try_resume(open) {
            Ok(true) => {}
            Ok(false) | Err(_) => p.start_over()?,
        }
        Ok(p)
    }

    /// A partial of this identifier, unit and total, young enough, with bytes
    /// to keep: cut to what may be kept, its CRC and hash taken from disk.
    fn try_resume(&mut self, open: &OpenFile) -> Result<bool> {
        let Ok(text) = fs::read(&self.state_path) else {
            return Ok(false);
        };
        let saved: State = serde_json::from_slice(&text)?;
        if saved.identifier_hex != self.state.identifier_hex
            || saved.unit != self.state.unit
            || saved.total != self.state.total
        {
            return Ok(false);
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.part_path)?;
        let meta = file.metadata()?;
        let age = meta.modified()?.elapsed().unwrap_or_default();
        if age > self.storage.partial_max_age {
            return Ok(false);
        }
        let keep = meta.len().min(open.keep_at_most());
        let keep = keep - keep % open.align();
        if keep == 0 {
            return Ok(false);
        }
        let verified = saved.verified_bytes;
        let saved_crc = saved.crc;
        self.file = Some(BufWriter::with_capacity(WRITE_BUFFER, file));
        self.state = saved;
        let crc = self.cut(keep)?;
        if verified == Some(keep) && saved_crc.is_some_and(|c| c != crc) {
            // The bytes on disk are not the ones that were verified.
            self.file = None;
            return Ok(false);
        }
        Ok(true)
    }

    fn start_over(&mut self) -> Result<()> {
        let create = || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&self.part_path)
        };
        let file = create()
            .or_else(|e| {
                // Another session of this camera may have just removed the empty folder.
                let dir = self
                    .part_path
                    .parent()
                    .filter(|_| e.kind() == io::ErrorKind::NotFound);
                dir.map_or(Err(e), |d| fs::create_dir_all(d).and_then(|_| create()))
            })
            .with_context(|| format!("creating {}", self.part_path.display()))?;
        self.file = Some(BufWriter::with_capacity(WRITE_BUFFER, file));
        self.len = 0;
        self.crc = 0;
        self.sha = Sha256::new();
        self.save_state()
    }

    fn save_state(&self) -> Result<()> {
        let tmp = self.state_path.with_extension("state.tmp");
        fs::write(&tmp, serde_json::to_vec(&self.state)?)?;
        fs::rename(&tmp, &self.state_path)
            .with_context(|| format!("writing {}", self.state_path.display()))
    }

    fn writer(&mut self) -> io::Result<&mut BufWriter<File>> {
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("the partial is closed"))
    }

    /// Keeps the first `len` bytes (at most what is stored) and recomputes their
    /// CRC and hash from disk. Returns the CRC.
    fn cut(&mut self, len: u64) -> io::Result<u16> {
        let w = self.writer()?;
        w.flush()?;
        let f = w.get_mut();
        f.set_len(len)?;
        f.seek(SeekFrom::Start(0))?;
        let mut crc = 0u16;
        let mut sha = Sha256::new();
        let mut buf = vec![0u8; WRITE_BUFFER];
        let mut reader = (&mut *f).take(len);
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            crc = crc16(crc, &buf[..n]);
            sha.update(&buf[..n]);
        }
        f.seek(SeekFrom::Start(len))?;
        self.len = len;
        self.crc = crc;
        self.sha = sha;
        Ok(crc)
    }

    /// Bytes stored (and verified).
    pub fn stored(&self) -> u64 {
        self.len
    }

    pub fn started_at(&self) -> DateTime<Utc> {
        self.state.started_at
    }

    /// Appends verified bytes; `offset` must be what is stored.
    pub fn write_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        if offset != self.len {
            return Err(io::Error::other(format!(
                "write at {offset} but {} bytes are stored",
                self.len
            )));
        }
        self.writer()?.write_all(bytes)?;
        self.len += bytes.len() as u64;
        self.crc = crc16(self.crc, bytes);
        self.sha.update(bytes);
        Ok(())
    }

    /// Keeps the first `len` bytes; returns their CRC from 0.
    pub fn rewind(&mut self, len: u64) -> io::Result<u16> {
        if len == self.len {
            return Ok(self.crc);
        }
        if len > self.len {
            return Err(io::Error::other(format!(
                "cannot keep {len} bytes: only {} are stored",
                self.len
            )));
        }
        self.cut(len)
    }

    /// Checks the device's CRC over the end of the file, makes the file durable
    /// and gives it its final name with its sidecar and index line.
    pub fn finish(mut self, record: &FileRecord, remote: &str) -> Result<Stored> {
        let w = self.file.take().context("the partial is closed")?;
        let mut file = w.into_inner().map_err(|e| e.into_error())?;
        let check = record.check;
        let device_crc = if check.from == 0 {
            self.crc
        } else {
            file.seek(SeekFrom::Start(check.from))?;
            let mut crc = 0u16;
            let mut buf = vec![0u8; WRITE_BUFFER];
            let mut r = (&mut file).take(self.len.saturating_sub(check.from));
            loop {
                let n = r.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                crc = crc16(crc, &buf[..n]);
            }
            crc
        };
        if device_crc != check.crc {
            drop(file);
            self.discard();
            bail!(
                "the stored bytes from offset {} have CRC 0x{device_crc:04X}, the camera's chain says 0x{:04X}: discarded",
                check.from,
                check.crc
            );
        }
        file.sync_all()?;
        drop(file);
        let sha = hex(&self.sha.clone().finalize())
            .replace(' ', "")
            .to_lowercase();
        let meta_time = record
            .metadata
            .as_ref()
            .and_then(|(_, m)| m.timestamp_ms)
            .and_then(sidecar::from_millis);
        let name_time = meta_time.unwrap_or(self.state.started_at);
        let stem = format!("{}_{}", name_time.format("%Y%m%d_%H%M%S"), record.spec.name);
        let sc = Sidecar {
            imei: self.imei.to_string(),
            file: record.spec.display(),
            family: record.family.name().to_string(),
            flow: record.flow.name().to_string(),
            media: record.spec.media.to_string(),
            camera: record.spec.camera.map(str::to_string),
            size_bytes: self.len,
            unit: unit_name(record.unit).to_string(),
            start_total: record.start_total,
            data_frames: record.data_frames,
            crc16: format!("0x{:04X}", self.crc),
            sha256: sha,
            crc_errors: self.state.crc_errors + record.crc_errors,
            crc_convention: record.convention.map(|c| c.name().to_string()),
            protocol_id: record.protocol_id,
            remote_addr: remote.to_string(),
            started_at: sidecar::rfc3339(self.state.started_at),
            completed_at: sidecar::rfc3339(Utc::now()),
            resumed_from_byte: record.resumed_from,
            metadata: record
                .metadata
                .as_ref()
                .map(|(raw, m)| MetadataJson::new(record.family, raw, m)),
            mp4: None,
            conversion_error: None,
        };
        let stored =
            self.storage
                .publish(self.imei, &self.part_path, &stem, record.spec.extension, sc)?;
        let _ = fs::remove_file(&self.state_path);
        self.finished = true;
        if let Some(dir) = self.part_path.parent() {
            let _ = fs::remove_dir(dir);
        }
        Ok(stored)
    }

    /// Removes the partial and its state (nothing in it can be trusted).
    fn discard(&mut self) {
        self.file = None;
        let _ = fs::remove_file(&self.part_path);
        let _ = fs::remove_file(&self.state_path);
        self.finished = true;
    }

    /// Keeps what is stored for a later resume (the Drop does the work).
    pub fn abandon(self, crc_errors: u32) {
        let mut s = self;
        s.state.crc_errors += crc_errors;
    }
}

impl Drop for Partial<'_> {
    /// Not finished: keep what was verified, and say so in the state file.
    fn drop(&mut self) {
        if !self.finished && self.len == 0 {
            // Nothing verified: nothing to resume, so leave nothing behind.
            self.discard();
        } else if !self.finished {
            if let Some(mut f) = self.file.take() {
                let _ = f.flush();
            }
            self.state.verified_bytes = Some(self.len);
            self.state.crc = Some(self.crc);
            if let Err(e) = self.save_state() {
                log::warn!("{}: could not save partial state: {e:#}", self.imei);
            }
        }
        self.storage.release(&self.part_path);
    }
}
