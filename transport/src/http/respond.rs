//! Turns one request into its response: routing, catalog lookup, content
//! types, caching (validators, conditional requests, byte ranges) and CORS
//! headers. No I/O here, so it is tested directly.

use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant, SystemTime};

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
/// A segment URL always names the same bytes, so caches may keep it.
pub const SEGMENT_CACHE: &str = "public, max-age=86400, immutable";

const ALLOWED_METHODS: &str = "GET, HEAD, OPTIONS";

/// Turns the catalog's monotonic instants into wall-clock times for
/// `Last-Modified`, from one pair of readings taken when the server starts
/// (so one instant always gives the same date).
#[derive(Debug, Clone, Copy)]
pub(crate) struct WallClock {
    instant: Instant,
    system: SystemTime,
}

impl WallClock {
    /// Reads both clocks now.
    pub(crate) fn now() -> Self {
        WallClock {
            instant: Instant::now(),
            system: SystemTime::now(),
        }
    }

    fn system_time(&self, t: Instant) -> SystemTime {
        if t >= self.instant {
            self.system + (t - self.instant)
        } else {
            self.system
                .checked_sub(self.instant - t)
                .unwrap_or(SystemTime::UNIX_EPOCH)
        }
    }
}

/// The route's kind, with what differs between playlists and segments.
struct Kind {
    answer: Answer,
    content_type: &'static str,
    segment: bool,
}

/// Answers one request from `catalog`; the [`Answer`] says how to count it.
pub(crate) fn respond(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    catalog: &dyn HlsCatalog,
    clock: &WallClock,
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
    let playlist = |answer| Kind {
        answer,
        content_type: PLAYLIST_TYPE,
        segment: false,
    };
    let (found, kind) = match route::parse(path) {
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
        Ok(Route::Master { key }) => (catalog.master_playlist(key), playlist(Answer::Master)),
        Ok(Route::Media { key, variant }) => (
            catalog.media_playlist(key, variant),
            playlist(Answer::Media),
        ),
        Ok(Route::Segment { key, variant, name }) => (
            catalog.segment(key, variant, name),
            Kind {
                answer: Answer::Segment,
                content_type: SEGMENT_TYPE,
                segment: true,
            },
        ),
    };
    let Some(resource) = found else {
        return (not_found(), Answer::NotFound);
    };
    let len = resource.body.len();
    // A segment's bytes never change under its URL: its ETag needs not read them.
    let etag = if kind.segment {
        etag_of(&(path, len))
    } else {
        etag_of(&resource.body[..])
    };
    let modified = resource.modified.map(|t| clock.system_time(t));
    let cache = if kind.segment {
        HeaderValue::from_static(SEGMENT_CACHE)
    } else {
        HeaderValue::try_from(playlist_cache(resource.refresh))
            .unwrap_or_else(|_| HeaderValue::from_static("no-cache"))
    };
    let mut validators = HeaderMap::new();
    validators.insert(header::CACHE_CONTROL, cache);
    if let Ok(v) = HeaderValue::from_str(&etag) {
        validators.insert(header::ETAG, v);
    }
    if let Some(m) = modified {
        if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(m)) {
            validators.insert(header::LAST_MODIFIED, v);
        }
    }

    if not_modified(headers, &etag, modified) {
        let mut resp = with_cors(Response::new(Full::new(Bytes::new())));
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        resp.headers_mut().extend(validators);
        return (resp, Answer::NotModified);
    }

    let mut status = StatusCode::OK;
    let mut body = resource.body;
    let mut content_range = None;
    if kind.segment && if_range_holds(headers, &etag, modified) {
        match headers.get(header::RANGE).map(|r| byte_range(r, len)) {
            Some(Ranged::Range(first, last)) => {
                status = StatusCode::PARTIAL_CONTENT;
                body = body.slice(first..=last);
                content_range = Some(format!("bytes {first}-{last}/{len}"));
            }
            Some(Ranged::Unsatisfiable) => {
                let mut resp = plain(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable\n");
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                    resp.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return (resp, Answer::Refused);
            }
            Some(Ranged::Whole) | None => {}
        }
    }
    let sent = body.len();
    let body = if head_only { Bytes::new() } else { body };
    let mut resp = with_cors(Response::new(Full::new(body)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(kind.content_type),
    );
    h.extend(validators);
    if kind.segment {
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    }
    if let Some(v) = content_range.and_then(|r| HeaderValue::from_str(&r).ok()) {
        h.insert(header::CONTENT_RANGE, v);
    }
    // Set explicitly so that HEAD reports the length GET would send.
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(sent));
    (resp, kind.answer)
}

