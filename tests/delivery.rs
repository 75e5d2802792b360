//! Into the integrator's platform, against real processes: the server binary
//! uploads to a real S3-compatible store (`s3s-fs`, its own process, real
//! SigV4 signatures and checksums), posts signed events to a real HTTP
//! receiver, and serves /metrics (checked by Prometheus's own parser),
//! /healthz and the gallery over HTTP (opened in headless chromium). A kill -9
//! during uploads and a store that is down for a while lose nothing and
//! store nothing twice.

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::procs::*;
use common::*;
use dashcam_server::codec::FileKind;
use dashcam_server::delivery::sigv4::hmac_hex;
use dashcam_server::simulator::run_camera;

/// One POST: its headers (lower-case names) and body.
type Post = (Vec<(String, String)>, Vec<u8>);

/// A real HTTP receiver: each POST's headers and body.
struct Receiver {
    url: String,
    rx: mpsc::Receiver<Post>,
}

fn receiver(fail_first: usize) -> Receiver {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", server.server_addr().to_ip().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut n = 0;
        for mut req in server.incoming_requests() {
            n += 1;
            let mut body = Vec::new();
            req.as_reader().read_to_end(&mut body).unwrap();
            if n <= fail_first {
                let _ = req.respond(tiny_http::Response::from_string("busy").with_status_code(503));
                continue;
            }
            let headers = req
                .headers()
                .iter()
                .map(|h| {
                    (
                        h.field.to_string().to_ascii_lowercase(),
                        h.value.to_string(),
                    )
                })
                .collect();
            let _ = req.respond(tiny_http::Response::from_string("ok"));
            if tx.send((headers, body)).is_err() {
                return;
            }
        }
    });
    Receiver { url, rx }
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> &'a str {
    h.iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

fn http_get(addr: SocketAddr, path: &str, auth: Option<&str>) -> (u16, Vec<u8>) {
    let mut req = ureq::get(&format!("http://{addr}{path}"));
    if let Some(a) = auth {
        req = req.set("Authorization", a);
    }
    match req.call() {
        Ok(r) => {
            let code = r.status();
            let mut b = Vec::new();
            r.into_reader().read_to_end(&mut b).unwrap();
            (code, b)
        }
        Err(ureq::Error::Status(code, r)) => {
            let mut b = Vec::new();
            let _ = r.into_reader().read_to_end(&mut b);
            (code, b)
        }
        Err(e) => panic!("GET {path}: {e}"),
    }
}

/// The counts of the camera's first "session end" line in `log` (waited
/// for): `N stored (B bytes), M already had`.
fn session_end(log: &Path, imei: u64) -> String {
    let mut line = String::new();
    wait_for("a session's end", || {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        match text.split_once(&format!("[{imei}] session end: ")) {
            Some((_, rest)) => {
                line = rest.split(", 0 failed").next().unwrap_or(rest).to_string();
                true
            }
            None => false,
        }
    });
    line
}

