//! Flags only: the command line's definitions (clap), grouped by concern,
//! each group documented where it is defined, and the exit statuses. Every
//! flag can also come from a `DASHCAM_*` environment variable.
//!
//! Owns: parsing and checking what the user typed, turning it into the
//! settings types of the layers below (`ServeArgs::to_config`). May use:
//! the protocol, storage and simulator crates' types, `net` and `delivery`
//! settings. Starts nothing: `app` does.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use clap::{Parser, Subcommand};

use crate::codec::{Family, FileKind};
use crate::session::Mode;

mod serve;
mod tools;

pub use serve::{
    ConvertFlags, ConvertTiming, DeliveryArgs, NetArgs, OpsArgs, ServeArgs, SessionArgs,
    StorageArgs, TlsArgs,
};
pub use tools::{ContainerArgs, ConvertArgs, SimulateArgs, VerifyArgs};

/// `--version`: the release, the commit it was built from and the target
/// it was built for ("0.1.0 (commit 1a2b3c4d5e6f, x86_64-pc-windows-gnu)").
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("BUILD_COMMIT"),
    ", ",
    env!("BUILD_TARGET"),
    ")"
);

#[derive(Parser, Debug)]
#[command(
    name = "dashcam-server",
    version = VERSION,
    about = "Downloads video and photos from DualCam/DashCam, ADAS and DSM cameras (Teltonika FMx file-transfer protocol, versions 5 and 6).",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Without a subcommand, the server runs with these flags.
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Listen for cameras and store every file they send (the default).
    Serve(ServeArgs),
    /// Act as a camera: connect to a server and send files, as a device would.
    Simulate(SimulateArgs),
    /// Explain packets given in hex: init, frames (several in a row), or an 8-byte double.
    Decode {
        /// Hex bytes; spaces, ':' and 0x prefixes are fine.
        #[arg(required = true, num_args = 1.., value_name = "HEX")]
        hex: Vec<String>,
    },
    /// The technician's check: wait for one camera, download what it offers,
    /// and check every file (JPEG, HEVC against its metadata, sane metadata).
    /// Exits 0 only if everything passes. With --dir, checks stored files instead.
    Verify(VerifyArgs),
    /// Rebuild <output-dir>/index.html, the gallery of stored files, from their sidecars.
    Gallery {
        /// The server's output folder.
        #[arg(long, env = "DASHCAM_OUTPUT_DIR", default_value = "downloads")]
        output_dir: PathBuf,
    },
    /// Convert stored videos to mp4 (H.264 and AAC): those without their mp4
    /// (never converted, interrupted, or failed), or every one with --force.
    Convert(ConvertArgs),
    /// Write a video in the camera's own container ("PTMF") from a raw H.265
    /// stream and, optionally, G.711 A-law sound (8 kHz, mono): what a DualCam
    /// records. Or, with --inspect, say what is inside a stored video.
    Container(ContainerArgs),
    /// Write the man pages and shell completions (bash, zsh, fish) generated
    /// from these flag definitions into a folder (the release packaging).
    #[command(hide = true)]
    GenerateDocs {
        /// Folder to write `man/` and `completions/` into.
        out_dir: PathBuf,
    },
}

/// The frame rate assumed for a raw stream with no timing in its headers
/// and none in its metadata: the camera's default setting (66003 = 30).
/// The vendor's server assumes 25. One default for `serve` and `convert`.
pub const DEFAULT_FPS: u32 = 30;

/// The command line's definition, with the exit statuses under every
/// command's `--help` (and in the man pages).
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    Cli::command()
        .after_help(EXIT_STATUS_HELP)
        .mut_subcommands(|c| c.after_help(EXIT_STATUS_HELP))
}

/// Parses the process's arguments (a bad flag exits with status 2).
pub fn parse() -> Cli {
    use clap::FromArgMatches;
    let matches = command().get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// Exit statuses, as `grep` and `ripgrep` use them; `--help` prints
/// them (`EXIT_STATUS_HELP`) and the README lists them.
pub mod exit {
    /// Everything worked: every file passed `verify`, every video converted,
    /// the server stopped when asked.
    pub const OK: u8 = 0;
    /// The job failed: a file failed `verify`, a conversion failed, no
    /// camera came, the server stopped on an error.
    pub const FAILED: u8 = 1;
    /// A usage or configuration error, before any work: a bad flag or
    /// value, a folder that is not there, an unreadable certificate or
    /// key, the port in use.
    pub const USAGE: u8 = 2;
}

/// The exit statuses, under every command's `--help`.
pub const EXIT_STATUS_HELP: &str = "Exit status: 0 success; 1 the job failed (a file failed verify, a conversion failed, the server stopped on an error); 2 usage or configuration error (a bad flag or value, a missing folder, an unreadable certificate or key, the port in use).";

/// A usage or configuration error: exit status 2 (`exit::USAGE`), as
/// clap gives for a bad flag. Its message and causes are the error's own.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Usage(Box<dyn std::error::Error + Send + Sync + 'static>);

/// A usage error with this message.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Usage(msg.into().into()))
}

/// Marks an error as a configuration error (exit status 2), its message
/// and causes kept.
pub fn config_error(e: impl Into<anyhow::Error>) -> anyhow::Error {
    let e: anyhow::Error = e.into();
    anyhow::Error::new(Usage(e.into()))
}

/// Whether an error is a usage or configuration error.
pub fn is_usage(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<Usage>())
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvertTo {
    /// H.264 in MP4, playable everywhere (needs ffmpeg on PATH).
    Mp4,
}

