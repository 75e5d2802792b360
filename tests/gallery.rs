//! The gallery: every stored file with its thumbnail, checked in a real
//! headless browser (chromium; CI installs it): the images load, and the
//! screenshot is not blank where they are.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use dashcam_server::codec::FileKind;
use dashcam_server::simulator::run_camera;

const IMEI: u64 = 350612071913857;
const BIN: &str = env!("CARGO_BIN_EXE_dashcam-server");

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples")
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

fn browser(bin: &str, profile: &Path) -> Command {
    let mut c = Command::new(bin);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        "--window-size=1400,1000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

/// `data-name="value"` attributes of every `<img ... class="thumb"` tag.
fn thumbs_in(dom: &str) -> Vec<(String, String)> {
    dom.split("<img")
        .skip(1)
        .filter(|t| t.contains("class=\"thumb"))
        .map(|t| {
            let attr = |name: &str| {
                t.split(&format!("{name}=\""))
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                    .unwrap_or("")
                    .to_string()
            };
            (attr("data-loaded"), attr("data-rect"))
        })
        .collect()
}

#[test]
#[cfg_attr(
    not(all(have_ffmpeg, have_chromium)),
    ignore = "needs ffmpeg (thumbnails) and chromium (the browser) on PATH"
)]
#[allow(
    clippy::too_many_lines,
    reason = "one scenario read top to bottom: its steps share the server and camera they set up"
)]
fn the_gallery_shows_every_file_and_a_browser_renders_its_thumbnails() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |c| c.session.metadata = true);
    let mut cam = srv.sim(IMEI);
    cam.frame_rate = 30;
    cam.files = vec![
        (FileKind::VideoFront, samples().join("front.h265")),
        (FileKind::VideoRear, samples().join("rear.h265")),
        (FileKind::PhotoFront, samples().join("photo.jpg")),
    ];
    assert!(run_camera(&cam).unwrap().complete);
    let mut adas = srv.sim(IMEI + 1);
    adas.family = dashcam_server::codec::Family::Adas;
    adas.paths = vec![(
        b"/mnt/sd/mdas9/picture/<1>.jpg".to_vec(),
        samples().join("photo.jpg"),
    )];
    assert!(run_camera(&adas).unwrap().complete);
    srv.shutdown();

    let o = Command::new(BIN)
        .args(["gallery", "--output-dir"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("4 file(s)"));
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    let stored: Vec<PathBuf> = [IMEI, IMEI + 1]
        .iter()
        .flat_map(|i| media(&out, *i))
        .collect();
    assert_eq!(stored.len(), 4);
    for f in &stored {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(html.contains(&name), "{name} missing from the gallery");
        let sc = sidecar_of(f);
        assert!(
            html.contains(&format!("0x{:04X}", sc.crc16)) && html.contains(&sc.sha256.hex()),
            "{name}: CRC and SHA-256 shown"
        );
        // Every file has its thumbnail, made by ffmpeg.
        let thumb = out
            .join(".thumbs")
            .join(f.parent().unwrap().file_name().unwrap())
            .join(format!("{}.jpg", f.file_stem().unwrap().to_string_lossy()));
        assert!(thumb.exists(), "no thumbnail {}", thumb.display());
    }
    // Device text is escaped, never markup.
    assert!(html.contains("/mnt/sd/mdas9/picture/&lt;1&gt;.jpg"));
    assert!(html.contains("openstreetmap.org/?mlat=54.700418"));
    assert!(html.contains("camera time") && html.contains("+02:00"));

    let chrome = chromium().expect("chromium on PATH");
    let url = format!("file://{}", out.join("index.html").display());
    let profile = tempfile::tempdir().unwrap();
    let dom = browser(chrome, profile.path())
        .args(["--virtual-time-budget=5000", "--dump-dom"])
        .arg(&url)
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    assert!(
        dom.contains("data-ready=\"1\""),
        "the page's load handler did not run"
    );
    assert!(!dom.contains("thumb broken"), "a thumbnail failed to load");
    let thumbs = thumbs_in(&dom);
    assert_eq!(thumbs.len(), 4, "{dom}");
    assert_eq!(
        thumbs.iter().filter(|t| t.0 == "1").count(),
        4,
        "every thumbnail (or placeholder) loaded: {thumbs:?}"
    );
    let shot = tmp.path().join("gallery.png");
    let profile = tempfile::tempdir().unwrap();
    let o = browser(chrome, profile.path())
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        shot.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let img = image::open(&shot).unwrap().to_rgb8();
    // Where each image is, the screenshot holds a picture: many colours, not
    // a flat box or the grey "no preview" placeholder (which has about 30).
    let mut pictures = 0;
    for (_, rect) in &thumbs {
        let v: Vec<u32> = rect.split(',').filter_map(|x| x.parse().ok()).collect();
        let [x, y, w, h] = v[..] else {
            panic!("bad rect {rect}")
        };
        if y + h > img.height() || x + w > img.width() {
            continue; // below the fold of the screenshot
        }
        let mut colours = std::collections::HashSet::new();
        for yy in y..y + h {
            for xx in x..x + w {
                colours.insert(img.get_pixel(xx, yy).0);
            }
        }
        eprintln!("thumbnail at {rect}: {} colours", colours.len());
        if colours.len() >= 64 {
            pictures += 1;
        }
    }
    assert!(
        pictures >= 3,
        "only {pictures} thumbnails rendered as pictures"
    );
    // A flat area of the page stays flat: the measure can tell the difference.
    let mut margin = std::collections::HashSet::new();
    for yy in 0..5 {
        for xx in 1300..1390 {
            margin.insert(img.get_pixel(xx, yy).0);
        }
    }
    assert!(
        margin.len() <= 2,
        "page background is not flat: {}",
        margin.len()
    );
    if std::env::var_os("DASHCAM_UPDATE_DOCS").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::copy(&shot, docs.join("gallery.png")).unwrap();
    }
}

