//! Command line: `serve` (the default), `simulate`, `decode`. Every flag can
//! also come from a `DASHCAM_*` environment variable.

use std::collections::HashSet;
use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use clap::{Args, Parser, Subcommand};

use crate::codec::{Family, FileKind};
use crate::convert::Converter;
use crate::server::{Server, ServerConfig};
use crate::session::{self, Mode};
use crate::simulator::{self, CrcMode, SimConfig};
use crate::storage::StorageConfig;

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

#[derive(Args, Debug, Clone)]
pub struct ConvertArgs {
    /// The server's output folder.
    #[arg(long, env = "DASHCAM_OUTPUT_DIR", default_value = "downloads")]
    pub output_dir: PathBuf,
    /// Only this camera's videos.
    #[arg(long)]
    pub imei: Option<u64>,
    /// Convert every video again, even those that have their mp4.
    #[arg(long)]
    pub force: bool,
    /// Frame rate of a raw stream whose own headers (SPS/VUI timing) and
    /// metadata give none (the camera's default setting; the camera's
    /// container carries its own rate).
    #[arg(long, env = "DASHCAM_FPS", default_value_t = crate::convert::DEFAULT_FPS, value_parser = clap::value_parser!(u32).range(1..=120))]
    pub fps: u32,
    /// Seconds cut from the start of a raw stream, only when asked: the
    /// vendor's recipe cuts 0.9 (`-ss 00:00:0.9`). Never from the container.
    #[arg(
        long,
        env = "DASHCAM_CONVERT_TRIM",
        default_value_t = 0.0,
        value_name = "SECS"
    )]
    pub convert_trim: f64,
}

