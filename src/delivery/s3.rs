//! S3-compatible object storage, synchronous: AWS Signature V4 over header
//! authentication (written here: a canonical request, HMAC-SHA256, about 60
//! lines, checked against AWS's published example), sent by a blocking HTTP
//! client (ureq). Every PUT carries the payload's SHA-256 in
//! `x-amz-content-sha256`, which the signature covers and the store checks
//! against the bytes it received (and `x-amz-checksum-sha256` on a single
//! PUT); files over 16 MiB go in 8 MiB parts, each with its own SHA-256.
//!
//! An upload is done only when the store proves it: no redirect is
//! followed (a 3xx is a failure that names its `Location`: the endpoint or
//! region is wrong), a single PUT needs a 2xx that echoes the checksum sent
//! or the ETag of the bytes sent (their MD5), a multipart upload a
//! `CompleteMultipartUploadResult` naming the key. Before a local copy is
//! removed, [`S3Client::confirm`] asks the store (`HEAD`) for the object's
//! size and checksum. Every request has a deadline as a whole (connect,
//! send, answer): 60 s plus the time its body needs at 128 KiB/s, so a store
//! that trickles its answer cannot hold a worker.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use chrono::Utc;
use md5::Md5;
use sha2::{Digest, Sha256};

use super::sigv4::{authorization, base64, sha256_hex, uri_encode};
use crate::storage::Sha256Digest;

/// Files up to this size go in one PUT.
pub const SINGLE_PUT_MAX: u64 = 16 << 20;
/// The part size of a multipart upload (S3's minimum is 5 MiB).
pub const PART: usize = 8 << 20;
/// Every request's deadline is this, plus its body's time at [`FLOOR_RATE`].
pub const BASE_DEADLINE: Duration = Duration::from_secs(60);
/// The slowest upload a request's deadline allows for (bytes a second).
pub const FLOOR_RATE: u64 = 128 << 10;

/// The deadline of a request that sends `body` bytes: the whole exchange
/// (connect, send, answer) must fit in it.
pub fn deadline_for(body: u64) -> Duration {
    BASE_DEADLINE + Duration::from_millis(body.saturating_mul(1000) / FLOOR_RATE)
}

/// What the store proved of an object it now holds: recorded in the
/// sidecar, and asked of it again (`HEAD`) before a local copy goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    pub size: u64,
    /// The ETag the bytes sent give: their MD5 (one PUT), or the MD5 of the
    /// parts' MD5s with `-N` (multipart), lower-case hex, no quotes.
    pub etag: String,
    /// `x-amz-checksum-sha256` as sent (base64), for a single PUT.
    pub checksum_sha256: Option<String>,
}

/// An object as `HEAD` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub size: Option<u64>,
    pub etag: Option<String>,
    pub checksum_sha256: Option<String>,
}

/// An answer the store gave: a 2xx, or an error that says what it was
/// (a redirect names its `Location` and what to fix).
fn success(resp: ureq::Response, what: &str) -> Result<ureq::Response> {
    let code = resp.status();
    if (200..300).contains(&code) {
        return Ok(resp);
    }
    let location = resp.header("Location").map(str::to_string);
    let body = read_capped(resp, 64 << 10);
    let name = xml_text(&body, "Code").unwrap_or("");
    if (300..400).contains(&code) {
        let to = location
            .or_else(|| xml_text(&body, "Endpoint").map(|e| format!("endpoint {e}")))
            .unwrap_or_else(|| "no Location given".into());
        return Err(anyhow::Error::new(StatusError(code)).context(format!(
            "{what}: the store answered HTTP {code} {name} (a redirect, to {to}): redirects are \
             not followed, nothing is counted as stored; fix --s3-endpoint / --s3-region \
             (AWS answers 301 PermanentRedirect to a bucket addressed at another region's \
             endpoint, and 307 while a new bucket's name spreads)"
        )));
    }
    Err(anyhow::Error::new(StatusError(code)).context(format!("{what}: HTTP {code} {name}")))
}

/// At most `cap` bytes of an answer's body, as text.
fn read_capped(resp: ureq::Response, cap: u64) -> String {
    let mut b = Vec::new();
    let _ = resp.into_reader().take(cap).read_to_end(&mut b);
    String::from_utf8_lossy(&b).into_owned()
}

