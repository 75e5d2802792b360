//! The command front-ends: what `verify`, `decode`, `container`,
//! `simulate`, `gallery` and `convert` do with their parsed flags. Each
//! returns `Ok(true)` when the job passed, `Ok(false)` when it failed
//! (exit 1), an error marked `cli::usage` for a usage error (exit 2).

use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};

use crate::cli::{
    parse_kind, positive_secs, secs, usage, ContainerArgs, ConvertArgs, SimulateArgs, VerifyArgs,
};
use crate::simulator::{self, SimConfig};

/// `gallery`: rebuilds index.html. By hand, thumbnails that failed before
/// are tried again (ffmpeg may be there now).
pub fn gallery(output_dir: &Path) -> Result<bool> {
    crate::tools::gallery::build_with(output_dir, true).map(|n| {
        println!("{n} file(s): {}", output_dir.join("index.html").display());
        true
    })
}

/// `convert`: every stored video without its mp4 (or all with --force).
pub fn convert(a: &ConvertArgs) -> Result<bool> {
    if !a.output_dir.is_dir() {
        return Err(usage(format!(
            "folder not found: {} (give the server's output folder, --output-dir)",
            a.output_dir.display()
        )));
    }
    if !crate::tools::convert::ffmpeg_available() {
        bail!("{}", crate::tools::ffmpeg::HOW_TO_GET);
    }
    let (_, failed) = crate::tools::convert::convert_all(
        &a.output_dir,
        a.imei,
        a.force,
        a.timing.fps,
        a.timing.convert_trim,
    );
    Ok(failed == 0)
}

/// `verify --dir`: checks the files stored in `dir`, each against the time
/// it was received. A folder that is not there, holds no stored file, or
/// has one that cannot be read is a usage error.
fn verify_dir(dir: &Path, expect: &[String]) -> Result<bool> {
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
    let files = crate::tools::verify::files_in(dir);
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
    let (table, ok) = crate::tools::verify::report(&files, expect);
    print!("{table}");
    Ok(ok)
}

/// `verify --explain`, or `verify --dir`: the causes of a FAIL, or the
/// stored files checked. (`verify` against a camera runs a server: `app`.)
pub fn verify(args: &VerifyArgs) -> Result<bool> {
    if args.explain {
        print!("{}", crate::tools::verify::explain());
        return Ok(true);
    }
    check_expect(&args.expect)?;
    match &args.dir {
        Some(dir) => verify_dir(dir, &args.expect),
        None => Err(usage("verify: --dir, --explain or a camera to serve")),
    }
}

/// `--expect`'s values, checked before any work.
pub fn check_expect(expect: &[String]) -> Result<()> {
    for e in expect {
        parse_kind(e).map_err(|e| usage(format!("--expect: {e}")))?;
    }
    Ok(())
}

/// `verify`'s verdict on the camera's session (`None`: no camera came
/// within `timeout`) and the files it stored: printed, and whether all
/// passed.
pub fn verify_report(
    summary: Option<crate::net::driver::Summary>,
    timeout: std::time::Duration,
    files: Vec<(PathBuf, crate::storage::Sidecar)>,
    expect: &[String],
) -> bool {
    let Some(s) = summary else {
        let mut text = format!(
            "no camera connected within {:.0} s\n",
            timeout.as_secs_f64()
        );
        crate::tools::verify::hint_lines(&mut text, crate::tools::verify::Cause::NeverConnected);
        println!("{text}OVERALL: FAIL");
        return false;
    };
    println!(
        "verify: camera {} sent {} file(s); session {}",
        s.imei.unwrap_or_default(),
        s.stored + s.already_had,
        s.end
    );
    let imei = s.imei.unwrap_or_default().to_string();
    let files: Vec<_> = files
        .into_iter()
        .filter(|(_, sc)| sc.imei == imei)
        .collect();
    let (table, ok) = crate::tools::verify::report(&files, expect);
    print!("{table}");
    ok
}

pub fn decode(hex: &[String]) -> Result<bool> {
    let bytes = crate::tools::decode::parse_hex(hex).map_err(|e| usage(format!("bad hex: {e}")))?;
    match crate::tools::decode::describe(&bytes) {
        Ok(text) => {
            print!("{text}");
            Ok(true)
        }
        Err(e) => bail!("{e}"),
    }
}

pub fn container(a: &ContainerArgs) -> Result<bool> {
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
                crate::tools::ffmpeg::stream_timing(path)
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

pub fn simulate(args: &SimulateArgs) -> Result<bool> {
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
    cfg.tls = trust(args)?;
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
    check_drop_after(args, &locals)?;
    cfg.file_meta = args.file_meta.clone();
    if let Some(p) = args.position {
        cfg.position = p;
    }
    cfg.max_write = args.max_write;
    cfg.corrupt_packets = args.corrupt_packet.clone();
    cfg.drop_after = args.drop_after;
    cfg.timeout = secs(args.timeout, "--timeout")?;
    if let Some(rate) = args.rate {
        return run_fleet(args, rate);
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

/// `--tls`, `--tls-ca`, `--tls-insecure`: how the simulated camera checks
/// the server's certificate (None: plain TCP).
fn trust(args: &SimulateArgs) -> Result<Option<crate::simulator::Trust>> {
    if !(args.tls || args.tls_ca.is_some() || args.tls_insecure) {
        return Ok(None);
    }
    Ok(Some(match (&args.tls_ca, args.tls_insecure) {
        (Some(ca), _) => crate::simulator::Trust::Ca(ca.clone()),
        (None, true) => crate::simulator::Trust::Insecure,
        (None, false) => {
            bail!("--tls needs --tls-ca PEM (or --tls-insecure for a test certificate)")
        }
    }))
}

/// `--drop-after K` must fall within the largest file: refused before
/// connecting (a usage error) otherwise.
fn check_drop_after(args: &SimulateArgs, locals: &[&PathBuf]) -> Result<()> {
    let Some(k) = args.drop_after else {
        return Ok(());
    };

    // The DATA frames of the largest file: identifier flow in 1024-byte
    // packets, the path flow (and protocol 6) in --chunk bytes.
    let unit = if args.paths.is_empty() && args.protocol < 6 {
        1024
    } else {
        u64::from(args.chunk)
    };
    let mut most = 0;
    for path in locals {
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
    Ok(())
}

/// `--rate`: a fleet of slow cameras on a few threads, one file each.
fn run_fleet(args: &SimulateArgs, rate: u64) -> Result<bool> {
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
    crate::net::server::raise_fd_limit();
    let report = simulator::run_fleet(&fleet, bytes);
    for (imei, why) in report.failures.iter().take(10) {
        log::warn!("camera {imei}: {why}");
    }
    println!("{report}");
    Ok(report.failures.is_empty() && report.stored == args.cameras)
}
