//! Unit tests of `httpd`.

use super::*;

fn serve_ok(limits: Limits) -> Httpd {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    Httpd::start(
        l,
        limits,
        Arc::default(),
        Arc::new(|r: &Request| Response::text(200, format!("{} {}\n", r.method, r.path()))),
    )
    .unwrap()
}

fn exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn bounded_heads_get_414_431_and_400() {
    let h = serve_ok(Limits::default());
    let a = h.local_addr();
    let ok = exchange(
        a,
        b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    assert!(
        ok.starts_with("HTTP/1.1 200 OK\r\n") && ok.ends_with("GET /x\n"),
        "{ok}"
    );
    let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(9000));
    assert!(exchange(a, long.as_bytes()).starts_with("HTTP/1.1 414"));
    let mut many = String::from("GET / HTTP/1.1\r\n");
    for i in 0..3000 {
        many.push_str(&format!("X-{i}: {}\r\n", "v".repeat(20)));
    }
    many.push_str("\r\n");
    assert!(exchange(a, many.as_bytes()).starts_with("HTTP/1.1 431"));
    assert!(exchange(a, b"BLAH\r\n\r\n").starts_with("HTTP/1.1 400"));
    assert!(
        exchange(a, b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
            .starts_with("HTTP/1.1 413")
    );
    let head = exchange(a, b"HEAD /y HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert!(
        head.contains("Content-Length: 8\r\n") && head.ends_with("\r\n\r\n"),
        "{head}"
    );
    h.stop();
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let h = serve_ok(Limits::default());
    let out = exchange(
        h.local_addr(),
        b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    let a = out.find("GET /a").unwrap();
    let b = out.find("GET /b").unwrap();
    assert!(a < b, "{out}");
    h.stop();
}

#[test]
fn a_full_table_evicts_the_longest_waiting_connection() {
    let limits = Limits {
        max_conns: 4,
        ..Limits::default()
    };
    let h = serve_ok(limits);
    let idle: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(h.local_addr()).unwrap())
        .collect();
    let began = Instant::now();
    while h.open() < 4 {
        assert!(began.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(5));
    }
    let ok = exchange(
        h.local_addr(),
        b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(h.stats().evicted.load(Ordering::Relaxed) >= 1);
    drop(idle);
    h.stop();
}
