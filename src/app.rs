//! The composition root: turns parsed flags into running work. `main`
//! parses the command line, sets up logging and dispatches; `serve`
//! starts the server and everything around it (delivery, conversion, the
//! gallery, the HTTP endpoint, retention, signals) and stops them in
//! order; `verify` against a camera runs a server too (`app/verify.rs`).
//! No other module starts a server or its services; the tools' front-ends
//! are in `tools::commands`.
//!
//! May use every folder; nothing imports it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};

use crate::cli::{self, config_error, exit, Command, ConvertTo, LogFormat, ServeArgs, VERSION};
use crate::net::server::Server;
use crate::ops::live::Live;
use crate::ops::logging::LogFile;
use crate::tools::convert::Converter;
use crate::tools::gallery::Gallery;

mod verify;

/// An error and its causes on one line, each cause said once: this
/// package's errors say their cause's words in their own message (a log line
/// is whole) and keep the cause as `source` too, so a cause whose words the
/// line already ends with is not repeated.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let words = cause.to_string();
        if line.ends_with(&words) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&words);
    }
    line
}

/// Runs the command line; the process's exit status (`cli::exit`).
pub fn main() -> ExitCode {
    let cli = cli::parse();
    let serving = match &cli.command {
        None => Some(&cli.serve),
        Some(Command::Serve(a)) => Some(a),
        Some(Command::Verify(a)) => Some(&a.serve),
        _ => None,
    };
    let json = serving.is_some_and(|a| a.ops.log_format == LogFormat::Json);
    // Progress bars for a server on a terminal; the logger writes above them.
    let live = serving
        .and_then(|_| crate::ops::live::Live::for_terminal())
        .map(Arc::new);
    let log_file = match crate::ops::logging::init(
        serving.and_then(|a| a.ops.log_file.as_deref()),
        json,
        live.clone(),
    ) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            return ExitCode::from(exit::USAGE);
        }
    };
    let result = match &cli.command {
        None => serve(&cli.serve, live, log_file).map(|_| true),
        Some(Command::Serve(a)) => serve(a, live, log_file).map(|_| true),
        Some(Command::Simulate(a)) => crate::tools::commands::simulate(a),
        Some(Command::Verify(a)) if a.explain || a.dir.is_some() => {
            crate::tools::commands::verify(a)
        }
        Some(Command::Verify(a)) => verify::camera(a, live),
        Some(Command::Decode { hex }) => crate::tools::commands::decode(hex),
        Some(Command::Gallery { output_dir }) => crate::tools::commands::gallery(output_dir),
        Some(Command::Container(a)) => crate::tools::commands::container(a),
        Some(Command::GenerateDocs { out_dir }) => cli::generate_docs(out_dir).map(|_| true),
        Some(Command::Convert(a)) => crate::tools::commands::convert(a),
    };
    ExitCode::from(match result {
        Ok(true) => exit::OK,
        Ok(false) => exit::FAILED,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            if cli::is_usage(&e) {
                exit::USAGE
            } else {
                exit::FAILED
            }
        }
    })
}

