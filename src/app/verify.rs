//! `verify` against a camera: a server of its own, run until one camera has
//! sent its files (its progress on the terminal's bars), whose files are
//! then checked and reported by `tools::commands::verify_report`.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context as _, Result};

use crate::cli::{config_error, positive_secs, VerifyArgs};
use crate::net::server::Server;
use crate::ops::live::Live;
use crate::tools::commands::{check_expect, verify_report};

pub(super) fn camera(args: &VerifyArgs, live: Option<Arc<Live>>) -> Result<bool> {
    check_expect(&args.expect)?;
    let mut cfg = args.serve.to_config().map_err(config_error)?;
    cfg.session.metadata = true;
    let timeout = positive_secs(args.timeout, "--timeout")?;
    // The files of the session verified (verify serves one camera): each as
    // it is stored, from the server's hook.
    let sent = Arc::new(Mutex::new(Vec::new()));
    let mut server = Server::bind(cfg).map_err(config_error)?.on_stored({
        let sent = sent.clone();
        move |st: &crate::storage::Stored| {
            crate::lock(&sent).push((st.path.clone(), st.sidecar.clone()));
            Ok(())
        }
    });
    if let Some(l) = live {
        server = server.live(l);
    }
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
    let runner = std::thread::Builder::new()
        .name("verify-server".into())
        .spawn(move || server.run())
        .context("starting the server's thread")?;
    let deadline = Instant::now() + timeout;
    let summary = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match summaries.recv_timeout(left) {
            Ok(s) if s.imei.is_some() => break Some(s),
            Ok(_) => continue,
            Err(_) => break None,
        }
    };
    stop.stop();
    let _ = runner.join();
    let files = std::mem::take(&mut *crate::lock(&sent));
    Ok(verify_report(summary, timeout, files, &args.expect))
}
