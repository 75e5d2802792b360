//! Real processes for the delivery tests: the server binary as a service
//! runs it, s3s-fs (a real S3-compatible store), and waits on their logs.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dashcam_server::codec::FileKind;
use dashcam_server::delivery::s3::{S3Client, S3Config};
use dashcam_server::simulator::SimConfig;

use super::{free_port, wait_for};

pub const KEY_ID: &str = "AKIDDASHCAMTEST";
pub const SECRET: &str = "dashcam-test-secret-key";
pub const BIN: &str = env!("CARGO_BIN_EXE_dashcam-server");

/// Kills its process when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn wait_port(addr: SocketAddr, what: &str) {
    wait_for(what, || TcpStream::connect(addr).is_ok());
}

/// s3s-fs on `port`, keeping its objects in `dir`, and a client of its
/// bucket `fleet` (created).
pub fn store(dir: &Path, port: u16) -> (Proc, S3Client) {
    std::fs::create_dir_all(dir).unwrap();
    let p = Proc(
        Command::new("s3s-fs")
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", KEY_ID, "--secret-key", SECRET])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs"),
    );
    wait_port(
        format!("127.0.0.1:{port}").parse().unwrap(),
        "the object store",
    );
    let bucket = S3Client::new(S3Config {
        endpoint: format!("http://127.0.0.1:{port}"),
        bucket: "fleet".into(),
        region: "us-east-1".into(),
        prefix: String::new(),
        access_key: KEY_ID.into(),
        secret_key: SECRET.into(),
        session_token: None,
    });
    bucket.create_bucket().unwrap();
    (p, bucket)
}

/// A camera at `addr` that sends `files`.
pub fn camera(addr: SocketAddr, imei: u64, files: Vec<(FileKind, PathBuf)>) -> SimConfig {
    let mut cam = SimConfig::new(addr.to_string(), imei);
    cam.files = files;
    cam.timeout = Duration::from_secs(60);
    cam
}

/// The server binary as a service would run it; returns it and its camera address.
pub fn server(out: &Path, log: &Path, extra: &[String]) -> (Proc, SocketAddr) {
    let port = free_port();
    let child = Command::new(BIN)
        .args(["serve", "--bind", "127.0.0.1", "--port", &port.to_string()])
        .arg("--output-dir")
        .arg(out)
        .args(["--min-free-mb", "0", "--max-per-ip", "100"])
        .args(extra)
        .env("AWS_ACCESS_KEY_ID", KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let p = Proc(child);
    wait_port(addr, "the server");
    (p, addr)
}

pub fn s3_flags(port: u16, prefix: &str) -> Vec<String> {
    [
        "--s3-endpoint",
        &format!("http://127.0.0.1:{port}"),
        "--s3-bucket",
        "fleet",
        "--s3-prefix",
        prefix,
        "--retry-max",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Waits (at most 60 s) until every upload and event of `out` is confirmed.
pub fn outbox_empties(out: &Path) {
    let began = Instant::now();
    while dashcam_server::delivery::outbox_len(out) > 0 {
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "the outbox never emptied"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn log_has(log: &Path, what: &str) -> bool {
    std::fs::File::open(log).is_ok_and(|f| {
        BufReader::new(f)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.contains(what))
    })
}

/// Sets a file's modification time `days` back.
pub fn age(p: &Path, days: u64) {
    let f = std::fs::File::options().write(true).open(p).unwrap();
    f.set_modified(std::time::SystemTime::now() - Duration::from_secs(days * 86_400))
        .unwrap();
}
