//! Opening a partial: a fresh one, one resumed from its state (its verified
//! prefix hashed again and checked), and the state it saves.

use super::*;

impl<'s> Partial<'s> {
    /// The partial for the file the camera offers: its own partial resumed
    /// when one is on disk and still good; a comparison with the file
    /// already stored when the camera offers that one again; else a new one.
    pub(crate) fn open(storage: &'s Storage, imei: u64, open: &OpenFile) -> Result<Partial<'s>> {
        let (_, pdir) = storage.camera_dirs(imei)?;
        let identity = Identity {
            identifier_hex: hex(&open.spec.identifier),
            unit: open.unit.name().to_string(),
            total: open.total,
            meta_timestamp_ms: open.meta_timestamp_ms,
        };
        if let Some(p) = Self::resumed(storage, imei, &pdir, &identity, open)? {
            return Ok(p);
        }
        let mut p = Partial::new(
            storage,
            imei,
            &pdir,
            unique_key(&names::stem(&open.spec)),
            State {
                identity,
                started_at: Utc::now(),
                verified_bytes: 0,
                sha256: String::new(),
                crc: 0,
                crc_errors: 0,
            },
        );
        p.max_bytes = open.extent().max_bytes();
        if let Some((confirm, from)) = Self::stored_copy(storage, imei, open)? {
            p.len = from;
            p.mode = Mode::Confirming(confirm);
            return Ok(p);
        }
        p.start_fresh()?;
        Ok(p)
    }

    /// This file's partial on disk, claimed and resumed, when there is one
    /// that is still good; one that is not is removed.
    fn resumed(
        storage: &'s Storage,
        imei: u64,
        pdir: &Path,
        identity: &Identity,
        open: &OpenFile,
    ) -> Result<Option<Partial<'s>>> {
        for listed in list(pdir) {
            if listed.identity.as_ref() != Some(identity) {
                continue;
            }
            // Claimed first: an older link of this camera may still be
            // letting go (and saving its state). The state is read again once
            // the partial is ours.
            if !claim_within(storage, &listed.part) {
                return Err(StoreError::Busy);
            }
            let Some(state) = read_state(&listed.state).filter(|s| s.identity == *identity) else {
                storage.release(&listed.part);
                continue;
            };
            let key = listed
                .part
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut p = Partial::new(storage, imei, pdir, key, state);
            let why = match p.try_resume(open) {
                Ok(Ok(())) => return Ok(Some(p)),
                Ok(Err(why)) => why.to_string(),
                Err(e) => e.to_string(),
            };
            log::info!(
                "[{imei}] partial {} cannot be resumed ({why}): starting over",
                p.part_path.display()
            );
            p.fate = Fate::Discard;
        }
        Ok(None)
    }

    /// The file already stored that the camera offers again (same metadata
    /// time and size), and the offset from which its end is fetched to
    /// compare.
    fn stored_copy(
        storage: &Storage,
        imei: u64,
        open: &OpenFile,
    ) -> Result<Option<(Confirm, u64)>> {
        let Some(ts) = open.meta_timestamp_ms else {
            return Ok(None);
        };
        let id = open.spec.display();
        let Some((existing, size)) = storage.known.find_by_time(storage, imei, &id, ts, open)
        else {
            return Ok(None);
        };
        let file = fsx::open_read(&existing)?;
        let from = open.extent().last_unit_from(size);
        log::info!(
            "[{imei}] {id} looks like {} (same metadata time and size): fetching its last {} bytes to confirm",
            existing.display(),
            size - from
        );
        let confirm = Confirm {
            existing,
            file,
            size,
            matched: true,
        };
        Ok(Some((confirm, from)))
    }