/// A video with no decodable frame gets the placeholder, and is not sent to
/// ffmpeg again at every rebuild.
#[test]
fn a_file_without_a_thumbnail_shows_the_placeholder_and_is_not_retried() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |_| {});
    let mut cam = srv.sim(IMEI);
    cam.files = vec![(
        FileKind::VideoFront,
        write_file(tmp.path(), "x.h265", &content(4000, 9)),
    )];
    assert!(run_camera(&cam).unwrap().complete);
    srv.shutdown();
    assert_eq!(dashcam_server::tools::gallery::build(&out).unwrap(), 1);
    let f = &media(&out, IMEI)[0];
    let stem = f.file_stem().unwrap().to_string_lossy().into_owned();
    let thumbs = out.join(".thumbs").join(IMEI.to_string());
    assert!(!thumbs.join(format!("{stem}.jpg")).exists());
    assert!(
        thumbs.join(format!("{stem}.none")).exists(),
        "the failure is remembered"
    );
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(html.contains("no preview"));
}

/// ADAS and DSM cameras name their videos `.mp4`: such a file is a stored
/// file like any other, listed by the gallery and by `verify --dir` (it was
/// skipped as "a conversion" before storage owned the pairing rule).
#[test]
fn an_adas_mp4_is_listed_by_the_gallery_and_by_verify_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |c| c.session.metadata = true);
    let mut adas = srv.sim(IMEI + 7);
    adas.family = dashcam_server::codec::Family::Adas;
    adas.paths = vec![(
        b"/mnt/sd/mdas9/video/0001.mp4".to_vec(),
        write_file(tmp.path(), "v.mp4", &content(9000, 3)),
    )];
    assert!(run_camera(&adas).unwrap().complete);
    srv.shutdown();
    let stored = media(&out, IMEI + 7);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].extension().unwrap(), "mp4");
    let name = stored[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();

    assert_eq!(dashcam_server::tools::gallery::build(&out).unwrap(), 1);
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(html.contains(&name), "{name} missing from the gallery");

    let o = Command::new(BIN)
        .args(["verify", "--dir"])
        .arg(&out)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains(&name),
        "{name} missing from verify --dir:\n{text}"
    );
    assert!(text.contains("(1 file(s))"), "{text}");
}

/// A camera with more files than the front page shows gets its own page(s):
/// index.html stays light however many files there are.
#[test]
fn a_busy_camera_gets_its_own_pages() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |_| {});
    let mut cam = srv.sim(IMEI);
    cam.files = (0..30)
        .map(|i| {
            (
                FileKind::PhotoFront,
                write_file(tmp.path(), &format!("p{i}.jpg"), &content(1500, 300 + i)),
            )
        })
        .collect();
    assert!(run_camera(&cam).unwrap().complete);
    srv.shutdown();
    assert_eq!(dashcam_server::tools::gallery::build(&out).unwrap(), 30);
    let index = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert_eq!(index.matches("class=\"card\"").count(), 24, "the newest 24");
    let page = format!("camera-{IMEI}-1.html");
    assert!(
        index.contains(&format!("href=\"{page}\"")),
        "a link to the camera's page"
    );
    let all = std::fs::read_to_string(out.join(&page)).unwrap();
    assert_eq!(all.matches("class=\"card\"").count(), 30, "every file");
    assert!(all.contains("page 1 of 1") && all.contains("href=\"index.html\""));
    assert!(index.contains("loading=\"lazy\""));
}