#[derive(Args, Debug, Clone)]
pub struct ContainerArgs {
    /// The H.265 stream (Annex-B), e.g. from `ffmpeg ... -c:v libx265 -f hevc clip.h265`.
    #[arg(long, value_name = "FILE", required_unless_present = "inspect")]
    pub video: Option<PathBuf>,
    /// Raw A-law sound, 8 kHz mono, e.g. from `ffmpeg ... -ar 8000 -ac 1 -f alaw tone.alaw`.
    #[arg(long, value_name = "FILE")]
    pub audio: Option<PathBuf>,
    /// The frame rate written in every chunk (the camera's setting 66003: 20, 25 or 30).
    #[arg(long, default_value_t = 20)]
    pub fps: u16,
    /// Where to write the container.
    #[arg(long, short, value_name = "FILE", required_unless_present = "inspect")]
    pub output: Option<PathBuf>,
    /// Print what is inside a file (sniffed by its first bytes) instead.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["video", "audio", "output"])]
    pub inspect: Option<PathBuf>,
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

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "DASHCAM_BIND", default_value = "0.0.0.0")]
    pub bind: String,
    /// TCP port the cameras connect to (the camera's "Port" setting).
    #[arg(short = 'p', long, env = "DASHCAM_PORT", default_value_t = 5000)]
    pub port: u16,
    /// Folder for downloads: <output-dir>/<imei>/<YYYYMMDD_HHMMSS>_<name>.<ext>.
    #[arg(long, env = "DASHCAM_OUTPUT_DIR", default_value = "downloads")]
    pub output_dir: PathBuf,
    /// auto: per init, the path flow on protocol >= 6 or bit 0x02, else the
    /// DualCam identifier flow; dualcam (alias dashcam), adas, dsm: only that
    /// family. The vendor's `-r/--cam 0|1|2|3` (auto, ADAS, DualCam, DSM) works too.
    #[arg(short = 'r', long, visible_alias = "cam", env = "DASHCAM_MODE", value_enum, default_value_t = ModeArg::Auto)]
    pub mode: ModeArg,
    /// Ask for each file's metadata (0x000A; firmware 03.27.04 and later):
    /// `--metadata`, or `--metadata true|false|1|0|yes|no|on|off`; the vendor's `-m 1`/`--meta 1`.
    #[arg(short = 'm', long, visible_alias = "meta", env = "DASHCAM_METADATA", value_parser = clap::builder::BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set, value_name = "BOOL")]
    pub metadata: bool,
    /// Seconds to wait for a metadata answer before requesting the file anyway.
    #[arg(
        long,
        env = "DASHCAM_METADATA_TIMEOUT",
        default_value_t = 5.0,
        value_name = "SECS"
    )]
    pub metadata_timeout: f64,
    /// DualCam files to request, comma-separated (videof,videor,photof,photor):
    /// those the camera reports first, then the others, asked once each anyway.
    #[arg(long, env = "DASHCAM_FILES", value_delimiter = ',', value_parser = parse_kind, value_name = "LIST")]
    pub files: Option<Vec<FileKind>>,
    /// Seconds a camera may stay silent before its link is dropped (partial kept).
    #[arg(
        long,
        env = "DASHCAM_READ_TIMEOUT",
        default_value_t = 120.0,
        value_name = "SECS"
    )]
    pub read_timeout: f64,
    /// Largest file accepted, in MiB; a bigger START is refused before any byte is written.
    #[arg(
        long,
        env = "DASHCAM_MAX_FILE_MB",
        default_value_t = 512,
        value_name = "MB"
    )]
    pub max_file_mb: u64,
    /// Connections served at once; more get CLOSE straight away. Default: what
    /// the open-files limit allows (raised to its hard limit at start).
    #[arg(long, env = "DASHCAM_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Connections at once from one IP address; more get CLOSE straight away.
    #[arg(
        long,
        env = "DASHCAM_MAX_PER_IP",
        default_value_t = crate::server::DEFAULT_MAX_PER_IP,
        value_name = "N"
    )]
    pub max_per_ip: usize,
    /// Seconds a new connection has to send its init packet.
    #[arg(
        long,
        env = "DASHCAM_INIT_TIMEOUT",
        default_value_t = 10.0,
        value_name = "SECS"
    )]
    pub init_timeout: f64,
    /// Seconds a frame, once begun, has to arrive whole (drops slow senders).
    #[arg(
        long,
        env = "DASHCAM_FRAME_TIMEOUT",
        default_value_t = 60.0,
        value_name = "SECS"
    )]
    pub frame_timeout: f64,
    /// TLS certificate chain (PEM). With --tls-key, serves TLS: on --port, or
    /// on --tls-port while --port stays plain TCP.
    #[arg(
        short = 'c',
        long,
        visible_alias = "cert",
        env = "DASHCAM_TLS_CERT",
        value_name = "PEM",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(
        short = 'k',
        long,
        visible_alias = "key",
        env = "DASHCAM_TLS_KEY",
        value_name = "PEM",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// The vendor's `--tls`: TLS with `-c/--cert` and `-k/--key` (which alone turn TLS on).
    #[arg(long, requires = "tls_cert")]
    pub tls: bool,
    /// Every connection starts with a PROXY protocol header (v1 or v2, HAProxy's
    /// send-proxy / send-proxy-v2): logs, sidecars and --max-per-ip see the
    /// camera's address. A connection without one is refused.
    #[arg(long, env = "DASHCAM_PROXY_PROTOCOL", value_parser = clap::builder::BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set, value_name = "BOOL")]
    pub proxy_protocol: bool,
    /// With --proxy-protocol: a load balancer allowed to connect (repeatable;
    /// default: loopback only). Any other peer is refused: a PROXY header from
    /// it could claim any camera's address.
    #[arg(
        long,
        env = "DASHCAM_TRUSTED_PROXY",
        value_delimiter = ',',
        value_name = "ADDR"
    )]
    pub trusted_proxy: Vec<std::net::IpAddr>,
    /// Keep <output-dir>/index.html, the gallery, up to date (thumbnails use
    /// ffmpeg for videos). A large fleet may turn it off and run
    /// `dashcam-server gallery` when someone wants to look.
    #[arg(long, env = "DASHCAM_GALLERY", default_value = "true", value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set, value_name = "BOOL")]
    pub gallery: bool,
    /// How log lines look: text (for people) or json (one object per line,
    /// for log shippers: ts, level, msg).
    #[arg(
        long,
        env = "DASHCAM_LOG_FORMAT",
        value_enum,
        default_value = "text",
        value_name = "FORMAT"
    )]
    pub log_format: LogFormat,
    /// Write the log to this file as well (appended; its folder is created).
    #[arg(long, env = "DASHCAM_LOG_FILE", value_name = "PATH")]
    pub log_file: Option<PathBuf>,
    /// Serve TLS on this port as well as plain TCP on --port.
    #[arg(
        long,
        env = "DASHCAM_TLS_PORT",
        value_name = "PORT",
        requires = "tls_cert"
    )]
    pub tls_port: Option<u16>,
    /// Serve only this IMEI (repeatable, or comma-separated in the variable).
    #[arg(
        long,
        env = "DASHCAM_ALLOW_IMEI",
        value_delimiter = ',',
        value_name = "IMEI"
    )]
    pub allow_imei: Vec<u64>,
    /// Serve only the IMEIs in this file, one per line (# starts a comment).
    #[arg(long, env = "DASHCAM_ALLOW_FILE", value_name = "PATH")]
    pub allow_file: Option<PathBuf>,
    /// Hours after which an unfinished download starts over instead of resuming.
    #[arg(
        long,
        env = "DASHCAM_PARTIAL_MAX_AGE",
        default_value_t = 48.0,
        value_name = "HOURS"
    )]
    pub partial_max_age: f64,
    /// A START that would leave less than this many MiB free on the output
    /// file system is refused (CLOSE; the camera retries later).
    #[arg(
        long,
        env = "DASHCAM_MIN_FREE_MB",
        default_value_t = 256,
        value_name = "MB"
    )]
    pub min_free_mb: u64,
    /// All unfinished downloads together stay under this many GiB; the oldest go first.
    #[arg(
        long,
        env = "DASHCAM_MAX_PARTIALS_GB",
        default_value_t = 4.0,
        value_name = "GB"
    )]
    pub max_partials_gb: f64,
    /// Convert each stored video, keeping the .h265: mp4 (needs ffmpeg).
    #[arg(long, env = "DASHCAM_CONVERT", value_enum, value_name = "FORMAT")]
    pub convert: Option<ConvertTo>,
    /// Seconds cut from the start of a raw stream's mp4, only when asked
    /// (default 0: every frame kept). The vendor's recipe cuts 0.9 s
    /// (`-ss 00:00:0.9`; of a 2 s clip that is 45%): `--convert-trim 0.9`
    /// does the same. Never cut from the camera's container; the stored
    /// file is always kept whole.
    #[arg(
        long,
        env = "DASHCAM_CONVERT_TRIM",
        default_value_t = 0.0,
        value_name = "SECS"
    )]
    pub convert_trim: f64,
    /// Frame rate for converting a raw stream whose own headers (SPS/VUI
    /// timing) and metadata give none (the camera's default setting).
    #[arg(long, env = "DASHCAM_FPS", default_value_t = crate::convert::DEFAULT_FPS, value_parser = clap::value_parser!(u32).range(1..=120))]
    pub fps: u32,
    /// Files asked for in one session (one per init, as the reference server does).
    #[arg(
        long,
        env = "DASHCAM_MAX_FILES",
        default_value_t = 1000,
        value_name = "N"
    )]
    pub max_files: u32,
    /// Seconds to wait for SYNC after RESUME before sending RESUME again (10 times at most).
    #[arg(
        long,
        env = "DASHCAM_SYNC_TIMEOUT",
        default_value_t = 3.0,
        value_name = "SECS"
    )]
    pub sync_timeout: f64,
    /// Also upload every stored file, its sidecar and its mp4 to this
    /// S3-compatible store (`http://host:port` or `https://host`; path-style
    /// requests). Credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
    #[arg(
        long,
        env = "DASHCAM_S3_ENDPOINT",
        value_name = "URL",
        requires = "s3_bucket"
    )]
    pub s3_endpoint: Option<String>,
    /// The bucket (with --s3-endpoint).
    #[arg(
        long,
        env = "DASHCAM_S3_BUCKET",
        value_name = "BUCKET",
        requires = "s3_endpoint"
    )]
    pub s3_bucket: Option<String>,
    /// The store's region (default: AWS_REGION, else us-east-1).
    #[arg(long, env = "DASHCAM_S3_REGION", value_name = "REGION")]
    pub s3_region: Option<String>,
    /// Keys are <prefix>/<imei>/<name>.
    #[arg(long, env = "DASHCAM_S3_PREFIX", value_name = "PREFIX")]
    pub s3_prefix: Option<String>,
    /// Remove the local media once the store confirmed its object.
    #[arg(long, env = "DASHCAM_S3_DELETE_LOCAL", value_parser = clap::builder::BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set, value_name = "BOOL", requires = "s3_endpoint")]
    pub s3_delete_local: bool,
    /// POST an event (JSON: the sidecar, and the object when S3 is on) for
    /// every stored file and converted mp4, at least once, with an
    /// Idempotency-Key header.
    #[arg(long, env = "DASHCAM_WEBHOOK", value_name = "URL")]
    pub webhook: Option<String>,
    /// Sign each event: header X-Dashcam-Signature: sha256=<HMAC-SHA256 of the body, hex>.
    #[arg(
        long,
        env = "DASHCAM_WEBHOOK_SECRET",
        value_name = "SECRET",
        requires = "webhook",
        hide_env_values = true
    )]
    pub webhook_secret: Option<String>,
    /// The longest wait between two attempts of an upload or an event (they
    /// wait 1 s, 2 s, 4 s ... up to this).
    #[arg(
        long,
        env = "DASHCAM_RETRY_MAX",
        default_value_t = 300.0,
        value_name = "SECS"
    )]
    pub retry_max: f64,
    /// Remove local media (videos, photos, mp4s) older than this many days,
    /// checked at start and every hour; sidecars stay. With S3 on, a file
    /// goes only once its upload is confirmed.
    #[arg(long, env = "DASHCAM_KEEP_DAYS", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_days: Option<u32>,
    /// Serve /metrics (Prometheus), /healthz and the gallery over HTTP here
    /// (e.g. 127.0.0.1:9090). Beyond loopback it needs --http-token.
    #[arg(long, env = "DASHCAM_HTTP_BIND", value_name = "ADDR:PORT")]
    pub http_bind: Option<std::net::SocketAddr>,
    /// The token the HTTP endpoint asks for: `Authorization: Bearer TOKEN`,
    /// or basic auth with TOKEN as the password (a browser asks for it).
    #[arg(
        long,
        env = "DASHCAM_HTTP_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub http_token: Option<String>,
}

