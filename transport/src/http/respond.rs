//! Turns one request into its response: routing, catalog lookup, content
//! types, caching and CORS headers. No I/O here, so it is tested directly.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Response, StatusCode};

use super::route::{self, Refusal, Route};
use super::stats::Answer;
use super::HlsCatalog;

/// Content type of master and media playlists.
pub const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";
/// Content type of MPEG-TS segments.
pub const SEGMENT_TYPE: &str = "video/mp2t";
/// Playlists change every segment: players must always ask again.
pub const PLAYLIST_CACHE: &str = "no-cache";
/// A segment URL always names the same bytes, so caches may keep it.
pub const SEGMENT_CACHE: &str = "public, max-age=86400, immutable";

const ALLOWED_METHODS: &str = "GET, HEAD, OPTIONS";

/// Answers one request from `catalog`; the [`Answer`] says how to count it.
pub(crate) fn respond(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    catalog: &dyn HlsCatalog,
) -> (Response<Full<Bytes>>, Answer) {
    let head_only = match *method {
        Method::GET => false,
        Method::HEAD => true,
        Method::OPTIONS => return (preflight(headers), Answer::Other),
        _ => {
            let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(ALLOWED_METHODS));
            return (resp, Answer::Refused);
        }
    };
    let (found, answer, content_type, cache) = match route::parse(path) {
        Err(Refusal::TooLong) => {
            return (
                plain(StatusCode::URI_TOO_LONG, "path too long\n"),
                Answer::Refused,
            )
        }
        Err(Refusal::Malformed) => {
            return (
                plain(StatusCode::BAD_REQUEST, "malformed path\n"),
                Answer::Refused,
            )
        }
        Err(Refusal::NoRoute) => return (not_found(), Answer::NotFound),
        Ok(Route::Master { key }) => (
            catalog.master_playlist(key),
            Answer::Master,
            PLAYLIST_TYPE,
            PLAYLIST_CACHE,
        ),
        Ok(Route::Media { key, variant }) => (
            catalog.media_playlist(key, variant),
            Answer::Media,
            PLAYLIST_TYPE,
            PLAYLIST_CACHE,
        ),
        Ok(Route::Segment { key, variant, name }) => (
            catalog.segment(key, variant, name),
            Answer::Segment,
            SEGMENT_TYPE,
            SEGMENT_CACHE,
        ),
    };
    let Some(body) = found else {
        return (not_found(), Answer::NotFound);
    };
    let len = body.len();
    let body = if head_only { Bytes::new() } else { body };
    let mut resp = with_cors(Response::new(Full::new(body)));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    // Set explicitly so that HEAD reports the length GET would send.
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    (resp, answer)
}

/// Response to a CORS preflight: any origin may GET and HEAD anything.
fn preflight(headers: &HeaderMap) -> Response<Full<Bytes>> {
    let mut resp = with_cors(Response::new(Full::new(Bytes::new())));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOWED_METHODS),
    );
    // Players may ask for Range or custom headers; echo what was asked for
    // (it already parsed as a header value, so it is safe to send back).
    if let Some(asked) = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
    }
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    h.insert(header::ALLOW, HeaderValue::from_static(ALLOWED_METHODS));
    resp
}