/// The options in effect, for the start-up line.
fn options_line(a: &ServeArgs) -> String {
    let mut o = vec![
        format!("mode {:?}", a.session.mode).to_lowercase(),
        format!("metadata {}", if a.session.metadata { "on" } else { "off" }),
        format!("output {}", a.storage.output_dir.display()),
    ];
    if let Some(c) = a.convert.convert {
        o.push(format!("convert {c:?}").to_lowercase());
    }
    if a.tls.proxy_protocol {
        o.push("PROXY protocol".into());
    }
    if a.tls.tls_cert.is_some() {
        o.push(match a.tls.tls_port {
            Some(p) => format!("TLS on port {p}"),
            None => format!("TLS on port {}", a.net.port),
        });
    }
    if let Some(l) = &a.ops.log_file {
        o.push(format!("log file {}", l.display()));
    }
    if let (Some(e), Some(b)) = (&a.delivery.s3_endpoint, &a.delivery.s3_bucket) {
        o.push(format!(
            "uploads to {e} bucket {b}{}{}",
            a.delivery
                .s3_prefix
                .as_deref()
                .map(|p| format!(" prefix {p}"))
                .unwrap_or_default(),
            if a.delivery.s3_delete_local {
                " (local media removed once uploaded)"
            } else {
                ""
            }
        ));
    }
    if let Some(w) = &a.delivery.webhook {
        o.push(format!(
            "webhook {w}{}",
            if a.delivery.webhook_secret.is_some() {
                " (signed)"
            } else {
                ""
            }
        ));
    }
    if !a.net.allow_imei.is_empty() || a.net.allow_file.is_some() {
        let mut what = Vec::new();
        if !a.net.allow_imei.is_empty() {
            what.push(format!("{} IMEI(s)", a.net.allow_imei.len()));
        }
        if let Some(f) = &a.net.allow_file {
            what.push(format!("{}", f.display()));
        }
        o.push(format!("allow-list {}", what.join(" + ")));
    }
    if let Some(d) = a.storage.keep_days {
        o.push(format!("media kept {d} day(s)"));
    }
    if a.ops.log_format == LogFormat::Json {
        o.push("JSON log".into());
    }
    if let Some(h) = &a.ops.http_bind {
        o.push(format!(
            "HTTP on {h}{}",
            if a.ops.http_token.is_some() {
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
fn on_signals(
    args: ServeArgs,
    server: crate::net::server::StopHandle,
    log_file: LogFile,
) -> Result<()> {
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
                if let Err(e) = log_file.reopen() {
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

/// `--convert mp4`: the converter, its results told to delivery (the mp4's
/// upload, the video's removal once uploaded) and to the gallery.
fn start_conversion(
    args: &ServeArgs,
    handle: Option<crate::delivery::DeliveryHandle>,
    gallery: Option<crate::tools::gallery::GalleryHandle>,
) -> Option<Converter> {
    match args.convert.convert {
        Some(ConvertTo::Mp4) => {
            let delete_local = args.delivery.s3_delete_local;
            let (h, g) = (handle, gallery);
            let on_converted: Option<crate::tools::convert::OnConverted> =
                (h.is_some() || g.is_some()).then(|| {
                    Box::new(move |s: &crate::storage::Stored, mp4: &std::path::Path| {
                        if let Some(h) = &h {
                            h.converted(s, mp4);
                            // The video waited for its mp4; once its own upload is
                            // confirmed (else that confirmation removes it).
                            if delete_local {
                                h.remove_uploaded(&s.path);
                            }
                        }
                        if let Some(g) = &g {
                            g.changed();
                        }
                    }) as crate::tools::convert::OnConverted
                });
            Converter::start(
                args.convert.timing.fps,
                args.convert.timing.convert_trim,
                args.storage.output_dir.clone(),
                on_converted,
            )
        }
        None => None,
    }
}

/// `--http-bind`: the endpoint, reading the server, the outbox and the
/// converter (a port it cannot take is a configuration error).
fn start_http(
    args: &ServeArgs,
    server: &Server,
    delivery: Option<crate::delivery::DeliveryHandle>,
    converter: Option<&Converter>,
) -> Result<Option<crate::web::endpoint::HttpEndpoint>> {
    Ok(match args.ops.http_bind {
        Some(bind) => {
            let waiting = converter.map(|c| c.waiting());
            let convert_stats = converter.map(|c| c.stats());
            Some(
                crate::web::endpoint::HttpEndpoint::start(
                    bind,
                    args.ops.http_token.clone(),
                    crate::web::endpoint::Sources {
                        root: args.storage.output_dir.clone(),
                        server: server.stop_handle(),
                        delivery,
                        convert_stats,
                        convert_queue: waiting.map(|w| {
                            std::sync::Arc::new(move || {
                                w.load(std::sync::atomic::Ordering::Relaxed)
                            })
                                as std::sync::Arc<dyn Fn() -> usize + Send + Sync>
                        }),
                    },
                )
                .map_err(config_error)?,
            )
        }
        None => None,
    })
}

/// Unix: SIGINT and SIGTERM stop, SIGHUP reloads (ctrlc would take SIGHUP
/// as a stop). Windows: Ctrl+C and closing the console stop.
#[cfg_attr(not(unix), allow(unused_variables))]
fn install_stop(args: &ServeArgs, server: &Server, log_file: LogFile) -> Result<()> {
    #[cfg(unix)]
    on_signals(args.clone(), server.stop_handle(), log_file)?;
    #[cfg(windows)]
    {
        let stop = server.stop_handle();
        crate::ops::console::install(move || stop.stop())
            .context("installing the console handler")?;
    }
    #[cfg(not(any(unix, windows)))]
    {
        let stop = server.stop_handle();
        ctrlc::set_handler(move || stop.stop()).context("installing the Ctrl+C handler")?;
    }
    Ok(())
}

/// The "listening on" line (tests and people wait for it), and where the
/// gallery is.
fn log_listening(args: &ServeArgs, server: &Server) {
    let ports: Vec<String> = server
        .addrs()
        .iter()
        .map(|(a, tls)| format!("{a}{}", if *tls { " (TLS)" } else { "" }))
        .collect();
    log::info!(
        "listening on {} (mode {:?}, metadata {}, output {})",
        ports.join(" and "),
        args.session.mode,
        if args.session.metadata { "on" } else { "off" },
        args.storage.output_dir.display()
    );
    if args.storage.gallery {
        log::info!(
            "gallery: open {} in a browser",
            dunce::canonicalize(&args.storage.output_dir)
                .unwrap_or_else(|_| args.storage.output_dir.clone())
                .join("index.html")
                .display()
        );
    }
}

/// `serve`: the server and everything around it. `live`: the terminal's
/// progress bars; `log_file`: what SIGHUP reopens.
fn serve(args: &ServeArgs, live: Option<Arc<Live>>, log_file: LogFile) -> Result<()> {
    log::info!(
        "dashcam-server {} starting: {}",
        VERSION,
        options_line(args)
    );
    // Everything up to the listeners is configuration: an error here
    // (a bad value, an unreadable certificate, the port in use, an output
    // folder that cannot be written) exits with status 2.
    let cfg = args.to_config().map_err(config_error)?;
    let delivery_cfg = args.delivery().map_err(config_error)?;
    let mut server = Server::bind(cfg).map_err(config_error)?;
    if let Some(l) = live {
        server = server.live(l);
    }
    // The outbox is opened (and what a stop left in it queued) before the
    // first camera is served.
    let delivery = if delivery_cfg.is_on() {
        Some(
            crate::delivery::Delivery::start(&args.storage.output_dir, delivery_cfg)
                .map_err(config_error)?,
        )
    } else {
        None
    };
    let handle = delivery.as_ref().map(|d| d.handle());
    let gallery = args
        .storage
        .gallery
        .then(|| Gallery::start(&args.storage.output_dir));
    let gallery_handle = gallery.as_ref().and_then(Gallery::handle);
    let converter = start_conversion(args, handle.clone(), gallery_handle.clone());
    let queue = converter.as_ref().map(|c| c.queue());
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
        if let Some(g) = &gallery_handle {
            g.changed();
        }
        Ok(())
    });
    if let Some(d) = handle.clone() {
        server = server.on_end(move |summary| d.refused(summary));
    }
    // After the hooks are set: the endpoint keeps a handle on the server.
    let http = start_http(args, &server, handle.clone(), converter.as_ref())?;
    install_stop(args, &server, log_file)?;
    log_listening(args, &server);
    let retention = args.storage.keep_days.map(|days| {
        let s3 = handle
            .clone()
            .filter(|_| args.delivery.s3_endpoint.is_some());
        start_retention(args.storage.output_dir.clone(), days, s3)
    });
    // Once the links are closed, and before "server stopped": the running
    // conversion finishes (its "converted" line comes first), then the
    // uploads in flight (bounded; what is left stays in the outbox).
    server = server.before_stopped(move || {
        if let Some(g) = gallery {
            g.stop(Duration::from_secs(10));
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
    crate::ops::console::stopped();
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_line_says_each_cause_once() {
        let os = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let e = anyhow::Error::new(crate::storage::StoreError::io("opening /x", os))
            .context("starting");
        assert_eq!(one_line(&e), "starting: opening /x: No such file");
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(one_line(&e), "outer: inner");
    }
}
