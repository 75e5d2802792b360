//! What a person at an 80-column terminal sees (a pseudo-terminal made by
//! `script`, util-linux): a progress bar per downloading camera (its file's name
//! kept: `live::shorten`, unit-tested), fits the width, speaks the log's units, and no "N%" log
//! lines repeating the bars.
#![cfg(unix)]

mod common;

use std::process::{Command, Stdio};

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_dashcam-server");

/// The text a terminal would show, escape sequences left out; each redraw
/// (carriage return or new line) is a line of its own.
fn visible(raw: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(raw);
    let mut out = Vec::new();
    let mut line = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                // CSI: ESC [ ... final byte in @..~
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for d in chars.by_ref() {
                        if ('@'..='~').contains(&d) {
                            break;
                        }
                    }
                }
            }
            '\r' | '\n' => {
                if !line.is_empty() {
                    out.push(std::mem::take(&mut line));
                }
            }
            c => line.push(c),
        }
    }
    if !line.is_empty() {
        out.push(line);
    }
    out
}

/// The server on a pseudo-terminal of 80 columns (`script`), stopped by
/// SIGINT in the middle of the file (`mid_file`: once the terminal shows
/// the camera's bar), or as soon as the camera is done (at most 60 s),
/// while one camera trickles a video of `bytes` at `rate` bytes a second.
/// Returns whether the camera finished, and everything the terminal received.
fn on_a_terminal(mid_file: bool, bytes: usize, rate: u32) -> (bool, Vec<u8>) {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let out = tmp.path().join("out");
    let typescript = tmp.path().join("typescript");
    let inner = format!(
        "stty cols 80 rows 24; exec timeout -s INT {} {BIN} serve --bind 127.0.0.1 --port {port} --output-dir '{}' --gallery false",
        60,
        out.display()
    );
    let mut term = Command::new("script")
        .args(["-qfec", &inner])
        .arg(&typescript)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("script (util-linux)");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // The server's own word that it listens (not a probe connection: a
    // connect proves only that something holds the port).
    wait_for("the server's 'listening on' line on the terminal", || {
        std::fs::read(&typescript)
            .is_ok_and(|t| String::from_utf8_lossy(&t).contains("listening on"))
    });
    let video = write_file(tmp.path(), "clip.h265", &content(bytes, 5));
    let camera = Command::new(BIN)
        .args(["simulate", "--server", &addr.to_string(), "--cameras", "1"])
        .args([
            "--rate",
            &rate.to_string(),
            "--ramp",
            "0",
            "--timeout",
            "30",
        ])
        .arg("--file")
        .arg(format!("videof={}", video.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if mid_file {
        // Something observable, not a time: the bar is on the terminal.
        wait_for("the camera's bar on the terminal", || {
            std::fs::read(&typescript)
                .is_ok_and(|t| String::from_utf8_lossy(&t).contains("%videof "))
        });
    }
    let mut camera = Some(camera);
    let sim = if mid_file {
        None
    } else {
        camera.take().map(|c| c.wait_with_output().unwrap())
    };
    {
        // Ctrl-C, mid-file or as soon as the camera is done: the server
        // (not `timeout`, whose command line starts otherwise).
        let pattern = format!("^{BIN} serve --bind 127.0.0.1 --port {port} ");
        let pid = Command::new("pgrep")
            .args(["-f", &pattern])
            .output()
            .unwrap();
        let pid = String::from_utf8(pid.stdout).unwrap();
        assert!(Command::new("kill")
            .args(["-INT", pid.trim()])
            .status()
            .unwrap()
            .success());
    }
    let _ = term.wait();
    let Some(sim) = sim else {
        // The camera loses its server mid-file; it is stopped with it.
        if let Some(mut c) = camera {
            let _ = c.kill();
            let _ = c.wait();
        }
        return (false, std::fs::read(&typescript).unwrap());
    };
    if !sim.status.success() {
        eprintln!(
            "the camera: {}\n{}\nthe terminal:\n{}",
            String::from_utf8_lossy(&sim.stdout),
            String::from_utf8_lossy(&sim.stderr),
            visible(&std::fs::read(&typescript).unwrap_or_default()).join("\n")
        );
    }
    (sim.status.success(), std::fs::read(&typescript).unwrap())
}

#[test]
fn progress_bars_keep_the_file_name_and_fit_80_columns() {
    // 300 kB at 100 kB/s: about 3 s of bars, then a stop once it is sent.
    let (sent, raw) = on_a_terminal(false, 300_000, 100_000);
    assert!(sent, "the camera sent its file");
    let lines = visible(&raw);
    let bars: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("%videof") && l.contains("% ") && !l.contains("INFO"))
        .collect();
    assert!(
        !bars.is_empty(),
        "no progress bar drawn:\n{}",
        lines.join("\n")
    );
    for b in &bars {
        assert!(
            b.chars().count() <= 80,
            "wider than 80 columns ({}): {b}",
            b.chars().count()
        );
        assert!(
            b.contains("kB") || b.contains("MB"),
            "the log's units (kB, MB): {b}"
        );
        assert!(
            !b.contains("KiB") && !b.contains("MiB"),
            "no binary units: {b}"
        );
    }
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("%: ") && l.contains(" of ") && l.contains("bytes")),
        "no 'N%' log lines while bars are shown:\n{}",
        lines.join("\n")
    );
    assert!(lines.iter().any(|l| l.contains("server stopped")));
}

/// Stopped while a camera is still sending: its bar is erased before the
/// last lines, not left frozen on the screen.
#[test]
fn a_stop_in_the_middle_of_a_file_clears_the_bars() {
    // 600 kB at 60 kB/s: about 10 s; the stop comes once its bar is shown.
    let (_, raw) = on_a_terminal(true, 600_000, 60_000);
    let text = String::from_utf8_lossy(&raw);
    let last_bar = text.rfind("%videof ").expect("a bar was drawn");
    let stopped = text.rfind("server stopped").expect("server stopped");
    let after = &text[last_bar..stopped];
    assert!(
        after.contains("\u{1b}[2K") || after.contains("\u{1b}[K") || after.contains("\u{1b}[J"),
        "the bar is erased before 'server stopped': {after:?}"
    );
    assert!(
        !visible(text[stopped..].as_bytes())
            .iter()
            .any(|l| l.contains("%videof")),
        "no bar after the stop"
    );
}