#[test]
// One attribute: two `ignore`s on one test are an error under clippy.
#[cfg_attr(
    not(all(have_s3s_fs, have_prometheus_parser)),
    ignore = "needs s3s-fs on PATH (cargo install s3s-fs --features binary) and python3 with prometheus_client (pip install prometheus_client)"
)]
#[allow(
    clippy::too_many_lines,
    reason = "one scenario read top to bottom: its steps share the server and camera they set up"
)]
fn a_stored_file_lands_in_the_bucket_byte_exact_with_a_signed_event_and_counts_in_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let s3_port = free_port();
    let (_store, bucket) = store(&tmp.path().join("s3"), s3_port);
    // The receiver is busy at first: events are retried.
    let hook = receiver(1);
    let http = free_port();
    let out = tmp.path().join("out");
    let log = tmp.path().join("server.log");
    let mut flags = s3_flags(s3_port, "site-a");
    flags.extend(
        [
            "--webhook",
            &hook.url,
            "--webhook-secret",
            "hook-secret",
            "--http-bind",
            &format!("127.0.0.1:{http}"),
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let (_srv, addr) = server(&out, &log, &flags);
    let imei = 350612071913857u64;
    let photo = write_file(tmp.path(), "p.jpg", &content(3000, 1));
    // Over 16 MiB: a multipart upload.
    let video = write_file(tmp.path(), "v.h265", &content(17 << 20, 2));
    let cam = camera(
        addr,
        imei,
        vec![(FileKind::PhotoFront, photo), (FileKind::VideoFront, video)],
    );
    assert!(run_camera(&cam).unwrap().complete);
    let first_session = session_end(&log, imei);
    assert!(first_session.starts_with("2 stored"), "{first_session}");
    let stored = media(&out, imei);
    assert_eq!(stored.len(), 2);
    // Two signed events, each naming its object.
    let mut events = Vec::new();
    while events.len() < 2 {
        let (h, body) = hook
            .rx
            .recv_timeout(Duration::from_secs(60))
            .expect("an event");
        assert_eq!(
            header(&h, "x-dashcam-signature"),
            format!("sha256={}", hmac_hex(b"hook-secret", &body))
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(header(&h, "idempotency-key"), v["id"].as_str().unwrap());
        assert_eq!(v["event"], "stored");
        events.push(v);
    }
    for f in &stored {
        let name = f.file_name().unwrap().to_str().unwrap();
        let key = format!("site-a/{imei}/{name}");
        let ev = events
            .iter()
            .find(|e| e["object"]["key"] == key.as_str())
            .unwrap_or_else(|| panic!("no event for {key}: {events:?}"));
        assert_eq!(ev["sidecar"]["sha256"], sidecar_json(f)["sha256"]);
        // Byte-exact in the bucket, sidecar too.
        assert_eq!(
            bucket.get(&key).unwrap(),
            std::fs::read(f).unwrap(),
            "{key}"
        );
        let sc_key = key.rsplit_once('.').unwrap().0.to_string() + ".json";
        wait_for("the sidecar object", || bucket.get(&sc_key).is_ok());
        assert_eq!(
            bucket.get(&sc_key).unwrap(),
            std::fs::read(f.with_extension("json")).unwrap()
        );
    }
    outbox_empties(&out);
    for f in &stored {
        let name = f.file_name().unwrap().to_str().unwrap();
        let sc = sidecar_of(f);
        assert!(sc.is_uploaded(name), "the sidecar records the upload");
        assert_eq!(sc.uploaded[0].key, format!("site-a/{imei}/{name}"));
        assert_eq!(sc.uploaded[0].bucket, "fleet");
    }
    // The camera sends both again: known, and nothing goes up again (the
    // jobs would be in the outbox before the camera is told).
    assert!(run_camera(&cam).unwrap().complete);
    wait_for("the second session's end", || {
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("0 stored (0 bytes), 2 already had")
    });
    assert_eq!(dashcam_server::delivery::outbox_len(&out), 0);
    // /metrics, read by Prometheus's own parser.
    let (code, body) = http_get(
        format!("127.0.0.1:{http}").parse().unwrap(),
        "/metrics",
        None,
    );
    assert_eq!(code, 200);
    let parsed = Command::new("python3")
        .args([
            "-c",
            "import sys\nfrom prometheus_client.parser import text_string_to_metric_families as p\n\
             for f in p(sys.stdin.read()):\n    for s in f.samples:\n        print(s.name, dict(s.labels), s.value)",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            std::io::Write::write_all(c.stdin.as_mut().unwrap(), &body)?;
            drop(c.stdin.take());
            c.wait_with_output()
        })
        .unwrap();
    assert!(
        parsed.status.success(),
        "the Prometheus parser refused /metrics"
    );
    let samples = String::from_utf8(parsed.stdout).unwrap();
    let value = |name: &str| -> f64 {
        samples
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing:\n{samples}"))
    };
    assert_eq!(value("dashcam_files_stored_total"), 2.0);
    assert_eq!(
        value("dashcam_bytes_stored_total"),
        (3000 + (17 << 20)) as f64
    );
    assert_eq!(
        value("dashcam_uploads_total"),
        4.0,
        "2 media + 2 sidecars, none again for the files sent again"
    );
    assert_eq!(value("dashcam_upload_queue"), 0.0);
    assert_eq!(value("dashcam_outbox_oldest_seconds"), 0.0);
    assert_eq!(value("dashcam_webhooks_total"), 2.0);
    assert!(
        value("dashcam_webhook_failures_total") >= 1.0,
        "the busy receiver"
    );
    let completed = samples
        .lines()
        .find(|l| l.starts_with("dashcam_session_ends_total {'reason': 'completed'}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok());
    assert_eq!(
        completed,
        Some(2.0),
        "the first session and the one sending again: {samples}"
    );
    let (code, _) = http_get(
        format!("127.0.0.1:{http}").parse().unwrap(),
        "/healthz",
        None,
    );
    assert_eq!(code, 200);
}

#[test]
#[cfg_attr(
    not(have_s3s_fs),
    ignore = "needs s3s-fs on PATH (cargo install s3s-fs --features binary)"
)]
fn a_store_down_and_a_kill_during_uploads_lose_nothing_and_store_nothing_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let s3_port = free_port();
    let out = tmp.path().join("out");
    let imei = 350612071913858u64;
    // The store is down: the camera is still served, the jobs wait on disk,
    // and /metrics shows how long the oldest has waited.
    let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut flags = s3_flags(s3_port, "");
    flags.extend(["--http-bind".to_string(), http.to_string()]);
    let (srv, addr) = server(&out, &tmp.path().join("a.log"), &flags);
    let video = write_file(tmp.path(), "v.h265", &content(20 << 20, 3));
    let cam = camera(addr, imei, vec![(FileKind::VideoFront, video.clone())]);
    assert!(run_camera(&cam).unwrap().complete);
    let local = media(&out, imei);
    assert_eq!(local.len(), 1);
    wait_for("a failed attempt", || {
        log_has(&tmp.path().join("a.log"), "failed (attempt")
    });
    let oldest = || -> u64 {
        let (_, body) = http_get(http, "/metrics", None);
        let text = String::from_utf8(body).unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with("dashcam_outbox_oldest_seconds "))
            .expect("dashcam_outbox_oldest_seconds");
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    wait_for("the oldest job's age to show", || oldest() >= 1);
    // Sent again while its upload waits: known, and no second job.
    assert!(run_camera(&cam).unwrap().complete);
    assert_eq!(
        session_end(&tmp.path().join("a.log"), imei),
        "1 stored (20971520 bytes), 0 already had"
    );
    wait_for("the second session's end", || {
        log_has(
            &tmp.path().join("a.log"),
            "0 stored (0 bytes), 1 already had",
        )
    });
    assert_eq!(dashcam_server::delivery::outbox_len(&out), 1);
    drop(srv); // kill -9
    assert_eq!(
        dashcam_server::delivery::outbox_len(&out),
        1,
        "the media's upload waits (its sidecar's follows it)"
    );
    // The store comes back; a restarted server delivers (and removes the
    // local media once its object is confirmed), and is killed as soon as
    // the media's upload is confirmed: before, during or after its removal
    // and the sidecar's job. Then restarted once more.
    let (_store, bucket) = store(&tmp.path().join("s3"), s3_port);
    let log_b = tmp.path().join("b.log");
    let mut flags = s3_flags(s3_port, "");
    flags.push("--s3-delete-local".into());
    let (srv, _) = server(&out, &log_b, &flags);
    wait_for("the media's upload", || log_has(&log_b, "uploaded "));
    drop(srv);
    let log_c = tmp.path().join("c.log");
    let (_srv, addr_c) = server(&out, &log_c, &flags);
    outbox_empties(&out);
    let name = local[0].file_name().unwrap().to_str().unwrap();
    assert_eq!(
        bucket.get(&format!("{imei}/{name}")).unwrap(),
        content(20 << 20, 3),
        "byte-exact in the bucket"
    );
    wait_for("the local media removed", || !local[0].exists());
    assert!(
        local[0].with_extension("json").exists(),
        "the sidecar stays"
    );
    // Nothing else in the bucket under that camera (no second copy under another name).
    let objects: Vec<PathBuf> = all_files(&tmp.path().join("s3").join("fleet"));
    assert_eq!(objects.len(), 2, "the media and its sidecar: {objects:?}");
    // The camera offers the video again: it is known (its sidecar records
    // the removal), so it is neither stored nor uploaded a second time.
    assert_eq!(sidecar_of(&local[0]).removed_locally[0].why, "uploaded");
    let cam = camera(addr_c, imei, vec![(FileKind::VideoFront, video)]);
    assert!(run_camera(&cam).unwrap().complete);
    assert_eq!(
        session_end(&log_c, imei),
        "0 stored (0 bytes), 1 already had"
    );
    assert!(media(&out, imei).is_empty(), "{:?}", media(&out, imei));
    assert_eq!(
        dashcam_server::delivery::outbox_len(&out),
        0,
        "nothing queued"
    );
}

#[test]
#[cfg_attr(
    not(have_chromium),
    ignore = "needs chromium on PATH (apt install chromium)"
)]
fn the_gallery_is_served_over_http_with_a_token_and_opens_in_a_browser() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let http = free_port();
    let haddr: SocketAddr = format!("127.0.0.1:{http}").parse().unwrap();
    let (_srv, addr) = server(
        &out,
        &tmp.path().join("s.log"),
        &["--http-bind".into(), haddr.to_string()],
    );
    let imei = 350612071913859u64;
    let photo = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/photo.jpg");
    let cam = camera(addr, imei, vec![(FileKind::PhotoFront, photo)]);
    assert!(run_camera(&cam).unwrap().complete);
    let stored = media(&out, imei);
    let name = stored[0].file_name().unwrap().to_str().unwrap().to_string();
    wait_for("the gallery page", || {
        std::fs::read_to_string(out.join("index.html")).is_ok_and(|t| t.contains(&imei.to_string()))
    });
    // Every link and image of the page is served (thumbnails, media, sidecars).
    let page = std::fs::read_to_string(out.join("index.html")).unwrap();
    let mut links = 0;
    for attr in ["src=\"", "href=\""] {
        for part in page.split(attr).skip(1) {
            let target = part.split('"').next().unwrap();
            if target.starts_with("http") || target.starts_with('#') || target.starts_with("data:")
            {
                continue;
            }
            let target = target.replace("&amp;", "&");
            let (code, _) = http_get(haddr, &format!("/{target}"), None);
            assert_eq!(code, 200, "{target}");
            links += 1;
        }
    }
    assert!(links >= 2, "the page links its files: {page}");
    let (code, bytes) = http_get(haddr, &format!("/{imei}/{name}"), None);
    assert_eq!((code, bytes), (200, std::fs::read(&stored[0]).unwrap()));
    for bad in ["/../etc/passwd", "/.outbox/", &format!("/{imei}/.partial/")] {
        assert_eq!(http_get(haddr, bad, None).0, 404, "{bad}");
    }
    let dom = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
        .arg(format!("http://{haddr}/"))
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains(&imei.to_string()),
        "the page in the browser: {dom}"
    );
    // Beyond loopback a token is required; with one, it is asked for.
    let refused = Command::new(BIN)
        .args([
            "serve",
            "--port",
            "0",
            "--http-bind",
            "0.0.0.0:0",
            "--output-dir",
        ])
        .arg(tmp.path().join("o2"))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--http-token"));
    let http2 = free_port();
    let h2: SocketAddr = format!("127.0.0.1:{http2}").parse().unwrap();
    let (_srv2, _) = server(
        &tmp.path().join("o3"),
        &tmp.path().join("s3.log"),
        &[
            "--http-bind".into(),
            h2.to_string(),
            "--http-token".into(),
            "t0ken-t0ken-t0ken".into(),
        ],
    );
    wait_port(h2, "the HTTP endpoint");
    assert_eq!(http_get(h2, "/metrics", None).0, 401);
    assert_eq!(http_get(h2, "/metrics", Some("Bearer wrong")).0, 401);
    assert_eq!(
        http_get(h2, "/metrics", Some("Bearer t0ken-t0ken-t0ken")).0,
        200
    );
    // Basic auth, the token as the password: "tech:t0ken-t0ken-t0ken".
    assert_eq!(
        http_get(
            h2,
            "/metrics",
            Some("Basic dGVjaDp0MGtlbi10MGtlbi10MGtlbg==")
        )
        .0,
        200
    );
    assert_eq!(
        http_get(h2, "/healthz", None).0,
        200,
        "health needs no token"
    );
}

