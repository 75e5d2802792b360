//! The camera's DATA stream: SYNC, the frames of a file from a RESUME's
//! offset, spoiled CRCs and dropped links on request, a RESUME restarting it.

use super::*;

impl Camera {
    /// The byte where a RESUME `r` starts: packets count from 1 (RESUME 0,
    /// the reference's first, is the start too); offsets in bytes from 0.
    /// A RESUME past the file gets STATUS 6 and fails the session.
    pub(super) fn resume_start(
        &mut self,
        i: usize,
        r: u32,
        packets: bool,
        len: u64,
    ) -> Result<u64> {
        Ok(if packets {
            if r > self.pending[i].packets() {
                self.send(Frame::Status { code: 6 })?;
                bail!(
                    "RESUME {r} outside 1..={} packets",
                    self.pending[i].packets()
                );
            }
            (r.max(1) as u64 - 1) * 1024
        } else {
            if r as u64 >= len {
                self.send(Frame::Status { code: 6 })?;
                bail!("RESUME {r} outside 0..{len} bytes");
            }
            r as u64
        })
    }

    /// SYNC, then DATA from the RESUME's offset, restarting wherever a RESUME
    /// asks. Returns false when the camera dropped the link on purpose.
    pub(super) fn stream_from(&mut self, i: usize, mut r: u32) -> Result<bool> {
        // One piece (over 80 lines): the camera's DATA loop; a RESUME restarts
        // it at the labelled loop with the same file and buffers.
        let packets = self.in_packets(&self.pending[i]);
        let (len, id) = (self.pending[i].len, self.pending[i].identifier.clone());
        let chunk = if packets {
            1024
        } else {
            self.cfg.chunk.clamp(1, 65_000)
        };
        let v6 = self.cfg.protocol_id >= 6;
        let mut file = BufReader::with_capacity(64 * 1024, File::open(&self.pending[i].path)?);
        let mut buf = vec![0u8; chunk];
        'sync: loop {
            let start = self.resume_start(i, r, packets, len)?;
            // A device counts packets from 1: RESUME 0 (the reference
            // server's first) is answered with SYNC 1.
            let sync = if packets { r.max(1) } else { r };
            self.send(Frame::Sync { offset: sync })?;
            let mut crc = match self.cfg.crc {
                CrcMode::Restart => 0,
                CrcMode::Chained => prefix_crc(&mut file, start)?,
            };
            file.seek(SeekFrom::Start(start))?;
            let mut pos = start;
            let mut until_poll = 0u32;
            let mut spoiled_pending = false;
            while pos < len {
                let n = (len - pos).min(chunk as u64) as usize;
                file.read_exact(&mut buf[..n])?;
                crc = crc16(crc, &buf[..n]);
                let index = (pos / chunk as u64) as u32 + 1;
                let mut sent_crc = crc;
                if self.cfg.corrupt_packets.contains(&index)
                    && !self.spoiled.contains(&(id.clone(), index))
                {
                    self.spoiled.push((id.clone(), index));
                    sent_crc ^= 0xFFFF;
                    // Keep going a few frames: they are in flight when the RESUME comes.
                    until_poll = 5;
                    spoiled_pending = true;
                }
                let f = if v6 && !packets {
                    Frame::EnhancedData {
                        offset: pos as u32,
                        payload: &buf[..n],
                        crc: sent_crc,
                    }
                } else {
                    Frame::Data {
                        payload: &buf[..n],
                        crc: sent_crc,
                    }
                };
                self.frame.clear();
                f.encode(&mut self.frame)?;
                self.out.write_all(&self.frame)?;
                self.report.bytes_sent += n as u64;
                pos += n as u64;
                if self.cfg.drop_after == Some(index) && !self.dropped {
                    self.dropped = true;
                    self.out.flush()?;
                    self.report.ended_by = format!("dropped the link after DATA frame {index}");
                    return Ok(false);
                }
                if until_poll > 0 {
                    until_poll -= 1;
                    if until_poll > 0 {
                        continue;
                    }
                    // The frames in flight are out: now the server's RESUME is due.
                    self.out.flush()?;
                }
                let cmd = if spoiled_pending {
                    spoiled_pending = false;
                    self.rx.recv_timeout(self.cfg.timeout).ok()
                } else {
                    self.rx.try_recv().ok()
                };
                if let Some(cmd) = cmd {
                    match cmd {
                        Cmd::Resume(j) => {
                            self.report.resumes.push((self.pending[i].name(), j));
                            self.out.flush()?;
                            r = j;
                            continue 'sync;
                        }
                        other => bail!("server sent {other:?} in the middle of a file"),
                    }
                }
            }
            self.out.flush()?;
            self.sent_all = Some(i);
            return Ok(true);
        }
    }
}
