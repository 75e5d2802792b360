//! Log set-up: env_logger to stderr, and to `--log-file` as well when given.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};

/// Writes every log line to stderr and to a file.
struct Tee {
    file: Option<Arc<Mutex<File>>>,
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
        crate::ops::live::write_log(buf);
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

/// The log file, so SIGHUP can reopen it (logrotate moved it away).
static LOG_FILE: Mutex<Option<(std::path::PathBuf, Arc<Mutex<File>>)>> = Mutex::new(None);

fn open_log(p: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .with_context(|| format!("opening the log file {}", p.display()))
}

/// Reopens the log file under its name (after `logrotate` renamed it).
pub fn reopen() -> Result<()> {
    let guard = LOG_FILE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((path, file)) = guard.as_ref() {
        let fresh = open_log(path)?;
        *file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
    }
    Ok(())
}

/// Starts logging (RUST_LOG, default `info`); with a log file, lines go there
/// too; `json`: one JSON object per line (`ts`, `level`, `msg`).
pub fn init(log_file: Option<&Path>, json: bool) -> Result<()> {
    let file = match log_file {
        Some(p) => {
            if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating the log folder {}", dir.display()))?;
            }
            let f = Arc::new(Mutex::new(open_log(p)?));
            *LOG_FILE
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some((p.to_path_buf(), f.clone()));
            Some(f)
        }
        None => None,
    };
    let mut b = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    b.format_target(false)
        .target(env_logger::Target::Pipe(Box::new(Tee { file })));
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
    if log::set_boxed_logger(Box::new(Quiet(logger))).is_ok() {
        log::set_max_level(max);
    }
    Ok(())
}

/// env_logger, leaving out the "N%" progress lines while the terminal shows
/// progress bars (they say the same).
struct Quiet(env_logger::Logger);

impl log::Log for Quiet {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        self.0.enabled(m)
    }

    fn log(&self, record: &log::Record<'_>) {
        if record.target() == "progress" && crate::ops::live::bars_shown() {
            return;
        }
        self.0.log(record);
    }

    fn flush(&self) {
        self.0.flush();
    }
}
