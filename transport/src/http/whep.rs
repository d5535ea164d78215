//! WHEP over HTTP (the IETF WHEP draft, shaped like WHIP's RFC 9725) and
//! the viewer page: `POST /stream/<key>/whep` with an SDP offer answers
//! `201 Created` with the SDP answer and a `Location`
//! (`/stream/<key>/whep/<session>`) that `DELETE` ends;
//! `/stream/<key>/<rendition>/whep` does the same for a rendition; `OPTIONS` answers
//! CORS preflights; `GET /stream/<key>/` is a page that plays WHEP and falls
//! back to HLS. The sessions themselves are the catalog's
//! ([`HlsCatalog::whep_offer`]); this module only routes, reads the body
//! (bounded) and shapes the answers.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Response, StatusCode};

use super::respond::{preflight_for, with_cors};
use super::route::is_safe_name;
use super::stats::Answer;
use super::HlsCatalog;

/// Largest request body read (an SDP offer); larger ones get 413.
pub const MAX_OFFER_BODY: usize = 64 * 1024;
/// Longest session id in a WHEP resource URL.
const MAX_SESSION_ID: usize = 64;
const WHEP_METHODS: &str = "POST, OPTIONS";
const RESOURCE_METHODS: &str = "DELETE, OPTIONS";
const PAGE_METHODS: &str = "GET, HEAD, OPTIONS";

/// What the catalog made of an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WhepAnswer {
    /// A session: its id (the last part of its URL) and the SDP answer.
    Created {
        /// Session id, `[0-9a-z]`.
        id: String,
        /// The SDP answer.
        sdp: String,
    },
    /// No such stream, or WHEP is off.
    NotFound,
    /// The offer is malformed: 400 with the reason.
    BadOffer(String),
    /// The offer has no codec the server can send: 406 with the reason.
    NoCodec(String),
    /// Too many sessions: 503 with the reason.
    Busy(String),
}

/// What a path names, if it is a WHEP or viewer-page path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WhepRoute<'a> {
    /// `/stream/<key>/`: the viewer page.
    Page { key: &'a str },
    /// `/stream/<key>/whep` (or `/stream/<key>/<rendition>/whep`): where
    /// offers go.
    Endpoint {
        key: &'a str,
        rendition: Option<&'a str>,
    },
    /// `/stream/<key>/whep/<id>` (or under a rendition): one session.
    Resource {
        key: &'a str,
        rendition: Option<&'a str>,
        id: &'a str,
    },
}

fn is_session_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_SESSION_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

/// Parses the WHEP and page paths; None for any other (or malformed) path.
pub(crate) fn parse(path: &str) -> Option<WhepRoute<'_>> {
    let rest = path.strip_prefix("/stream/")?;
    let mut parts = rest.split('/');
    let key = parts.next().filter(|k| is_safe_name(k))?;
    let route = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(""), None, None, None) => WhepRoute::Page { key },
        (Some("whep"), None, None, None) => WhepRoute::Endpoint {
            key,
            rendition: None,
        },
        (Some("whep"), Some(id), None, None) if is_session_id(id) => WhepRoute::Resource {
            key,
            rendition: None,
            id,
        },
        (Some(r), Some("whep"), None, None) if is_safe_name(r) => WhepRoute::Endpoint {
            key,
            rendition: Some(r),
        },
        (Some(r), Some("whep"), Some(id), None) if is_safe_name(r) && is_session_id(id) => {
            WhepRoute::Resource {
                key,
                rendition: Some(r),
                id,
            }
        }
        _ => return None,
    };
    Some(route)
}

