//! Multipart uploads: files over 16 MiB go in 8 MiB parts, each with its
//! own SHA-256; done only with a `CompleteMultipartUploadResult` naming the
//! key; an upload cut off is aborted.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use anyhow::{anyhow, bail, Context, Result};

use super::*;

impl S3Client {
    /// Aborts a multipart upload (the store drops its parts): Ok(None) once
    /// done, Ok(Some(why)) when the store answered that it will not (an
    /// upload it no longer knows, completed or aborted already: AWS says 404
    /// NoSuchUpload, s3s-fs 403; or no right to abort), Err when it could not
    /// be asked (unreachable, 5xx, a redirect).
    pub fn abort_multipart(&self, key: &str, id: &str) -> Result<Option<String>> {
        let empty = sha256_hex(b"");
        match self
            .request("DELETE", Some(key), &[("uploadId", id)], &empty, &[])
            .call()
        {
            Ok(r) => success(r, &format!("aborting upload {id} of {key}")).map(|_| None),
            Err(ureq::Error::Status(code, resp)) if (400..500).contains(&code) => {
                Ok(Some(failure(ureq::Error::Status(code, resp)).to_string()))
            }
            Err(e) => Err(failure(e)).with_context(|| format!("aborting upload {id} of {key}")),
        }
    }

    pub(super) fn put_multipart(
        &self,
        key: &str,
        file: &mut File,
        len: u64,
        note: &mut dyn FnMut(Option<&str>) -> Result<()>,
    ) -> Result<Proof> {
        let empty = sha256_hex(b"");
        let what = format!("starting the multipart upload of {key}");
        let resp = self
            .request("POST", Some(key), &[("uploads", "")], &empty, &[])
            .call()
            .map_err(failure)
            .and_then(|r| success(r, &what))
            .context(what)?;
        let body = read_capped(resp, 64 << 10);
        let id = xml_text(&body, "UploadId")
            .ok_or_else(|| anyhow!("no UploadId in the store's answer"))?
            .to_string();
        if let Err(e) = note(Some(&id)) {
            let _ = self.abort_multipart(key, &id);
            return Err(e);
        }
        let result = self.upload_parts(key, &id, file, len);
        if result.is_err() && self.abort_multipart(key, &id).is_err() {
            // The store could not be told to drop the parts now: the noted
            // id lets a later attempt tell it.
            return result;
        }
        // A note left behind names an upload the store no longer has: its
        // abort later is answered 404, which is fine.
        let _ = note(None);
        result
    }

    fn upload_parts(&self, key: &str, id: &str, file: &mut File, len: u64) -> Result<Proof> {
        file.seek(SeekFrom::Start(0))?;
        let mut buf = vec![0u8; PART];
        let mut etags = Vec::new();
        let mut md5s = Md5::new();
        let mut left = len;
        let mut n = 0u32;
        while left > 0 {
            n += 1;
            let size = left.min(PART as u64) as usize;
            file.read_exact(&mut buf[..size])
                .with_context(|| format!("reading part {n} of {key}"))?;
            let part = &buf[..size];
            let sha = sha256_hex(part);
            let md5 = Md5::digest(part);
            md5s.update(md5);
            let num = n.to_string();
            let what = format!("PUT part {n} of {key}");
            let resp = self
                .request(
                    "PUT",
                    Some(key),
                    &[("partNumber", &num), ("uploadId", id)],
                    &sha,
                    &[],
                )
                .timeout(deadline_for(size as u64))
                .send_bytes(part)
                .map_err(failure)
                .and_then(|r| success(r, &what))
                .context(what)?;
            let etag = resp
                .header("ETag")
                .ok_or_else(|| anyhow!("no ETag for part {n} of {key}"))?
                .to_string();
            if plain_etag(&etag) != hex(&md5) {
                bail!(
                    "part {n} of {key}: the store's ETag {etag} is not the MD5 of the part sent ({})",
                    hex(&md5)
                );
            }
            etags.push(etag);
            left -= size as u64;
        }
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (i, e) in etags.iter().enumerate() {
            xml.push_str(&format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{e}</ETag></Part>",
                i + 1
            ));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let sha = sha256_hex(xml.as_bytes());
        let what = format!("completing the multipart upload of {key}");
        let resp = self
            .request("POST", Some(key), &[("uploadId", id)], &sha, &[])
            .send_bytes(xml.as_bytes())
            .map_err(failure)
            .and_then(|r| success(r, &what))
            .with_context(|| what.clone())?;
        // A 200 can still carry an error (S3 documents this for Complete):
        // done only with a result that names the key.
        let body = read_capped(resp, 64 << 10);
        let named = xml_text(&body, "Key").map(xml_unescape);
        if !body.contains("<CompleteMultipartUploadResult") || named.as_deref() != Some(key) {
            bail!(
                "{what}: the store's answer is not a CompleteMultipartUploadResult naming {key}: {}",
                body.chars().take(300).collect::<String>()
            );
        }
        Ok(Proof {
            size: len,
            etag: format!("{}-{n}", hex(&md5s.finalize())),
            checksum_sha256: None,
        })
    }
}
