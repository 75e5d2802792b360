//! Finishing a partial: the camera's CRC over the end of the file, the check
//! for a file already stored, and the publish with its sidecar.

use super::*;

impl Partial<'_> {
    /// `finish` of a file already stored, of which only the end was fetched
    /// again: a duplicate recorded when the end matches, else not the same
    /// file (downloaded whole next time).
    pub(super) fn finish_confirm(
        mut self,
        c: Confirm,
        record: &FileRecord,
        remote: &str,
    ) -> Result<Stored> {
        self.fate = Fate::Done;
        if c.matched && self.len == c.size {
            // The stored file's own digests: from its sidecar, or
            // computed again when the sidecar is gone.
            let stored_sc: Option<Sidecar> =
                fsx::read_json(&c.existing.with_extension("json"), 4 << 20);
            let (sha, crc) = match stored_sc {
                Some(old) => (old.sha256, old.crc16),
                None => {
                    let (mut sha, mut crc) = (Sha256::new(), 0u16);
                    let mut f = c.file;
                    read_range(&mut f, 0, c.size, |b| {
                        sha.update(b);
                        crc = crc16(crc, b);
                    })?;
                    (digest(&sha), crc)
                }
            };
            let mut sc = self.sidecar(record, remote, sha);
            sc.crc16 = crc;
            sc.size_bytes = c.size;
            return publish::record_duplicate(self.storage, self.imei, &c.existing, sc);
        }
        self.storage.known.forget_time(self.imei, &c.existing);
        Err(StoreError::NotSameFile(format!(
            "its last bytes differ from {}; it will be downloaded whole next time",
            c.existing.display()
        )))
    }

    /// The camera's CRC over the end of the file (from `record.check.from`)
    /// against the bytes stored; a mismatch discards the partial.
    pub(super) fn check_device_crc(
        &mut self,
        file: &mut fs::File,
        record: &FileRecord,
    ) -> Result<()> {
        let check = record.check;
        let device_crc = if check.from == 0 {
            self.crc
        } else {
            let mut crc = 0u16;
            let len = self.len.saturating_sub(check.from);
            read_range(file, check.from, len, |b| crc = crc16(crc, b))?;
            crc
        };
        if device_crc != check.crc {
            self.fate = Fate::Discard;
            log::warn!(
                "[{}] the stored bytes from offset {} have CRC 0x{device_crc:04X}, the camera's chain says 0x{:04X}: discarded",
                self.imei,
                check.from,
                check.crc
            );
            return Err(StoreError::CrcMismatch {
                expected: check.crc,
                found: device_crc,
            });
        }
        Ok(())
    }

    /// Checks the camera's CRC over the end of the file, then publishes the
    /// file with its sidecar and index line (or, when the same file is
    /// already stored, only an index line that says so).
    pub fn finish(mut self, record: &FileRecord, remote: &str) -> Result<Stored> {
        if let Mode::Confirming(c) = std::mem::replace(&mut self.mode, Mode::Appending) {
            return self.finish_confirm(c, record, remote);
        }
        // The whole file is verified: say so in the state first, so a stop
        // during the publish leaves a partial that resumes at its end.
        self.checkpoint()?;
        let mut file = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("the partial is closed"))?;
        self.check_device_crc(&mut file, record)?;
        let mut sc = self.sidecar(record, remote, digest(&self.sha));
        // What is inside, by its first bytes (a container's chunk headers only).
        match crate::media::inspect(&self.part_path) {
            Ok(info) => sc.media_info = Some(info),
            Err(e) => log::warn!("[{}] could not look inside the file: {e}", self.imei),
        }
        if record.start_field != 0 {
            log::info!(
                "[{}] START's field 0x{:04X} {} the file's CRC-16 0x{:04X} (a diagnostic only)",
                self.imei,
                record.start_field,
                if record.start_field == self.crc {
                    "matches"
                } else {
                    "differs from"
                },
                self.crc
            );
        }
        if let Some(existing) = self.storage.known.find(self.storage, self.imei, &sc) {
            drop(file);
            let stored = publish::record_duplicate(self.storage, self.imei, &existing, sc)?;
            self.fate = Fate::Discard;
            return Ok(stored);
        }
        if let Err(e) = self.storage.fault(publish::PublishStep::SyncPartial) {
            self.fate = Fate::Done;
            return Err(e);
        }
        file.sync_all()?;
        drop(file);
        let meta_time = record
            .metadata
            .as_ref()
            .and_then(|(_, m)| m.timestamp_ms)
            .and_then(sidecar::from_millis);
        let name_time = meta_time.unwrap_or(self.state.started_at);
        let stem = format!(
            "{}_{}",
            name_time.format("%Y%m%d_%H%M%S"),
            names::stem(&record.spec)
        );
        let size = self.len;
        let result = publish::publish(
            self.storage,
            self.imei,
            &self.key,
            &stem,
            record.spec.extension,
            sc,
        );
        match result {
            Ok(stored) => {
                self.fate = Fate::Done;
                self.storage.add_partial_bytes(-(size as i64));
                Ok(stored)
            }
            Err(e) => {
                // Stopped part-way (a crash, in tests): leave everything as a
                // crash would, for the recovery pass.
                self.fate = Fate::Done;
                Err(e)
            }
        }
    }

    pub(super) fn sidecar(
        &self,
        record: &FileRecord,
        remote: &str,
        sha256: Sha256Digest,
    ) -> Sidecar {
        Sidecar {
            imei: self.imei.to_string(),
            file: record.spec.display(),
            family: record.family,
            flow: record.flow,
            media: record.spec.media,
            camera: record.spec.camera,
            size_bytes: self.len,
            unit: record.unit,
            start_total: record.start_total,
            start_field: (record.start_field != 0).then_some(record.start_field),
            data_frames: record.data_frames,
            crc16: self.crc,
            sha256,
            crc_errors: self.state.crc_errors + record.crc_errors,
            crc_convention: record.convention,
            protocol_id: record.protocol_id,
            remote_addr: remote.to_string(),
            started_at: sidecar::rfc3339(self.state.started_at),
            completed_at: sidecar::rfc3339(Utc::now()),
            resumed_from_byte: record.resumed_from,
            metadata: record
                .metadata
                .as_ref()
                .map(|(raw, m)| MetadataJson::new(record.family, raw, m)),
            media_info: None,
            mp4: None,
            conversion_error: None,
            duplicate_of: None,
            removed_locally: Vec::new(),
            uploaded: Vec::new(),
        }
    }
}