/// "Running a fleet", step 4: three instances behind the project's own
/// `deploy/haproxy.cfg`, each with its own folder, all writing into one
/// bucket: every camera's file is there once, byte-exact.
#[test]
// One attribute: two `ignore`s on one test are an error under clippy.
#[cfg_attr(
    not(all(have_s3s_fs, have_haproxy)),
    ignore = "needs s3s-fs on PATH (cargo install s3s-fs --features binary) and haproxy on PATH (apt install haproxy)"
)]
fn three_instances_behind_haproxy_write_into_one_bucket() {
    let tmp = tempfile::tempdir().unwrap();
    let s3_port = free_port();
    let (_store, bucket) = store(&tmp.path().join("s3"), s3_port);
    let outs: Vec<PathBuf> = (0..3).map(|i| tmp.path().join(format!("out{i}"))).collect();
    let mut flags = s3_flags(s3_port, "site-a");
    flags.push("--proxy-protocol".into());
    let servers: Vec<(Proc, SocketAddr)> = outs
        .iter()
        .enumerate()
        .map(|(i, o)| server(o, &tmp.path().join(format!("s{i}.log")), &flags))
        .collect();
    let front = free_port();
    let backends: Vec<SocketAddr> = servers.iter().map(|(_, a)| *a).collect();
    let cfg = haproxy_config(front, &backends);
    let cfg_path = tmp.path().join("haproxy.cfg");
    std::fs::write(&cfg_path, cfg).unwrap();
    let _haproxy = Proc(
        Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(&cfg_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let front_addr: SocketAddr = format!("127.0.0.1:{front}").parse().unwrap();
    wait_port(front_addr, "haproxy");
    let imeis: Vec<u64> = (0..6).map(|i| 350612071914000 + i).collect();
    for (i, imei) in imeis.iter().enumerate() {
        let photo = write_file(
            tmp.path(),
            &format!("p{i}.jpg"),
            &content(4000, 50 + i as u64),
        );
        let cam = camera(front_addr, *imei, vec![(FileKind::PhotoFront, photo)]);
        assert!(run_camera(&cam).unwrap().complete, "camera {imei}");
    }
    wait_for("every outbox empty", || {
        outs.iter()
            .all(|o| dashcam_server::delivery::outbox_len(o) == 0)
    });
    for imei in &imeis {
        let stored: Vec<PathBuf> = outs.iter().flat_map(|o| media(o, *imei)).collect();
        assert_eq!(stored.len(), 1, "camera {imei} stored once");
        let name = stored[0].file_name().unwrap().to_str().unwrap();
        assert_eq!(
            bucket.get(&format!("site-a/{imei}/{name}")).unwrap(),
            std::fs::read(&stored[0]).unwrap()
        );
    }
    let used = outs
        .iter()
        .filter(|o| imeis.iter().any(|i| !media(o, *i).is_empty()))
        .count();
    assert!(
        used >= 2,
        "the cameras spread over the instances ({used} used)"
    );
}

/// `--keep-days 2`: media older than two days goes (its sidecar stays and
/// records it), a newer one stays; with S3 on, only a file whose sidecar
/// records its upload goes: not one whose upload still waits, nor one stored
/// before S3 was on. A camera that offers a removed file again is told it is
/// stored; it is not stored a second time, nor after a restart.
#[test]
#[cfg_attr(
    not(have_s3s_fs),
    ignore = "needs s3s-fs on PATH (cargo install s3s-fs --features binary)"
)]
fn keep_days_removes_old_media_but_never_one_not_uploaded_yet() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let send = |addr: SocketAddr, imei: u64, seed: u64| {
        let photo = write_file(tmp.path(), &format!("p{seed}.jpg"), &content(3000, seed));
        assert!(
            run_camera(&camera(addr, imei, vec![(FileKind::PhotoFront, photo)]))
                .unwrap()
                .complete
        );
        media(&out, imei).pop().unwrap()
    };
    // Two cameras' files stored without S3.
    let (old, new) = {
        let (_srv, addr) = server(&out, &tmp.path().join("a.log"), &[]);
        (
            send(addr, 350612071915001, 1),
            send(addr, 350612071915002, 2),
        )
    };
    // A third camera's file is uploaded; a fourth's waits (its store is down).
    let live = free_port();
    let uploaded = {
        let (_store, _) = store(&tmp.path().join("s3"), live);
        let (_srv, addr) = server(&out, &tmp.path().join("b.log"), &s3_flags(live, ""));
        let f = send(addr, 350612071915003, 3);
        outbox_empties(&out);
        f
    };
    let dead = free_port();
    let waiting = {
        let (_srv, addr) = server(&out, &tmp.path().join("c.log"), &s3_flags(dead, ""));
        send(addr, 350612071915004, 4)
    };
    for (f, days) in [(&old, 3), (&new, 1), (&uploaded, 3), (&waiting, 3)] {
        age(f, days);
    }
    let keep = ["--keep-days".to_string(), "2".to_string()];
    // With S3 on but the store unreachable: nothing goes, not even the
    // uploaded one, since the store cannot show that it holds it (HEAD).
    let log = tmp.path().join("d.log");
    let mut flags = s3_flags(dead, "");
    flags.extend(keep.clone());
    {
        let (_srv, _) = server(&out, &log, &flags);
        wait_for("the sweep", || {
            log_has(
                &log,
                "kept locally: the store does not show its object as sent",
            )
        });
    }
    assert!(uploaded.exists(), "the store cannot confirm it: kept");
    assert!(waiting.exists(), "an upload still waiting keeps its file");
    // With the store back: only the uploaded one goes (HEAD shows it as sent).
    let log = tmp.path().join("d2.log");
    let mut flags = s3_flags(live, "");
    flags.extend(keep.clone());
    {
        let (_store, _) = store(&tmp.path().join("s3"), live);
        let (_srv, _) = server(&out, &log, &flags);
        wait_for("the sweep", || log_has(&log, "--keep-days 2: removed"));
    }
    assert!(!uploaded.exists(), "old, uploaded and confirmed: removed");
    assert!(
        old.exists(),
        "stored before S3 was on, never uploaded: kept"
    );
    assert!(new.exists(), "newer media stays");
    assert_eq!(sidecar_of(&uploaded).removed_locally[0].why, "keep-days");
    // Without S3: every old file goes.
    let log = tmp.path().join("e.log");
    let (srv, addr) = server(&out, &log, &keep);
    wait_for("the sweep", || log_has(&log, "--keep-days 2: removed"));
    assert!(!old.exists() && !waiting.exists(), "old media removed");
    assert!(old.with_extension("json").exists(), "its sidecar stays");
    assert!(new.exists(), "newer media stays");
    let sc = sidecar_of(&old);
    assert_eq!(sc.removed_locally.len(), 1, "{sc:?}");
    assert_eq!(sc.removed_locally[0].why, "keep-days");
    // The camera still has the old photo and offers it again: it is known,
    // not stored a second time (nor after a restart).
    let cam = 350612071915001;
    let again = || vec![(FileKind::PhotoFront, tmp.path().join("p1.jpg"))];
    assert!(run_camera(&camera(addr, cam, again())).unwrap().complete);
    assert_eq!(session_end(&log, cam), "0 stored (0 bytes), 1 already had");
    assert!(log_has(
        &log,
        "its local copy was removed on purpose): not stored again"
    ));
    drop(srv);
    let log_f = tmp.path().join("f.log");
    let (_srv, addr) = server(&out, &log_f, &[]);
    assert!(run_camera(&camera(addr, cam, again())).unwrap().complete);
    assert_eq!(
        session_end(&log_f, cam),
        "0 stored (0 bytes), 1 already had"
    );
    assert!(media(&out, cam).is_empty(), "{:?}", media(&out, cam));
    assert_eq!(sidecar_of(&old), sc, "its sidecar is the first download's");
}

