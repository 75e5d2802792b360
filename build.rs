//! Finds the external tools some tests need (ffmpeg, chromium, haproxy,
//! openssl) and tells the tests with `cfg(have_<tool>)`: a test whose tool is
//! missing is reported as ignored, with the tool's name as the reason, never
//! as a pass. The server itself uses none of this.

use std::env;
use std::path::PathBuf;

/// The first `name` on PATH.
fn find(name: &str) -> Option<PathBuf> {
    let exe = if cfg!(windows) {
        format!("{name}.exe")
    } else {
        name.to_string()
    };
    env::split_paths(&env::var_os("PATH")?)
        .map(|d| d.join(&exe))
        .find(|p| p.is_file())
}

/// Root can mount a small tmpfs (the full-disk tests).
fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// Python with the Prometheus client's text-format parser (the /metrics test).
fn has_prometheus_parser() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import prometheus_client.parser"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The commit the binary is built from, for `--version`: `DASHCAM_BUILD_COMMIT`
/// when set (a build from a source tarball), else `git`, else "unknown".
fn git_commit() -> String {
    if let Ok(c) = env::var("DASHCAM_BUILD_COMMIT") {
        return c;
    }
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => "unknown".into(),
    }
}

fn main() {
    // `--version`: "0.1.0 (commit 1a2b3c4d5e6f, x86_64-pc-windows-gnu)".
    println!("cargo::rerun-if-env-changed=DASHCAM_BUILD_COMMIT");
    for git in [".git/HEAD", ".git/logs/HEAD"] {
        if std::path::Path::new(git).exists() {
            println!("cargo::rerun-if-changed={git}");
        }
    }
    println!("cargo::rustc-env=BUILD_COMMIT={}", git_commit());
    println!(
        "cargo::rustc-env=BUILD_TARGET={}",
        env::var("TARGET").unwrap_or_else(|_| "unknown".into())
    );
    println!("cargo::rerun-if-env-changed=PATH");
    println!("cargo::rustc-check-cfg=cfg(have_prometheus_parser)");
    if has_prometheus_parser() {
        println!("cargo::rustc-cfg=have_prometheus_parser");
    }
    println!("cargo::rustc-check-cfg=cfg(have_root)");
    if cfg!(target_os = "linux") && is_root() {
        println!("cargo::rustc-cfg=have_root");
    }
    for (cfg, tools) in [
        ("have_ffmpeg", &["ffmpeg", "ffprobe"][..]),
        ("have_chromium", &["chromium"][..]),
        ("have_haproxy", &["haproxy"][..]),
        ("have_openssl", &["openssl"][..]),
        // Wine's cmd runs run_server.bat against a stand-in .exe built by MinGW.
        ("have_wine", &["wine", "x86_64-w64-mingw32-gcc"][..]),
        // A real S3-compatible store, as its own process (the delivery tests).
        ("have_s3s_fs", &["s3s-fs"][..]),
    ] {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        let found: Vec<Option<PathBuf>> = tools.iter().map(|t| find(t)).collect();
        for (tool, path) in tools.iter().zip(&found) {
            match path {
                // Rebuilt when the tool changes.
                Some(p) => println!("cargo::rerun-if-changed={}", p.display()),
                // A path that does not exist: checked again at every build,
                // so installing the tool turns its tests on.
                None => println!("cargo::rerun-if-changed=/nonexistent/{tool}"),
            }
        }
        if found.iter().all(Option::is_some) {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}
