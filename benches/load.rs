//! Throughput, memory and scale of `serve`, against the limit of this machine.
//! Run: `benches/run.sh` (or `cargo bench --bench load -- --help`).
//!
//! The server runs as its own process (the release binary) so its peak RSS
//! (VmHWM) and thread count are its own; cameras are the simulator, in-process.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use dashcam_server::codec::{crc16, FileKind};
use dashcam_server::simulator::{run_camera, run_many, SimConfig};

const BIN: &str = env!("CARGO_BIN_EXE_dashcam-server");
const MIB: u64 = 1024 * 1024;

struct Opts {
    runs: usize,
    sizes_mib: Vec<u64>,
    cameras: Vec<usize>,
    camera_kib: u64,
    dir: Option<std::path::PathBuf>,
}

fn parse_opts() -> Opts {
    let mut o = Opts {
        runs: 5,
        sizes_mib: vec![64, 256],
        cameras: vec![500, 1000],
        camera_kib: 256,
        dir: None,
    };
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().expect("flag needs a value").clone();
        let list = |s: String| {
            s.split(',')
                .map(|x| x.trim().parse().expect("number"))
                .collect::<Vec<u64>>()
        };
        match a.as_str() {
            "--runs" => o.runs = val().parse().expect("runs"),
            "--sizes" => o.sizes_mib = list(val()),
            "--cameras" => o.cameras = list(val()).into_iter().map(|x| x as usize).collect(),
            "--camera-kib" => o.camera_kib = val().parse().expect("kib"),
            // Where files and the server's output go (e.g. /dev/shm to take the disk out).
            "--dir" => o.dir = Some(val().into()),
            "--quick" => {
                o.runs = 3;
                o.sizes_mib = vec![16];
                o.cameras = vec![100];
            }
            "--help" | "-h" => {
                println!("cargo bench --bench load -- [--runs N] [--sizes 64,256] [--cameras 500,1000] [--camera-kib 256] [--dir PATH] [--quick]");
                std::process::exit(0);
            }
            other => panic!("unknown flag {other} (try --help)"),
        }
    }
    o
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn status_field(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The server process, with a sampler of its thread count.
struct ServerProc {
    child: Child,
    addr: String,
    max_threads: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl ServerProc {
    fn start(out: &Path) -> ServerProc {
        let port = free_port();
        let mut child = Command::new(BIN)
            .args([
                "serve",
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                // Every simulated camera comes from 127.0.0.1.
                "--max-per-ip",
                "100000",
                "--min-free-mb",
                "0",
                // The gallery's thumbnails run ffmpeg per video: not what is measured.
                "--gallery",
                "false",
                "--output-dir",
            ])
            .arg(out)
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the server");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        loop {
            let l = lines.next().expect("server output").expect("line");
            if l.contains("listening on") {
                break;
            }
        }
        // Keep draining the log so the server never blocks on it.
        thread::spawn(move || for _ in lines {});
        let max_threads = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, s, pid) = (max_threads.clone(), stop.clone(), child.id());
        thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Some(t) = status_field(pid, "Threads:") {
                    m.fetch_max(t, Ordering::Relaxed);
                }
                thread::sleep(Duration::from_millis(5));
            }
        });
        ServerProc {
            child,
            addr: format!("127.0.0.1:{port}"),
            max_threads,
            stop,
        }
    }

    /// Peak RSS in MiB so far.
    fn peak_rss_mib(&self) -> f64 {
        status_field(self.child.id(), "VmHWM:").unwrap_or(0) as f64 / 1024.0
    }

    fn finish(mut self) -> (f64, u64) {
        let rss = self.peak_rss_mib();
        self.stop.store(true, Ordering::Relaxed);
        let threads = self.max_threads.load(Ordering::Relaxed);
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        (rss, threads)
    }
}

fn make_file(path: &Path, bytes: u64) {
    let mut f = std::io::BufWriter::new(File::create(path).unwrap());
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        for b in buf.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    f.flush().unwrap();
}

/// The same bytes through loopback TCP with no protocol: file -> socket -> sink.
/// `to_disk`: the receiver writes and fsyncs a file, as the server does.
fn raw_copy(src: &Path, out_dir: &Path, to_disk: bool) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let dst = out_dir.join("raw-copy.bin");
    let began = Instant::now();
    let rx = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let mut f = to_disk.then(|| File::create(&dst).unwrap());
        let mut total = 0u64;
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            if let Some(f) = f.as_mut() {
                f.write_all(&buf[..n]).unwrap();
            }
            total += n as u64;
        }
        if let Some(f) = f {
            f.sync_all().unwrap();
        }
        total
    });
    let mut s = TcpStream::connect(addr).unwrap();
    let mut f = File::open(src).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        s.write_all(&buf[..n]).unwrap();
    }
    drop(s);
    let total = rx.join().unwrap();
    let secs = began.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(out_dir.join("raw-copy.bin"));
    total as f64 / 1e6 / secs
}