/// SIGHUP reloads the allow-list and reopens the log file (logrotate's
/// `create` mode: the old file renamed, a new one opened under the name);
/// `--log-format json` writes one JSON object per line, the first naming
/// the version and the options in effect.
#[test]
#[cfg(unix)]
fn sighup_reloads_the_allow_list_and_reopens_a_json_log() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (a, b) = (350612071916001u64, 350612071916002u64);
    let allow = tmp.path().join("allow.txt");
    std::fs::write(&allow, format!("{a}\n")).unwrap();
    let log = tmp.path().join("logs/server.log");
    let flags: Vec<String> = vec![
        "--allow-file".into(),
        allow.to_str().unwrap().into(),
        "--log-file".into(),
        log.to_str().unwrap().into(),
        "--log-format".into(),
        "json".into(),
    ];
    let (srv, addr) = server(&out, &tmp.path().join("stderr.log"), &flags);
    let send = |imei: u64, seed: u64| {
        let photo = write_file(tmp.path(), &format!("p{seed}.jpg"), &content(2000, seed));
        let _ = run_camera(&camera(addr, imei, vec![(FileKind::PhotoFront, photo)]));
        media(&out, imei).len()
    };
    assert_eq!(send(a, 1), 1);
    assert_eq!(send(b, 2), 0, "not in the allow-list yet");
    std::fs::write(&allow, format!("{a}\n{b}\n")).unwrap();
    let rotated = tmp.path().join("logs/server.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    let pid = srv.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    wait_for("the reload", || {
        log_has(&log, "allow-list reloaded: 2 IMEI(s)")
    });
    assert_eq!(send(b, 3), 1, "served after the reload");
    let mut lines = Vec::new();
    for f in [&rotated, &log] {
        for l in std::fs::read_to_string(f).unwrap().lines() {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"));
            assert!(v["ts"].is_string() && v["level"].is_string(), "{l}");
            lines.push(v["msg"].as_str().unwrap().to_string());
        }
    }
    assert!(
        lines[0].starts_with(&format!(
            "dashcam-server {} starting",
            dashcam_server::cli::VERSION
        )),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains("allow-list"),
        "the options in effect: {}",
        lines[0]
    );
}

