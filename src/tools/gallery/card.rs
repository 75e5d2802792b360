//! One file's card in the gallery: its thumbnail or player, when and where it
//! was recorded, what is local, what is only in the bucket, what is gone.

use super::*;

pub(super) fn local_time(e: &Entry) -> Option<String> {
    let tz = e.sidecar.metadata.as_ref()?.timezone_minutes?;
    let off = FixedOffset::east_opt(tz as i32 * 60)?;
    Some(
        e.when
            .with_timezone(&off)
            .format("%Y-%m-%d %H:%M:%S %:z")
            .to_string(),
    )
}

/// Where a file of this card is: a link when it is in the folder; else
/// where it went (the bucket and key its sidecar records) or why it went.
pub(super) fn whereabouts(
    root: &Path,
    e: &Entry,
    file: &Path,
    present: bool,
    label: &str,
) -> String {
    if present {
        return format!("<a href=\"{}\">{}</a>", href(root, file), esc(label));
    }
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let sc = &e.sidecar;
    let gone = sc.removed_locally.iter().find(|r| r.file == name);
    match (sc.uploaded.iter().find(|u| u.file == name), gone) {
        (Some(u), _) => format!(
            "<span class=\"gone\" title=\"removed locally{}\">{}: only in the bucket, <span class=\"mono\">s3://{}/{}</span></span>",
            gone.map_or(String::new(), |r| esc(&format!(" ({}, {})", r.why, r.at))),
            esc(label),
            esc(&u.bucket),
            esc(&u.key)
        ),
        (None, Some(r)) => format!(
            "<span class=\"gone\">{}: removed ({}, {})</span>",
            esc(label),
            esc(&r.why),
            esc(&r.at)
        ),
        (None, None) => format!("<span class=\"bad\">{}: missing</span>", esc(label)),
    }
}

pub(super) fn card(root: &Path, e: &Entry, how: &How, out: &mut String) {
    let thumb = thumbnail(root, e, how);
    let src = thumb
        .as_ref()
        .map_or(PLACEHOLDER.to_string(), |t| href(root, t));
    let sc = &e.sidecar;
    let name = e.media.file_name().unwrap_or_default().to_string_lossy();
    let img = format!(
        "<img class=\"thumb\" loading=\"lazy\" alt=\"{alt}\" src=\"{src}\" \
         onerror=\"this.onerror=null;this.classList.add('broken');this.src='{ph}'\">",
        alt = esc(&name),
        src = src,
        ph = PLACEHOLDER,
    );
    if e.present {
        let _ = write!(
            out,
            "<div class=\"card\"><a href=\"{}\">{img}</a><table>",
            href(root, &e.media)
        );
    } else {
        let _ = write!(out, "<div class=\"card removed\">{img}<table>");
    }
    let mp4 = sc.mp4.as_ref().map(|m| e.media.with_file_name(m)).map(|p| {
        let here = std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_file());
        (p, here)
    });
    // The converted mp4 plays in the page, with its sound (while it is here).
    if let Some((mp4, true)) = &mp4 {
        let poster = thumb
            .as_ref()
            .map_or(String::new(), |t| format!(" poster=\"{}\"", href(root, t)));
        let _ = write!(
            out,
            "<video class=\"clip\" controls preload=\"none\" width=\"320\" src=\"{}\"{poster}></video>",
            href(root, mp4)
        );
    }
    identity_rows(e, &name, out);
    media_rows(e, out);
    integrity_rows(e, out);
    links_row(root, e, mp4.as_ref(), out);
    out.push_str("</table></div>");
}

/// One row of a card's table; `v` is HTML already.
fn row(out: &mut String, k: &str, v: String) {
    let _ = write!(out, "<tr><td>{}</td><td>{}</td></tr>", esc(k), v);
}

