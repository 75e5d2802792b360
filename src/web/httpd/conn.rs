//! One connection of the endpoint: its requests one after the other
//! (keep-alive), each head read with the request line, every header line
//! and the whole head bounded, within the connection's deadline.

use super::*;

/// Why a head was not read.
pub(super) enum HeadError {
    /// Closed, reset, or no request before the idle timeout: nothing to say.
    Gone,
    /// Begun but not complete before its deadline.
    TimedOut,
    /// Refused with this status.
    Refused(u16, &'static str),
    /// A line longer than it may be (the caller says which status).
    TooLong,
}

pub(super) fn set_waiting(shared: &Shared, id: u64, waiting: bool) {
    if let Some(e) = lock(&shared.table).get_mut(&id) {
        e.waiting_since = waiting.then(Instant::now);
    }
}

pub(super) fn serve(shared: &Shared, id: u64, stream: TcpStream) {
    let limits = shared.limits;
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::with_capacity(8 << 10, read_half);
    let mut first = true;
    loop {
        set_waiting(shared, id, true);
        // The first request comes with the connection; later ones may wait
        // for the idle timeout.
        let wait = if first {
            limits.head_deadline
        } else {
            limits.idle
        };
        first = false;
        let req = match read_head(&mut reader, &stream, &limits, wait) {
            Ok(r) => r,
            // (read_head answers a line too long with 414 or 431.)
            Err(HeadError::Gone | HeadError::TooLong) => return,
            Err(HeadError::TimedOut) => {
                shared.stats.timed_out.fetch_add(1, Ordering::Relaxed);
                let _ = write_answer(
                    &stream,
                    "GET",
                    Response::text(408, "the request head took too long\n"),
                    false,
                    &limits,
                );
                return;
            }
            Err(HeadError::Refused(code, why)) => {
                shared.stats.refused.fetch_add(1, Ordering::Relaxed);
                let _ = write_answer(&stream, "GET", Response::text(code, why), false, &limits);
                return;
            }
        };
        set_waiting(shared, id, false);
        shared.stats.requests.fetch_add(1, Ordering::Relaxed);
        let has_body = req.header("Transfer-Encoding").is_some()
            || req
                .header("Content-Length")
                .is_some_and(|v| v.trim() != "0");
        if has_body {
            shared.stats.refused.fetch_add(1, Ordering::Relaxed);
            let _ = write_answer(
                &stream,
                &req.method,
                Response::text(413, "read-only: no request body is taken\n"),
                false,
                &limits,
            );
            return;
        }
        let keep = keep_alive(&req);
        let resp = (shared.handler)(&req);
        if let Err(e) = write_answer(&stream, &req.method, resp, keep, &limits) {
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) {
                shared.stats.timed_out.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        if !keep || shared.stop.load(Ordering::SeqCst) {
            return;
        }
    }
}

pub(super) fn keep_alive(req: &Request) -> bool {
    let conn = req.header("Connection").unwrap_or("").to_ascii_lowercase();
    if req.http10 {
        return conn.contains("keep-alive");
    }
    !conn.contains("close")
}

/// Reads one line (to `\n`) of at most `max` bytes into `line`, waiting at
/// most until `deadline` (None: until `idle_until`, for the first byte).
pub(super) fn read_line(
    reader: &mut BufReader<TcpStream>,
    stream: &TcpStream,
    line: &mut Vec<u8>,
    max: usize,
    deadline: &mut Option<Instant>,
    idle_until: Instant,
    head_deadline: Duration,
) -> Result<(), HeadError> {
    loop {
        let until = deadline.unwrap_or(idle_until);
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(if deadline.is_some() {
                HeadError::TimedOut
            } else {
                HeadError::Gone
            });
        }
        let _ = stream.set_read_timeout(Some(left));
        let buf = match reader.fill_buf() {
            Ok([]) => return Err(HeadError::Gone),
            Ok(b) => b,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(HeadError::Gone),
        };
        if deadline.is_none() {
            *deadline = Some(Instant::now() + head_deadline);
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if line.len() + take > max {
            return Err(HeadError::TooLong);
        }
        line.extend_from_slice(&buf[..take]);
        reader.consume(take);
        if done {
            return Ok(());
        }
    }
}

pub(super) fn read_head(
    reader: &mut BufReader<TcpStream>,
    stream: &TcpStream,
    limits: &Limits,
    wait: Duration,
) -> Result<Request, HeadError> {
    // One piece (over 80 lines): the request head in one pass (request line,
    // header lines), each line and the whole head bounded, one deadline.
    let idle_until = Instant::now() + wait;
    let mut deadline = None;
    let mut line = Vec::with_capacity(256);
    // Empty lines before a request are allowed (RFC 9112 2.2), a few.
    let mut blank = 0;
    let request_line = loop {
        line.clear();
        match read_line(
            reader,
            stream,
            &mut line,
            limits.max_line,
            &mut deadline,
            idle_until,
            limits.head_deadline,
        ) {
            Err(HeadError::TooLong) => {
                return Err(HeadError::Refused(
                    414,
                    "request line too long (8 KiB at most)\n",
                ))
            }
            Err(e) => return Err(e),
            Ok(()) => {}
        }
        let text = trim_eol(&line);
        if !text.is_empty() {
            break text.to_vec();
        }
        blank += 1;
        if blank > 4 {
            return Err(HeadError::Refused(400, "bad request\n"));
        }
    };
    let bad = HeadError::Refused(400, "bad request\n");
    let request_line = String::from_utf8(request_line).map_err(|_| bad)?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::Refused(400, "bad request\n"));
    };
    if !version.starts_with("HTTP/1.")
        || method.is_empty()
        || !method.bytes().all(|b| b.is_ascii_uppercase())
        || !target.starts_with('/')
    {
        return Err(HeadError::Refused(400, "bad request\n"));
    }
    let mut total = line.len();
    let mut headers = Vec::new();
    loop {
        line.clear();
        let room = limits.max_head.saturating_sub(total);
        match read_line(
            reader,
            stream,
            &mut line,
            room.min(limits.max_head),
            &mut deadline,
            idle_until,
            limits.head_deadline,
        ) {
            Err(HeadError::TooLong) => {
                return Err(HeadError::Refused(
                    431,
                    "request headers too large (64 KiB at most)\n",
                ))
            }
            Err(e) => return Err(e),
            Ok(()) => {}
        }
        total += line.len();
        let text = trim_eol(&line);
        if text.is_empty() {
            break;
        }
        if text[0] == b' ' || text[0] == b'\t' {
            return Err(HeadError::Refused(400, "bad request (folded header)\n"));
        }
        let text =
            std::str::from_utf8(text).map_err(|_| HeadError::Refused(400, "bad request\n"))?;
        let Some((name, value)) = text.split_once(':') else {
            return Err(HeadError::Refused(400, "bad request\n"));
        };
        if name.is_empty() || name.contains([' ', '\t']) {
            return Err(HeadError::Refused(400, "bad request\n"));
        }
        headers.push((name.to_string(), value.trim().to_string()));
    }
    Ok(Request {
        method: method.to_string(),
        target: target.to_string(),
        headers,
        http10: version == "HTTP/1.0",
    })
}

pub(super) fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}
