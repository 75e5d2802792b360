//! Exit statuses, as the README and `--help` give them: 0 success, 1 the
//! job failed, 2 a usage or configuration error (a bad flag, a missing
//! folder, an unreadable certificate, the port in use). A script tells
//! them apart; these run the binary as a script would.

mod common;

use std::net::TcpListener;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_dashcam-server");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "info")
        .output()
        .unwrap()
}

fn code_and_text(o: &Output) -> (Option<i32>, String) {
    (
        o.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[test]
fn success_is_0() {
    // A valid frame explained.
    let (code, text) = code_and_text(&run(&["decode", "00 00 00 05 00 00 00 01"]));
    assert_eq!(code, Some(0), "{text}");
}

#[test]
fn a_bad_flag_or_value_is_2() {
    for args in [
        &["serve", "--no-such-flag"][..],
        &["serve", "--port", "70000"],
        &["serve", "--max-file-mb", "0", "--port", "0"],
        &["serve", "--read-timeout", "0", "--port", "0"],
        &["decode", "zz"],
        &["serve", "--convert-trim", "5000", "--port", "0"],
        &["convert", "--convert-trim", "3601"],
    ] {
        let (code, text) = code_and_text(&run(args));
        assert_eq!(code, Some(2), "{args:?}: {text}");
        assert!(text.contains("error"), "{args:?}: {text}");
    }
}

#[test]
fn the_port_in_use_is_2_and_named() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (code, text) = code_and_text(&run(&[
        "serve",
        "--bind",
        "127.0.0.1",
        "--port",
        &port,
        "--output-dir",
        out.to_str().unwrap(),
    ]));
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains(&port), "the port is named: {text}");
    // The HTTP endpoint's port too.
    let (code, text) = code_and_text(&run(&[
        "serve",
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
        "--http-bind",
        &format!("127.0.0.1:{port}"),
        "--output-dir",
        out.to_str().unwrap(),
    ]));
    assert_eq!(code, Some(2), "{text}");
}

#[test]
fn an_unreadable_certificate_or_key_is_2() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let junk = tmp.path().join("cert.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let missing = tmp.path().join("missing.pem");
    for (cert, key) in [(&junk, &junk), (&missing, &missing)] {
        let (code, text) = code_and_text(&run(&[
            "serve",
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--output-dir",
            out.to_str().unwrap(),
        ]));
        assert_eq!(code, Some(2), "{text}");
        assert!(text.contains("pem"), "the file is named: {text}");
    }
}

#[test]
fn a_missing_folder_is_2() {
    let tmp = tempfile::tempdir().unwrap();
    let none = tmp.path().join("none");
    for cmd in ["verify", "convert"] {
        let flag = if cmd == "verify" {
            "--dir"
        } else {
            "--output-dir"
        };
        let (code, text) = code_and_text(&run(&[cmd, flag, none.to_str().unwrap()]));
        assert_eq!(code, Some(2), "{cmd}: {text}");
        assert!(text.contains("none"), "{cmd}: the folder is named: {text}");
    }
}

#[test]
fn a_file_that_fails_verify_is_1() {
    // A camera sends a "photo" that is not a JPEG; the server stores it as
    // sent; checking it is the job, and it fails.
    use common::*;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |_| {});
    let mut cam = srv.sim(350612071913857);
    cam.files = vec![(
        dashcam_server::codec::FileKind::PhotoFront,
        write_file(tmp.path(), "x.jpg", b"\x89PNG\r\n\x1a\nnot a jpeg at all"),
    )];
    assert!(
        dashcam_server::simulator::run_camera(&cam)
            .unwrap()
            .complete
    );
    let (code, text) = code_and_text(&run(&["verify", "--dir", out.to_str().unwrap()]));
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("FAIL"), "{text}");
}

/// For a program embedding the server: why it could not start, as a type
/// it can match, with the system's error as the source.
#[test]
fn a_server_that_cannot_start_says_why_in_a_type() {
    use dashcam_server::net::server::{BindError, Server};
    use std::error::Error as _;
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = common::config(&tmp.path().join("out"));
    cfg.port = taken.local_addr().unwrap().port();
    let Err(e) = Server::bind(cfg) else {
        panic!("bound a port in use");
    };
    assert!(matches!(e, BindError::PortInUse { .. }), "{e:?}");
    let io = e.source().and_then(|s| s.downcast_ref::<std::io::Error>());
    assert_eq!(io.map(|e| e.kind()), Some(std::io::ErrorKind::AddrInUse));
}

/// The same for the HTTP endpoint: a weak token, no token beyond loopback,
/// its port in use, each a variant (the port's with the system's error).
#[test]
fn an_endpoint_that_cannot_start_says_why_in_a_type() {
    use dashcam_server::net::server::Server;
    use dashcam_server::web::endpoint::{HttpEndpoint, Sources, StartError};
    use std::error::Error as _;
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = common::config(&tmp.path().join("out"));
    cfg.port = 0;
    let server = Server::bind(cfg).unwrap();
    let src = || Sources {
        root: tmp.path().join("out"),
        server: server.stop_handle(),
        delivery: None,
        convert_queue: None,
        convert_stats: None,
    };
    let loopback = "127.0.0.1:0".parse().unwrap();
    let start = |bind, token: Option<&str>| {
        HttpEndpoint::start(bind, token.map(str::to_string), src())
            .err()
            .expect("not started")
    };
    assert!(matches!(
        start(loopback, Some("short")),
        StartError::ShortToken(5)
    ));
    assert!(matches!(
        start(loopback, Some("   ")),
        StartError::BlankToken
    ));
    assert!(matches!(
        start(loopback, Some("sixteen chars ok")),
        StartError::TokenCharacters
    ));
    assert!(matches!(
        start("0.0.0.0:0".parse().unwrap(), None),
        StartError::NoToken(_)
    ));
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let e = start(taken.local_addr().unwrap(), None);
    assert!(matches!(e, StartError::Listen { .. }), "{e:?}");
    let io = e.source().and_then(|s| s.downcast_ref::<std::io::Error>());
    assert_eq!(io.map(|e| e.kind()), Some(std::io::ErrorKind::AddrInUse));
}