fn not_found() -> Response<Full<Bytes>> {
    plain(StatusCode::NOT_FOUND, "not found\n")
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut resp = with_cors(Response::new(Full::new(Bytes::from_static(
        text.as_bytes(),
    ))));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

fn with_cors(mut resp: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    resp.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    resp
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// A catalog of one stream "live" with a "source" variant and one segment.
    /// Our own interface, faked to test the HTTP layer alone.
    pub(crate) struct OneStream;

    impl HlsCatalog for OneStream {
        fn master_playlist(&self, key: &str) -> Option<Bytes> {
            (key == "live").then(|| Bytes::from_static(b"#EXTM3U\nlive/source.m3u8\n"))
        }
        fn media_playlist(&self, key: &str, variant: &str) -> Option<Bytes> {
            (key == "live" && variant == "source")
                .then(|| Bytes::from_static(b"#EXTM3U\nsource/7.ts\n"))
        }
        fn segment(&self, key: &str, variant: &str, name: &str) -> Option<Bytes> {
            (key == "live" && variant == "source" && name == "7.ts")
                .then(|| Bytes::from(vec![0x47u8; 188 * 3]))
        }
    }

    fn get(method: Method, path: &str) -> (Response<Full<Bytes>>, Answer) {
        respond(&method, path, &HeaderMap::new(), &OneStream)
    }

    fn body(resp: Response<Full<Bytes>>) -> Bytes {
        let fut = resp.into_body().collect();
        // Full is ready at once: poll it once with a no-op waker.
        let mut fut = std::pin::pin!(fut);
        let waker = std::task::Waker::noop();
        match fut
            .as_mut()
            .poll(&mut std::task::Context::from_waker(waker))
        {
            std::task::Poll::Ready(Ok(c)) => c.to_bytes(),
            other => panic!("body not ready: {other:?}"),
        }
    }

    fn header(resp: &Response<Full<Bytes>>, name: header::HeaderName) -> &str {
        resp.headers()
            .get(&name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no {name} header"))
    }

    use std::future::Future;

    #[test]
    fn playlists_are_not_cached_and_typed() {
        for path in ["/stream/live.m3u8", "/stream/live/source.m3u8"] {
            let (resp, answer) = get(Method::GET, path);
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
            assert_eq!(header(&resp, header::CONTENT_TYPE), PLAYLIST_TYPE);
            assert_eq!(header(&resp, header::CACHE_CONTROL), "no-cache");
            assert_eq!(header(&resp, header::ACCESS_CONTROL_ALLOW_ORIGIN), "*");
            assert!(matches!(answer, Answer::Master | Answer::Media));
            assert!(body(resp).starts_with(b"#EXTM3U\n"));
        }
    }

    #[test]
    fn segments_are_cached_long_and_typed() {
        let (resp, answer) = get(Method::GET, "/stream/live/source/7.ts");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(answer, Answer::Segment);
        assert_eq!(header(&resp, header::CONTENT_TYPE), SEGMENT_TYPE);
        assert!(header(&resp, header::CACHE_CONTROL).contains("max-age=86400"));
        assert_eq!(header(&resp, header::CONTENT_LENGTH), "564");
        assert_eq!(body(resp).len(), 564);
    }

    #[test]
    fn head_has_the_length_but_no_body() {
        let (resp, answer) = get(Method::HEAD, "/stream/live/source/7.ts");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(answer, Answer::Segment);
        assert_eq!(header(&resp, header::CONTENT_LENGTH), "564");
        assert!(body(resp).is_empty());
    }

    #[test]
    fn unknown_streams_variants_and_segments_are_404() {
        for path in [
            "/stream/other.m3u8",
            "/stream/other/source.m3u8",
            "/stream/live/P144p30fps16x9.m3u8",
            "/stream/live/source/8.ts",
            "/stream/live/P144p30fps16x9/7.ts",
            "/",
            "/favicon.ico",
        ] {
            let (resp, answer) = get(Method::GET, path);
            assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
            assert_eq!(answer, Answer::NotFound);
            assert_eq!(header(&resp, header::ACCESS_CONTROL_ALLOW_ORIGIN), "*");
        }
    }

    #[test]
    fn bad_paths_are_400_and_long_ones_414() {
        let (resp, answer) = get(Method::GET, "/stream/%2e%2e/source.m3u8");
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert_eq!(answer, Answer::Refused);
        let long = format!("/stream/{}.m3u8", "a".repeat(300));
        assert_eq!(get(Method::GET, &long).0.status(), StatusCode::URI_TOO_LONG);
    }

    #[test]
    fn other_methods_are_405_with_allow() {
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            let (resp, answer) = get(method.clone(), "/stream/live.m3u8");
            assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
            assert_eq!(answer, Answer::Refused);
            assert_eq!(header(&resp, header::ALLOW), ALLOWED_METHODS);
        }
    }

    #[test]
    fn preflight_allows_any_origin_and_echoes_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_static("range"),
        );
        let (resp, answer) = respond(
            &Method::OPTIONS,
            "/stream/live/source.m3u8",
            &headers,
            &OneStream,
        );
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        assert_eq!(answer, Answer::Other);
        assert_eq!(header(&resp, header::ACCESS_CONTROL_ALLOW_ORIGIN), "*");
        assert_eq!(
            header(&resp, header::ACCESS_CONTROL_ALLOW_METHODS),
            ALLOWED_METHODS
        );
        assert_eq!(header(&resp, header::ACCESS_CONTROL_ALLOW_HEADERS), "range");
    }
}
