//! ETags: the MD5 of the bytes sent, as S3 gives a single PUT's ETag, for
//! the proof that a store holds what was sent.

use std::io::Read;

use md5::{Digest, Md5};

/// A reader that hashes (MD5) and counts what passes through it.
pub(super) struct Md5Reader<R> {
    pub(super) inner: R,
    pub(super) md5: Md5,
    pub(super) n: u64,
}

impl<R: Read> Read for Md5Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.md5.update(&buf[..k]);
        self.n += k as u64;
        Ok(k)
    }
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An ETag as compared: no quotes, lower case.
pub(super) fn plain_etag(e: &str) -> String {
    e.trim().trim_matches('"').to_ascii_lowercase()
}