/// A refused file is an event too: the platform learns it is not coming.
#[test]
fn a_refused_file_sends_a_refused_event() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let hook = receiver(0);
    let flags: Vec<String> = vec![
        "--webhook".into(),
        hook.url.clone(),
        "--max-file-mb".into(),
        "1".into(),
    ];
    let (_srv, addr) = server(&out, &tmp.path().join("s.log"), &flags);
    let imei = 350612071917001u64;
    let video = write_file(tmp.path(), "big.h265", &content(2 << 20, 7));
    let _ = run_camera(&camera(addr, imei, vec![(FileKind::VideoFront, video)]));
    let (h, body) = hook
        .rx
        .recv_timeout(Duration::from_secs(20))
        .expect("an event");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["event"], "refused", "{v}");
    assert_eq!(v["imei"], imei.to_string());
    assert_eq!(v["file"], "%videof");
    assert_eq!(header(&h, "idempotency-key"), v["id"].as_str().unwrap());
    assert!(v["reason"].as_str().unwrap().contains("max-file-mb"), "{v}");
    assert!(media(&out, imei).is_empty());
}

/// An event survives a kill -9 while its receiver refuses it: after the
/// restart it arrives, with the id it had (a receiver drops repeats by it).
#[test]
fn an_event_survives_a_kill_while_the_receiver_is_down() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let hook = receiver(2);
    let mut flags: Vec<String> = vec!["--webhook".into(), hook.url.clone()];
    flags.extend(["--retry-max".to_string(), "1".to_string()]);
    let log_a = tmp.path().join("a.log");
    let (srv, addr) = server(&out, &log_a, &flags);
    let imei = 350612071918001u64;
    let photo = write_file(tmp.path(), "r.jpg", &content(2500, 11));
    assert!(
        run_camera(&camera(addr, imei, vec![(FileKind::PhotoRear, photo)]))
            .unwrap()
            .complete
    );
    wait_for("a refused delivery", || log_has(&log_a, "failed (attempt"));
    drop(srv); // kill -9
    assert_eq!(dashcam_server::delivery::outbox_len(&out), 1);
    let (_srv, _) = server(&out, &tmp.path().join("b.log"), &flags);
    let (h, body) = hook
        .rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the event after the restart");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let stored = media(&out, imei);
    let name = stored[0].file_name().unwrap().to_str().unwrap();
    assert_eq!(v["path"], format!("{imei}/{name}"));
    assert_eq!(
        header(&h, "idempotency-key"),
        format!(
            "{imei}/{name}:{}",
            sidecar_json(&stored[0])["sha256"].as_str().unwrap()
        )
    );
    outbox_empties(&out);
}