impl ServeArgs {
    /// Where files go besides the output folder.
    pub fn delivery(&self) -> Result<crate::delivery::DeliveryConfig> {
        let s3 = match (&self.s3_endpoint, &self.s3_bucket) {
            (Some(e), Some(b)) => Some(crate::s3::S3Config::from_env(
                e,
                b,
                self.s3_region.as_deref(),
                self.s3_prefix.as_deref(),
            )?),
            _ => None,
        };
        if let Some(w) = &self.webhook {
            if !(w.starts_with("http://") || w.starts_with("https://")) {
                bail!("--webhook {w}: give an http:// or https:// URL");
            }
        }
        if !(self.retry_max >= 1.0 && self.retry_max <= 86_400.0) {
            bail!("--retry-max must be between 1 and 86400 seconds");
        }
        Ok(crate::delivery::DeliveryConfig {
            s3,
            webhook: self.webhook.clone(),
            webhook_secret: self.webhook_secret.clone(),
            delete_local: self.s3_delete_local,
            converting: self.convert.is_some(),
            workers: 4,
            retry_max: Duration::from_secs_f64(self.retry_max),
        })
    }
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Debug, Clone)]
pub struct VerifyArgs {
    /// serve's flags (metadata is always asked for).
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Seconds to wait for a camera.
    #[arg(long, default_value_t = 300.0, value_name = "SECS")]
    pub timeout: f64,
    /// Files the camera must send, e.g. videof,photof.
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub expect: Vec<String>,
    /// Check the files already stored in this folder (an output folder or a
    /// camera's folder) instead of waiting for a camera. Capture times are
    /// judged against the time each file was received.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Print what each FAIL means and what to do about it, then exit.
    #[arg(long)]
    pub explain: bool,
}

#[derive(Args, Debug, Clone)]
pub struct SimulateArgs {
    /// The server to send to.
    #[arg(long, env = "DASHCAM_SERVER", value_name = "HOST:PORT")]
    pub server: String,
    /// The camera's IMEI, 15 digits (with --cameras, the first of a run of IMEIs).
    #[arg(long, env = "DASHCAM_IMEI", default_value_t = 350612071913857, value_parser = parse_imei)]
    pub imei: u64,
    /// A file to offer: videof=clip.h265, photor=rear.jpg (repeatable).
    #[arg(long = "file", env = "DASHCAM_FILE", value_delimiter = ',', value_parser = parse_offer, value_name = "ID=PATH")]
    pub files: Vec<(FileKind, PathBuf)>,
    /// A file that appears only after the server's REPEAT INIT (repeatable).
    #[arg(long = "later-file", env = "DASHCAM_LATER_FILE", value_delimiter = ',', value_parser = parse_offer, value_name = "ID=PATH")]
    pub later_files: Vec<(FileKind, PathBuf)>,
    /// A path-flow file (ADAS, DSM, protocol 6): the path the camera reports, and
    /// the local file to send (repeatable).
    #[arg(long = "path", visible_alias = "adas-path", env = "DASHCAM_PATH", value_delimiter = ',', value_parser = parse_path_offer, value_name = "PATH=FILE")]
    pub paths: Vec<(String, PathBuf)>,
    /// The camera family: dualcam, adas or dsm (metadata layout, paths).
    #[arg(long, env = "DASHCAM_FAMILY", default_value = "dualcam", value_parser = parse_family)]
    pub family: Family,
    /// Protocol id in the init packet: 5 (current DualCam firmware) or 6 (unified
    /// file transfer: the path flow, ENHANCED_DATA, JSON metadata).
    #[arg(long, env = "DASHCAM_PROTOCOL", default_value_t = 5, value_parser = clap::value_parser!(u16).range(5..=6))]
    pub protocol: u16,
    /// CRC chain after SYNC: restart (current devices) or chained (the document).
    #[arg(long, env = "DASHCAM_CRC", value_enum, default_value_t = CrcMode::Restart)]
    pub crc: CrcMode,
    /// File bytes per DATA frame in the path flow (devices send various sizes).
    #[arg(long, env = "DASHCAM_CHUNK", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=65000))]
    pub chunk: u32,
    /// Behave like firmware before 03.27.04: never answer METADATA REQ.
    #[arg(long, env = "DASHCAM_NO_METADATA", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_metadata: bool,
    /// Video length reported in metadata, in seconds (default: each video's
    /// own length: the camera's container's timestamps, or a raw stream's
    /// pictures at the frame rate; 10 when it cannot be read).
    #[arg(long, env = "DASHCAM_DURATION", value_name = "SECS")]
    pub duration: Option<u16>,
    /// Position reported in metadata, LAT,LON in degrees.
    #[arg(long, env = "DASHCAM_POSITION", value_parser = parse_position, value_name = "LAT,LON", allow_hyphen_values = true)]
    pub position: Option<(f64, f64)>,
    /// Frame rate reported in metadata (camera setting 66003: 20, 25 or 30;
    /// default: each video's own: the container's, or a raw stream's header
    /// timing when ffmpeg can read it; 30 otherwise).
    #[arg(long, env = "DASHCAM_FRAME_RATE", value_name = "FPS")]
    pub frame_rate: Option<u8>,
    /// One file's own metadata: ID=FPS,SECS (e.g. videof=20,3, or a path-flow
    /// path=25,10), over --frame-rate and --duration (repeatable): a multi-file
    /// run whose clips differ.
    #[arg(long = "file-meta", value_parser = parse_file_meta, value_name = "ID=FPS,SECS")]
    pub file_meta: Vec<(Vec<u8>, u8, u16)>,
    /// With --cameras: a fleet of slow cameras, each sending its file at this
    /// many bytes per second (a few threads drive them all; one --file each).
    #[arg(long, env = "DASHCAM_RATE", value_name = "BYTES_PER_S")]
    pub rate: Option<u64>,
    /// With --rate: the cameras connect spread evenly over this many seconds.
    #[arg(long, env = "DASHCAM_RAMP", default_value_t = 5.0, value_name = "SECS")]
    pub ramp: f64,
    /// Run this many cameras at once, IMEIs counting up from --imei.
    #[arg(long, env = "DASHCAM_CAMERAS", default_value_t = 1, value_name = "N")]
    pub cameras: usize,
    /// Write the stream in random pieces of 1..=N bytes, like a poor modem.
    #[arg(long, env = "DASHCAM_MAX_WRITE", default_value_t = 0, value_name = "N")]
    pub max_write: usize,
    /// Spoil the CRC of DATA frame K once (repeatable), to watch the server recover.
    #[arg(
        long,
        env = "DASHCAM_CORRUPT_PACKET",
        value_delimiter = ',',
        value_name = "K"
    )]
    pub corrupt_packet: Vec<u32>,
    /// Drop the link right after sending DATA frame K, to test resume.
    #[arg(long, env = "DASHCAM_DROP_AFTER", value_name = "K")]
    pub drop_after: Option<u32>,
    /// Speak TLS to the server (check its certificate with --tls-ca, or not at all with --tls-insecure).
    #[arg(long, env = "DASHCAM_TLS")]
    pub tls: bool,
    /// CA certificate (PEM) that signed the server's certificate.
    #[arg(long, env = "DASHCAM_TLS_CA", value_name = "PEM")]
    pub tls_ca: Option<PathBuf>,
    /// Accept any server certificate (test certificates only).
    #[arg(long, env = "DASHCAM_TLS_INSECURE")]
    pub tls_insecure: bool,
    /// Seconds to wait for the server before giving up.
    #[arg(
        long,
        env = "DASHCAM_TIMEOUT",
        default_value_t = 30.0,
        value_name = "SECS"
    )]
    pub timeout: f64,
}

