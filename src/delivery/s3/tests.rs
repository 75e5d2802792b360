//! The S3 client's deadlines, keys and settings.

use super::*;

#[test]
fn a_request_has_a_deadline_that_grows_with_its_body_only() {
    assert_eq!(deadline_for(0), BASE_DEADLINE);
    // An 8 MiB part: 64 s more at 128 KiB/s.
    assert_eq!(
        deadline_for(8 << 20),
        BASE_DEADLINE + Duration::from_secs(64)
    );
    assert_eq!(plain_etag("\"ABC\""), "abc");
    assert_eq!(xml_unescape("a&amp;b&lt;"), "a&b<");
}

#[test]
fn keys_and_settings() {
    let c = S3Config {
        endpoint: "http://127.0.0.1:9000".into(),
        bucket: "b".into(),
        region: "us-east-1".into(),
        prefix: "fleet".into(),
        access_key: "a".into(),
        secret_key: "s".into(),
        session_token: None,
    };
    assert_eq!(c.key_for("350/x.jpg"), "fleet/350/x.jpg");
    assert_eq!(c.host(), "127.0.0.1:9000");
    assert!(S3Config::from_env("127.0.0.1:9000", "b", None, None).is_err());
    assert!(S3Config::from_env("http://h/x", "b", None, None).is_err());
}
