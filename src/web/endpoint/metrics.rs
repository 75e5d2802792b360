//! /metrics: the Prometheus text of the server's counters, the outbox, the
//! conversion queue and the HTTP endpoint itself.

use super::*;

/// One metric: name, kind, help, value; written in this order.
type Row = (&'static str, Kind, &'static str, u64);

fn get(a: &std::sync::atomic::AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

pub(super) fn metrics_text(src: &Sources, http: &HttpStats) -> String {
    let mut rows = server_rows(src);
    conversion_rows(src, &mut rows);
    http_rows(http, &mut rows);
    delivery_rows(src, &mut rows);
    let mut out = String::new();
    write_rows(&rows, &mut out);
    labelled_rows(src.server.metrics(), &mut out);
    out
}

/// The server's own counters: connections, sessions, files, bytes.
fn server_rows(src: &Sources) -> Vec<Row> {
    use Kind::{Counter, Gauge};
    let m: &Metrics = src.server.metrics();
    vec![
        (
            "dashcam_connections",
            Gauge,
            "Connections open now.",
            src.server.connections() as u64,
        ),
        (
            "dashcam_sessions_total",
            Counter,
            "Sessions ended.",
            get(&m.sessions),
        ),
        (
            "dashcam_sessions_failed_total",
            Counter,
            "Sessions that ended in error.",
            get(&m.failed_sessions),
        ),
        (
            "dashcam_files_stored_total",
            Counter,
            "Files stored (new ones).",
            get(&m.files),
        ),
        (
            "dashcam_files_duplicate_total",
            Counter,
            "Files sent again that were stored already.",
            get(&m.duplicates),
        ),
        (
            "dashcam_bytes_stored_total",
            Counter,
            "Bytes of the files stored.",
            get(&m.bytes_stored),
        ),
        (
            "dashcam_bytes_received_total",
            Counter,
            "File bytes received.",
            get(&m.bytes_received),
        ),
        (
            "dashcam_crc_errors_total",
            Counter,
            "DATA packets whose CRC did not match.",
            get(&m.crc_errors),
        ),
        (
            "dashcam_resumes_total",
            Counter,
            "Files that resumed a partial.",
            get(&m.resumes),
        ),
        (
            "dashcam_evicted_before_init_total",
            Counter,
            "Connections closed before their init packet to make room (--max-connections full).",
            get(&m.evicted_pre_init),
        ),
        (
            "dashcam_panics_total",
            Counter,
            "Camera threads that failed (bugs).",
            get(&m.panics),
        ),
    ]
}

/// The conversion queue and its results, when `--convert` is on.
fn conversion_rows(src: &Sources, rows: &mut Vec<Row>) {
    use Kind::{Counter, Gauge};
    if let Some(q) = &src.convert_queue {
        rows.push((
            "dashcam_conversion_queue",
            Gauge,
            "Videos waiting for conversion.",
            q() as u64,
        ));
    }
    if let Some(c) = &src.convert_stats {
        rows.push((
            "dashcam_conversions_total",
            Counter,
            "Videos converted to mp4.",
            get(&c.done),
        ));
        rows.push((
            "dashcam_conversion_failures_total",
            Counter,
            "Conversions that failed (retried at the next start).",
            get(&c.failed),
        ));
    }
}

/// The HTTP endpoint itself.
fn http_rows(http: &HttpStats, rows: &mut Vec<Row>) {
    use Kind::Counter;
    rows.extend([
        (
            "dashcam_http_requests_total",
            Counter,
            "Requests the HTTP endpoint answered.",
            get(&http.requests),
        ),
        (
            "dashcam_http_refused_total",
            Counter,
            "HTTP request heads refused: too long (414, 431), malformed (400), with a body (413).",
            get(&http.refused),
        ),
        (
            "dashcam_http_timeouts_total",
            Counter,
            "HTTP connections cut for a deadline: a slow head, or a client that did not take its answer.",
            get(&http.timed_out),
        ),
        (
            "dashcam_http_evicted_total",
            Counter,
            "HTTP connections closed to make room (the one waiting longest for a request).",
            get(&http.evicted),
        ),
        (
            "dashcam_http_busy_total",
            Counter,
            "HTTP connections answered 503 at once: every connection was answering.",
            get(&http.busy),
        ),
    ]);
}

/// The outbox: uploads and events waiting, done, failed.
fn delivery_rows(src: &Sources, rows: &mut Vec<Row>) {
    use Kind::{Counter, Gauge};
    if let Some(d) = &src.delivery {
        let s = d.stats();
        let (up, hooks) = d.queued();
        rows.extend([
            (
                "dashcam_upload_queue",
                Gauge,
                "Uploads waiting in the outbox.",
                up,
            ),
            (
                "dashcam_uploads_total",
                Counter,
                "Uploads the store confirmed.",
                get(&s.uploads_done),
            ),
            (
                "dashcam_upload_failures_total",
                Counter,
                "Upload attempts that failed (retried).",
                get(&s.upload_failures),
            ),
            (
                "dashcam_webhook_queue",
                Gauge,
                "Events waiting in the outbox.",
                hooks,
            ),
            (
                "dashcam_webhooks_total",
                Counter,
                "Events the receiver confirmed.",
                get(&s.webhooks_done),
            ),
            (
                "dashcam_webhook_failures_total",
                Counter,
                "Event attempts that failed (retried).",
                get(&s.webhook_failures),
            ),
            (
                "dashcam_outbox_set_aside_total",
                Counter,
                "Jobs set aside in the outbox (.failed: refused for good; .bad: not a job the server makes).",
                get(&s.set_aside),
            ),
            (
                "dashcam_local_kept_unconfirmed_total",
                Counter,
                "Times a local copy was kept because the store did not show its object as sent.",
                get(&s.kept_unconfirmed),
            ),
            (
                "dashcam_outbox_oldest_seconds",
                Gauge,
                "Age of the oldest upload or event still waiting (0: none); alert when it grows.",
                d.oldest_waiting().as_secs(),
            ),
        ]);
    }
}

fn write_rows(rows: &[Row], out: &mut String) {
    use Kind::{Counter, Gauge};
    for &(name, kind, help, value) in rows {
        let kind = match kind {
            Counter => "counter",
            Gauge => "gauge",
        };
        let _ = writeln!(
            *out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
}

/// The counters with a label: how sessions ended, what was not a camera.
fn labelled_rows(m: &Metrics, out: &mut String) {
    let ends = m.ends.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let _ = writeln!(
        *out,
        "# HELP dashcam_session_ends_total Sessions and refused connections, by how they ended.\n# TYPE dashcam_session_ends_total counter"
    );
    for (label, n) in ends {
        let _ = writeln!(*out, "dashcam_session_ends_total{{reason=\"{label}\"}} {n}");
    }
    let foreign = m
        .not_cameras
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let _ = writeln!(
        *out,
        "# HELP dashcam_not_a_camera_total Connections to the camera port that were not cameras, by what they looked like (avl: a tracker's AVL data; http, rdp, ssh: scanners; tls: TLS on the plain port).\n# TYPE dashcam_not_a_camera_total counter"
    );
    for (kind, n) in foreign {
        let _ = writeln!(*out, "dashcam_not_a_camera_total{{kind=\"{kind}\"}} {n}");
    }
}