fn parse_kind(s: &str) -> Result<FileKind, String> {
    FileKind::from_name(s)
        .ok_or_else(|| format!("unknown file '{s}': use videof, videor, photof or photor"))
}

fn parse_file_meta(s: &str) -> Result<(Vec<u8>, u8, u16), String> {
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

fn parse_imei(s: &str) -> Result<u64, String> {
    if s.len() != 15 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "'{s}' is not an IMEI: 15 digits, e.g. 350612071913857"
        ));
    }
    s.parse().map_err(|e| format!("'{s}': {e}"))
}

/// A file a simulated camera sends: it must exist, be a file, and hold bytes
/// (a camera never offers an empty file), checked before connecting.
fn local_file(path: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(path);
    match std::fs::metadata(&p) {
        Err(e) => Err(format!("{path}: {e}")),
        Ok(m) if m.is_dir() => Err(format!("{path} is a folder, not a file")),
        Ok(m) if m.len() == 0 => Err(format!("{path} is empty: a camera sends no empty file")),
        Ok(_) => Ok(p),
    }
}

fn parse_offer(s: &str) -> Result<(FileKind, PathBuf), String> {
    let (id, path) = s
        .split_once('=')
        .ok_or("expected ID=PATH, e.g. videof=clip.h265")?;
    Ok((parse_kind(id)?, local_file(path)?))
}

fn parse_path_offer(s: &str) -> Result<(String, PathBuf), String> {
    let (p, f) = s
        .rsplit_once('=')
        .ok_or("expected PATH=FILE, e.g. /mnt/sd/mdas9/0001.mp4=clip.mp4")?;
    Ok((p.to_string(), local_file(f)?))
}

fn parse_position(s: &str) -> Result<(f64, f64), String> {
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

fn parse_family(s: &str) -> Result<Family, String> {
    match s.to_ascii_lowercase().as_str() {
        "dualcam" | "dashcam" => Ok(Family::DualCam),
        "adas" => Ok(Family::Adas),
        "dsm" => Ok(Family::Dsm),
        _ => Err(format!("unknown family '{s}': use dualcam, adas or dsm")),
    }
}

/// A duration that must be more than zero: 0 would mean "never wait" or
/// "always stale", which is never what anyone wants.
fn positive_secs(v: f64, flag: &str) -> Result<Duration> {
    let d = secs(v, flag)?;
    if d.is_zero() {
        bail!("{flag} must be more than 0 (it is a time to wait; 0 would drop or skip everything)");
    }
    Ok(d)
}

fn secs(v: f64, flag: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(v)
        .with_context(|| format!("{flag} must be a number of seconds >= 0"))
}

impl ServeArgs {
    fn allow_list(&self) -> Result<Option<HashSet<u64>>> {
        let mut allow: HashSet<u64> = self.allow_imei.iter().copied().collect();
        if let Some(path) = &self.allow_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading --allow-file {}", path.display()))?;
            for (n, line) in text.lines().enumerate() {
                let line = line.split('#').next().unwrap_or("").trim();
                if line.is_empty() {
                    continue;
                }
                let imei = line.parse().with_context(|| {
                    format!("{} line {}: '{line}' is not an IMEI", path.display(), n + 1)
                })?;
                allow.insert(imei);
            }
            if allow.is_empty() {
                bail!(
                    "--allow-file {} lists no IMEI: no camera could connect",
                    path.display()
                );
            }
        }
        Ok((!allow.is_empty()).then_some(allow))
    }

    pub fn to_config(&self) -> Result<ServerConfig> {
        if self.max_connections == Some(0) || self.max_per_ip == 0 {
            bail!("--max-connections and --max-per-ip must be at least 1");
        }
        if self.max_files == 0 {
            bail!("--max-files must be at least 1");
        }
        if self.max_file_mb == 0 {
            bail!("--max-file-mb must be at least 1 (0 would refuse every file)");
        }
        if self.max_partials_gb <= 0.0 || !self.max_partials_gb.is_finite() {
            bail!(
                "--max-partials-gb must be more than 0 (0 would remove every unfinished download)"
            );
        }
        Ok(ServerConfig {
            bind: self.bind.clone(),
            port: self.port,
            output_dir: self.output_dir.clone(),
            session: session::Config {
                mode: self.mode.into(),
                metadata: self.metadata,
                metadata_timeout: positive_secs(self.metadata_timeout, "--metadata-timeout")?,
                read_timeout: positive_secs(self.read_timeout, "--read-timeout")?
                    .max(Duration::from_millis(10)),
                files: self.files.clone(),
                max_file_bytes: self.max_file_mb.saturating_mul(1 << 20),
                allow: self.allow_list()?,
                max_files: self.max_files,
                sync_timeout: positive_secs(self.sync_timeout, "--sync-timeout")?
                    .max(Duration::from_millis(10)),
                init_timeout: positive_secs(self.init_timeout, "--init-timeout")?
                    .max(Duration::from_millis(10)),
                frame_timeout: positive_secs(self.frame_timeout, "--frame-timeout")?
                    .max(Duration::from_millis(10)),
                ..session::Config::default()
            },
            storage: StorageConfig {
                partial_max_age: positive_secs(self.partial_max_age * 3600.0, "--partial-max-age")?,
                min_free_bytes: self.min_free_mb.saturating_mul(1 << 20),
                max_partial_bytes: (self.max_partials_gb * (1u64 << 30) as f64) as u64,
            },
            max_connections: self.max_connections,
            max_per_ip: self.max_per_ip,
            tls: self.tls_cert.clone().zip(self.tls_key.clone()),
            tls_port: self.tls_port,
            proxy_protocol: self.proxy_protocol,
            trusted_proxies: self.trusted_proxy.clone(),
        })
    }
}

/// The options in effect, for the start-up line.
fn options_line(a: &ServeArgs) -> String {
    let mut o = vec![
        format!("mode {:?}", a.mode).to_lowercase(),
        format!("metadata {}", if a.metadata { "on" } else { "off" }),
        format!("output {}", a.output_dir.display()),
    ];
    if let Some(c) = a.convert {
        o.push(format!("convert {c:?}").to_lowercase());
    }
    if a.proxy_protocol {
        o.push("PROXY protocol".into());
    }
    if a.tls_cert.is_some() {
        o.push(match a.tls_port {
            Some(p) => format!("TLS on port {p}"),
            None => format!("TLS on port {}", a.port),
        });
    }
    if let Some(l) = &a.log_file {
        o.push(format!("log file {}", l.display()));
    }
    if let (Some(e), Some(b)) = (&a.s3_endpoint, &a.s3_bucket) {
        o.push(format!(
            "uploads to {e} bucket {b}{}{}",
            a.s3_prefix
                .as_deref()
                .map(|p| format!(" prefix {p}"))
                .unwrap_or_default(),
            if a.s3_delete_local {
                " (local media removed once uploaded)"
            } else {
                ""
            }
        ));
    }
    if let Some(w) = &a.webhook {
        o.push(format!(
            "webhook {w}{}",
            if a.webhook_secret.is_some() {
                " (signed)"
            } else {
                ""
            }
        ));
    }
    if !a.allow_imei.is_empty() || a.allow_file.is_some() {
        let mut what = Vec::new();
        if !a.allow_imei.is_empty() {
            what.push(format!("{} IMEI(s)", a.allow_imei.len()));
        }
        if let Some(f) = &a.allow_file {
            what.push(format!("{}", f.display()));
        }
        o.push(format!("allow-list {}", what.join(" + ")));
    }
    if let Some(d) = a.keep_days {
        o.push(format!("media kept {d} day(s)"));
    }
    if a.log_format == LogFormat::Json {
        o.push("JSON log".into());
    }
    if let Some(h) = &a.http_bind {
        o.push(format!(
            "HTTP on {h}{}",
            if a.http_token.is_some() {
                " (token)"
            } else {
                ""
            }
        ));
    }
    o.join(", ")
}