/// With --convert mp4 the mp4 is announced too: a "converted" event after
/// the "stored" one, naming the mp4 and its source.
#[test]
#[cfg_attr(
    not(have_ffmpeg),
    ignore = "needs ffmpeg and ffprobe on PATH (apt install ffmpeg)"
)]
fn a_converted_mp4_sends_a_converted_event() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let hook = receiver(0);
    let flags: Vec<String> = vec![
        "--webhook".into(),
        hook.url.clone(),
        "--convert".into(),
        "mp4".into(),
        "--metadata".into(),
        "1".into(),
        "--gallery".into(),
        "false".into(),
    ];
    let (_srv, addr) = server(&out, &tmp.path().join("s.log"), &flags);
    let imei = 350612071919001u64;
    let clip = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/camera.h265");
    let mut cam = camera(addr, imei, vec![(FileKind::VideoFront, clip)]);
    cam.frame_rate = 20;
    let report = run_camera(&cam);
    assert!(
        report.as_ref().is_ok_and(|r| r.complete),
        "{report:?}\n{}",
        std::fs::read_to_string(tmp.path().join("s.log")).unwrap()
    );
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        let (_, body) = hook
            .rx
            .recv_timeout(Duration::from_secs(60))
            .expect("an event");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        kinds.push(v["event"].as_str().unwrap().to_string());
        if v["event"] == "converted" {
            let stored = media(&out, imei);
            let name = stored[0].file_name().unwrap().to_str().unwrap();
            assert_eq!(v["source"], format!("{imei}/{name}"));
            let mp4 = v["path"].as_str().unwrap();
            assert!(mp4.ends_with(".mp4") && out.join(mp4).is_file(), "{v}");
        }
    }
    kinds.sort();
    assert_eq!(kinds, ["converted", "stored"]);
}

/// An outbox that cannot take a job (here a file stands where its folder
/// was): the file is stored, but the camera is not told (CLOSE), so it
/// keeps it; sent again once the outbox works, it is known (stored once) and
/// its event goes out.
#[test]
fn a_file_whose_delivery_cannot_be_queued_is_not_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let hook = receiver(0);
    let flags: Vec<String> = vec!["--webhook".into(), hook.url.clone()];
    let (_srv, addr) = server(&out, &tmp.path().join("s.log"), &flags);
    // The listener is up before the outbox is opened: wait for it.
    let outbox = out.join(".outbox");
    wait_for("the outbox", || outbox.is_dir());
    std::fs::remove_dir_all(&outbox).unwrap();
    std::fs::write(&outbox, b"not a folder").unwrap();
    let imei = 350612071920001u64;
    let photo = write_file(tmp.path(), "p.jpg", &content(2200, 21));
    let cam = camera(addr, imei, vec![(FileKind::PhotoFront, photo)]);
    let r = run_camera(&cam).unwrap();
    assert!(
        !r.complete,
        "the camera was not told its file is stored: {r:?}"
    );
    assert_eq!(media(&out, imei).len(), 1, "stored here all the same");
    assert!(hook.rx.try_recv().is_err(), "no event yet");
    std::fs::remove_file(&outbox).unwrap();
    assert!(run_camera(&cam).unwrap().complete);
    let (_, body) = hook
        .rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the event once the outbox works");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["event"], "stored");
    assert_eq!(media(&out, imei).len(), 1, "stored once");
}

/// The checksum is one the store checks: a PUT whose SHA-256 does not match
/// its bytes is refused (and nothing is stored under the key); the right one
/// is taken, whole or in parts.
#[test]
#[cfg_attr(
    not(have_s3s_fs),
    ignore = "needs s3s-fs on PATH (cargo install s3s-fs --features binary)"
)]
fn the_store_checks_each_uploads_sha256() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let (_store, bucket) = store(&tmp.path().join("s3"), port);
    let bytes = content(5000, 31);
    let f = write_file(tmp.path(), "f.bin", &bytes);
    let mut file = std::fs::File::open(&f).unwrap();
    let wrong = dashcam_server::storage::Sha256Digest([0; 32]);
    let refused = bucket.put_file("1/wrong.bin", &mut file, 5000, Some(wrong));
    assert!(refused.is_err(), "a wrong SHA-256 must be refused");
    assert!(
        bucket.get("1/wrong.bin").is_err(),
        "nothing stored under it"
    );
    bucket
        .put_file("1/right.bin", &mut file, 5000, None)
        .unwrap();
    assert_eq!(bucket.get("1/right.bin").unwrap(), bytes);
    let empty = write_file(tmp.path(), "e.bin", b"");
    let mut e = std::fs::File::open(&empty).unwrap();
    bucket.put_file("1/empty.bin", &mut e, 0, None).unwrap();
    assert_eq!(bucket.get("1/empty.bin").unwrap(), b"");
}

/// A TCP relay to `to` that passes at most `budget` bytes from its clients,
/// then stops reading from them (an upload stalled part-way, as a link that
/// died). Stopped, with its connections, when dropped.
struct Relay {
    addr: SocketAddr,
    passed: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes the accept
    }
}

