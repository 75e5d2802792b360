//! The flags of the other commands: `convert`, `container`, `verify`,
//! `simulate`.

use std::path::PathBuf;

use clap::Args;

use super::{
    parse_family, parse_file_meta, parse_imei, parse_offer, parse_path_offer, parse_position,
    ServeArgs,
};
use crate::codec::{Family, FileKind};
use crate::simulator::CrcMode;

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
    #[command(flatten)]
    pub timing: super::ConvertTiming,
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