/// Answers a WHEP or page request; reads the body only for an offer.
pub(crate) async fn respond<B>(
    method: &Method,
    route: WhepRoute<'_>,
    headers: &HeaderMap,
    body: B,
    catalog: &dyn HlsCatalog,
) -> (Response<Full<Bytes>>, Answer)
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let allowed = match route {
        WhepRoute::Page { .. } => PAGE_METHODS,
        WhepRoute::Endpoint { .. } => WHEP_METHODS,
        WhepRoute::Resource { .. } => RESOURCE_METHODS,
    };
    if *method == Method::OPTIONS {
        return (
            preflight_for(headers, allowed, Some("Location")),
            Answer::Other,
        );
    }
    match (route, method) {
        (WhepRoute::Page { key }, &Method::GET | &Method::HEAD) => {
            let page = Bytes::from(viewer_page(key));
            let len = page.len();
            let body = if *method == Method::HEAD {
                Bytes::new()
            } else {
                page
            };
            let mut resp = with_cors(Response::new(Full::new(body)));
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            (resp, Answer::Other)
        }
        (WhepRoute::Endpoint { key, rendition }, &Method::POST) => {
            let sdp = match read_offer(headers, body).await {
                Ok(sdp) => sdp,
                Err(refused) => return refused,
            };
            let sdp = sdp.as_str();
            match rendition {
                None => offer_answer(key, catalog.whep_offer(key, sdp)),
                Some(r) => offer_answer(
                    &format!("{key}/{r}"),
                    catalog.whep_offer_rendition(key, r, sdp),
                ),
            }
        }
        (WhepRoute::Resource { key, id, .. }, &Method::DELETE) => {
            if catalog.whep_delete(key, id) {
                let mut resp = with_cors(Response::new(Full::new(Bytes::new())));
                *resp.status_mut() = StatusCode::OK;
                (resp, Answer::Other)
            } else {
                (
                    text(StatusCode::NOT_FOUND, "no such session\n".into()),
                    Answer::NotFound,
                )
            }
        }
        _ => {
            let mut resp = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed\n".into(),
            );
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allowed));
            (resp, Answer::Refused)
        }
    }
}

/// The answer to an offer at `/stream/<path>/whep` (`path`: the key, or
/// `<key>/<rendition>`).
fn offer_answer(path: &str, answer: WhepAnswer) -> (Response<Full<Bytes>>, Answer) {
    match answer {
        WhepAnswer::Created { id, sdp } => created(&format!("/stream/{path}/whep/{id}"), sdp),
        WhepAnswer::NotFound => (
            text(StatusCode::NOT_FOUND, "no such stream\n".into()),
            Answer::NotFound,
        ),
        WhepAnswer::BadOffer(why) => (
            text(StatusCode::BAD_REQUEST, format!("{why}\n")),
            Answer::Refused,
        ),
        WhepAnswer::NoCodec(why) => (
            text(StatusCode::NOT_ACCEPTABLE, format!("{why}\n")),
            Answer::Refused,
        ),
        WhepAnswer::Busy(why) => {
            let mut resp = text(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n"));
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
            (resp, Answer::Refused)
        }
    }
}

/// An SDP offer's body, for WHEP and WHIP alike: `application/sdp`, at most
/// [`MAX_OFFER_BODY`] bytes (read no further), UTF-8; else the refusal.
pub(super) async fn read_offer<B>(
    headers: &HeaderMap,
    body: B,
) -> Result<String, (Response<Full<Bytes>>, Answer)>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let sdp_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/sdp"))
        });
    if !sdp_type {
        return Err((
            text(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "an offer is Content-Type: application/sdp\n".into(),
            ),
            Answer::Refused,
        ));
    }
    let bytes = match Limited::new(body, MAX_OFFER_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Err((
                text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("an offer is at most {MAX_OFFER_BODY} bytes\n"),
                ),
                Answer::Refused,
            ))
        }
    };
    String::from_utf8(Vec::from(bytes)).map_err(|_| {
        (
            text(StatusCode::BAD_REQUEST, "the offer is not UTF-8\n".into()),
            Answer::Refused,
        )
    })
}

/// `201 Created` with the SDP answer and the session's `Location` (exposed
/// to pages of other origins), for WHEP and WHIP alike.
pub(super) fn created(location: &str, sdp: String) -> (Response<Full<Bytes>>, Answer) {
    let mut resp = with_cors(Response::new(Full::new(Bytes::from(sdp))));
    *resp.status_mut() = StatusCode::CREATED;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/sdp"),
    );
    if let Ok(v) = HeaderValue::from_str(location) {
        h.insert(header::LOCATION, v);
    }
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Location"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    (resp, Answer::Other)
}

/// A plain-text answer (CORS allowed, not cached).
pub(super) fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut resp = with_cors(Response::new(Full::new(Bytes::from(body))));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// The viewer page of stream `key` (a safe name: nothing to escape).
fn viewer_page(key: &str) -> String {
    VIEWER_PAGE.replace("{{KEY}}", key)
}