fn relay(to: SocketAddr, budget: u64) -> Relay {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let passed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (p, s) = (passed.clone(), stop.clone());
    std::thread::spawn(move || {
        for client in listener.incoming() {
            if s.load(Ordering::SeqCst) {
                return;
            }
            let Ok(mut client) = client else { continue };
            let Ok(mut store) = TcpStream::connect(to) else {
                continue;
            };
            let (mut back_from, mut back_to) =
                (store.try_clone().unwrap(), client.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut back_from, &mut back_to);
            });
            let (p, s) = (p.clone(), s.clone());
            std::thread::spawn(move || {
                use std::io::Write;
                client
                    .set_read_timeout(Some(Duration::from_millis(100)))
                    .unwrap();
                let mut buf = vec![0u8; 64 * 1024];
                while !s.load(Ordering::SeqCst) {
                    let room = budget.saturating_sub(p.load(Ordering::SeqCst));
                    if room == 0 {
                        // Stalled: nothing more is read until the relay stops.
                        std::thread::park_timeout(Duration::from_millis(100));
                        continue;
                    }
                    let want = buf.len().min(room as usize);
                    match client.read(&mut buf[..want]) {
                        Ok(0) => break,
                        Ok(n) => {
                            if store.write_all(&buf[..n]).is_err() {
                                break;
                            }
                            p.fetch_add(n as u64, Ordering::SeqCst);
                        }
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) => {}
                        Err(_) => break,
                    }
                }
                let _ = store.shutdown(std::net::Shutdown::Both);
                let _ = client.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    Relay { addr, passed, stop }
}

/// A kill -9 in the middle of a multipart upload: the store keeps the parts
/// it got; the next start tells it to drop them (the upload's id was noted
/// beside the job), then uploads the file whole: byte-exact, one object,
/// no parts left behind on the store.
#[test]
#[cfg_attr(
    not(have_s3s_fs),
    ignore = "needs s3s-fs on PATH (cargo install s3s-fs --features binary)"
)]
fn a_multipart_upload_cut_off_by_a_kill_is_aborted_then_done_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let s3_port = free_port();
    let s3_dir = tmp.path().join("s3");
    let (_store, bucket) = store(&s3_dir, s3_port);
    let store_addr: SocketAddr = format!("127.0.0.1:{s3_port}").parse().unwrap();
    // The first part (8 MiB) gets through, the second stalls.
    let cut = relay(store_addr, 10 << 20);
    let out = tmp.path().join("out");
    let imei = 350612071915101u64;
    let mut flags = s3_flags(s3_port, "");
    flags[1] = format!("http://{}", cut.addr);
    let log_a = tmp.path().join("a.log");
    let (srv, addr) = server(&out, &log_a, &flags);
    let body = content(20 << 20, 11);
    let video = write_file(tmp.path(), "v.h265", &body);
    assert!(
        run_camera(&camera(addr, imei, vec![(FileKind::VideoFront, video)]))
            .unwrap()
            .complete
    );
    let noted = || {
        std::fs::read_dir(out.join(".outbox"))
            .unwrap()
            .flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "multipart"))
    };
    let parts_on_store = || {
        std::fs::read_dir(&s3_dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".upload"))
            .count()
    };
    wait_for("the upload to stall in its second part", || {
        noted() && cut.passed.load(std::sync::atomic::Ordering::SeqCst) >= 10 << 20
    });
    wait_for("the first part on the store", || parts_on_store() >= 2);
    drop(srv); // kill -9 mid-upload
    drop(cut);
    // The next start, straight to the store.
    let log_b = tmp.path().join("b.log");
    let (_srv, _) = server(&out, &log_b, &s3_flags(s3_port, ""));
    outbox_empties(&out);
    assert!(
        log_has(&log_b, "aborted the cut-off multipart upload"),
        "{}",
        std::fs::read_to_string(&log_b).unwrap()
    );
    let name = media(&out, imei)[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(bucket.get(&format!("{imei}/{name}")).unwrap(), body);
    assert_eq!(parts_on_store(), 0, "no part left on the store");
    assert!(!noted(), "the note goes with its job");
}

/// `--convert mp4 --s3-delete-local`: the video's upload is confirmed long
/// before ffmpeg is done, but the local video stays until its mp4 is made
/// (the converter needs it); then both objects are in the bucket, the mp4
/// is kept locally, and the video goes.
#[test]
// One attribute: two `ignore`s on one test are an error under clippy.
#[cfg_attr(
    not(all(have_s3s_fs, have_ffmpeg)),
    ignore = "needs s3s-fs on PATH (cargo install s3s-fs --features binary) and ffmpeg and ffprobe on PATH (apt install ffmpeg)"
)]
fn delete_local_waits_for_the_conversion() {
    let tmp = tempfile::tempdir().unwrap();
    let s3_port = free_port();
    let (_store, bucket) = store(&tmp.path().join("s3"), s3_port);
    let out = tmp.path().join("out");
    let mut flags = s3_flags(s3_port, "");
    flags.extend(
        [
            "--s3-delete-local",
            "--convert",
            "mp4",
            "--gallery",
            "false",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let (_srv, addr) = server(&out, &tmp.path().join("s.log"), &flags);
    // Three cameras at once: one conversion at a time, so the last videos'
    // uploads are confirmed while they still wait for ffmpeg.
    let clip = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/camera.h265");
    let imeis = [350612071919101u64, 350612071919102, 350612071919103];
    std::thread::scope(|s| {
        for imei in imeis {
            let clip = clip.clone();
            s.spawn(move || {
                let mut cam = camera(addr, imei, vec![(FileKind::VideoFront, clip)]);
                cam.frame_rate = 20;
                assert!(run_camera(&cam).unwrap().complete);
            });
        }
    });
    for imei in imeis {
        // Found by its sidecar: the video itself may be gone already.
        let sidecar = std::fs::read_dir(out.join(imei.to_string()))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "json"))
            .expect("stored");
        let video = sidecar.with_extension("h265");
        wait_for("the conversion and both uploads", || {
            let sc: dashcam_server::storage::Sidecar =
                serde_json::from_slice(&std::fs::read(&sidecar).unwrap()).unwrap();
            (sc.mp4.is_some() || sc.conversion_error.is_some()) && sc.uploaded.len() == 2
        });
        let sc = sidecar_of(&video);
        assert_eq!(sc.conversion_error, None, "{imei}");
        let mp4 = sc.mp4.clone().unwrap();
        wait_for("the local video removed", || !video.exists());
        assert!(video.with_file_name(&mp4).is_file(), "the mp4 stays");
        let name = video.file_name().unwrap().to_str().unwrap();
        assert_eq!(
            bucket.get(&format!("{imei}/{name}")).unwrap(),
            std::fs::read(&clip).unwrap()
        );
        assert!(bucket.get(&format!("{imei}/{mp4}")).is_ok());
    }
    outbox_empties(&out);
}

