//! A `/metrics` endpoint on its own listen address, for Prometheus scrapers.
//!
//! Kept apart from the players' HTTP server (as MediaMTX and the nginx
//! exporters do) so that operators can bind it to a private address while
//! the HLS side faces the internet. The text itself comes from a closure:
//! the caller renders its counters at each scrape.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// The content type of Prometheus's text exposition format.
pub const METRICS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Scrapers served at once; more wait in the accept queue. A scraper or two
/// is the normal load, so a small cap costs nothing and bounds what a
/// client that opens connections in a loop can hold.
const MAX_SCRAPERS: usize = 16;
/// Time a scraper has to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a connection may live (a scrape takes milliseconds).
const CONNECTION_LIMIT: Duration = Duration::from_secs(30);

/// Renders the metrics text at each scrape.
pub type RenderMetrics = Arc<dyn Fn() -> String + Send + Sync>;

/// Answers `GET /metrics` (and `HEAD`) on `listener` with what `render`
/// returns, until `shutdown` resolves; other paths get 404, other methods 405.
pub async fn serve_metrics(
    listener: TcpListener,
    render: RenderMetrics,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(MAX_SCRAPERS));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => return Ok(()),
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return Ok(()),
            },
        };
        let (stream, _) = tokio::select! {
            () = &mut shutdown => return Ok(()),
            a = listener.accept() => match a {
                Ok(a) => a,
                // Out of descriptors or a connection reset before accept:
                // the next accept may work, so keep serving.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let render = render.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let render = render.clone();
                async move { Ok::<_, Infallible>(answer(&req, &render)) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_LIMIT, conn).await;
            drop(permit);
        });
    }
}

/// The answer to one request.
fn answer(req: &Request<Incoming>, render: &RenderMetrics) -> Response<Full<Bytes>> {
    let status = |code: StatusCode, text: &'static str| {
        let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
        *r.status_mut() = code;
        r
    };
    if req.uri().path() != "/metrics" {
        return status(StatusCode::NOT_FOUND, "not found: try /metrics\n");
    }
    let head = match *req.method() {
        Method::GET => false,
        Method::HEAD => true,
        _ => return status(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD only\n"),
    };
    let text = render();
    let len = text.len();
    let body = if head {
        Bytes::new()
    } else {
        Bytes::from(text)
    };
    let mut r = Response::new(Full::new(body));
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(METRICS_TYPE));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if head {
        h.insert(hyper::header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn request(addr: std::net::SocketAddr, head: &str) -> String {
        let mut c = std::net::TcpStream::connect(addr).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        c.write_all(head.as_bytes()).expect("write");
        let mut out = String::new();
        let _ = c.read_to_string(&mut out);
        out
    }

    #[test]
    fn scrapes_render_each_time_and_nothing_else_is_served() {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("addr");
        let scrapes = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = scrapes.clone();
        let render: RenderMetrics = Arc::new(move || {
            let n = counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            format!("# TYPE scrapes counter\nscrapes_total {n}\n")
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        // The server on a runtime of its own thread, as serve runs it.
        let server = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = TcpListener::from_std(std_listener).expect("listener");
                serve_metrics(listener, render, async {
                    let _ = rx.await;
                })
                .await
            })
        });
        let get = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        let first = request(addr, get);
        assert!(first.starts_with("HTTP/1.1 200"), "{first}");
        assert!(first.contains(METRICS_TYPE), "{first}");
        assert!(first.ends_with("scrapes_total 1\n"), "{first}");
        assert!(request(addr, get).ends_with("scrapes_total 2\n"));
        let head = request(
            addr,
            "HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(!head.contains("scrapes_total"), "{head}");
        let other = request(
            addr,
            "GET /stream/x.m3u8 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(other.starts_with("HTTP/1.1 404"), "{other}");
        let post = request(
            addr,
            "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
        // Garbage gets an error answer or a close, and the server goes on.
        let garbage = request(addr, "\u{1}\u{2}garbage\r\n\r\n");
        assert!(!garbage.contains("scrapes_total"), "{garbage}");
        assert!(request(addr, get).starts_with("HTTP/1.1 200"));
        let _ = tx.send(());
        assert!(server.join().expect("server thread").is_ok());
    }
}