/// `--mode`: which cameras and flows are served (the reference's `--cam`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    /// Per init: protocol >= 6 or bit 0x02 takes the path flow; DualCam bits the identifier flow.
    #[value(alias = "0")]
    Auto,
    /// DualCam/DashCam only (`%videof` ...; the path flow on protocol >= 6).
    #[value(alias = "dashcam", alias = "2")]
    Dualcam,
    /// ADAS (MDAS9) only: the path flow.
    #[value(alias = "1")]
    Adas,
    /// DSM only: the path flow.
    #[value(alias = "3")]
    Dsm,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Auto => Mode::Auto,
            ModeArg::Dualcam => Mode::Dualcam,
            ModeArg::Adas => Mode::Adas,
            ModeArg::Dsm => Mode::Dsm,
        }
    }
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

pub(crate) fn parse_kind(s: &str) -> Result<FileKind, String> {
    FileKind::from_name(s)
        .ok_or_else(|| format!("unknown file '{s}': use videof, videor, photof or photor"))
}

pub(crate) fn parse_file_meta(s: &str) -> Result<(Vec<u8>, u8, u16), String> {
    let (id, v) = s
        .rsplit_once('=')
        .ok_or("expected ID=FPS,SECS, e.g. videof=20,3")?;
    let (f, d) = v.split_once(',').ok_or("expected FPS,SECS, e.g. 20,3")?;
    let fps = f
        .trim()
        .parse()
        .map_err(|_| format!("'{f}' is not a frame rate"))?;
    let secs = d
        .trim()
        .parse()
        .map_err(|_| format!("'{d}' is not a length in seconds"))?;
    // A DualCam identifier may be given without its %.
    let id = match parse_kind(id) {
        Ok(k) => k.identifier().as_bytes().to_vec(),
        Err(_) => id.as_bytes().to_vec(),
    };
    Ok((id, fps, secs))
}

pub(crate) fn parse_imei(s: &str) -> Result<u64, String> {
    if s.len() != 15 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "'{s}' is not an IMEI: 15 digits, e.g. 350612071913857"
        ));
    }
    s.parse().map_err(|e| format!("'{s}': {e}"))
}

/// A file a simulated camera sends: it must exist, be a file, and hold bytes
/// (a camera never offers an empty file), checked before connecting.
pub(crate) fn local_file(path: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(path);
    match std::fs::metadata(&p) {
        Err(e) => Err(format!("{path}: {e}")),
        Ok(m) if m.is_dir() => Err(format!("{path} is a folder, not a file")),
        Ok(m) if m.len() == 0 => Err(format!("{path} is empty: a camera sends no empty file")),
        Ok(_) => Ok(p),
    }
}

pub(crate) fn parse_offer(s: &str) -> Result<(FileKind, PathBuf), String> {
    let (id, path) = s
        .split_once('=')
        .ok_or("expected ID=PATH, e.g. videof=clip.h265")?;
    Ok((parse_kind(id)?, local_file(path)?))
}

pub(crate) fn parse_path_offer(s: &str) -> Result<(String, PathBuf), String> {
    let (p, f) = s
        .rsplit_once('=')
        .ok_or("expected PATH=FILE, e.g. /mnt/sd/mdas9/0001.mp4=clip.mp4")?;
    Ok((p.to_string(), local_file(f)?))
}

pub(crate) fn parse_position(s: &str) -> Result<(f64, f64), String> {
    let (a, b) = s
        .split_once(',')
        .ok_or("expected LAT,LON, e.g. 54.7004,25.2797")?;
    let lat: f64 = a
        .trim()
        .parse()
        .map_err(|_| format!("'{a}' is not a latitude"))?;
    let lon: f64 = b
        .trim()
        .parse()
        .map_err(|_| format!("'{b}' is not a longitude"))?;
    Ok((lat, lon))
}

pub(crate) fn parse_family(s: &str) -> Result<Family, String> {
    match s.to_ascii_lowercase().as_str() {
        "dualcam" | "dashcam" => Ok(Family::DualCam),
        "adas" => Ok(Family::Adas),
        "dsm" => Ok(Family::Dsm),
        _ => Err(format!("unknown family '{s}': use dualcam, adas or dsm")),
    }
}

/// A duration that must be more than zero: 0 would mean "never wait" or
/// "always stale", which is never what anyone wants.
pub(crate) fn positive_secs(v: f64, flag: &str) -> Result<Duration> {
    let d = secs(v, flag)?;
    if d.is_zero() {
        bail!("{flag} must be more than 0 (it is a time to wait; 0 would drop or skip everything)");
    }
    Ok(d)
}

pub(crate) fn secs(v: f64, flag: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(v)
        .with_context(|| format!("{flag} must be a number of seconds >= 0"))
}

/// Man pages (one per command: `dashcam-server.1`, `dashcam-server-serve.1`,
/// ...) and completions for bash, zsh and fish, from the clap definitions,
/// so they never drift from the flags.
pub fn generate_docs(out: &Path) -> Result<()> {
    use clap_complete::Shell;
    let man = out.join("man");
    let comp = out.join("completions");
    for d in [&man, &comp] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let cmd = command().version(VERSION);
    clap_mangen::generate_to(cmd.clone(), &man)
        .with_context(|| format!("writing man pages in {}", man.display()))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut cmd = cmd.clone();
        clap_complete::generate_to(shell, &mut cmd, "dashcam-server", &comp)
            .with_context(|| format!("writing the {shell} completion"))?;
    }
    println!(
        "man pages in {}, completions in {}",
        man.display(),
        comp.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests;