/// Plays `whep` with an RTCPeerConnection (receive-only video and audio);
/// if that fails or no frame comes within 5 s, plays the HLS playlist with
/// hls.js (or natively where the browser plays HLS). `window.pstream`
/// exposes the peer connection for tests.
const VIEWER_PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>{{KEY}}</title>
<style>body{margin:0;background:#000}video{width:100vw;height:100vh}</style></head>
<body><video id="v" autoplay muted playsinline controls></video>
<script>
const video = document.getElementById('v');
const whep = '/stream/{{KEY}}/whep', hls = '/stream/{{KEY}}.m3u8';
window.pstream = { mode: 'whep', pc: null, error: null };
async function playWhep() {
  const pc = new RTCPeerConnection();
  window.pstream.pc = pc;
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  pc.ontrack = (e) => { if (!video.srcObject) video.srcObject = new MediaStream(); video.srcObject.addTrack(e.track); };
  await pc.setLocalDescription(await pc.createOffer());
  // Non-trickle: wait for our candidates (bounded) before sending the offer.
  await new Promise((done) => {
    if (pc.iceGatheringState === 'complete') return done();
    pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === 'complete') done(); };
    setTimeout(done, 2000);
  });
  const resp = await fetch(whep, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription.sdp });
  if (resp.status !== 201) throw new Error('WHEP ' + resp.status + ': ' + await resp.text());
  window.pstream.location = resp.headers.get('Location');
  await pc.setRemoteDescription({ type: 'answer', sdp: await resp.text() });
  addEventListener('pagehide', () => { fetch(window.pstream.location, { method: 'DELETE', keepalive: true }); });
}
function playHls() {
  window.pstream.mode = 'hls';
  if (window.pstream.pc) window.pstream.pc.close();
  if (video.canPlayType('application/vnd.apple.mpegurl')) { video.srcObject = null; video.src = hls; return; }
  const s = document.createElement('script');
  s.src = 'https://cdn.jsdelivr.net/npm/hls.js@1';
  s.onload = () => { const h = new Hls(); h.loadSource(hls); h.attachMedia(video); };
  document.head.appendChild(s);
}
// The title says how it plays: "<name> · WebRTC 1280x720" (or HLS).
const showMode = () => { if (video.videoWidth > 0) document.title = '{{KEY}} · ' + (window.pstream.mode === 'whep' ? 'WebRTC' : 'HLS') + ' ' + video.videoWidth + 'x' + video.videoHeight; };
video.addEventListener('resize', showMode);
video.addEventListener('playing', showMode);
playWhep().catch((e) => { window.pstream.error = String(e); playHls(); });
setTimeout(() => { if (window.pstream.mode === 'whep' && !(video.videoWidth > 0)) playHls(); }, 5000);
</script></body></html>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whep_paths() {
        assert_eq!(
            parse("/stream/live/"),
            Some(WhepRoute::Page { key: "live" })
        );
        assert_eq!(
            parse("/stream/live/whep"),
            Some(WhepRoute::Endpoint {
                key: "live",
                rendition: None
            })
        );
        assert_eq!(
            parse("/stream/live/whep/0a1b"),
            Some(WhepRoute::Resource {
                key: "live",
                rendition: None,
                id: "0a1b"
            })
        );
        assert_eq!(
            parse("/stream/live/360p/whep"),
            Some(WhepRoute::Endpoint {
                key: "live",
                rendition: Some("360p")
            })
        );
        assert_eq!(
            parse("/stream/live/360p/whep/0a1b"),
            Some(WhepRoute::Resource {
                key: "live",
                rendition: Some("360p"),
                id: "0a1b"
            })
        );
        for other in [
            "/stream/live.m3u8",
            "/stream/live/source.m3u8",
            "/stream/../whep",
            "/stream/li%2e/whep",
            "/stream/live/whep/",
            "/stream/live/whep/AB",
            "/stream/live/whep/a/b",
            "/stream/live/whepx",
            "/stream//whep",
            "/stream/live/../whep",
            "/stream/live/360p/whep/",
            "/stream/live/360p/whep/a/b",
            "/stream/live/360p/x/whep",
        ] {
            assert_eq!(parse(other), None, "{other:?}");
        }
        let long = format!("/stream/k/whep/{}", "a".repeat(MAX_SESSION_ID + 1));
        assert_eq!(parse(&long), None);
    }

    #[test]
    fn the_page_names_its_stream() {
        let page = viewer_page("cam-1");
        assert!(page.contains("'/stream/cam-1/whep'"));
        assert!(page.contains("'/stream/cam-1.m3u8'"));
        assert!(!page.contains("{{KEY}}"));
    }
}