/// `Cache-Control` of a playlist that changes every `refresh`: kept at most
/// half of that (whole seconds, rounded down), so a cache serves a copy at
/// most half a segment old and viewers behind it are never a segment late.
fn playlist_cache(refresh: Duration) -> String {
    format!("public, max-age={}", (refresh / 2).as_secs())
}

/// A strong entity tag: 64 bits of a hash, quoted.
fn etag_of<T: Hash + ?Sized>(value: &T) -> String {
    // SipHash with fixed keys: the same bytes give the same tag for as long
    // as this build runs, which is all a cache needs (a new build changes
    // tags at most once).
    let mut h = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut h);
    format!("\"{:016x}\"", h.finish())
}

/// Whether the request's validators match what we have (RFC 9110 13.1.2,
/// 13.1.3): `If-None-Match` (weak comparison; `*` matches anything) decides
/// when present; otherwise `If-Modified-Since` holds when the resource
/// changed no later than the given second.
fn not_modified(headers: &HeaderMap, etag: &str, modified: Option<SystemTime>) -> bool {
    if let Some(inm) = headers.get(header::IF_NONE_MATCH) {
        let Ok(inm) = inm.to_str() else {
            return false;
        };
        let ours = etag.trim_start_matches("W/");
        return inm
            .split(',')
            .map(str::trim)
            .any(|t| t == "*" || t.trim_start_matches("W/") == ours);
    }
    let since = headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    match (since, modified) {
        (Some(since), Some(m)) => whole_seconds(m) <= since,
        _ => false,
    }
}

/// `t` rounded down to the second, as `Last-Modified` says it.
fn whole_seconds(t: SystemTime) -> SystemTime {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

/// Whether a `Range` may be honoured: no `If-Range`, or one naming what we
/// have (the strong ETag, or exactly the `Last-Modified` date).
fn if_range_holds(headers: &HeaderMap, etag: &str, modified: Option<SystemTime>) -> bool {
    let Some(v) = headers.get(header::IF_RANGE) else {
        return true;
    };
    let Ok(v) = v.to_str() else {
        return false;
    };
    let v = v.trim();
    if v.starts_with('"') {
        return v == etag;
    }
    match (httpdate::parse_http_date(v), modified) {
        (Ok(date), Some(m)) => whole_seconds(m) == date,
        _ => false,
    }
}

/// What a `Range` header asks of a body of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
enum Ranged {
    /// Bytes `first..=last`.
    Range(usize, usize),
    /// A single well-formed range that starts past the end (416).
    Unsatisfiable,
    /// Not one byte range we serve (another unit, several ranges, or
    /// malformed): the whole body, as RFC 9110 14.2 allows.
    Whole,
}

/// Parses `bytes=FIRST-LAST`, `bytes=FIRST-` or `bytes=-SUFFIX`.
fn byte_range(value: &HeaderValue, len: usize) -> Ranged {
    let Some(spec) = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().strip_prefix("bytes="))
        .map(str::trim)
    else {
        return Ranged::Whole;
    };
    if spec.contains(',') {
        return Ranged::Whole;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return Ranged::Whole;
    };
    let number = |s: &str| {
        (!s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
    };
    match (first.trim(), last.trim()) {
        ("", suffix) => match number(suffix) {
            None => Ranged::Whole,
            Some(0) => Ranged::Unsatisfiable,
            Some(_) if len == 0 => Ranged::Unsatisfiable,
            Some(n) => Ranged::Range(len.saturating_sub(n), len - 1),
        },
        (first, last) => {
            let Some(first) = number(first) else {
                return Ranged::Whole;
            };
            let last = if last.is_empty() {
                usize::MAX
            } else {
                match number(last) {
                    Some(l) if l >= first => l,
                    _ => return Ranged::Whole,
                }
            };
            if first >= len {
                Ranged::Unsatisfiable
            } else {
                Ranged::Range(first, last.min(len - 1))
            }
        }
    }
}

/// Response to a CORS preflight: any origin may GET and HEAD anything.
fn preflight(headers: &HeaderMap) -> Response<Full<Bytes>> {
    preflight_for(headers, ALLOWED_METHODS, None)
}

/// Response to a CORS preflight for a resource that takes the `allowed`
/// methods, exposing the `expose` response header to pages when given
/// (WHEP's Location). Shared by the HLS and WHEP answers.
pub(super) fn preflight_for(
    headers: &HeaderMap,
    allowed: &'static str,
    expose: Option<&'static str>,
) -> Response<Full<Bytes>> {
    let mut resp = with_cors(Response::new(Full::new(Bytes::new())));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(allowed),
    );
    // Players ask for Range, and WHEP pages for Content-Type
    // (application/sdp is not a "simple" type); echo what was asked for
    // (it already parsed as a header value, so it is safe to send back).
    if let Some(asked) = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
    }
    if let Some(expose) = expose {
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(expose),
        );
    }
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    h.insert(header::ALLOW, HeaderValue::from_static(allowed));
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