/// An ADAS camera names its videos `.mp4`; its conversion is
/// `X.converted.mp4`. Both uploads are recorded on X's sidecar (not on a
/// `X.converted.json` that does not exist), `--keep-days` removes the mp4
/// with its original once the store shows both, and the gallery then shows
/// each as only in the bucket, with its key, and links neither.
#[test]
// One attribute: two `ignore`s on one test are an error under clippy.
#[cfg_attr(
    not(all(have_s3s_fs, have_ffmpeg)),
    ignore = "needs s3s-fs on PATH (cargo install s3s-fs --features binary) and ffmpeg and ffprobe on PATH (apt install ffmpeg)"
)]
fn an_adas_videos_mp4_is_recorded_removed_with_it_and_shown_as_in_the_bucket() {
    let tmp = tempfile::tempdir().unwrap();
    let s3_port = free_port();
    let (_store, bucket) = store(&tmp.path().join("s3"), s3_port);
    let out = tmp.path().join("out");
    let imei = 350612071919201u64;
    let clip = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/camera.h265");
    let log = tmp.path().join("a.log");
    let sidecar = {
        let mut flags = s3_flags(s3_port, "");
        flags.extend(["--convert", "mp4", "--gallery", "false"].map(String::from));
        let (_srv, addr) = server(&out, &log, &flags);
        let mut cam = camera(addr, imei, Vec::new());
        cam.family = dashcam_server::codec::Family::Adas;
        cam.paths = vec![(b"/mnt/sd/mdas9/video/0001.mp4".to_vec(), clip.clone())];
        assert!(run_camera(&cam).unwrap().complete);
        let sidecar = std::fs::read_dir(out.join(imei.to_string()))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "json"))
            .expect("stored");
        assert!(sidecar.with_extension("mp4").is_file(), "stored as .mp4");
        wait_for("the conversion and both uploads", || {
            let sc: dashcam_server::storage::Sidecar =
                serde_json::from_slice(&std::fs::read(&sidecar).unwrap()).unwrap();
            sc.uploaded.len() == 2 || sc.conversion_error.is_some()
        });
        outbox_empties(&out);
        sidecar
    };
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("cannot record the upload"), "{text}");
    assert!(!out
        .join(imei.to_string())
        .read_dir()
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().ends_with(".converted.json")));
    let sc: dashcam_server::storage::Sidecar =
        serde_json::from_slice(&std::fs::read(&sidecar).unwrap()).unwrap();
    let video = sidecar.with_extension("mp4");
    let mp4 = video.with_file_name(sc.mp4.clone().expect("converted"));
    assert!(mp4.to_string_lossy().ends_with(".converted.mp4"));
    let mp4_name = mp4.file_name().unwrap().to_str().unwrap().to_string();
    let up = sc
        .uploaded
        .iter()
        .find(|u| u.file == mp4_name)
        .expect("the mp4's upload recorded");
    assert_eq!(bucket.get(&up.key).unwrap(), std::fs::read(&mp4).unwrap());
    // Three days later, --keep-days 2 removes both once the store shows them.
    age(&video, 3);
    age(&mp4, 3);
    let log = tmp.path().join("b.log");
    let mut flags = s3_flags(s3_port, "");
    flags.extend(["--keep-days", "2", "--gallery", "false"].map(String::from));
    {
        let (_srv, _) = server(&out, &log, &flags);
        wait_for("the sweep", || {
            log_has(&log, "--keep-days 2: removed 2 file(s)")
        });
    }
    assert!(!video.exists() && !mp4.exists(), "both removed");
    let sc: dashcam_server::storage::Sidecar =
        serde_json::from_slice(&std::fs::read(&sidecar).unwrap()).unwrap();
    assert_eq!(sc.removed_locally.len(), 2, "{sc:?}");
    // The gallery: still listed, each file shown as in the bucket, no link to either.
    let o = Command::new(BIN)
        .args(["gallery", "--output-dir"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success());
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    let video_name = video.file_name().unwrap().to_str().unwrap();
    for (name, label) in [(video_name, "raw"), (mp4_name.as_str(), "mp4")] {
        assert!(
            !html.contains(&format!("href=\"{imei}/{name}\"")),
            "{name} linked:\n{html}"
        );
        let key = sc
            .uploaded
            .iter()
            .find(|u| u.file == name)
            .unwrap()
            .key
            .clone();
        assert!(
            html.contains(&format!(
                "{label}: only in the bucket, <span class=\"mono\">s3://fleet/{key}</span>"
            )),
            "{name}:\n{html}"
        );
    }
    assert!(!html.contains("<video"), "no player for a removed mp4");
}
