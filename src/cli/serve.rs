//! `serve`'s flags (also `verify`'s, which runs a server for one camera):
//! one struct per concern, joined by `#[command(flatten)]`, and their
//! translation into the server's settings.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use clap::Args;

use super::{parse_kind, positive_secs, ConvertTo, LogFormat, ModeArg};
use crate::codec::FileKind;
use crate::net::server::ServerConfig;
use crate::session;
use crate::storage::StorageConfig;

/// `serve`'s flags, in groups that `--help` shows under their own
/// headings; each group is documented where it is defined.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub net: NetArgs,
    #[command(flatten)]
    pub session: SessionArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub storage: StorageArgs,
    #[command(flatten)]
    pub delivery: DeliveryArgs,
    #[command(flatten)]
    pub ops: OpsArgs,
    #[command(flatten)]
    pub convert: ConvertFlags,
}

/// Where cameras connect and how many are served at once: the address and
/// port, connection limits and waits, and which IMEIs are served.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Network and admission")]
pub struct NetArgs {
    /// Address to listen on.
    #[arg(long, env = "DASHCAM_BIND", default_value = "0.0.0.0")]
    pub bind: String,
    /// TCP port the cameras connect to (the camera's "Port" setting).
    #[arg(short = 'p', long, env = "DASHCAM_PORT", default_value_t = 5000)]
    pub port: u16,
    /// Connections served at once; more get CLOSE straight away. Default: what
    /// the open-files limit allows (raised to its hard limit at start).
    #[arg(long, env = "DASHCAM_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Connections at once from one IP address; more get CLOSE straight away.
    #[arg(
        long,
        env = "DASHCAM_MAX_PER_IP",
        default_value_t = crate::net::server::DEFAULT_MAX_PER_IP,
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
    /// Seconds a camera may stay silent before its link is dropped (partial kept).
    #[arg(
        long,
        env = "DASHCAM_READ_TIMEOUT",
        default_value_t = 120.0,
        value_name = "SECS"
    )]
    pub read_timeout: f64,
    /// Seconds a frame, once begun, has to arrive whole (drops slow senders).
    #[arg(
        long,
        env = "DASHCAM_FRAME_TIMEOUT",
        default_value_t = 60.0,
        value_name = "SECS"
    )]
    pub frame_timeout: f64,
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
}

/// Which cameras and files a session asks for, metadata, and the limits
/// of one session.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "What is asked of a camera")]
pub struct SessionArgs {
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
    /// Files asked for in one session (one per init, as the reference server does).
    #[arg(
        long,
        env = "DASHCAM_MAX_FILES",
        default_value_t = 1000,
        value_name = "N"
    )]
    pub max_files: u32,
    /// Largest file accepted, in MiB; a bigger START is refused before any byte is written.
    #[arg(
        long,
        env = "DASHCAM_MAX_FILE_MB",
        default_value_t = 512,
        value_name = "MB"
    )]
    pub max_file_mb: u64,
    /// Seconds to wait for SYNC after RESUME before sending RESUME again (10 times at most).
    #[arg(
        long,
        env = "DASHCAM_SYNC_TIMEOUT",
        default_value_t = 3.0,
        value_name = "SECS"
    )]
    pub sync_timeout: f64,
}

/// TLS (the vendor's `--tls -c -k` too) and the PROXY protocol from a
/// load balancer.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "TLS and PROXY protocol")]
pub struct TlsArgs {
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
    /// Serve TLS on this port as well as plain TCP on --port.
    #[arg(
        long,
        env = "DASHCAM_TLS_PORT",
        value_name = "PORT",
        requires = "tls_cert"
    )]
    pub tls_port: Option<u16>,
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
}

/// The output folder and what it may hold: unfinished downloads, free
/// space, how long media stays, the gallery.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Storage and retention")]
pub struct StorageArgs {
    /// Folder for downloads: <output-dir>/<imei>/<YYYYMMDD_HHMMSS>_<name>.<ext>.
    #[arg(long, env = "DASHCAM_OUTPUT_DIR", default_value = "downloads")]
    pub output_dir: PathBuf,
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
    /// Remove local media (videos, photos, mp4s) older than this many days,
    /// checked at start and every hour; sidecars stay. With S3 on, a file
    /// goes only once its upload is confirmed.
    #[arg(long, env = "DASHCAM_KEEP_DAYS", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_days: Option<u32>,
    /// Keep <output-dir>/index.html, the gallery, up to date (thumbnails use
    /// ffmpeg for videos). A large fleet may turn it off and run
    /// `dashcam-server gallery` when someone wants to look.
    #[arg(long, env = "DASHCAM_GALLERY", default_value = "true", value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set, value_name = "BOOL")]
    pub gallery: bool,
}

/// Where stored files go besides the output folder: an S3-compatible
/// bucket and a webhook, with their retries.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Delivery: S3 and webhook")]
pub struct DeliveryArgs {
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
}

