//! AWS Signature Version 4 over header authentication: a canonical request,
//! HMAC-SHA256, checked against AWS's published example. Also the HMAC the
//! webhook signs its events with.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::storage::Sha256Digest;

pub(crate) fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key");
    m.update(data);
    m.finalize().into_bytes().into()
}

/// HMAC-SHA256 of `body` with `secret`, in hex (webhook signatures).
pub fn hmac_hex(secret: &[u8], body: &[u8]) -> String {
    Sha256Digest(hmac(secret, body)).hex()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256Digest(Sha256::digest(bytes).into()).hex()
}

/// Standard base64 with padding (Content-MD5, checksums).
pub fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// What SigV4 leaves as it is: the unreserved characters.
const SIGV4: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// SigV4's URI encoding: unreserved characters kept, `/` kept in paths only.
pub(crate) fn uri_encode(s: &str, keep_slash: bool) -> String {
    if keep_slash {
        s.split('/')
            .map(|part| percent_encoding::utf8_percent_encode(part, SIGV4).to_string())
            .collect::<Vec<_>>()
            .join("/")
    } else {
        percent_encoding::utf8_percent_encode(s, SIGV4).to_string()
    }
}

/// The `Authorization` header of a request: `path` already URI-encoded,
/// `headers` lower-case names (host, x-amz-date and x-amz-content-sha256
/// among them), `query` not encoded.
#[allow(clippy::too_many_arguments)]
pub(crate) fn authorization(
    access_key: &str,
    secret_key: &str,
    region: &str,
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    headers: &[(String, String)],
    payload_sha256: &str,
    now: DateTime<Utc>,
) -> String {
    let mut q: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    q.sort();
    let query: Vec<String> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut h: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    h.sort();
    let canonical_headers: String = h.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed: Vec<&str> = h.iter().map(|(k, _)| k.as_str()).collect();
    let signed = signed.join(";");
    let canonical = format!(
        "{method}\n{path}\n{}\n{canonical_headers}\n{signed}\n{payload_sha256}",
        query.join("&")
    );
    let date = now.format("%Y%m%d").to_string();
    let amz_date = now.format("%Y%m%dT%H%M%SZ").to_string();
    let scope = format!("{date}/{region}/s3/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let k = hmac(format!("AWS4{secret_key}").as_bytes(), date.as_bytes());
    let k = hmac(&k, region.as_bytes());
    let k = hmac(&k, b"s3");
    let k = hmac(&k, b"aws4_request");
    let signature = Sha256Digest(hmac(&k, to_sign.as_bytes())).hex();
    format!("AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed}, Signature={signature}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's example "GET Object" with header authentication (the Signature
    /// Version 4 documentation for S3, `examplebucket`, 2013-05-24).
    #[test]
    fn the_signature_matches_aws_published_example() {
        let now = DateTime::parse_from_rfc3339("2013-05-24T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let headers = vec![
            (
                "host".to_string(),
                "examplebucket.s3.amazonaws.com".to_string(),
            ),
            ("range".to_string(), "bytes=0-9".to_string()),
            ("x-amz-content-sha256".to_string(), empty.to_string()),
            ("x-amz-date".to_string(), "20130524T000000Z".to_string()),
        ];
        let auth = authorization(
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "us-east-1",
            "GET",
            "/test.txt",
            &[],
            &headers,
            empty,
            now,
        );
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn base64_and_uri_encoding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(uri_encode("a b/c~%", true), "a%20b/c~%25");
        assert_eq!(uri_encode("a/b", false), "a%2Fb");
    }
}
