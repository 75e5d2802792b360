//! The README cannot drift: every `dashcam-server` command it shows in a
//! code block is parsed and checked by the real command line (flags, values,
//! settings that are checked before anything starts), and every example
//! whose output it shows (`decode`) is run and must print exactly that.

use clap::Parser;
use dashcam_server::cli::{Cli, Command};

/// A command shown in the README, and the output shown under it (for `$` lines).
struct Shown {
    line: usize,
    words: Vec<String>,
    output: Option<String>,
}

fn commands(readme: &str) -> Vec<Shown> {
    let mut out = Vec::new();
    let mut in_block = false;
    let mut current: Option<Shown> = None;
    let mut pending = String::new();
    let mut pending_line = 0;
    for (i, raw) in readme.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.starts_with("```") {
            if in_block {
                out.extend(current.take());
            }
            in_block = !in_block;
            continue;
        }
        if !in_block {
            continue;
        }
        let (prompted, text) = match trimmed.strip_prefix("$ ") {
            Some(t) => (true, t),
            None => (false, trimmed),
        };
        let starts = |t: &str| {
            t.starts_with("dashcam-server ") || t.starts_with("target/release/dashcam-server ")
        };
        if pending.is_empty() && !starts(text) {
            // Output under a `$` command.
            if let Some(c) = current.as_mut().filter(|c| c.output.is_some()) {
                let o = c.output.as_mut().unwrap();
                o.push_str(raw.trim_start_matches("   "));
                o.push('\n');
            }
            continue;
        }
        if pending.is_empty() {
            pending_line = i + 1;
            out.extend(current.take());
        }
        // A comment, a trailing `&`, a continuation.
        let text = text.split(" #").next().unwrap_or(text).trim();
        let (text, more) = match text.strip_suffix('\\') {
            Some(t) => (t.trim(), true),
            None => (text, false),
        };
        pending.push_str(text);
        pending.push(' ');
        if more {
            continue;
        }
        let line = std::mem::take(&mut pending);
        let line = line.trim().trim_end_matches('&').trim().replace("$i", "1");
        let mut words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        words[0] = "dashcam-server".into();
        current = Some(Shown {
            line: pending_line,
            words,
            output: prompted.then(String::new),
        });
    }
    out
}

#[test]
fn every_command_the_readme_shows_runs_as_shown() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let shown = commands(&readme);
    assert!(shown.len() >= 12, "found only {} commands", shown.len());
    // The fleet section's S3 lines read credentials from the environment.
    std::env::set_var("AWS_ACCESS_KEY_ID", "AKIDREADME");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "readme-secret");
    let mut decoded = 0;
    for s in &shown {
        let at = format!("README.md line {}: {}", s.line, s.words.join(" "));
        let cli = Cli::try_parse_from(&s.words).unwrap_or_else(|e| panic!("{at}\n{e}"));
        match cli.command {
            Some(Command::Serve(a)) => {
                a.to_config().unwrap_or_else(|e| panic!("{at}\n{e:#}"));
                a.delivery().unwrap_or_else(|e| panic!("{at}\n{e:#}"));
            }
            Some(Command::Verify(a)) => {
                a.serve
                    .to_config()
                    .unwrap_or_else(|e| panic!("{at}\n{e:#}"));
            }
            Some(Command::Decode { .. }) => {
                let o = std::process::Command::new(env!("CARGO_BIN_EXE_dashcam-server"))
                    .args(&s.words[1..])
                    .output()
                    .unwrap();
                assert!(o.status.success(), "{at}");
                let want = s
                    .output
                    .as_deref()
                    .expect("a decode example shows its output");
                assert_eq!(
                    String::from_utf8_lossy(&o.stdout).trim_end(),
                    want.trim_end(),
                    "{at}"
                );
                decoded += 1;
            }
            Some(_) => {}
            None => {
                cli.serve
                    .to_config()
                    .unwrap_or_else(|e| panic!("{at}\n{e:#}"));
            }
        }
    }
    assert!(decoded >= 3, "the decode examples were found");
}

/// Every `simulate` line the README shows (in code blocks and in the
/// cameras table), run against a server, and `verify --dir` over what they
/// sent: each passes, so a reader following the README sees PASS. TLS and
/// fleet lines are left to their own tests (they need certificates, a fleet).
#[test]
#[cfg_attr(
    not(have_ffmpeg),
    ignore = "needs ffmpeg and ffprobe on PATH (apt install ffmpeg)"
)]
fn the_readmes_simulate_lines_send_files_that_verify_passes() {
    use std::process::{Command, Stdio};
    const BIN: &str = env!("CARGO_BIN_EXE_dashcam-server");
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let mut lines: Vec<Vec<String>> = commands(&readme)
        .into_iter()
        .filter(|s| s.words.get(1).is_some_and(|w| w == "simulate"))
        .map(|s| s.words)
        .collect();
    // Inline: `simulate --server ...` in the cameras table.
    for part in readme.split('`').skip(1).step_by(2) {
        if part.starts_with("simulate --server") {
            let mut w: Vec<String> = part.split_whitespace().map(str::to_string).collect();
            w.insert(0, "dashcam-server".into());
            lines.push(w);
        }
    }
    let lines: Vec<Vec<String>> = lines
        .into_iter()
        .filter(|w| !w.iter().any(|a| a.starts_with("--tls") || a == "--cameras"))
        .collect();
    assert!(lines.len() >= 7, "found {} simulate lines", lines.len());
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let server = Kill(
        Command::new(BIN)
            .args(["serve", "--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--metadata", "--gallery", "false", "--output-dir"])
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let began = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(began.elapsed().as_secs() < 20, "the server did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for (i, words) in lines.iter().enumerate() {
        // Each line its own camera (a new IMEI), against this server.
        let args: Vec<String> = words[1..]
            .iter()
            .map(|a| {
                if a.ends_with(":5000") {
                    format!("127.0.0.1:{port}")
                } else {
                    a.clone()
                }
            })
            .collect();
        let o = Command::new(BIN)
            .current_dir(root)
            .args(&args)
            .args(["--imei", &(350612071914000u64 + i as u64).to_string()])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{}\n{}",
            words.join(" "),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    drop(server);
    let o = Command::new(BIN)
        .args(["verify", "--dir"])
        .arg(&out)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{text}");
    assert!(text.contains("OVERALL: PASS ("), "{text}");
}