/// What operators see: the log (text or JSON, a file) and the HTTP
/// endpoint (/metrics, /healthz, /cameras, the gallery).
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "HTTP endpoint and logs")]
pub struct OpsArgs {
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

/// Converting stored videos to mp4 as they arrive (needs ffmpeg).
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Conversion")]
pub struct ConvertFlags {
    /// Convert each stored video, keeping the .h265: mp4 (needs ffmpeg).
    #[arg(long, env = "DASHCAM_CONVERT", value_enum, value_name = "FORMAT")]
    pub convert: Option<ConvertTo>,
    /// When converting: the frame rate of a raw stream, and a cut at its start.
    #[command(flatten)]
    pub timing: ConvertTiming,
}

/// How a raw stream is converted (`serve --convert mp4` and `convert`).
#[derive(Args, Debug, Clone)]
pub struct ConvertTiming {
    /// Frame rate of a raw stream whose own headers (SPS/VUI timing) and
    /// metadata give none (the camera's default setting; the camera's
    /// container carries its own rate).
    #[arg(long, env = "DASHCAM_FPS", default_value_t = super::DEFAULT_FPS, value_parser = clap::value_parser!(u32).range(1..=120))]
    pub fps: u32,
    /// Seconds cut from the start of a raw stream's mp4, only when asked
    /// (default 0: every frame kept; at most 3600). The vendor's recipe cuts
    /// 0.9 s (`-ss 00:00:0.9`; of a 2 s clip that is 45%): `--convert-trim
    /// 0.9` does the same. Never cut from the camera's container; the stored
    /// file is always kept whole.
    #[arg(
        long,
        env = "DASHCAM_CONVERT_TRIM",
        default_value_t = 0.0,
        value_name = "SECS",
        value_parser = parse_trim
    )]
    pub convert_trim: f64,
}

fn parse_trim(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.0..=3600.0).contains(&v) => Ok(v),
        _ => Err(format!("'{s}': give seconds between 0 and 3600")),
    }
}

impl ServeArgs {
    /// The allow-list from `--allow-imei` and `--allow-file` (read again
    /// on SIGHUP); `None`: every camera is served.
    pub fn allow_list(&self) -> Result<Option<HashSet<u64>>> {
        let mut allow: HashSet<u64> = self.net.allow_imei.iter().copied().collect();
        if let Some(path) = &self.net.allow_file {
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
        if self.net.max_connections == Some(0) || self.net.max_per_ip == 0 {
            bail!("--max-connections and --max-per-ip must be at least 1");
        }
        if self.session.max_files == 0 {
            bail!("--max-files must be at least 1");
        }
        if self.session.max_file_mb == 0 {
            bail!("--max-file-mb must be at least 1 (0 would refuse every file)");
        }
        if self.storage.max_partials_gb <= 0.0 || !self.storage.max_partials_gb.is_finite() {
            bail!(
                "--max-partials-gb must be more than 0 (0 would remove every unfinished download)"
            );
        }
        Ok(ServerConfig {
            bind: self.net.bind.clone(),
            port: self.net.port,
            output_dir: self.storage.output_dir.clone(),
            session: session::Config {
                mode: self.session.mode.into(),
                metadata: self.session.metadata,
                metadata_timeout: positive_secs(
                    self.session.metadata_timeout,
                    "--metadata-timeout",
                )?,
                read_timeout: positive_secs(self.net.read_timeout, "--read-timeout")?
                    .max(Duration::from_millis(10)),
                files: self.session.files.clone(),
                max_file_bytes: self.session.max_file_mb.saturating_mul(1 << 20),
                allow: self.allow_list()?,
                max_files: self.session.max_files,
                sync_timeout: positive_secs(self.session.sync_timeout, "--sync-timeout")?
                    .max(Duration::from_millis(10)),
                init_timeout: positive_secs(self.net.init_timeout, "--init-timeout")?
                    .max(Duration::from_millis(10)),
                frame_timeout: positive_secs(self.net.frame_timeout, "--frame-timeout")?
                    .max(Duration::from_millis(10)),
                ..session::Config::default()
            },
            storage: StorageConfig {
                partial_max_age: positive_secs(
                    self.storage.partial_max_age * 3600.0,
                    "--partial-max-age",
                )?,
                min_free_bytes: self.storage.min_free_mb.saturating_mul(1 << 20),
                max_partial_bytes: (self.storage.max_partials_gb * (1u64 << 30) as f64) as u64,
            },
            max_connections: self.net.max_connections,
            max_per_ip: self.net.max_per_ip,
            tls: self.tls.tls_cert.clone().zip(self.tls.tls_key.clone()),
            tls_port: self.tls.tls_port,
            proxy_protocol: self.tls.proxy_protocol,
            trusted_proxies: self.tls.trusted_proxy.clone(),
        })
    }
}

impl ServeArgs {
    /// Where files go besides the output folder.
    pub fn delivery(&self) -> Result<crate::delivery::DeliveryConfig> {
        let s3 = match (&self.delivery.s3_endpoint, &self.delivery.s3_bucket) {
            (Some(e), Some(b)) => Some(crate::delivery::s3::S3Config::from_env(
                e,
                b,
                self.delivery.s3_region.as_deref(),
                self.delivery.s3_prefix.as_deref(),
            )?),
            _ => None,
        };
        if let Some(w) = &self.delivery.webhook {
            if !(w.starts_with("http://") || w.starts_with("https://")) {
                bail!("--webhook {w}: give an http:// or https:// URL");
            }
        }
        if !(self.delivery.retry_max >= 1.0 && self.delivery.retry_max <= 86_400.0) {
            bail!("--retry-max must be between 1 and 86400 seconds");
        }
        Ok(crate::delivery::DeliveryConfig {
            s3,
            webhook: self.delivery.webhook.clone(),
            webhook_secret: self.delivery.webhook_secret.clone(),
            delete_local: self.delivery.s3_delete_local,
            converting: self.convert.convert.is_some(),
            workers: 4,
            retry_max: Duration::from_secs_f64(self.delivery.retry_max),
        })
    }
}