/// What the file is: its names, when, which camera, why it was recorded.
fn identity_rows(e: &Entry, name: &str, out: &mut String) {
    let sc = &e.sidecar;
    let m = sc.metadata.as_ref();
    row(
        out,
        "file",
        format!("<span class=\"mono\">{}</span>", esc(name)),
    );
    row(
        out,
        "requested",
        format!("<span class=\"mono\">{}</span>", esc(&sc.file)),
    );
    row(
        out,
        "time (UTC)",
        esc(&e.when.format("%Y-%m-%d %H:%M:%S").to_string()),
    );
    if let Some(l) = local_time(e) {
        row(out, "camera time", esc(&l));
    }
    row(
        out,
        "family",
        esc(&format!(
            "{} ({} flow, protocol {})",
            sc.family,
            sc.flow.name(),
            sc.protocol_id
        )),
    );
    if let Some(c) = sc.camera {
        row(out, "camera", esc(c.name()));
    }
    if let Some(t) = m.and_then(|m| m.trigger_name.clone().or(m.trigger.map(|t| t.to_string()))) {
        row(out, "trigger", esc(&t));
    }
    if let Some(ev) = m.and_then(|m| m.events.as_ref()).filter(|e| !e.is_empty()) {
        row(
            out,
            "DSM events",
            esc(&crate::tools::decode::printable(&ev.join(", "))),
        );
    }
    if let Some(d) = m.and_then(|m| m.driver_name.as_deref()) {
        row(out, "driver", esc(&crate::tools::decode::printable(d)));
    }
}

/// What is inside a video: its container's facts, problems, metadata.
fn media_rows(e: &Entry, out: &mut String) {
    let sc = &e.sidecar;
    let m = sc.metadata.as_ref();
    if let Some(i) = &sc.media_info {
        let mut facts = vec![i.container.clone()];
        if let (Some(w), Some(h)) = (i.width, i.height) {
            facts.push(format!("{w}x{h}"));
        }
        if let Some(f) = i.frame_rate {
            facts.push(format!("{f} fps"));
        }
        if let Some(n) = i.video_frames {
            facts.push(format!("{n} frames"));
        }
        if let Some(d) = i.duration_s {
            facts.push(format!("{d:.2} s"));
        }
        facts.push(match (&i.audio_codec, i.audio_duration_s) {
            (Some(c), Some(d)) => format!("sound: {c}, {d:.2} s"),
            _ if i.container == "ptmf" => "no sound".into(),
            _ => String::new(),
        });
        facts.retain(|f| !f.is_empty());
        row(out, "inside", esc(&facts.join(", ")));
        if !i.problems.is_empty() {
            row(
                out,
                "problems",
                format!("<span class=\"bad\">{}</span>", esc(&i.problems.join("; "))),
            );
        }
    }
    if let Some(d) = m
        .and_then(|m| m.duration_s)
        .filter(|_| sc.media == Media::Video)
    {
        row(out, "duration", format!("{d} s"));
    }
    if let Some(f) = m
        .and_then(|m| m.frame_rate)
        .filter(|_| sc.media == Media::Video)
    {
        row(out, "frame rate", format!("{f} fps"));
    }
}

/// Whether the bytes are whole: size, CRC, SHA-256, retries; and where.
fn integrity_rows(e: &Entry, out: &mut String) {
    let sc = &e.sidecar;
    let m = sc.metadata.as_ref();
    row(out, "size", esc(&format!("{} bytes", sc.size_bytes)));
    row(out, "CRC-16", format!("0x{:04X}", sc.crc16));
    row(
        out,
        "SHA-256",
        format!(
            "<span class=\"mono\" title=\"{0}\">{1}…</span>",
            sc.sha256.hex(),
            sc.sha256.short()
        ),
    );
    if sc.crc_errors > 0 {
        row(out, "CRC retries", sc.crc_errors.to_string());
    }
    if let (Some(lat), Some(lon)) = (m.and_then(|m| m.latitude), m.and_then(|m| m.longitude)) {
        row(
            out,
            "position",
            format!(
                "<a href=\"https://www.openstreetmap.org/?mlat={lat:.6}&amp;mlon={lon:.6}#map=16/{lat:.6}/{lon:.6}\">{lat:.6}, {lon:.6}</a>"
            ),
        );
    }
}

/// Where each of the file's parts is: local, only in the bucket, or gone.
fn links_row(root: &Path, e: &Entry, mp4: Option<&(PathBuf, bool)>, out: &mut String) {
    let sc = &e.sidecar;
    let mut links = whereabouts(root, e, &e.media, e.present, "raw");
    if let Some((mp4, here)) = mp4 {
        let _ = write!(links, " · {}", whereabouts(root, e, mp4, *here, "mp4"));
    }
    if let Some(err) = &sc.conversion_error {
        let _ = write!(
            links,
            " · <span class=\"bad\" title=\"{}\">mp4 failed</span>",
            esc(err)
        );
    }
    let _ = write!(
        links,
        " · <a href=\"{}\">sidecar</a>",
        href(root, &e.sidecar_path)
    );
    row(out, "open", links);
}
