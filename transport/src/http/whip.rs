//! WHIP over HTTP (RFC 9725): `POST /whip` with an SDP offer and
//! `Authorization: Bearer <publish key>` answers `201 Created` with the SDP
//! answer and a `Location` (`/whip/<session>`) that `DELETE` ends;
//! `OPTIONS` answers CORS preflights (pages publish from other origins).
//! What the key may publish, and the session, are the catalog's
//! ([`HlsCatalog::whip_offer`]); this module only routes, reads the token
//! and the body (bounded) and shapes the answers.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Response, StatusCode};

use super::respond::{preflight_for, with_cors};
use super::stats::Answer;
use super::whep::{created, read_offer, text};
use super::HlsCatalog;

/// Longest session id in a WHIP resource URL.
const MAX_SESSION_ID: usize = 64;
/// Longest bearer token read (a publish key is at most 64 characters).
const MAX_TOKEN: usize = 256;
const ENDPOINT_METHODS: &str = "POST, OPTIONS";
const RESOURCE_METHODS: &str = "DELETE, OPTIONS";

/// What the catalog made of a publisher's offer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WhipAnswer {
    /// A session: its id (the last part of its URL) and the SDP answer.
    Created {
        /// Session id, `[0-9a-z]`.
        id: String,
        /// The SDP answer.
        sdp: String,
    },
    /// WHIP is off: 404.
    NotFound,
    /// The token is no publish key: 401.
    Unauthorized,
    /// The offer is malformed: 400 with the reason.
    BadOffer(String),
    /// The offer sends no codec the server takes: 406 with the reason.
    NoCodec(String),
    /// The stream is already being published: 409.
    Conflict(String),
    /// Too many sessions or streams: 503 with the reason.
    Busy(String),
}

/// What a path names, if it is a WHIP path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WhipRoute<'a> {
    /// `/whip`: where offers go.
    Endpoint,
    /// `/whip/<id>`: one session.
    Resource { id: &'a str },
}

/// Parses the WHIP paths; None for any other (or malformed) path.
pub(crate) fn parse(path: &str) -> Option<WhipRoute<'_>> {
    let rest = path.strip_prefix("/whip")?;
    if rest.is_empty() {
        return Some(WhipRoute::Endpoint);
    }
    let id = rest.strip_prefix('/')?;
    (!id.is_empty()
        && id.len() <= MAX_SESSION_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()))
    .then_some(WhipRoute::Resource { id })
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && token.len() <= MAX_TOKEN)
        .then_some(token)
}

/// Answers a WHIP request from `peer`; reads the body only for an offer
/// with a token.
pub(crate) async fn respond<B>(
    method: &Method,
    route: WhipRoute<'_>,
    headers: &HeaderMap,
    body: B,
    catalog: &dyn HlsCatalog,
    peer: SocketAddr,
) -> (Response<Full<Bytes>>, Answer)
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let allowed = match route {
        WhipRoute::Endpoint => ENDPOINT_METHODS,
        WhipRoute::Resource { .. } => RESOURCE_METHODS,
    };
    if *method == Method::OPTIONS {
        return (
            preflight_for(headers, allowed, Some("Location")),
            Answer::Other,
        );
    }
    match (route, method) {
        (WhipRoute::Endpoint, &Method::POST) => {
            let Some(token) = bearer(headers) else {
                return unauthorized();
            };
            let sdp = match read_offer(headers, body).await {
                Ok(sdp) => sdp,
                Err(refused) => return refused,
            };
            let sdp = sdp.as_str();
            offer_answer(catalog.whip_offer(token, sdp, peer))
        }
        (WhipRoute::Resource { id }, &Method::DELETE) => {
            if catalog.whip_delete(id) {
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

fn unauthorized() -> (Response<Full<Bytes>>, Answer) {
    let mut resp = text(
        StatusCode::UNAUTHORIZED,
        "publishing needs Authorization: Bearer <publish key>\n".into(),
    );
    resp.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    (resp, Answer::Refused)
}

fn offer_answer(answer: WhipAnswer) -> (Response<Full<Bytes>>, Answer) {
    let refused = |status, why: String| (text(status, format!("{why}\n")), Answer::Refused);
    match answer {
        WhipAnswer::Created { id, sdp } => created(&format!("/whip/{id}"), sdp),
        WhipAnswer::NotFound => (
            text(StatusCode::NOT_FOUND, "WHIP is off\n".into()),
            Answer::NotFound,
        ),
        WhipAnswer::Unauthorized => unauthorized(),
        WhipAnswer::BadOffer(why) => refused(StatusCode::BAD_REQUEST, why),
        WhipAnswer::NoCodec(why) => refused(StatusCode::NOT_ACCEPTABLE, why),
        WhipAnswer::Conflict(why) => refused(StatusCode::CONFLICT, why),
        WhipAnswer::Busy(why) => {
            let (mut resp, a) = refused(StatusCode::SERVICE_UNAVAILABLE, why);
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
            (resp, a)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whip_paths() {
        assert_eq!(parse("/whip"), Some(WhipRoute::Endpoint));
        assert_eq!(
            parse("/whip/0a1b"),
            Some(WhipRoute::Resource { id: "0a1b" })
        );
        for other in [
            "/whip/",
            "/whipx",
            "/whip/AB",
            "/whip/a/b",
            "/whip/..",
            "/stream/whip",
        ] {
            assert_eq!(parse(other), None, "{other:?}");
        }
        let long = format!("/whip/{}", "a".repeat(MAX_SESSION_ID + 1));
        assert_eq!(parse(&long), None);
    }

    #[test]
    fn bearer_tokens() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer k3y"),
        );
        assert_eq!(bearer(&h), Some("k3y"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  k3y "),
        );
        assert_eq!(bearer(&h), Some("k3y"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic azN5"),
        );
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&h), None);
    }
}