    /// A new, empty partial (under this partial's unique name).
    pub(super) fn start_fresh(&mut self) -> Result<()> {
        self.storage.check_space(self.max_bytes)?;
        self.storage
            .make_room_for_partial(self.imei, self.max_bytes);
        self.storage.claim(&self.part_path);
        let f = match fsx::create_new(&self.part_path) {
            // Its empty folder was just tidied away by another link of the
            // same camera: made again.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.storage.camera_dirs(self.imei)?;
                fsx::create_new(&self.part_path)
            }
            r => r,
        }
        .ctx(|| format!("creating {}", self.part_path.display()))?;
        self.file = Some(f);
        self.state.started_at = Utc::now();
        self.len = 0;
        self.crc = 0;
        self.sha = Sha256::new();
        self.checkpointed = 0;
        self.save_state()
    }

    pub(super) fn new(
        storage: &'s Storage,
        imei: u64,
        pdir: &Path,
        key: String,
        state: State,
    ) -> Partial<'s> {
        Partial {
            storage,
            imei,
            part_path: pdir.join(format!("{key}.part")),
            state_path: pdir.join(format!("{key}.state")),
            key,
            file: None,
            state,
            len: 0,
            crc: 0,
            sha: Sha256::new(),
            checkpointed: 0,
            last_checkpoint: std::time::Instant::now(),
            state_buf: Vec::new(),
            state_len: None,
            pending: Vec::new(),
            mode: Mode::Appending,
            fate: Fate::Keep,
            max_bytes: 0,
        }
    }

    /// Young enough, and the verified prefix on disk hashes to the state's
    /// SHA-256: keep it (cut to what may be kept). The partial's time is
    /// never refreshed here.
    pub(super) fn try_resume(
        &mut self,
        open: &OpenFile,
    ) -> Result<std::result::Result<(), NoResume>> {
        let age = Utc::now() - self.state.started_at;
        if age.num_milliseconds() < 0
            || age.to_std().unwrap_or_default() > self.storage.cfg.partial_max_age
        {
            return Ok(Err(NoResume::TooOld));
        }
        let verified = self.state.verified_bytes;
        let mut file = fsx::open_rw(&self.part_path)?;
        if verified == 0 {
            return Ok(Err(NoResume::NothingVerified));
        }
        if file.metadata()?.len() < verified {
            return Ok(Err(NoResume::Changed));
        }
        let extent = open.extent();
        let keep = verified.min(extent.keep_at_most());
        let keep = keep - keep % extent.align();
        if keep == 0 {
            return Ok(Err(NoResume::NothingVerified));
        }
        // The last unit kept is fetched again and compared (see `expect`).
        let overlap = extent.overlap_start(keep);
        // One pass: the hash of the whole verified prefix, and the CRC and
        // hash of what is kept.
        let mut sha = Sha256::new();
        let (mut kept_sha, mut kept_crc) = (None, 0u16);
        let mut crc = 0u16;
        let mut buf = vec![0u8; WRITE_BUFFER];
        let mut pos = 0u64;
        file.seek(SeekFrom::Start(0))?;
        while pos < verified {
            if pos == overlap {
                kept_sha = Some(sha.clone());
                kept_crc = crc;
            }
            let want = ((verified - pos) as usize).min(buf.len());
            let want = if pos < overlap {
                want.min((overlap - pos) as usize)
            } else {
                want
            };
            file.read_exact(&mut buf[..want])?;
            sha.update(&buf[..want]);
            crc = crc16(crc, &buf[..want]);
            pos += want as u64;
        }
        if pos == overlap {
            kept_sha = Some(sha.clone());
            kept_crc = crc;
        }
        if sha_hex(&sha) != self.state.sha256 || crc != self.state.crc {
            return Ok(Err(NoResume::Changed));
        }
        let Some(kept_sha) = kept_sha else {
            return Ok(Err(NoResume::Changed));
        };
        let mut tail = vec![0u8; (keep - overlap) as usize];
        file.seek(SeekFrom::Start(overlap))?;
        file.read_exact(&mut tail)?;
        let old_len = file.metadata()?.len();
        if old_len != overlap {
            file.set_len(overlap)?;
            self.storage
                .add_partial_bytes(overlap as i64 - old_len as i64);
        }
        file.seek(SeekFrom::Start(overlap))?;
        self.file = Some(file);
        self.len = overlap;
        self.crc = kept_crc;
        self.sha = kept_sha;
        self.checkpointed = overlap;
        self.mode = if tail.is_empty() {
            Mode::Appending
        } else {
            Mode::Resuming {
                from: overlap,
                tail,
            }
        };
        Ok(Ok(()))
    }

    pub(super) fn save_state(&mut self) -> Result<()> {
        self.state.verified_bytes = self.len;
        // The hex digest and the JSON into buffers this partial keeps: a
        // slow camera saves its state every 2 s, with no allocation.
        digest(&self.sha).write_hex(&mut self.state.sha256);
        self.state.crc = self.crc;
        let mut body = std::mem::take(&mut self.state_buf);
        body.clear();
        serde_json::to_writer(&mut body, &self.state).ctx(|| "partial state")?;
        // Written in place (no new file, no rename per checkpoint: creating
        // a file costs more than the megabyte it records). Padded with spaces
        // (valid after JSON) to the file's length, so it is never cut; a
        // state torn by a power cut fails to parse and the file starts over.
        let known = self.state_len;
        let written = match fsx::open_rw(&self.state_path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fsx::create_new(&self.state_path).map(|f| (f, Some(0)))
            }
            r => r.map(|f| (f, known)),
        }
        .and_then(|(mut f, known)| {
            let old = match known {
                Some(n) => n,
                None => f.metadata()?.len() as usize,
            };
            if body.len() < old {
                body.resize(old, b' ');
            }
            f.write_all(&body)?;
            Ok(body.len())
        });
        let r = match written {
            Ok(n) => {
                self.state_len = Some(n);
                Ok(())
            }
            Err(e) => Err(e).ctx(|| format!("writing {}", self.state_path.display())),
        };
        self.state_buf = body;
        r
    }
}