/// Lets any origin read the answer.
pub(super) fn with_cors(mut resp: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    resp.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    resp
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::http::Resource;
    use http_body_util::BodyExt;

    /// The instant the test clock reads as 2023-11-14 22:13:20 UTC.
    fn t0() -> Instant {
        static T0: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *T0.get_or_init(Instant::now)
    }

    fn clock() -> WallClock {
        WallClock {
            instant: t0(),
            system: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        }
    }

    /// `Last-Modified` of everything [`OneStream`] serves: 2.5 s after t0.
    const MODIFIED: &str = "Tue, 14 Nov 2023 22:13:22 GMT";

    /// A catalog of one stream "live" with a "source" variant and one
    /// segment, all changed 2.5 s after [`t0`], with 2 s segments.
    /// Our own interface, faked to test the HTTP layer alone.
    pub(crate) struct OneStream;

    fn resource(body: Bytes) -> Resource {
        Resource {
            body,
            modified: Some(t0() + Duration::from_millis(2500)),
            refresh: Duration::from_secs(2),
        }
    }

    impl HlsCatalog for OneStream {
        fn master_playlist(&self, key: &str) -> Option<Resource> {
            (key == "live").then(|| resource(Bytes::from_static(b"#EXTM3U\nlive/source.m3u8\n")))
        }
        fn media_playlist(&self, key: &str, variant: &str) -> Option<Resource> {
            (key == "live" && variant == "source")
                .then(|| resource(Bytes::from_static(b"#EXTM3U\nsource/7.ts\n")))
        }
        fn segment(&self, key: &str, variant: &str, name: &str) -> Option<Resource> {
            (key == "live" && variant == "source" && name == "7.ts").then(|| {
                resource(Bytes::from(
                    (0..188 * 3).map(|i| i as u8).collect::<Vec<_>>(),
                ))
            })
        }
    }

    fn get(method: Method, path: &str) -> (Response<Full<Bytes>>, Answer) {
        get_with(method, path, &[])
    }

    fn get_with(
        method: Method,
        path: &str,
        headers: &[(header::HeaderName, &str)],
    ) -> (Response<Full<Bytes>>, Answer) {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(name.clone(), HeaderValue::from_str(value).expect("header"));
        }
        respond(&method, path, &map, &OneStream, &clock())
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
    fn playlists_are_cached_half_a_segment_and_typed() {
        for path in ["/stream/live.m3u8", "/stream/live/source.m3u8"] {
            let (resp, answer) = get(Method::GET, path);
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
            assert_eq!(header(&resp, header::CONTENT_TYPE), PLAYLIST_TYPE);
            // 2 s segments: a cache keeps a playlist at most 1 s.
            assert_eq!(header(&resp, header::CACHE_CONTROL), "public, max-age=1");
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
            &clock(),
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
    #[test]
    fn playlist_max_age_is_at_most_half_a_segment() {
        for (refresh_ms, cache) in [
            (2000, "public, max-age=1"),
            (6000, "public, max-age=3"),
            (3000, "public, max-age=1"),
            (1000, "public, max-age=0"),
            (500, "public, max-age=0"),
        ] {
            assert_eq!(playlist_cache(Duration::from_millis(refresh_ms)), cache);
        }
    }

    #[test]
    fn playlists_and_segments_have_an_etag_and_last_modified() {
        let mut tags = Vec::new();
        for path in [
            "/stream/live.m3u8",
            "/stream/live/source.m3u8",
            "/stream/live/source/7.ts",
        ] {
            for method in [Method::GET, Method::HEAD] {
                let (resp, _) = get(method, path);
                assert_eq!(resp.status(), StatusCode::OK, "{path}");
                let tag = header(&resp, header::ETAG);
                assert!(
                    tag.len() == 18 && tag.starts_with('"') && tag.ends_with('"'),
                    "{tag}"
                );
                assert_eq!(header(&resp, header::LAST_MODIFIED), MODIFIED, "{path}");
                tags.push(tag.to_string());
            }
        }
        // HEAD and GET agree; different things differ.
        assert!(tags[0] == tags[1] && tags[2] == tags[3] && tags[4] == tags[5]);
        assert!(tags[0] != tags[2] && tags[2] != tags[4] && tags[0] != tags[4]);
    }

    #[test]
    fn if_none_match_gives_304_with_the_validators() {
        for path in ["/stream/live/source.m3u8", "/stream/live/source/7.ts"] {
            let (resp, _) = get(Method::GET, path);
            let tag = header(&resp, header::ETAG).to_string();
            let cache = header(&resp, header::CACHE_CONTROL).to_string();
            for (method, inm) in [
                (Method::GET, tag.clone()),
                (Method::HEAD, tag.clone()),
                (Method::GET, format!("\"0000000000000000\", {tag}")),
                (Method::GET, format!("W/{tag}")),
                (Method::GET, "*".to_string()),
            ] {
                let (resp, answer) =
                    get_with(method.clone(), path, &[(header::IF_NONE_MATCH, &inm)]);
                assert_eq!(resp.status(), StatusCode::NOT_MODIFIED, "{path} {inm}");
                assert_eq!(answer, Answer::NotModified);
                assert_eq!(header(&resp, header::ETAG), tag);
                assert_eq!(header(&resp, header::CACHE_CONTROL), cache);
                assert_eq!(header(&resp, header::LAST_MODIFIED), MODIFIED);
                assert!(resp.headers().get(header::CONTENT_LENGTH).is_none());
                assert!(body(resp).is_empty());
            }
            // Another tag: the whole answer, even with a matching date (If-None-Match decides).
            let (resp, answer) = get_with(
                Method::GET,
                path,
                &[
                    (header::IF_NONE_MATCH, "\"0000000000000000\""),
                    (header::IF_MODIFIED_SINCE, MODIFIED),
                ],
            );
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
            assert_ne!(answer, Answer::NotModified);
            assert!(!body(resp).is_empty());
        }
    }

    #[test]
    fn if_modified_since_gives_304_unless_changed_later() {
        for path in ["/stream/live.m3u8", "/stream/live/source/7.ts"] {
            for (since, status) in [
                (MODIFIED, StatusCode::NOT_MODIFIED),
                ("Tue, 14 Nov 2023 22:13:50 GMT", StatusCode::NOT_MODIFIED),
                ("Tue, 14 Nov 2023 22:13:21 GMT", StatusCode::OK),
                ("not a date", StatusCode::OK),
            ] {
                let (resp, _) = get_with(Method::GET, path, &[(header::IF_MODIFIED_SINCE, since)]);
                assert_eq!(resp.status(), status, "{path} since {since}");
            }
        }
    }

    /// (status, Content-Range, body) of a GET of segment 7 with `range`.
    fn ranged(range: &str, if_range: Option<&str>) -> (StatusCode, Option<String>, Bytes) {
        let mut headers = vec![(header::RANGE, range)];
        if let Some(v) = if_range {
            headers.push((header::IF_RANGE, v));
        }
        let (resp, _) = get_with(Method::GET, "/stream/live/source/7.ts", &headers);
        let status = resp.status();
        let content_range = resp
            .headers()
            .get(header::CONTENT_RANGE)
            .map(|v| v.to_str().expect("ascii").to_string());
        (status, content_range, body(resp))
    }

    #[test]
    fn segments_answer_byte_ranges() {
        let whole: Vec<u8> = (0..564).map(|i| i as u8).collect();
        let (resp, _) = get(Method::GET, "/stream/live/source/7.ts");
        assert_eq!(header(&resp, header::ACCEPT_RANGES), "bytes");
        let tag = header(&resp, header::ETAG).to_string();
        for (range, first, last) in [
            ("bytes=0-99", 0, 99),
            ("bytes=500-", 500, 563),
            ("bytes=-64", 500, 563),
            ("bytes=100-100", 100, 100),
            ("bytes=0-100000", 0, 563),
            ("bytes=-100000", 0, 563),
            ("bytes= 10 - 19 ", 10, 19),
        ] {
            let (status, content_range, got) = ranged(range, None);
            assert_eq!(status, StatusCode::PARTIAL_CONTENT, "{range}");
            assert_eq!(
                content_range.as_deref(),
                Some(format!("bytes {first}-{last}/564").as_str()),
                "{range}"
            );
            assert_eq!(&got[..], &whole[first..=last], "{range}");
        }
        for range in ["bytes=564-", "bytes=1000-2000", "bytes=-0"] {
            let (status, content_range, _) = ranged(range, None);
            assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
            assert_eq!(content_range.as_deref(), Some("bytes */564"), "{range}");
        }
        // Several ranges, other units, malformed: the whole segment.
        for range in [
            "bytes=0-1,5-6",
            "bytes=5-2",
            "items=0-1",
            "bytes=x-1",
            "bytes=1",
            "bytes=99999999999999999999-",
            "bytes=--1",
        ] {
            let (status, content_range, got) = ranged(range, None);
            assert_eq!(status, StatusCode::OK, "{range}");
            assert_eq!(content_range, None);
            assert_eq!(&got[..], &whole[..], "{range}");
        }
        // If-Range: the range only while the segment is what the client had.
        assert_eq!(
            ranged("bytes=0-9", Some(&tag)).0,
            StatusCode::PARTIAL_CONTENT
        );
        assert_eq!(
            ranged("bytes=0-9", Some(MODIFIED)).0,
            StatusCode::PARTIAL_CONTENT
        );
        assert_eq!(
            ranged("bytes=0-9", Some("\"0000000000000000\"")).0,
            StatusCode::OK
        );
        assert_eq!(
            ranged("bytes=0-9", Some("Tue, 14 Nov 2023 22:13:21 GMT")).0,
            StatusCode::OK
        );
        // HEAD: the range's headers and length, no body.
        let (resp, _) = get_with(
            Method::HEAD,
            "/stream/live/source/7.ts",
            &[(header::RANGE, "bytes=0-99")],
        );
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(header(&resp, header::CONTENT_LENGTH), "100");
        assert!(body(resp).is_empty());
        // Playlists are sent whole.
        let (resp, _) = get_with(
            Method::GET,
            "/stream/live/source.m3u8",
            &[(header::RANGE, "bytes=0-3")],
        );
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(resp.headers().get(header::ACCEPT_RANGES).is_none());
    }
}
