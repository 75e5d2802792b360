//! Delivery against parties that misbehave (issue 24): a store that
//! redirects (AWS's 301 PermanentRedirect, 307 while a bucket's name
//! spreads), that answers 200 and stores nothing, or that trickles its
//! answer; a webhook that redirects; hostile job files planted in the
//! outbox. Nothing local is removed that the store does not hold (checked
//! with the real store's own listing), no event is lost, and the other
//! uploads go on meanwhile.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::procs::*;
use common::*;
use dashcam_server::codec::FileKind;
use dashcam_server::simulator::run_camera;

/// A fake HTTP peer on loopback: every request is read whole (head and
/// `Content-Length` body) and answered with `answer`. Counts requests;
/// stops when dropped.
struct Fake {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

/// Reads one request (head and body) from `s`; false at the end.
fn read_request(s: &mut TcpStream) -> bool {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => return false,
        }
        if head.len() > 1 << 20 {
            return false;
        }
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let len: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    std::io::copy(&mut s.take(len), &mut std::io::sink()).is_ok()
}

fn fake(answer: String) -> Fake {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (n, st) = (requests.clone(), stop.clone());
    std::thread::spawn(move || {
        for c in l.incoming() {
            if st.load(Ordering::SeqCst) {
                return;
            }
            let Ok(mut c) = c else { continue };
            let (n, answer) = (n.clone(), answer.clone());
            std::thread::spawn(move || {
                c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                while read_request(&mut c) {
                    n.fetch_add(1, Ordering::SeqCst);
                    if c.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    Fake {
        addr,
        requests,
        stop,
    }
}

fn answer(status: &str, headers: &[(&str, String)], body: &str) -> String {
    let mut a = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        a.push_str(&format!("{k}: {v}\r\n"));
    }
    a.push_str("\r\n");
    a.push_str(body);
    a
}

fn flags_for(endpoint: &str, extra: &[&str]) -> Vec<String> {
    let mut f: Vec<String> = [
        "--s3-endpoint",
        endpoint,
        "--s3-bucket",
        "fleet",
        "--retry-max",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    f.extend(extra.iter().map(|s| s.to_string()));
    f
}

/// Every object key in s3s-fs's folder for bucket `fleet` (its own listing
/// on disk: one file per object, no part files).
fn bucket_listing(dir: &Path) -> Vec<String> {
    let root = dir.join("fleet");
    all_files(&root)
        .into_iter()
        .filter_map(|p| {
            let rel = p.strip_prefix(&root).ok()?.to_str()?.replace('\\', "/");
            (!rel.starts_with(".upload") && !rel.contains("/.upload")).then_some(rel)
        })
        .collect()
}

/// Two cameras each send a photo; returns their local paths.
fn two_photos(tmp: &Path, out: &Path, addr: SocketAddr, seed: u64) -> Vec<PathBuf> {
    (0..2)
        .map(|i| {
            let imei = 350612071916000 + seed * 10 + i;
            let photo = write_file(tmp, &format!("p{seed}-{i}.jpg"), &content(5000, seed + i));
            let mut cam = dashcam_server::simulator::SimConfig::new(addr.to_string(), imei);
            cam.files = vec![(FileKind::PhotoFront, photo)];
            cam.timeout = Duration::from_secs(60);
            assert!(run_camera(&cam).unwrap().complete);
            media(out, imei).pop().unwrap()
        })
        .collect()
}

/// A store that redirects (301 without Location, as AWS answers a bucket
/// at another region's endpoint; 307 to the real store) or answers 200 and
/// stores nothing, with `--s3-delete-local`: the files stay, nothing is
/// recorded as uploaded, the log says what to fix. Then the real store
/// takes them byte-exact, and only then do the local copies go.
#[test]
#[cfg_attr(
    not(have_s3s_fs),
    ignore = "needs s3s-fs on PATH (cargo install s3s-fs --features binary)"
)]
fn a_store_that_redirects_or_stores_nothing_never_costs_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let live = free_port();
    let s3dir = tmp.path().join("s3");
    let (_store, bucket) = store(&s3dir, live);
    let redirect_xml = "<Error><Code>PermanentRedirect</Code><Message>The bucket you are attempting to access must be addressed using the specified endpoint.</Message><Endpoint>fleet.s3.eu-west-1.amazonaws.com</Endpoint></Error>";
    let cases = [
        (
            "301",
            answer("301 Moved Permanently", &[], redirect_xml),
            "redirects are not followed",
        ),
        (
            "307",
            answer(
                "307 Temporary Redirect",
                &[("Location", format!("http://127.0.0.1:{live}/fleet/x"))],
                "",
            ),
            "redirects are not followed",
        ),
        (
            "200 storing nothing",
            answer("200 OK", &[], ""),
            "did not prove it holds the object",
        ),
    ];
    for (i, (what, reply, line)) in cases.into_iter().enumerate() {
        let out = tmp.path().join(format!("out{i}"));
        let bad = fake(reply);
        let log = tmp.path().join(format!("bad{i}.log"));
        let files = {
            let endpoint = format!("http://{}", bad.addr);
            let flags = flags_for(&endpoint, &["--s3-delete-local", "--keep-days", "1"]);
            let (_srv, addr) = server(&out, &log, &flags);
            let files = two_photos(tmp.path(), &out, addr, i as u64 * 2);
            for f in &files {
                age(f, 3);
            }
            wait_for(&format!("{what}: the failure's line"), || {
                log_has(&log, line) && bad.requests.load(Ordering::SeqCst) >= 4
            });
            files
        };
        for f in &files {
            assert!(f.exists(), "{what}: {} was removed", f.display());
            assert!(
                sidecar_of(f).uploaded.is_empty(),
                "{what}: recorded as uploaded"
            );
        }
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(!text.contains("removed locally"), "{what}: {text}");
        assert!(!text.contains("--keep-days 1: removed"), "{what}: {text}");
        if what == "307" {
            assert!(
                text.contains(&format!("127.0.0.1:{live}")),
                "names Location"
            );
        }
        assert!(
            bucket_listing(&s3dir).is_empty(),
            "{what}: {:?}",
            bucket_listing(&s3dir)
        );
        // The endpoint fixed: the real store takes them; then they go.
        let log = tmp.path().join(format!("good{i}.log"));
        let endpoint = format!("http://127.0.0.1:{live}");
        let (_srv, _) = server(&out, &log, &flags_for(&endpoint, &["--s3-delete-local"]));
        outbox_empties(&out);
        wait_for("the local copies to go", || {
            files.iter().all(|f| !f.exists())
        });
        for f in &files {
            let sc = sidecar_of(f);
            let up = &sc.uploaded[0];
            assert_eq!(
                bucket.get(&up.key).unwrap(),
                content(5000, up_seed(&files, f, i)),
                "{what}: byte-exact in the store"
            );
            assert_eq!(sc.removed_locally[0].why, "uploaded");
        }
        clean_bucket(&s3dir);
    }
}

fn up_seed(files: &[PathBuf], f: &Path, case: usize) -> u64 {
    case as u64 * 2 + files.iter().position(|x| x == f).unwrap() as u64
}

fn clean_bucket(s3dir: &Path) {
    for e in std::fs::read_dir(s3dir.join("fleet")).unwrap().flatten() {
        if e.path().is_dir() {
            std::fs::remove_dir_all(e.path()).unwrap();
        } else {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
}

/// A webhook that redirects (301, 302, 303, 307, 308 to a receiver that
/// would accept): no event counts as delivered, none leaves the outbox;
/// with the URL fixed both arrive.
#[test]
fn a_webhook_that_redirects_loses_no_event() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    // The receiver the redirects point at: it would accept anything.
    let (tx, rx) = mpsc::channel::<()>();
    let good = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for mut c in l.incoming().flatten() {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    while read_request(&mut c) {
                        let _ = tx.send(());
                        let _ = c.write_all(answer("200 OK", &[], "ok").as_bytes());
                    }
                });
            }
        });
        addr
    };
    for code in ["301", "302", "303", "307", "308"] {
        let bad = fake(answer(
            &format!("{code} Redirect"),
            &[("Location", format!("http://{good}/hook"))],
            "",
        ));
        let log = tmp.path().join(format!("{code}.log"));
        let hook = format!("http://{}/hook", bad.addr);
        let flags = ["--webhook", &hook, "--retry-max", "1"].map(String::from);
        {
            let (_srv, addr) = server(&out, &log, &flags);
            two_photos(tmp.path(), &out, addr, code.parse::<u64>().unwrap());
            wait_for("the redirect's line", || {
                log_has(&log, "redirects are not followed; fix --webhook")
                    && bad.requests.load(Ordering::SeqCst) >= 4
            });
        }
        assert!(
            rx.try_recv().is_err(),
            "{code}: an event reached the receiver by a redirect"
        );
        assert!(
            dashcam_server::delivery::outbox_len(&out) >= 2,
            "{code}: events left the outbox"
        );
    }
    // Fixed: every event (2 per code) arrives.
    let hook = format!("http://{good}/hook");
    let (_srv, _) = server(
        &out,
        &tmp.path().join("good.log"),
        &["--webhook".into(), hook],
    );
    outbox_empties(&out);
    assert_eq!(rx.try_iter().count(), 10);
}

