//! What a person at the terminal sees: one progress bar per camera while it
//! downloads (IMEI, file, bytes, %, speed, time left), log lines above them,
//! and the counters behind the status line and the shutdown summary. When
//! stderr is not a terminal (a service, CI, a pipe) there are no bars: log
//! lines only. (The counters are the server's `Metrics`.)

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<u64, ProgressBar>>,
}

static BARS: OnceLock<Bars> = OnceLock::new();
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns the bars on when stderr is a terminal (the `serve` command calls it).
pub fn enable_if_terminal() -> bool {
    if !std::io::stderr().is_terminal() {
        return false;
    }
    let _ = BARS.set(Bars {
        multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(4)),
        bars: Mutex::new(HashMap::new()),
    });
    ENABLED.store(true, Ordering::SeqCst);
    true
}

fn bars() -> Option<&'static Bars> {
    if ENABLED.load(Ordering::Relaxed) {
        BARS.get()
    } else {
        None
    }
}

/// A log line: above the bars when they are shown.
pub fn write_log(buf: &[u8]) {
    match bars() {
        Some(b) => b.multi.suspend(|| {
            let _ = std::io::stderr().write_all(buf);
        }),
        None => {
            let _ = std::io::stderr().write_all(buf);
        }
    }
}

/// A connection started receiving a file of about `total` bytes.
pub fn file_started(conn: u64, tag: &str, file: &str, total: u64, kept: u64) {
    let Some(b) = bars() else { return };
    let bar = b.multi.add(ProgressBar::new(total));
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>15} {msg:30!} [{bar:25}] {bytes:>10}/{total_bytes:<10} {percent:>3}% {bytes_per_sec:>12} {eta:>4}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix(tag.to_string());
    bar.set_message(file.to_string());
    bar.set_position(kept);
    bar.reset_eta();
    if let Some(old) = b
        .bars
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(conn, bar)
    {
        old.finish_and_clear();
    }
}

/// Bytes of the current file are stored up to `pos`.
pub fn file_progress(conn: u64, pos: u64) {
    let Some(b) = bars() else { return };
    if let Some(bar) = b
        .bars
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&conn)
    {
        bar.set_position(pos);
    }
}

/// The connection's file is done (stored, given up or the link ended).
pub fn file_ended(conn: u64) {
    let Some(b) = bars() else { return };
    if let Some(bar) = b
        .bars
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(&conn)
    {
        bar.finish_and_clear();
        b.multi.remove(&bar);
    }
}