/// The HTTP status of a failed request, if the store answered at all.
pub fn status_of(e: &anyhow::Error) -> Option<u16> {
    e.chain()
        .find_map(|c| c.downcast_ref::<StatusError>())
        .map(|s| s.0)
}

/// An answer's status, kept as the source of an error so that the caller
/// can tell a refusal for good (4xx) from a passing one.
#[derive(Debug)]
pub struct StatusError(pub u16);

impl std::fmt::Display for StatusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {}", self.0)
    }
}

impl std::error::Error for StatusError {}

#[derive(Debug, Clone)]
pub struct S3Config {
    /// `http(s)://host[:port]`, no path.
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    /// Keys are `<prefix>/<imei>/<name>` (no prefix: `<imei>/<name>`).
    pub prefix: String,
    pub access_key: String,
    pub secret_key: String,
    pub session_token: Option<String>,
}

impl S3Config {
    /// Credentials from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (and
    /// `AWS_SESSION_TOKEN`); the region from the flag, else `AWS_REGION`,
    /// `AWS_DEFAULT_REGION`, else `us-east-1`.
    pub fn from_env(
        endpoint: &str,
        bucket: &str,
        region: Option<&str>,
        prefix: Option<&str>,
    ) -> Result<S3Config> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let endpoint = endpoint.trim_end_matches('/').to_string();
        let rest = endpoint
            .strip_prefix("http://")
            .or_else(|| endpoint.strip_prefix("https://"))
            .ok_or_else(|| {
                anyhow!("--s3-endpoint {endpoint}: give http://host:port or https://host")
            })?;
        if rest.is_empty() || rest.contains('/') {
            bail!("--s3-endpoint {endpoint}: give the store's address without a path (the bucket is --s3-bucket)");
        }
        if bucket.is_empty() || bucket.contains('/') {
            bail!("--s3-bucket {bucket:?}: a bucket name, without slashes");
        }
        let (Some(access_key), Some(secret_key)) =
            (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"))
        else {
            bail!(
                "--s3-endpoint needs credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            );
        };
        Ok(S3Config {
            endpoint,
            bucket: bucket.to_string(),
            region: region
                .map(str::to_string)
                .or_else(|| var("AWS_REGION"))
                .or_else(|| var("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".into()),
            prefix: prefix.unwrap_or("").trim_matches('/').to_string(),
            access_key,
            secret_key,
            session_token: var("AWS_SESSION_TOKEN"),
        })
    }

    /// The object key of a path under the output folder (`<imei>/<name>`).
    pub fn key_for(&self, rel: &str) -> String {
        if self.prefix.is_empty() {
            rel.to_string()
        } else {
            format!("{}/{rel}", self.prefix)
        }
    }

    fn host(&self) -> &str {
        self.endpoint
            .split_once("://")
            .map_or(&self.endpoint[..], |(_, h)| h)
    }

    /// `s3://bucket/key`, for events and logs.
    pub fn location(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }
}

/// A blocking client for one bucket.
pub struct S3Client {
    cfg: S3Config,
    agent: ureq::Agent,
}

/// The text of the first `<tag>` element of a store's XML answer.
fn xml_text<'a>(body: &'a str, tag: &str) -> Option<&'a str> {
    let (_, rest) = body.split_once(&format!("<{tag}>"))?;
    Some(rest.split_once(&format!("</{tag}>"))?.0)
}

/// A request's outcome as text, for errors.
fn failure(e: ureq::Error) -> anyhow::Error {
    match e {
        ureq::Error::Status(code, resp) => {
            let body = read_capped(resp, 64 << 10);
            let code_name = xml_text(&body, "Code").unwrap_or("");
            anyhow::Error::new(StatusError(code)).context(format!("HTTP {code} {code_name}"))
        }
        e => anyhow!("{e}"),
    }
}

impl S3Client {
    pub fn new(cfg: S3Config) -> S3Client {
        // No redirect is followed: a 3xx comes back as an answer, and is a
        // failure (see `success`). Each request sets its own deadline.
        let agent = ureq::AgentBuilder::new()
            .redirects(0)
            .timeout_connect(Duration::from_secs(10))
            .timeout(BASE_DEADLINE)
            .build();
        S3Client { cfg, agent }
    }