/// A relay to `to` whose first connection trickles the answer (a byte
/// every 2 s); the others pass through.
fn trickling_relay(to: SocketAddr) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for (n, c) in l.incoming().enumerate() {
            let Ok(client) = c else { continue };
            let Ok(upstream) = TcpStream::connect(to) else {
                continue;
            };
            let (mut c_in, mut u_out) =
                (client.try_clone().unwrap(), upstream.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_in, &mut u_out);
                let _ = u_out.shutdown(Shutdown::Write);
            });
            let (mut u_in, mut c_out) = (upstream, client);
            std::thread::spawn(move || {
                if n > 0 {
                    let _ = std::io::copy(&mut u_in, &mut c_out);
                    return;
                }
                let mut b = [0u8; 1];
                while let Ok(1) = u_in.read(&mut b) {
                    if c_out.write_all(&b).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_secs(2));
                }
            });
        }
    });
    addr
}

/// A store that trickles one answer holds one worker, not delivery: the
/// other cameras' files reach the bucket meanwhile.
#[test]
#[cfg_attr(
    not(have_s3s_fs),
    ignore = "needs s3s-fs on PATH (cargo install s3s-fs --features binary)"
)]
fn a_store_that_trickles_one_answer_does_not_stop_the_others() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let live = free_port();
    let s3dir = tmp.path().join("s3");
    let (_store, _) = store(&s3dir, live);
    let relay = trickling_relay(format!("127.0.0.1:{live}").parse().unwrap());
    let log = tmp.path().join("s.log");
    let (_srv, addr) = server(&out, &log, &flags_for(&format!("http://{relay}"), &[]));
    let began = Instant::now();
    let mut files = two_photos(tmp.path(), &out, addr, 0);
    files.extend(two_photos(tmp.path(), &out, addr, 1));
    // Three of the four photos and their sidecars (6 objects) arrive while
    // the first answer still trickles (it would take minutes).
    wait_for("the other uploads", || bucket_listing(&s3dir).len() >= 6);
    assert!(
        began.elapsed() < Duration::from_secs(30),
        "{:?}",
        began.elapsed()
    );
    assert!(
        dashcam_server::delivery::outbox_len(&out) >= 1,
        "one still held"
    );
}