fn single(opts: &Opts, dir: &Path, mib: u64) {
    let src = dir.join(format!("video-{mib}.h265"));
    make_file(&src, mib * MIB);
    let (mut serve, mut rss, mut raw_disk, mut raw_null) = (vec![], vec![], vec![], vec![]);
    for run in 0..opts.runs {
        raw_null.push(raw_copy(&src, dir, false));
        raw_disk.push(raw_copy(&src, dir, true));
        let out = dir.join(format!("out-single-{mib}-{run}"));
        let srv = ServerProc::start(&out);
        let mut cam = SimConfig::new(srv.addr.clone(), 350612071913857);
        cam.files = vec![(FileKind::VideoFront, src.clone())];
        cam.timeout = Duration::from_secs(300);
        let began = Instant::now();
        let r = run_camera(&cam).expect("camera");
        let secs = began.elapsed().as_secs_f64();
        assert!(r.complete, "transfer incomplete: {r:?}");
        serve.push((mib * MIB) as f64 / 1e6 / secs);
        rss.push(srv.finish().0);
        let _ = std::fs::remove_dir_all(&out);
    }
    let (s, d, n) = (median(serve.clone()), median(raw_disk), median(raw_null));
    println!(
        "| single {mib} MiB video | {:.0} MB/s | raw loopback copy to disk {d:.0} MB/s (ratio {:.2}); to /dev/null {n:.0} MB/s (ratio {:.2}) | server peak RSS {:.1} MiB (max {:.1}) | runs {} |",
        s,
        s / d,
        s / n,
        median(rss.clone()),
        rss.iter().cloned().fold(0.0, f64::max),
        opts.runs
    );
    eprintln!("  single {mib} MiB serve MB/s per run: {serve:.0?}");
    let _ = std::fs::remove_file(&src);
}

fn many(opts: &Opts, dir: &Path, n: usize) {
    let src = dir.join("clip-many.h265");
    make_file(&src, opts.camera_kib * 1024);
    let runs = opts.runs.min(3);
    let (mut wall, mut rss, mut threads, mut failures) = (vec![], vec![], vec![], 0usize);
    for run in 0..runs {
        let out = dir.join(format!("out-many-{n}-{run}"));
        let srv = ServerProc::start(&out);
        let mut cam = SimConfig::new(srv.addr.clone(), 350000000000000);
        cam.files = vec![(FileKind::VideoFront, src.clone())];
        cam.timeout = Duration::from_secs(120);
        let report = run_many(&cam, n);
        for (imei, why) in report.failures.iter().take(3) {
            eprintln!("  camera {imei}: {why}");
        }
        failures += report.failures.len();
        wall.push(report.wall.as_secs_f64());
        let (r, t) = srv.finish();
        rss.push(r);
        threads.push(t as f64);
        let _ = std::fs::remove_dir_all(&out);
    }
    let w = median(wall);
    println!(
        "| {n} cameras x {} KiB | wall {w:.2} s ({:.0} MB/s) | server peak RSS {:.1} MiB | peak threads {:.0} | failures {failures} of {} | runs {runs} |",
        opts.camera_kib,
        (n as u64 * opts.camera_kib * 1024) as f64 / 1e6 / w,
        median(rss),
        median(threads),
        n * runs
    );
}

fn crc_speed(runs: usize) {
    let data: Vec<u8> = (0..64 * MIB as usize)
        .map(|i| (i * 31 + (i >> 9)) as u8)
        .collect();
    let speed = |f: fn(u16, &[u8]) -> u16| {
        let mut v = vec![];
        for _ in 0..runs {
            let t = Instant::now();
            let mut crc = 0u16;
            for chunk in data.chunks(1024) {
                crc = f(crc, chunk);
            }
            std::hint::black_box(crc);
            v.push(data.len() as f64 / 1e6 / t.elapsed().as_secs_f64());
        }
        median(v)
    };
    let fast = speed(crc16);
    let table = speed(dashcam_server::codec::crc::crc16_table);
    let small = &data[..8 * MIB as usize];
    let t = Instant::now();
    std::hint::black_box(dashcam_server::codec::crc::crc16_bitwise(0, small));
    let bitwise = small.len() as f64 / 1e6 / t.elapsed().as_secs_f64();
    println!(
        "| CRC-16 of 1024-byte packets (crc16: PCLMULQDQ folding where the CPU has it) | {fast:.0} MB/s | slicing-by-16 table {table:.0} MB/s; bit-by-bit reference {bitwise:.0} MB/s ({:.1}x) | | | runs {runs} |",
        fast / bitwise
    );
}

fn main() {
    let opts = parse_opts();
    let base = opts.dir.clone().unwrap_or_else(std::env::temp_dir);
    let tmp = base.join(format!("dashcam-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    let mem = status_meminfo();
    println!(
        "machine: {cores} cores, {mem:.1} GiB memory; files in {}; server binary {BIN}",
        base.display()
    );
    println!("| what | figure | baseline | memory | threads / failures | runs |");
    println!("|---|---|---|---|---|---|");
    crc_speed(opts.runs);
    for &mib in &opts.sizes_mib {
        single(&opts, &tmp, mib);
    }
    for &n in &opts.cameras {
        many(&opts, &tmp, n);
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

fn status_meminfo() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0)
}