/// SIGINT and SIGTERM stop the server. SIGHUP (what `systemctl reload` and
/// logrotate send): the allow-list is read again (a list that does not read
/// keeps the old one) and the log file reopened. (Windows has no SIGHUP:
/// restart the service there.)
#[cfg(unix)]
fn on_signals(args: ServeArgs, server: crate::server::StopHandle) -> Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGHUP, SIGINT, SIGTERM])
        .context("installing the signal handlers")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if sig != SIGHUP {
                    server.stop();
                    continue;
                }
                if let Err(e) = crate::logging::reopen() {
                    log::error!("SIGHUP: {e:#}");
                }
                match args.allow_list() {
                    Ok(list) => {
                        let n = list.as_ref().map(|l| l.len());
                        server.set_allow(list);
                        match n {
                            Some(n) => log::info!(
                                "SIGHUP: allow-list reloaded: {n} IMEI(s); log file reopened"
                            ),
                            None => log::info!(
                                "SIGHUP: no allow-list (every camera is served); log file reopened"
                            ),
                        }
                    }
                    Err(e) => log::error!(
                        "SIGHUP: the allow-list was not reloaded, the old one stays: {e:#}"
                    ),
                }
            }
        })
        .context("starting the signal thread")?;
    Ok(())
}

/// `--keep-days`: a thread that sweeps at start and every hour until its
/// channel closes.
fn start_retention(
    root: PathBuf,
    days: u32,
    s3: Option<crate::delivery::DeliveryHandle>,
) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || loop {
        let cutoff = std::time::SystemTime::now() - Duration::from_secs(u64::from(days) * 86_400);
        // With S3 on, only a file whose sidecar records its upload goes (and
        // never one whose upload job still waits), once the store shows its
        // object as sent (HEAD: size and checksum).
        let waiting = if s3.is_some() {
            crate::storage::outbox::Outbox::open(&root)
                .map(|o| o.waiting_uploads())
                .unwrap_or_default()
        } else {
            Default::default()
        };
        let (n, bytes) =
            crate::storage::retention::remove_older_than(&root, cutoff, s3.is_some(), |p| {
                waiting.contains(p) || s3.as_ref().is_some_and(|d| !d.store_holds(p))
            });
        if n > 0 {
            log::info!("--keep-days {days}: removed {n} file(s), {bytes} bytes");
        }
        match rx.recv_timeout(Duration::from_secs(3600)) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
            _ => return,
        }
    });
    (tx, t)
}

fn serve(args: &ServeArgs) -> Result<()> {
    log::info!(
        "dashcam-server {} starting: {}",
        VERSION,
        options_line(args)
    );
    let cfg = args.to_config()?;
    let delivery_cfg = args.delivery()?;
    let mut server = Server::bind(cfg)?;
    // The outbox is opened (and what a stop left in it queued) before the
    // first camera is served.
    let delivery = if delivery_cfg.is_on() {
        Some(crate::delivery::Delivery::start(
            &args.output_dir,
            delivery_cfg,
        )?)
    } else {
        None
    };
    let handle = delivery.as_ref().map(|d| d.handle());
    let converter = match args.convert {
        Some(ConvertTo::Mp4) => {
            if !(0.0..=3600.0).contains(&args.convert_trim) {
                bail!("--convert-trim must be between 0 and 3600 seconds");
            }
            let delete_local = args.s3_delete_local;
            let on_converted: Option<crate::convert::OnConverted> = handle.clone().map(|h| {
                Box::new(move |s: &crate::storage::Stored, mp4: &std::path::Path| {
                    h.converted(s, mp4);
                    // The video waited for its mp4; once its own upload is
                    // confirmed (else that confirmation removes it).
                    if delete_local {
                        h.remove_uploaded(&s.path);
                    }
                }) as crate::convert::OnConverted
            });
            Converter::start(
                args.fps,
                args.convert_trim,
                args.output_dir.clone(),
                on_converted,
            )
        }
        None => None,
    };
    if args.gallery {
        crate::gallery::start(&args.output_dir);
    }
    let queue = converter.as_ref().map(|c| c.queue());
    let root = args.output_dir.clone();
    let gallery = args.gallery;
    let outbox = handle.clone();
    server = server.on_stored(move |s| {
        // In the outbox before the camera is told the file is stored (if it
        // cannot be, the camera is not told, and sends the file again).
        if let Some(d) = &outbox {
            d.stored(s)?;
        }
        if let Some(q) = &queue {
            q.submit(s);
        }
        if gallery {
            crate::gallery::notify_changed(&root);
        }
        Ok(())
    });
    if let Some(d) = handle.clone() {
        server = server.on_end(move |summary| d.refused(summary));
    }
    // After the hooks are set: the endpoint keeps a handle on the server.
    let http = match args.http_bind {
        Some(bind) => {
            let waiting = converter.as_ref().map(|c| c.waiting());
            let convert_stats = converter.as_ref().map(|c| c.stats());
            Some(crate::http::HttpEndpoint::start(
                bind,
                args.http_token.clone(),
                crate::http::Sources {
                    root: args.output_dir.clone(),
                    server: server.stop_handle(),
                    delivery: handle.clone(),
                    convert_stats,
                    convert_queue: waiting.map(|w| {
                        std::sync::Arc::new(move || w.load(std::sync::atomic::Ordering::Relaxed))
                            as std::sync::Arc<dyn Fn() -> usize + Send + Sync>
                    }),
                },
            )?)
        }
        None => None,
    };
    // Unix: SIGINT and SIGTERM stop, SIGHUP reloads (ctrlc would take
    // SIGHUP as a stop). Windows: Ctrl+C and closing the console stop.
    #[cfg(unix)]
    on_signals(args.clone(), server.stop_handle())?;
    #[cfg(windows)]
    {
        let stop = server.stop_handle();
        crate::console::install(move || stop.stop()).context("installing the console handler")?;
    }
    #[cfg(not(any(unix, windows)))]
    {
        let stop = server.stop_handle();
        ctrlc::set_handler(move || stop.stop()).context("installing the Ctrl+C handler")?;
    }
    let ports: Vec<String> = server
        .addrs()
        .iter()
        .map(|(a, tls)| format!("{a}{}", if *tls { " (TLS)" } else { "" }))
        .collect();
    log::info!(
        "listening on {} (mode {:?}, metadata {}, output {})",
        ports.join(" and "),
        args.mode,
        if args.metadata { "on" } else { "off" },
        args.output_dir.display()
    );
    if args.gallery {
        log::info!(
            "gallery: open {} in a browser",
            dunce::canonicalize(&args.output_dir)
                .unwrap_or_else(|_| args.output_dir.clone())
                .join("index.html")
                .display()
        );
    }
    let retention = args.keep_days.map(|days| {
        let s3 = handle.clone().filter(|_| args.s3_endpoint.is_some());
        start_retention(args.output_dir.clone(), days, s3)
    });
    // Once the links are closed, and before "server stopped": the running
    // conversion finishes (its "converted" line comes first), then the
    // uploads in flight (bounded; what is left stays in the outbox).
    let gallery_on = args.gallery;
    server = server.before_stopped(move || {
        if gallery_on {
            crate::gallery::stop(Duration::from_secs(10));
        }
        if let Some((tx, t)) = retention {
            drop(tx);
            let _ = t.join();
        }
        if let Some(c) = converter {
            c.stop(Duration::from_secs(60));
        }
        if let Some(h) = http {
            h.stop();
        }
        if let Some(d) = delivery {
            d.stop(Duration::from_secs(5));
        }
    });
    let r = server.run();
    #[cfg(windows)]
    crate::console::stopped();
    r
}