/// Job files planted in the outbox (a job naming a FIFO, a job that is a
/// symlink, a folder named like a job, keys with a leading '/', a '..'
/// segment or 2 KB): each is set aside with a line, none is uploaded under
/// its hostile key, and a camera's photo reaches the bucket in seconds.
#[cfg(unix)]
#[test]
#[cfg_attr(
    not(have_s3s_fs),
    ignore = "needs s3s-fs on PATH (cargo install s3s-fs --features binary)"
)]
fn planted_jobs_are_set_aside_and_never_stop_delivery() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let ob = out.join(".outbox");
    let cam = out.join("350612071917999");
    std::fs::create_dir_all(&ob).unwrap();
    std::fs::create_dir_all(&cam).unwrap();
    std::fs::write(cam.join("x.jpg"), b"a planted file").unwrap();
    assert!(std::process::Command::new("mkfifo")
        .arg(cam.join("fifo.jpg"))
        .status()
        .unwrap()
        .success());
    let job = |path: &str, key: &str| {
        serde_json::json!({"kind": "upload", "path": path, "key": key, "media": false}).to_string()
    };
    std::fs::write(
        ob.join("0000000000001-1-000001.job"),
        job("350612071917999/fifo.jpg", "fifo-key"),
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("elsewhere.job"),
        job("350612071917999/x.jpg", "via-link"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        tmp.path().join("elsewhere.job"),
        ob.join("0000000000002-1-000002.job"),
    )
    .unwrap();
    std::fs::create_dir(ob.join("0000000000003-1-000003.job")).unwrap();
    let long = "k".repeat(2048);
    let hostile = ["/absolute-key", "a/../b", long.as_str()];
    for (i, key) in hostile.iter().enumerate() {
        std::fs::write(
            ob.join(format!("000000000001{i}-1-00001{i}.job")),
            job("350612071917999/x.jpg", key),
        )
        .unwrap();
    }
    let live = free_port();
    let s3dir = tmp.path().join("s3");
    let (_store, bucket) = store(&s3dir, live);
    let log = tmp.path().join("p.log");
    let (_srv, addr) = server(
        &out,
        &log,
        &flags_for(&format!("http://127.0.0.1:{live}"), &[]),
    );
    let began = Instant::now();
    let files = two_photos(tmp.path(), &out, addr, 7);
    wait_for("the cameras' photos in the bucket", || {
        files.iter().all(|f| {
            let rel = f
                .strip_prefix(&out)
                .unwrap()
                .to_str()
                .unwrap()
                .replace('\\', "/");
            bucket.get(&rel).is_ok()
        })
    });
    assert!(
        began.elapsed() < Duration::from_secs(20),
        "{:?}",
        began.elapsed()
    );
    // Every planted job is set aside (none left as .job), with a line each.
    wait_for("the planted jobs set aside", || {
        [1, 2, 3, 10, 11, 12].iter().all(|n| {
            let stem = format!("{n:013}-1-{n:06}");
            ob.join(format!("{stem}.bad")).exists() && !ob.join(format!("{stem}.job")).exists()
        })
    });
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("a key with a leading '/'"), "{text}");
    assert!(
        text.contains("a key with an empty, '.' or '..' segment"),
        "{text}"
    );
    assert!(text.contains("a key of 2048 bytes"), "{text}");
    assert!(text.contains("is not a plain file"), "{text}");
    assert!(
        text.contains("not a plain file (a link, a folder"),
        "{text}"
    );
    let listing = bucket_listing(&s3dir);
    for bad in ["absolute-key", "b", "fifo-key", "via-link"] {
        assert!(!listing.iter().any(|k| k == bad), "{bad}: {listing:?}");
    }
    assert!(!listing.iter().any(|k| k.len() > 1024), "{listing:?}");
}

/// A store that refuses a job for good (403 AccessDenied, a few times over)
/// gets it set aside as `.failed` with an error line, so it does not retry
/// for ever in front of the others; the file stays.
#[test]
fn a_job_refused_for_good_is_set_aside_and_the_file_stays() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let denied = fake(answer(
        "403 Forbidden",
        &[],
        "<Error><Code>AccessDenied</Code></Error>",
    ));
    let log = tmp.path().join("d.log");
    let (_srv, addr) = server(
        &out,
        &log,
        &flags_for(&format!("http://{}", denied.addr), &["--s3-delete-local"]),
    );
    let files = two_photos(tmp.path(), &out, addr, 40);
    wait_for("the jobs set aside", || {
        dashcam_server::delivery::outbox_len(&out) == 0
    });
    let failed = std::fs::read_dir(out.join(".outbox"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "failed"))
        .count();
    assert_eq!(failed, 2, "both photos' jobs kept aside for a person");
    assert!(log_has(&log, "refused for good (3 times"));
    assert!(log_has(&log, "rename it back to .job"));
    for f in &files {
        assert!(f.exists(), "the file stays");
    }
}