    pub fn config(&self) -> &S3Config {
        &self.cfg
    }

    /// A signed request (not yet sent).
    fn request(
        &self,
        method: &str,
        key: Option<&str>,
        query: &[(&str, &str)],
        payload_sha256: &str,
        extra: &[(&str, String)],
    ) -> ureq::Request {
        let mut path = format!("/{}", uri_encode(&self.cfg.bucket, false));
        if let Some(k) = key {
            path.push('/');
            path.push_str(&uri_encode(k, true));
        }
        let now = Utc::now();
        let mut headers: Vec<(String, String)> = vec![
            ("host".into(), self.cfg.host().to_string()),
            ("x-amz-content-sha256".into(), payload_sha256.to_string()),
            (
                "x-amz-date".into(),
                now.format("%Y%m%dT%H%M%SZ").to_string(),
            ),
        ];
        if let Some(t) = &self.cfg.session_token {
            headers.push(("x-amz-security-token".into(), t.clone()));
        }
        headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        let auth = authorization(
            &self.cfg.access_key,
            &self.cfg.secret_key,
            &self.cfg.region,
            method,
            &path,
            query,
            &headers,
            payload_sha256,
            now,
        );
        let mut url = format!("{}{path}", self.cfg.endpoint);
        if !query.is_empty() {
            let q: Vec<String> = query
                .iter()
                .map(|(k, v)| {
                    if v.is_empty() {
                        uri_encode(k, false)
                    } else {
                        format!("{}={}", uri_encode(k, false), uri_encode(v, false))
                    }
                })
                .collect();
            url.push('?');
            url.push_str(&q.join("&"));
        }
        let mut req = self
            .agent
            .request(method, &url)
            .timeout(BASE_DEADLINE)
            .set("Authorization", &auth);
        for (k, v) in headers.iter().filter(|(k, _)| k != "host") {
            req = req.set(k, v);
        }
        req
    }

    /// Creates the bucket (tests and first set-up); an existing one is fine.
    pub fn create_bucket(&self) -> Result<()> {
        let empty = sha256_hex(b"");
        match self.request("PUT", None, &[], &empty, &[]).call() {
            Ok(r) => success(r, "creating the bucket").map(drop),
            Err(ureq::Error::Status(409, _)) => Ok(()),
            Err(e) => Err(failure(e)).context("creating the bucket"),
        }
    }

    /// An object's bytes (tests, checks).
    pub fn get(&self, key: &str) -> Result<Vec<u8>> {
        let empty = sha256_hex(b"");
        let resp = self
            .request("GET", Some(key), &[], &empty, &[])
            .call()
            .map_err(failure)
            .and_then(|r| success(r, &format!("GET {key}")))
            .with_context(|| format!("GET {key}"))?;
        let mut out = Vec::new();
        resp.into_reader()
            .take(1 << 34)
            .read_to_end(&mut out)
            .with_context(|| format!("reading {key}"))?;
        Ok(out)
    }

    /// Uploads `len` bytes of `file` (from its start) under `key`. `sha256`:
    /// the file's, when known (else it is read once to compute it).
    pub fn put_file(
        &self,
        key: &str,
        file: &mut File,
        len: u64,
        sha256: Option<Sha256Digest>,
    ) -> Result<Proof> {
        self.put_file_noting(key, file, len, sha256, &mut |_| Ok(()))
    }

