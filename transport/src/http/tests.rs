//! The server over real loopback sockets: plain std clients for the
//! misbehaving ones, and curl (a real HTTP client) for the headers a player
//! sees. The catalog is a fake of our own trait, so only HTTP is under test.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;

/// Stream "live", variant "source": a small segment 1.ts and a 32 MiB
/// segment 2.ts, big enough to fill loopback socket buffers.
struct Fake {
    big: Bytes,
    modified: Instant,
}

impl Fake {
    /// Everything changed when the server started, with 2 s segments.
    fn resource(&self, body: Bytes) -> Resource {
        Resource {
            body,
            modified: Some(self.modified),
            refresh: Duration::from_secs(2),
        }
    }
}

impl HlsCatalog for Fake {
    fn master_playlist(&self, key: &str) -> Option<Resource> {
        (key == "live").then(|| self.resource(Bytes::from_static(b"#EXTM3U\nlive/source.m3u8\n")))
    }
    fn media_playlist(&self, key: &str, variant: &str) -> Option<Resource> {
        (key == "live" && variant == "source")
            .then(|| self.resource(Bytes::from_static(b"#EXTM3U\n#EXTINF:2.0,\nsource/1.ts\n")))
    }
    fn segment(&self, key: &str, variant: &str, name: &str) -> Option<Resource> {
        if key != "live" || variant != "source" {
            return None;
        }
        match name {
            "1.ts" => Some(self.resource(Bytes::from(
                (0..188 * 10).map(|i| i as u8).collect::<Vec<_>>(),
            ))),
            "2.ts" => Some(self.resource(self.big.clone())),
            _ => None,
        }
    }
}

struct Server {
    addr: SocketAddr,
    stats: Arc<HttpStats>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl Server {
    fn start(limits: HttpLimits) -> Server {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("addr");
        let stats = Arc::new(HttpStats::new());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server_stats = stats.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener)?;
                let catalog = Arc::new(Fake {
                    big: Bytes::from(vec![0x47u8; 32 << 20]),
                    modified: Instant::now(),
                });
                let shutdown = async move {
                    let _ = stopped.await;
                };
                serve_http_with(listener, catalog, server_stats, limits, shutdown).await
            })
        });
        Server {
            addr,
            stats,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s
    }

    /// Asks it to stop and waits (bounded) for serve_http to return.
    fn stop(&mut self, limit: Duration) -> bool {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.thread.as_ref().is_some_and(|t| t.is_finished()) {
                let done = self.thread.take().map(|t| t.join());
                return matches!(done, Some(Ok(Ok(()))));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

/// Sends one request and reads until the peer closes or `limit` passes.
fn exchange(stream: &mut TcpStream, request: &str) -> String {
    stream.write_all(request.as_bytes()).expect("write");
    read_all(stream)
}

fn read_all(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether the server closed `stream` (EOF or reset) within `limit`.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return true,
        }
    }
    false
}

fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl is installed (scripts/install-deps.sh)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn header_line<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn curl_sees_types_caching_and_cors() {
    let server = Server::start(HttpLimits::default());

    let head = curl(&[
        "-D",
        "-",
        "-o",
        "/dev/null",
        &server.url("/stream/live.m3u8"),
    ]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(header_line(&head, "content-type"), Some(PLAYLIST_TYPE));
    assert_eq!(
        header_line(&head, "cache-control"),
        Some("public, max-age=1")
    );
    assert_eq!(header_line(&head, "access-control-allow-origin"), Some("*"));

    let playlist = curl(&[&server.url("/stream/live/source.m3u8")]);
    assert!(playlist.contains("source/1.ts"), "{playlist}");

    let head = curl(&[
        "-D",
        "-",
        "-o",
        "/dev/null",
        &server.url("/stream/live/source/1.ts"),
    ]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(header_line(&head, "content-type"), Some(SEGMENT_TYPE));
    assert_eq!(header_line(&head, "content-length"), Some("1880"));
    assert!(header_line(&head, "cache-control").is_some_and(|v| v.contains("max-age=")));

    // HEAD: the length GET would send, and no body.
    let head = curl(&["-I", &server.url("/stream/live/source/1.ts")]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(header_line(&head, "content-length"), Some("1880"));

    // A browser's preflight.
    let head = curl(&[
        "-X",
        "OPTIONS",
        "-D",
        "-",
        "-H",
        "Origin: http://example.test",
        "-H",
        "Access-Control-Request-Method: GET",
        "-H",
        "Access-Control-Request-Headers: range",
        &server.url("/stream/live/source.m3u8"),
    ]);
    assert!(head.starts_with("HTTP/1.1 204"), "{head}");
    assert_eq!(header_line(&head, "access-control-allow-origin"), Some("*"));
    assert_eq!(
        header_line(&head, "access-control-allow-headers"),
        Some("range")
    );

    let status = |args: &[&str]| curl(&[&["-o", "/dev/null", "-w", "%{http_code}"], args].concat());
    assert_eq!(status(&[&server.url("/stream/nope.m3u8")]), "404");
    assert_eq!(
        status(&[&server.url("/stream/live/P144p30fps16x9.m3u8")]),
        "404"
    );
    assert_eq!(status(&[&server.url("/stream/live/source/99.ts")]), "404");
    assert_eq!(
        status(&["--path-as-is", &server.url("/stream/../../etc/passwd")]),
        "400"
    );
    assert_eq!(
        status(&["--path-as-is", &server.url("/stream/%2e%2e/source.m3u8")]),
        "400"
    );
    assert_eq!(
        status(&[&server.url(&format!("/stream/{}.m3u8", "k".repeat(400)))]),
        "414"
    );
    assert_eq!(
        status(&["-X", "POST", &server.url("/stream/live.m3u8")]),
        "405"
    );

    let s = server.stats.snapshot();
    assert_eq!(s.master_playlists, 1);
    assert_eq!(s.media_playlists, 1);
    assert_eq!(s.segments, 2);
    assert_eq!(s.not_found, 3);
    assert_eq!(s.bad_requests, 4);
    assert!(s.bytes_sent > 1880, "{s:?}");
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let server = Server::start(HttpLimits::default());
    let mut s = server.connect();
    let reply = exchange(
        &mut s,
        "GET /stream/live.m3u8 HTTP/1.1\r\nHost: x\r\n\r\n\
         GET /stream/live/source/1.ts HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(reply.matches("HTTP/1.1 200 OK").count(), 2, "{reply}");
    assert_eq!(server.stats.snapshot().requests, 2);
}

#[test]
fn backslash_and_nul_in_the_request_line_are_refused() {
    let server = Server::start(HttpLimits::default());
    let reply = exchange(
        &mut server.connect(),
        "GET /stream/..\\..\\x.m3u8 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    // A NUL is not even a valid request line: the connection gets 400 or is
    // dropped, and nothing is served.
    let reply = exchange(
        &mut server.connect(),
        "GET /stream/live\0.m3u8 HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert!(!reply.contains("200 OK"), "{reply}");
    assert_eq!(server.stats.snapshot().master_playlists, 0);
}

#[test]
fn slow_headers_are_cut_off_and_others_still_served() {
    let server = Server::start(HttpLimits {
        header_timeout: Duration::from_millis(400),
        ..HttpLimits::default()
    });
    // Slowloris: a header line every 100 ms, never finishing the request.
    let mut slow = server.connect();
    slow.write_all(b"GET /stream/live.m3u8 HTTP/1.1\r\n")
        .expect("write");
    let started = Instant::now();
    let mut cut = false;
    for i in 0..30 {
        // Meanwhile a normal client is served promptly.
        let reply = exchange(
            &mut server.connect(),
            "GET /stream/live/source.m3u8 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        if slow
            .write_all(format!("X-Slow-{i}: 1\r\n").as_bytes())
            .is_err()
            || closed_within(&mut slow, Duration::from_millis(100))
        {
            cut = true;
            break;
        }
    }
    assert!(
        cut,
        "slow client still connected after {:?}",
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(wait_until(Duration::from_secs(2), || server
        .stats
        .snapshot()
        .timed_out_connections
        == 1));
}

#[test]
fn a_client_that_stops_reading_is_closed_after_the_idle_timeout() {
    let server = Server::start(HttpLimits {
        idle_timeout: Duration::from_millis(500),
        ..HttpLimits::default()
    });
    let mut stuck = server.connect();
    stuck
        .write_all(b"GET /stream/live/source/2.ts HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    // Never read: the 32 MiB answer fills the socket buffers and stalls.
    assert!(wait_until(Duration::from_secs(3), || server
        .stats
        .snapshot()
        .timed_out_connections
        == 1));
    assert!(wait_until(Duration::from_secs(1), || server
        .stats
        .snapshot()
        .open_connections
        == 0));
    let reply = exchange(
        &mut server.connect(),
        "GET /stream/live.m3u8 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}

#[test]
fn connections_over_the_per_client_cap_are_refused_then_freed() {
    let server = Server::start(HttpLimits {
        max_connections_per_client: 4,
        ..HttpLimits::default()
    });
    let held: Vec<TcpStream> = (0..4).map(|_| server.connect()).collect();
    assert!(wait_until(Duration::from_secs(2), || server
        .stats
        .snapshot()
        .open_connections
        == 4));
    let mut extra = server.connect();
    assert!(closed_within(&mut extra, Duration::from_secs(2)));
    assert_eq!(server.stats.snapshot().refused_connections, 1);
    drop(held);
    assert!(wait_until(Duration::from_secs(2), || server
        .stats
        .snapshot()
        .open_connections
        == 0));
    let reply = exchange(
        &mut server.connect(),
        "GET /stream/live.m3u8 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}

#[test]
fn connections_over_the_total_cap_are_refused() {
    let server = Server::start(HttpLimits {
        max_connections: 2,
        ..HttpLimits::default()
    });
    let _held: Vec<TcpStream> = (0..2).map(|_| server.connect()).collect();
    assert!(wait_until(Duration::from_secs(2), || server
        .stats
        .snapshot()
        .open_connections
        == 2));
    let mut extra = server.connect();
    assert!(closed_within(&mut extra, Duration::from_secs(2)));
    assert_eq!(server.stats.snapshot().refused_connections, 1);
}

#[test]
fn shutdown_returns_with_connections_open() {
    let mut server = Server::start(HttpLimits::default());
    let mut idle = server.connect();
    let reply = {
        idle.write_all(b"GET /stream/live.m3u8 HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("write");
        let mut buf = [0u8; 4096];
        let n = idle.read(&mut buf).expect("read");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let _silent = server.connect();
    assert!(
        server.stop(Duration::from_secs(5)),
        "serve_http did not return"
    );
    assert!(closed_within(&mut idle, Duration::from_secs(1)));
}

/// What a caching proxy or a player with a cache does, with curl: revalidate
/// with the ETag or the date it got, and fetch part of a segment.
#[test]
fn curl_revalidates_and_fetches_ranges() {
    let server = Server::start(HttpLimits::default());
    let seg = server.url("/stream/live/source/1.ts");
    let playlist = server.url("/stream/live/source.m3u8");
    let status = |args: &[&str]| curl(&[&["-o", "/dev/null", "-w", "%{http_code}"], args].concat());
    for url in [&seg, &playlist] {
        let head = curl(&["-D", "-", "-o", "/dev/null", url]);
        let etag = header_line(&head, "etag").unwrap_or_else(|| panic!("{head}"));
        let modified = header_line(&head, "last-modified").unwrap_or_else(|| panic!("{head}"));
        assert_eq!(
            status(&["-H", &format!("If-None-Match: {etag}"), url]),
            "304",
            "{url}"
        );
        assert_eq!(
            status(&["-H", &format!("If-Modified-Since: {modified}"), url]),
            "304",
            "{url}"
        );
        assert_eq!(
            status(&["-H", "If-None-Match: \"other\"", url]),
            "200",
            "{url}"
        );
        // HEAD agrees with GET.
        let head_only = curl(&["-I", url]);
        assert_eq!(header_line(&head_only, "etag"), Some(etag), "{head_only}");
    }
    // curl -r: 206 with the bytes asked for.
    let dir = std::env::temp_dir().join(format!("pstream-http-range-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let part = dir.join("part");
    let head = curl(&[
        "-r",
        "100-299",
        "-D",
        "-",
        "-o",
        part.to_str().expect("utf-8"),
        &seg,
    ]);
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    assert_eq!(
        header_line(&head, "content-range"),
        Some("bytes 100-299/1880")
    );
    let got = std::fs::read(&part).expect("read part");
    assert_eq!(got, (100..300).map(|i| i as u8).collect::<Vec<_>>());
    assert_eq!(status(&["-r", "5000-", &seg]), "416");
    let _ = std::fs::remove_dir_all(&dir);
    let s = server.stats.snapshot();
    assert_eq!(s.not_modified, 4, "{s:?}");
}