fn verify(args: &VerifyArgs) -> Result<bool> {
    if args.explain {
        print!("{}", crate::verify::explain());
        return Ok(true);
    }
    for e in &args.expect {
        parse_kind(e).map_err(|e| usage(format!("--expect: {e}")))?;
    }
    if let Some(dir) = &args.dir {
        if !dir.is_dir() {
            return Err(usage(format!(
                "{}: {} (give the server's output folder or one camera's folder)",
                if dir.exists() {
                    "not a folder"
                } else {
                    "folder not found"
                },
                dir.display()
            )));
        }
        let files = crate::verify::files_in(dir);
        if files.is_empty() {
            return Err(usage(format!(
                "no stored file in {} (a stored file has its sidecar .json beside it): \
                 give the server's output folder (--output-dir) or one camera's folder",
                dir.display()
            )));
        }
        for (media, _) in &files {
            use std::io::Read;
            std::fs::File::open(media)
                .and_then(|mut f| f.read(&mut [0u8; 1]))
                .map_err(|e| usage(format!("cannot read {}: {e}", media.display())))?;
        }
        println!(
            "verify: {} stored file(s) in {}",
            files.len(),
            dir.display()
        );
        let (table, ok) = crate::verify::report(&files, &args.expect);
        print!("{table}");
        return Ok(ok);
    }
    let mut cfg = args.serve.to_config()?;
    cfg.session.metadata = true;
    let timeout = positive_secs(args.timeout, "--timeout")?;
    // The files of the session verified (verify serves one camera): each as
    // it is stored, from the server's hook.
    let sent = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut server = Server::bind(cfg)?.on_stored({
        let sent = sent.clone();
        move |st: &crate::storage::Stored| {
            if let Ok(mut v) = sent.lock() {
                v.push((st.path.clone(), st.sidecar.clone()));
            }
            Ok(())
        }
    });
    let summaries = server.summaries();
    let stop = server.stop_handle();
    ctrlc::set_handler({
        let stop = stop.clone();
        move || stop.stop()
    })
    .context("installing the Ctrl+C handler")?;
    log::info!(
        "listening on {} (verify: waiting up to {:.0} s for one camera; metadata on)",
        server.local_addr(),
        timeout.as_secs_f64()
    );
    let runner = std::thread::spawn(move || server.run());
    let deadline = std::time::Instant::now() + timeout;
    let summary = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match summaries.recv_timeout(left) {
            Ok(s) if s.imei.is_some() => break Some(s),
            Ok(_) => continue,
            Err(_) => break None,
        }
    };
    stop.stop();
    let _ = runner.join();
    let Some(s) = summary else {
        let mut text = format!(
            "no camera connected within {:.0} s\n",
            timeout.as_secs_f64()
        );
        crate::verify::hint_lines(&mut text, crate::verify::Cause::NeverConnected);
        println!("{text}OVERALL: FAIL");
        return Ok(false);
    };
    println!(
        "verify: camera {} sent {} file(s); session {}",
        s.imei.unwrap_or_default(),
        s.stored + s.already_had,
        s.end
    );
    let imei = s.imei.unwrap_or_default().to_string();
    let files: Vec<_> = std::mem::take(&mut *sent.lock().unwrap_or_else(|e| e.into_inner()))
        .into_iter()
        .filter(|(_, sc)| sc.imei == imei)
        .collect();
    let (table, ok) = crate::verify::report(&files, &args.expect);
    print!("{table}");
    Ok(ok)
}

fn decode(hex: &[String]) -> Result<bool> {
    let bytes = crate::decode::parse_hex(hex).map_err(|e| anyhow::anyhow!("bad hex: {e}"))?;
    match crate::decode::describe(&bytes) {
        Ok(text) => {
            print!("{text}");
            Ok(true)
        }
        Err(e) => bail!("{e}"),
    }
}

fn container(a: &ContainerArgs) -> Result<bool> {
    if let Some(p) = &a.inspect {
        let info = crate::storage::media::inspect(p)
            .with_context(|| format!("reading {}", p.display()))?;
        println!("{}", serde_json::to_string_pretty(&info)?);
        return Ok(info.problems.is_empty());
    }
    let (Some(video), Some(output)) = (&a.video, &a.output) else {
        anyhow::bail!("--video and --output are needed");
    };
    let h265 = std::fs::read(video).with_context(|| format!("reading {}", video.display()))?;
    let alaw = match &a.audio {
        Some(p) => Some(std::fs::read(p).with_context(|| format!("reading {}", p.display()))?),
        None => None,
    };
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(output).with_context(|| format!("creating {}", output.display()))?,
    );
    let m = crate::simulator::ptmf::mux(&h265, alaw.as_deref(), a.fps, (1280, 720), &mut out)
        .with_context(|| format!("writing {}", output.display()))?;
    std::io::Write::flush(&mut out)?;
    println!(
        "{}: {}x{} at {} fps, {} video frame(s) ({} key), {} audio chunk(s) of 40 ms",
        output.display(),
        m.width,
        m.height,
        a.fps,
        m.video_frames,
        m.key_frames,
        m.audio_chunks
    );
    Ok(true)
}

/// What `simulate`'s metadata reports when neither the flags nor the file
/// say otherwise.
const DEFAULT_SIM_FPS: u8 = 30;
const DEFAULT_SIM_SECS: u16 = 10;

