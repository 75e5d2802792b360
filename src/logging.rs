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
        crate::live::write_log(buf);
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

/// Starts logging (RUST_LOG, default `info`); with a log file, lines go there too.
pub fn init(log_file: Option<&Path>) -> Result<()> {
    let file = match log_file {
        Some(p) => {
            if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating the log folder {}", dir.display()))?;
            }
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("opening the log file {}", p.display()))?;
            Some(Arc::new(Mutex::new(f)))
        }
        None => None,
    };
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_target(false)
        .target(env_logger::Target::Pipe(Box::new(Tee { file })))
        .try_init();
    Ok(())
}
