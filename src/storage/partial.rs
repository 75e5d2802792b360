//! A file being received: verified packets on disk plus a small state file, so a
//! link that dies mid-file (or a server restart) loses nothing already verified.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{FileSpec, Sidecar, Storage, Stored, PACKET};
use crate::codec::{crc16, hex};

const WRITE_BUFFER: usize = 64 * 1024;
const CLAIM_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    /// The identifier in hex: ADAS paths are arbitrary bytes.
    identifier_hex: String,
    packets: u32,
    started_at: DateTime<Utc>,
    /// Written when the link drops: how many packets were verified, and the last CRC.
    verified_packets: Option<u32>,
    crc: Option<u16>,
    crc_errors: u32,
}

/// How a transfer starts: at packet 1, or further on with the chained CRC so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumeInfo {
    pub next_packet: u32,
    pub crc: u16,
}

pub struct Partial<'s> {
    storage: &'s Storage,
    imei: u64,
    part_path: PathBuf,
    state_path: PathBuf,
    file: Option<BufWriter<File>>,
    state: State,
    pub resume: ResumeInfo,
    next_packet: u32,
    crc: u16,
    bytes: u64,
    crc_errors: u32,
    finished: bool,
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl<'s> Partial<'s> {
    pub(super) fn open(
        storage: &'s Storage,
        imei: u64,
        spec: &FileSpec,
        packets: u32,
    ) -> Result<Partial<'s>> {
        let dir = storage.partial_dir(imei);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let key = format!("{}-{:016x}", spec.name, fnv1a(&spec.identifier));
        let part_path = dir.join(format!("{key}.part"));
        let state_path = dir.join(format!("{key}.state"));
        // A reconnecting camera's older link may still be letting go of the partial.
        let deadline = std::time::Instant::now() + CLAIM_WAIT;
        while !storage.claim(&part_path) {
            if std::time::Instant::now() > deadline {
                bail!(
                    "{} is already being received on another connection",
                    spec.display()
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
                identifier_hex: hex(&spec.identifier),
                packets,
                started_at: Utc::now(),
                verified_packets: None,
                crc: None,
                crc_errors: 0,
            },
            resume: ResumeInfo {
                next_packet: 1,
                crc: 0,
            },
            next_packet: 1,
            crc: 0,
            bytes: 0,
            crc_errors: 0,
            finished: false,
        };
        match p.try_resume() {
            Ok(Some((file, state, resume))) => {
                p.file = Some(BufWriter::with_capacity(WRITE_BUFFER, file));
                p.state = state;
                p.resume = resume;
                p.next_packet = resume.next_packet;
                p.crc = resume.crc;
                p.bytes = (resume.next_packet as u64 - 1) * PACKET;
            }
            Ok(None) | Err(_) => p.start_over()?,
        }
        Ok(p)
    }

    /// A partial matching this identifier and packet count, young enough, with
    /// at least one packet: truncated to whole packets, its CRC recomputed from disk.
    fn try_resume(&self) -> Result<Option<(File, State, ResumeInfo)>> {
        let Ok(text) = fs::read(&self.state_path) else {
            return Ok(None);
        };
        let saved: State = serde_json::from_slice(&text)?;
        if saved.identifier_hex != self.state.identifier_hex || saved.packets != self.state.packets
        {
            return Ok(None);
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.part_path)?;
        let meta = file.metadata()?;
        let age = meta.modified()?.elapsed().unwrap_or_default();
        if age > self.storage.partial_max_age {
            return Ok(None);
        }
        let verified = (meta.len() / PACKET).min(saved.packets as u64 - 1) as u32;
        if verified == 0 {
            return Ok(None);
        }
        let len = verified as u64 * PACKET;
        file.set_len(len)?;
        file.seek(SeekFrom::Start(0))?;
        let mut crc = 0u16;
        let mut buf = vec![0u8; WRITE_BUFFER];
        let mut reader = (&mut file).take(len);
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            crc = crc16(crc, &buf[..n]);
        }
        if saved.verified_packets == Some(verified) && saved.crc.is_some_and(|c| c != crc) {
            // The bytes on disk are not the ones that were verified.
            return Ok(None);
        }
        file.seek(SeekFrom::Start(len))?;
        let resume = ResumeInfo {
            next_packet: verified + 1,
            crc,
        };
        Ok(Some((file, saved, resume)))
    }

    fn start_over(&mut self) -> Result<()> {
        let create = || File::create(&self.part_path);
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
        self.save_state()
    }

    fn save_state(&self) -> Result<()> {
        let tmp = self.state_path.with_extension("state.tmp");
        fs::write(&tmp, serde_json::to_vec(&self.state)?)?;
        fs::rename(&tmp, &self.state_path)
            .with_context(|| format!("writing {}", self.state_path.display()))
    }

    pub fn next_packet(&self) -> u32 {
        self.next_packet
    }

    pub fn crc(&self) -> u16 {
        self.crc
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn started_at(&self) -> DateTime<Utc> {
        self.state.started_at
    }

    /// CRC errors on every connection that carried this file.
    pub fn crc_errors(&self) -> u32 {
        self.state.crc_errors + self.crc_errors
    }

    pub fn count_crc_error(&mut self) {
        self.crc_errors += 1;
    }

    /// Appends a packet whose CRC the caller has verified.
    pub fn append(&mut self, payload: &[u8], crc: u16) -> io::Result<()> {
        self.file
            .as_mut()
            .expect("open partial")
            .write_all(payload)?;
        self.next_packet += 1;
        self.crc = crc;
        self.bytes += payload.len() as u64;
        Ok(())
    }

    /// Makes the file durable and gives it its final name; `stem` is
    /// `<YYYYMMDD_HHMMSS>_<name>`.
    pub fn finish(mut self, stem: &str, ext: &str, sidecar: Sidecar) -> Result<Stored> {
        let file = self.file.take().expect("open partial");
        let file = file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        let stored = self
            .storage
            .publish(self.imei, &self.part_path, stem, ext, sidecar)?;
        let _ = fs::remove_file(&self.state_path);
        self.finished = true;
        // Only succeeds when no other partial is waiting there.
        if let Some(dir) = self.part_path.parent() {
            let _ = fs::remove_dir(dir);
        }
        Ok(stored)
    }
}

impl Drop for Partial<'_> {
    /// Not finished: keep what was verified, and say so in the state file.
    fn drop(&mut self) {
        if !self.finished && self.next_packet == 1 {
            // Nothing verified: nothing to resume, so leave nothing behind.
            self.file = None;
            let _ = fs::remove_file(&self.part_path);
            let _ = fs::remove_file(&self.state_path);
        } else if !self.finished {
            if let Some(mut f) = self.file.take() {
                let _ = f.flush();
            }
            self.state.verified_packets = Some(self.next_packet - 1);
            self.state.crc = Some(self.crc);
            self.state.crc_errors += self.crc_errors;
            if let Err(e) = self.save_state() {
                log::warn!("{}: could not save partial state: {e:#}", self.imei);
            }
        }
        self.storage.release(&self.part_path);
    }
}