/// A video's own frame rate and length, for its metadata: the camera's
/// container's rate and timestamps, or a raw H.265 stream's pictures at its
/// header timing (ffmpeg) or the given rate. `fps`/`secs` given on the
/// command line win. None for what is not a video (a photo).
fn own_timing(path: &Path, fps: Option<u8>, secs: Option<u16>) -> Result<Option<(u8, u16)>> {
    use dashcam_protocol::codec::container::{self, Sniffed};
    if let (Some(f), Some(d)) = (fps, secs) {
        return Ok(Some((f, d)));
    }
    let mut head = [0u8; 12];
    let n = {
        use std::io::Read;
        let mut f =
            std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
        f.read(&mut head)
            .with_context(|| format!("reading {}", path.display()))?
    };
    let (rate, length) = match container::sniff(&head[..n]) {
        Sniffed::Ptmf => {
            let info = crate::storage::media::inspect(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let rate = fps.or(info.frame_rate.and_then(|r| u8::try_from(r).ok()));
            (rate, info.duration_s)
        }
        Sniffed::AnnexB => {
            let rate = fps.or_else(|| {
                crate::ffmpeg::stream_timing(path)
                    .map(|(scale, tick)| (f64::from(scale) / f64::from(tick)).round())
                    .filter(|r| (1.0..=120.0).contains(r))
                    .map(|r| r as u8)
            });
            let pictures = container::hevc_pictures(
                &std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
            );
            let at = f64::from(rate.unwrap_or(DEFAULT_SIM_FPS));
            (rate, Some(pictures as f64 / at))
        }
        _ => return Ok(None),
    };
    let rate = rate.unwrap_or(DEFAULT_SIM_FPS);
    let length =
        secs.unwrap_or_else(|| length.map_or(DEFAULT_SIM_SECS, |l| (l.round() as u16).max(1)));
    Ok(Some((rate, length)))
}

fn simulate(args: &SimulateArgs) -> Result<bool> {
    if args.files.is_empty() && args.later_files.is_empty() && args.paths.is_empty() {
        return Err(usage(
            "nothing to send: give --file ID=PATH or --path PATH=FILE",
        ));
    }
    let mut cfg = SimConfig::new(args.server.clone(), args.imei);
    cfg.files = args.files.clone();
    cfg.later_files = args.later_files.clone();
    cfg.paths = args
        .paths
        .iter()
        .map(|(p, f)| (p.as_bytes().to_vec(), f.clone()))
        .collect();
    cfg.family = args.family;
    cfg.protocol_id = args.protocol;
    cfg.crc = args.crc;
    cfg.chunk = args.chunk as usize;
    if args.tls || args.tls_ca.is_some() || args.tls_insecure {
        cfg.tls = Some(match (&args.tls_ca, args.tls_insecure) {
            (Some(ca), _) => crate::simulator::Trust::Ca(ca.clone()),
            (None, true) => crate::simulator::Trust::Insecure,
            (None, false) => {
                bail!("--tls needs --tls-ca PEM (or --tls-insecure for a test certificate)")
            }
        });
    }
    cfg.metadata = !args.no_metadata;
    cfg.frame_rate = args.frame_rate.unwrap_or(DEFAULT_SIM_FPS);
    cfg.video_duration_s = args.duration.unwrap_or(DEFAULT_SIM_SECS);
    let locals: Vec<&PathBuf> = args
        .files
        .iter()
        .chain(&args.later_files)
        .map(|(_, p)| p)
        .chain(args.paths.iter().map(|(_, p)| p))
        .collect();
    for path in &locals {
        if let Some((fps, secs)) = own_timing(path, args.frame_rate, args.duration)? {
            cfg.meta_by_file.push(((*path).clone(), fps, secs));
        }
    }
    if let Some(k) = args.drop_after {
        // The DATA frames of the largest file: identifier flow in 1024-byte
        // packets, the path flow (and protocol 6) in --chunk bytes.
        let unit = if args.paths.is_empty() && args.protocol < 6 {
            1024
        } else {
            u64::from(args.chunk)
        };
        let mut most = 0;
        for path in &locals {
            let len = std::fs::metadata(path)
                .with_context(|| format!("reading {}", path.display()))?
                .len();
            most = most.max(len.div_ceil(unit));
        }
        if u64::from(k) > most || k == 0 {
            return Err(usage(format!(
                "--drop-after {k}: the largest file is sent in {most} DATA frame(s); give 1..={most}"
            )));
        }
    }
    cfg.file_meta = args.file_meta.clone();
    if let Some(p) = args.position {
        cfg.position = p;
    }
    cfg.max_write = args.max_write;
    cfg.corrupt_packets = args.corrupt_packet.clone();
    cfg.drop_after = args.drop_after;
    cfg.timeout = secs(args.timeout, "--timeout")?;
    if let Some(rate) = args.rate {
        let (kind, path) = args
            .files
            .first()
            .context("--rate needs one --file ID=PATH: the file each camera sends")?;
        let server = args
            .server
            .to_socket_addrs()
            .with_context(|| format!("resolving {}", args.server))?
            .next()
            .with_context(|| format!("{} resolves to nothing", args.server))?;
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        if bytes.is_empty() {
            bail!("{} is empty", path.display());
        }
        let fleet = simulator::FleetConfig {
            server,
            first_imei: args.imei,
            cameras: args.cameras,
            rate: rate.max(1),
            ramp: secs(args.ramp, "--ramp")?,
            timeout: positive_secs(args.timeout, "--timeout")?,
            kind: *kind,
            threads: 4,
        };
        crate::server::raise_fd_limit();
        let report = simulator::run_fleet(&fleet, bytes);
        for (imei, why) in report.failures.iter().take(10) {
            log::warn!("camera {imei}: {why}");
        }
        println!("{report}");
        return Ok(report.failures.is_empty() && report.stored == args.cameras);
    }
    if args.cameras > 1 {
        let report = simulator::run_many(&cfg, args.cameras);
        for (imei, why) in report.failures.iter().take(10) {
            log::warn!("camera {imei}: {why}");
        }
        println!("{report}");
        return Ok(report.failures.is_empty());
    }
    let r = simulator::run_camera(&cfg)?;
    for (id, k) in &r.resumes {
        log::info!("server sent RESUME {k} for {id}");
    }
    println!(
        "sent {} file(s) ({} bytes): {}; session ended by {}",
        r.taken.len(),
        r.bytes_sent,
        if r.taken.is_empty() {
            "none".to_string()
        } else {
            r.taken.join(", ")
        },
        r.ended_by
    );
    if !r.complete {
        eprintln!("error: the server did not take every file and end the session");
    }
    Ok(r.complete)
}

/// Runs the command line; returns the process exit code.
/// Man pages (one per command: `dashcam-server.1`, `dashcam-server-serve.1`,
/// ...) and completions for bash, zsh and fish, from the clap definitions,
/// so they never drift from the flags.
fn generate_docs(out: &Path) -> Result<()> {
    use clap::CommandFactory;
    use clap_complete::Shell;
    let man = out.join("man");
    let comp = out.join("completions");
    for d in [&man, &comp] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let cmd = Cli::command().version(VERSION);
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

pub fn main() -> i32 {
    let cli = Cli::parse();
    let serving = match &cli.command {
        None => Some(&cli.serve),
        Some(Command::Serve(a)) => Some(a),
        Some(Command::Verify(a)) => Some(&a.serve),
        _ => None,
    };
    let json = serving.is_some_and(|a| a.log_format == LogFormat::Json);
    if let Err(e) = crate::logging::init(serving.and_then(|a| a.log_file.as_deref()), json) {
        eprintln!("error: {e:#}");
        return 1;
    }
    if serving.is_some() {
        crate::live::enable_if_terminal();
    }
    let result = match &cli.command {
        None => serve(&cli.serve).map(|_| true),
        Some(Command::Serve(a)) => serve(a).map(|_| true),
        Some(Command::Simulate(a)) => simulate(a),
        Some(Command::Verify(a)) => verify(a),
        Some(Command::Decode { hex }) => decode(hex),
        // By hand: thumbnails that failed before are tried again (ffmpeg may be there now).
        Some(Command::Gallery { output_dir }) => {
            crate::gallery::build_with(output_dir, true).map(|n| {
                println!("{n} file(s): {}", output_dir.join("index.html").display());
                true
            })
        }
        Some(Command::Container(a)) => container(a),
        Some(Command::GenerateDocs { out_dir }) => generate_docs(out_dir).map(|_| true),
        Some(Command::Convert(a)) if !a.output_dir.is_dir() => Err(usage(format!(
            "folder not found: {} (give the server's output folder, --output-dir)",
            a.output_dir.display()
        ))),
        Some(Command::Convert(a)) => {
            if !(0.0..=3600.0).contains(&a.convert_trim) {
                eprintln!("error: --convert-trim must be between 0 and 3600 seconds");
                return 2;
            }
            if !crate::convert::ffmpeg_available() {
                eprintln!("error: {}", crate::ffmpeg::HOW_TO_GET);
                return 1;
            }
            let (_, failed) =
                crate::convert::convert_all(&a.output_dir, a.imei, a.force, a.fps, a.convert_trim);
            Ok(failed == 0)
        }
    };
    match result {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) if e.downcast_ref::<Usage>().is_some() => {
            eprintln!("error: {e:#}");
            2
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}

/// A usage or configuration error (a folder that is not there, a bad
/// value): exit status 2, as clap gives for a bad flag; 1 is "the job
/// failed" (a file failed verify, a conversion failed).
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Usage(msg.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve_args(extra: &[&str]) -> ServeArgs {
        let mut argv = vec!["dashcam-server", "serve"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).unwrap().command {
            Some(Command::Serve(a)) => a,
            other => panic!("{other:?}"),
        }
    }

    /// The vendor's launch lines run unchanged (its run_server.bat:
    /// `-p`, `-m 0|1`, `-r/--cam 0..3`, `--tls -c FILE -k FILE`).
    #[test]
    fn the_vendors_command_line_is_understood() {
        let a = serve_args(&[
            "-p", "6000", "-m", "1", "-r", "3", "--tls", "-c", "c.pem", "-k", "k.pem",
        ]);
        assert_eq!((a.port, a.metadata, a.mode), (6000, true, ModeArg::Dsm));
        assert_eq!(a.tls_cert.as_deref(), Some(std::path::Path::new("c.pem")));
        assert_eq!(a.tls_key.as_deref(), Some(std::path::Path::new("k.pem")));
        let a = serve_args(&[
            "--port", "6001", "--cam", "1", "--meta", "0", "--cert", "c", "--key", "k",
        ]);
        assert_eq!((a.port, a.metadata, a.mode), (6001, false, ModeArg::Adas));
        for (v, mode) in [("0", ModeArg::Auto), ("2", ModeArg::Dualcam)] {
            assert_eq!(serve_args(&["--cam", v]).mode, mode);
        }
        // Without a subcommand, as the vendor's `node index.js -p 6000 -m 1`.
        let cli = Cli::try_parse_from(["dashcam-server", "-p", "6002", "-m", "1"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!((cli.serve.port, cli.serve.metadata), (6002, true));
        // --tls without a certificate says what is missing.
        assert!(Cli::try_parse_from(["dashcam-server", "serve", "--tls"]).is_err());
    }

    #[test]
    fn boolean_flags_take_every_spelling() {
        assert!(serve_args(&["--metadata"]).metadata);
        assert!(!serve_args(&[]).metadata);
        for (v, want) in [
            ("true", true),
            ("1", true),
            ("yes", true),
            ("on", true),
            ("false", false),
            ("0", false),
            ("no", false),
            ("off", false),
        ] {
            assert_eq!(serve_args(&["--metadata", v]).metadata, want, "{v}");
            assert_eq!(
                serve_args(&["--proxy-protocol", v]).proxy_protocol,
                want,
                "{v}"
            );
        }
    }

    #[test]
    fn allow_file_and_flags_make_one_list() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("allow.txt");
        std::fs::write(
            &file,
            "# fleet A\n350612071913857\n\n  350612071913858  # van 2\n",
        )
        .unwrap();
        let a = serve_args(&["--allow-imei", "1", "--allow-file", file.to_str().unwrap()]);
        let allow = a.to_config().unwrap().session.allow.unwrap();
        let want: HashSet<u64> = [1, 350612071913857, 350612071913858].into_iter().collect();
        assert_eq!(allow, want);
        assert!(serve_args(&[]).to_config().unwrap().session.allow.is_none());
    }

    #[test]
    fn a_bad_allow_file_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("allow.txt");
        std::fs::write(&file, "350612071913857\nvan-2\n").unwrap();
        let err = serve_args(&["--allow-file", file.to_str().unwrap()])
            .to_config()
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("line 2: 'van-2' is not an IMEI"),
            "{err:#}"
        );
    }

    #[test]
    fn files_list_and_limits() {
        let a = serve_args(&["--files", "videof,%photor", "--max-file-mb", "2"]);
        let c = a.to_config().unwrap();
        assert_eq!(
            c.session.files,
            Some(vec![FileKind::VideoFront, FileKind::PhotoRear])
        );
        assert_eq!(c.session.max_file_bytes, 2 << 20);
        assert_eq!(c.session.max_files, 1000);
        assert_eq!(c.session.sync_timeout, Duration::from_secs(3));
        // dashcam stays an alias of dualcam.
        assert_eq!(serve_args(&["--mode", "dashcam"]).mode, ModeArg::Dualcam);
        assert_eq!(serve_args(&["--mode", "dsm"]).mode, ModeArg::Dsm);
        assert!(Cli::try_parse_from(["dashcam-server", "serve", "--files", "video"]).is_err());
        // No subcommand is `serve`, with its flags.
        let top = Cli::try_parse_from(["dashcam-server", "--port", "6000"]).unwrap();
        assert!(top.command.is_none());
        assert_eq!(top.serve.port, 6000);
    }

    #[test]
    fn zero_timeouts_and_limits_are_refused_by_name() {
        for (flag, what) in [
            ("--read-timeout", "--read-timeout must be more than 0"),
            (
                "--metadata-timeout",
                "--metadata-timeout must be more than 0",
            ),
            ("--sync-timeout", "--sync-timeout must be more than 0"),
            ("--init-timeout", "--init-timeout must be more than 0"),
            ("--frame-timeout", "--frame-timeout must be more than 0"),
            ("--partial-max-age", "--partial-max-age must be more than 0"),
            ("--max-file-mb", "--max-file-mb must be at least 1"),
            ("--max-partials-gb", "--max-partials-gb must be more than 0"),
            ("--max-files", "--max-files must be at least 1"),
            ("--max-per-ip", "--max-per-ip must be at least 1"),
            (
                "--max-connections",
                "--max-connections and --max-per-ip must be at least 1",
            ),
        ] {
            let err = serve_args(&[flag, "0"]).to_config().unwrap_err();
            assert!(format!("{err:#}").contains(what), "{flag}: {err:#}");
        }
        // 0 has a documented meaning here: no free-space reserve.
        assert_eq!(
            serve_args(&["--min-free-mb", "0"])
                .to_config()
                .unwrap()
                .storage
                .min_free_bytes,
            0
        );
    }
}