    /// As [`put_file`](Self::put_file); a multipart upload's id is handed to
    /// `note` once the store gave it (`Some`), and `None` once the upload is
    /// completed or aborted: kept on disk, it lets a later start abort an
    /// upload a crash cut off, whose parts the store would otherwise keep.
    /// The upload does not begin when the id cannot be noted. Ok only when
    /// the store proved it holds the bytes sent.
    pub fn put_file_noting(
        &self,
        key: &str,
        file: &mut File,
        len: u64,
        sha256: Option<Sha256Digest>,
        note: &mut dyn FnMut(Option<&str>) -> Result<()>,
    ) -> Result<Proof> {
        if len > SINGLE_PUT_MAX {
            return self.put_multipart(key, file, len, note);
        }
        let sha = match sha256 {
            Some(d) => d,
            None => {
                let mut h = Sha256::new();
                file.seek(SeekFrom::Start(0))?;
                std::io::copy(&mut (&mut *file).take(len), &mut h)?;
                Sha256Digest(h.finalize().into())
            }
        };
        file.seek(SeekFrom::Start(0))?;
        let checksum = base64(&sha.0);
        let extra = [("x-amz-checksum-sha256", checksum.clone())];
        let mut body = Md5Reader {
            inner: (&mut *file).take(len),
            md5: Md5::new(),
            n: 0,
        };
        let resp = self
            .request("PUT", Some(key), &[], &sha.hex(), &extra)
            .timeout(deadline_for(len))
            .set("Content-Length", &len.to_string())
            .send(&mut body)
            .map_err(failure)
            .and_then(|r| success(r, &format!("PUT {key}")))
            .with_context(|| format!("PUT {key}"))?;
        if body.n != len {
            bail!(
                "PUT {key}: {} of {len} bytes read from the file (it changed while it went up)",
                body.n
            );
        }
        let md5 = hex(&body.md5.finalize());
        let echoed_sum = resp
            .header("x-amz-checksum-sha256")
            .map(|v| v.trim().to_string());
        let etag = resp.header("ETag").map(plain_etag);
        let _ = read_capped(resp, 64 << 10);
        if echoed_sum.as_deref() == Some(checksum.as_str()) || etag.as_deref() == Some(md5.as_str())
        {
            return Ok(Proof {
                size: len,
                etag: md5,
                checksum_sha256: Some(checksum),
            });
        }
        bail!(
            "PUT {key}: the store answered 2xx but did not prove it holds the object \
             (x-amz-checksum-sha256 {}, ETag {}; the bytes sent give {checksum} and {md5}): \
             not counted as uploaded",
            echoed_sum.as_deref().unwrap_or("missing"),
            etag.as_deref().unwrap_or("missing"),
        )
    }

    /// The object as the store has it now (`HEAD`, checksums asked for);
    /// None when the store has no such object (404).
    pub fn head(&self, key: &str) -> Result<Option<Head>> {
        let empty = sha256_hex(b"");
        let extra = [("x-amz-checksum-mode", "ENABLED".to_string())];
        let resp = match self.request("HEAD", Some(key), &[], &empty, &extra).call() {
            Ok(r) => success(r, &format!("HEAD {key}"))?,
            Err(ureq::Error::Status(404, _)) => return Ok(None),
            Err(e) => return Err(failure(e)).with_context(|| format!("HEAD {key}")),
        };
        Ok(Some(Head {
            size: resp
                .header("Content-Length")
                .and_then(|v| v.trim().parse().ok()),
            etag: resp.header("ETag").map(plain_etag),
            checksum_sha256: resp
                .header("x-amz-checksum-sha256")
                .map(|v| v.trim().to_string()),
        }))
    }

    /// Ok when the store holds `key` with this size and checksum (its
    /// `x-amz-checksum-sha256`, else its ETag): asked before a local copy
    /// is removed. Err says why not (then the local copy stays).
    pub fn confirm(
        &self,
        key: &str,
        size: u64,
        etag: Option<&str>,
        checksum: Option<&str>,
    ) -> Result<()> {
        let Some(h) = self.head(key)? else {
            bail!("the store has no object {key}");
        };
        if h.size != Some(size) {
            bail!(
                "the store's {key} has {} bytes, the local file {size}",
                h.size
                    .map_or("an unknown number of".into(), |n| n.to_string())
            );
        }
        if let (Some(theirs), Some(ours)) = (h.checksum_sha256.as_deref(), checksum) {
            if theirs == ours {
                return Ok(());
            }
            bail!("the store's {key} has checksum {theirs}, the bytes sent {ours}");
        }
        match (h.etag.as_deref(), etag) {
            (Some(theirs), Some(ours)) if theirs == plain_etag(ours) => Ok(()),
            (Some(theirs), Some(ours)) => {
                bail!("the store's {key} has ETag {theirs}, the bytes sent {ours}")
            }
            _ => bail!("the store shows no checksum or ETag of {key} to compare"),
        }
    }
}

/// The five entities XML escapes a key with.
fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

mod etag;
mod multipart;

use etag::{hex, plain_etag, Md5Reader};
#[cfg(test)]
mod tests;
