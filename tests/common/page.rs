//! The tests' own web server for browser pages: it serves a page (and any
//! extra files, e.g. hls.js) and collects what the page reports back on
//! `/report?...`, so a headless Chromium can tell a test what it played.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{require, Proc};

/// An extra file: its path, content type and bytes.
pub type PageFile = (&'static str, &'static str, Vec<u8>);

/// The page at `/`, the extra files, and the `/report` sink, on 127.0.0.1.
pub struct PageServer {
    /// The port it listens on.
    pub port: u16,
    reports: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl PageServer {
    /// Starts serving `page` at `/` and `files` at their paths.
    pub fn start(page: String, files: Vec<PageFile>) -> PageServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the page server");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("local addr").port();
        let reports = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (reports.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => serve_one(conn, &page, &files, &r),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        PageServer {
            port,
            reports,
            stop,
            thread: Some(thread),
        }
    }

    /// Every report so far (the query strings), oldest first.
    pub fn reports(&self) -> Vec<String> {
        self.reports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for PageServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Answers one request on `conn` and closes it.
fn serve_one(mut conn: TcpStream, page: &str, files: &[PageFile], reports: &Mutex<Vec<String>>) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let target = head.split_whitespace().nth(1).unwrap_or("");
    let (status, kind, body): (&str, &str, &[u8]) = match target {
        "/" => ("200 OK", "text/html; charset=utf-8", page.as_bytes()),
        t if t.starts_with("/report?") => {
            reports
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(t["/report?".len()..].to_string());
            ("204 No Content", "text/plain", b"")
        }
        t => match files.iter().find(|(path, ..)| *path == t) {
            Some((_, kind, bytes)) => ("200 OK", *kind, &bytes[..]),
            None => ("404 Not Found", "text/plain", b"not found"),
        },
    };
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(body);
}

/// The value of `name` in a report's query string.
pub fn field<'a>(report: &'a str, name: &str) -> Option<&'a str> {
    report
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

/// hls.js 1.x from the npm registry, installed once under the target dir.
pub fn hls_js() -> PathBuf {
    require("npm");
    let prefix = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("hls.js-1");
    let script = prefix.join("node_modules/hls.js/dist/hls.min.js");
    if script.is_file() {
        return script;
    }
    std::fs::create_dir_all(&prefix).expect("create the hls.js dir");
    let args: Vec<String> = [
        "install",
        "--prefix",
        &prefix.to_string_lossy(),
        "--no-audit",
        "--no-fund",
        "--no-save",
        "hls.js@1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut npm = Proc::start("npm", Path::new("npm"), &args, &prefix);
    let code = npm.wait(Duration::from_secs(180));
    assert!(
        code == Some(0) && script.is_file(),
        "npm install hls.js@1 failed ({code:?}): {}",
        npm.stderr()
    );
    script
}
