//! Log set-up: env_logger to stderr, and to `--log-file` as well when given.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};

use crate::ops::live::Live;

/// Writes every log line to stderr (above the progress bars when there
/// are) and to a file.
struct Tee {
    file: Option<Arc<Mutex<File>>>,
    live: Option<Arc<Live>>,
}

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // The file first: whoever reads a line on the terminal finds it in the file.
        if let Some(f) = &self.file {
            let _ = f
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .write_all(buf);
        }
        match &self.live {
            Some(l) => l.write_log(buf),
            None => {
                let _ = io::stderr().write_all(buf);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Some(f) = &self.file {
            let _ = f
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .flush();
        }
        Ok(())
    }
}

fn open_log(p: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .with_context(|| format!("opening the log file {}", p.display()))
}

/// The log file, owned by `app`: SIGHUP reopens it under its name (after
/// `logrotate` renamed it). Without `--log-file` there is nothing to reopen.
#[derive(Clone, Default)]
pub struct LogFile(Option<(PathBuf, Arc<Mutex<File>>)>);

impl LogFile {
    /// Reopens the log file under its name.
    pub fn reopen(&self) -> Result<()> {
        if let Some((path, file)) = &self.0 {
            let fresh = open_log(path)?;
            *file
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
        }
        Ok(())
    }
}

/// Starts logging (RUST_LOG, default `info`); with a log file, lines go there
/// too; `json`: one JSON object per line (`ts`, `level`, `msg`).
/// `live`: the terminal's progress bars, which log lines go above (and
/// whose "N%" lines are then left out). The logger is the process's (the
/// `log` crate has one); what it writes to is handed to it here.
pub fn init(log_file: Option<&Path>, json: bool, live: Option<Arc<Live>>) -> Result<LogFile> {
    let mut handle = LogFile::default();
    let file = match log_file {
        Some(p) => {
            if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating the log folder {}", dir.display()))?;
            }
            let f = Arc::new(Mutex::new(open_log(p)?));
            handle = LogFile(Some((p.to_path_buf(), f.clone())));
            Some(f)
        }
        None => None,
    };
    let mut b = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    b.format_target(false)
        .target(env_logger::Target::Pipe(Box::new(Tee {
            file,
            live: live.clone(),
        })));
    if json {
        b.format(|buf, record| {
            let line = serde_json::json!({
                "ts": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "level": record.level().as_str(),
                "msg": record.args().to_string(),
            });
            writeln!(buf, "{line}")
        });
    }
    let logger = b.build();
    let max = logger.filter();
    let bars = live.is_some();
    if log::set_boxed_logger(Box::new(Quiet { logger, bars })).is_ok() {
        log::set_max_level(max);
    }
    Ok(handle)
}

/// env_logger, leaving out the "N%" progress lines while the terminal shows
/// progress bars (they say the same).
struct Quiet {
    logger: env_logger::Logger,
    /// Progress bars are on screen.
    bars: bool,
}

impl log::Log for Quiet {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        self.logger.enabled(m)
    }

    fn log(&self, record: &log::Record<'_>) {
        if record.target() == "progress" && self.bars {
            return;
        }
        self.logger.log(record);
    }

    fn flush(&self) {
        self.logger.flush();
    }
}
