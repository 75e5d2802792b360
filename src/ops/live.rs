//! What a person at the terminal sees: one progress bar per camera while it
//! downloads (IMEI, file, bytes, %, speed, time left), log lines above them,
//! and the counters behind the status line and the shutdown summary. When
//! stderr is not a terminal (a service, CI, a pipe) there are no bars: log
//! lines only. (The counters are the server's `Metrics`.)

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The progress bars of one terminal: made by `app` when stderr is a
/// terminal, handed to the logger (log lines go above the bars) and to the
/// server (its connections move their bars). Without it: log lines only.
pub struct Live {
    multi: MultiProgress,
    bars: Mutex<HashMap<u64, ProgressBar>>,
}

impl Live {
    /// Bars on stderr when it is a terminal (the `serve` command); None
    /// for a service, CI or a pipe.
    pub fn for_terminal() -> Option<Live> {
        std::io::stderr().is_terminal().then(|| Live {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(4)),
            bars: Mutex::new(HashMap::new()),
        })
    }

    fn bars(&self) -> std::sync::MutexGuard<'_, HashMap<u64, ProgressBar>> {
        self.bars
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A log line, above the bars.
    pub fn write_log(&self, buf: &[u8]) {
        self.multi.suspend(|| {
            let _ = std::io::stderr().write_all(buf);
        });
    }

    /// Removes every bar (at stop: nothing stays frozen on screen).
    pub fn clear(&self) {
        let all: Vec<ProgressBar> = self.bars().drain().map(|(_, bar)| bar).collect();
        for bar in all {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        let _ = self.multi.clear();
    }

    /// A connection started receiving a file of about `total` bytes.
    pub fn file_started(&self, conn: u64, tag: &str, file: &str, total: u64, kept: u64) {
        let bar = self.multi.add(ProgressBar::new(total));
        // 80 columns: IMEI 15, name 18, percent, bytes and speed in the log's
        // units (kB, MB: decimal), time left, and the bar takes what is left.
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>15} {msg:18} {wide_bar} {percent:>3}% {decimal_bytes:>8}/{decimal_total_bytes:<8} {decimal_bytes_per_sec:>10} {eta:>3}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(tag.to_string());
        bar.set_message(shorten(file, NAME));
        bar.set_position(kept);
        bar.reset_eta();
        if let Some(old) = self.bars().insert(conn, bar) {
            old.finish_and_clear();
        }
    }

    /// Bytes of the current file are stored up to `pos`.
    pub fn file_progress(&self, conn: u64, pos: u64) {
        if let Some(bar) = self.bars().get(&conn) {
            bar.set_position(pos);
        }
    }

    /// The connection's file is done (stored, given up or the link ended).
    pub fn file_ended(&self, conn: u64) {
        let bar = self.bars().remove(&conn);
        if let Some(bar) = bar {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }
}

/// Width of the file column of a bar.
const NAME: usize = 18;

/// A file's identifier or path in `width` characters, keeping its name: a
/// long path loses its folders first (`.../name`), a long name its middle.
pub fn shorten(file: &str, width: usize) -> String {
    let chars = |s: &str| s.chars().count();
    if chars(file) <= width {
        return file.to_string();
    }
    let name = file.rsplit(['/', '\\']).next().unwrap_or(file);
    if name != file && chars(name) + 4 <= width {
        return format!(".../{name}");
    }
    // The middle of the name goes: its start (date, time) and its end
    // (number, extension) say which file it is.
    let keep = width.saturating_sub(3);
    let head = keep / 2;
    let tail = keep - head;
    let v: Vec<char> = name.chars().collect();
    let tail_part: String = v[v.len().saturating_sub(tail)..].iter().collect();
    let head_part: String = v[..head.min(v.len())].iter().collect();
    format!("{head_part}...{tail_part}")
}

#[cfg(test)]
mod tests {
    use super::shorten;

    #[test]
    fn a_long_path_keeps_its_file_name() {
        assert_eq!(shorten("%videof", 18), "%videof");
        assert_eq!(shorten("/mnt/sd/mdas9/video/0001.mp4", 18), ".../0001.mp4");
        let s = shorten("/mnt/sd/DSM/video/20260101_120000_ch1_0001.mp4", 18);
        assert_eq!(s.chars().count(), 18, "{s}");
        assert!(s.starts_with("2026010") && s.ends_with("0001.mp4"), "{s}");
    }
}
