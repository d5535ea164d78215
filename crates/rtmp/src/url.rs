//! RTMP URLs as ingests hand them out, split into app and stream key the way
//! OBS and ffmpeg do.

use std::fmt;

use crate::UrlError;

/// Default port of `rtmp://`.
pub const RTMP_PORT: u16 = 1935;
/// Default port of `rtmps://`.
pub const RTMPS_PORT: u16 = 443;

/// A parsed publish URL: `rtmp[s]://host[:port]/app[/more/app]/key[?params]`.
///
/// The stream key is the last path segment (with any `?` parameters it
/// carries); everything between the host and the key is the app, which may
/// itself contain slashes and a query string (`live/sub?token=1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpUrl {
    /// True for `rtmps://` (RTMP over TLS).
    pub tls: bool,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// The application (`connect`'s `app`).
    pub app: String,
    /// The stream key (`publish`'s name), parameters included.
    pub key: String,
}

impl RtmpUrl {
    /// Parses a publish URL; the error names what is wrong with it.
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let bad = |why: &'static str| UrlError {
            url: redact(url),
            why,
        };
        let (tls, rest) = if let Some(r) = strip_prefix_ci(url, "rtmp://") {
            (false, r)
        } else if let Some(r) = strip_prefix_ci(url, "rtmps://") {
            (true, r)
        } else {
            return Err(bad("must start with rtmp:// or rtmps://"));
        };
        let (authority, path) = rest
            .split_once('/')
            .ok_or_else(|| bad("has no /app/key path"))?;
        let (host, port) =
            split_host_port(authority).ok_or_else(|| bad("has a bad host or port"))?;
        let port = port.unwrap_or(if tls { RTMPS_PORT } else { RTMP_PORT });
        if host.is_empty() {
            return Err(bad("has no host"));
        }
        // The key is the last segment: split at the last '/' before the key's own parameters.
        let (app, key) = path
            .rsplit_once('/')
            .ok_or_else(|| bad("needs both an app and a stream key (rtmp://host/app/key)"))?;
        let app = app.trim_start_matches('/');
        if app.is_empty() {
            return Err(bad("has an empty app"));
        }
        if key.is_empty() || key.starts_with('?') {
            return Err(bad("has an empty stream key"));
        }
        Ok(Self {
            tls,
            host: host.to_string(),
            port,
            app: app.to_string(),
            key: key.to_string(),
        })
    }

    /// The `tcUrl` sent in `connect`: scheme, host, port and app.
    pub fn tc_url(&self) -> String {
        let scheme = if self.tls { "rtmps" } else { "rtmp" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{scheme}://{host}:{}/{}", self.port, self.app)
    }
}

/// Shows the URL with the stream key hidden: keys are secrets and end up in logs.
impl fmt::Display for RtmpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.tc_url(), mask_key(&self.key))
    }
}

/// The URL with whatever looks like a key replaced by `****`, for error messages.
pub fn redact(url: &str) -> String {
    match url.rsplit_once('/') {
        Some((head, key))
            if head.contains("://") && head.find("://").map(|i| i + 3) != Some(head.len()) =>
        {
            format!("{head}/{}", mask_key(key))
        }
        _ => url.to_string(),
    }
}

/// A stream key as logs show it: `****` (nothing for no key). Keys are
/// secrets, and logs end up in places anyone may read.
pub fn mask_key(key: &str) -> String {
    if key.is_empty() {
        String::new()
    } else {
        "****".to_string()
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            p => Some((host, Some(p.strip_prefix(':')?.parse().ok()?))),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Some((host, Some(port.parse().ok()?))),
        Some(_) => None,
        None => Some((authority, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> RtmpUrl {
        RtmpUrl::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn twitch_and_youtube_style_urls() {
        let u = parse("rtmp://live.example/app/live_123_abc");
        assert_eq!((u.host.as_str(), u.port), ("live.example", 1935));
        assert_eq!((u.app.as_str(), u.key.as_str()), ("app", "live_123_abc"));
        assert_eq!(u.tc_url(), "rtmp://live.example:1935/app");
        assert!(!u.tls);

        let u = parse("rtmps://a.rtmps.example/live2/xxxx-yyyy");
        assert!(u.tls);
        assert_eq!(u.port, 443);
        assert_eq!(u.app, "live2");
    }

    #[test]
    fn apps_with_slashes_and_queries_and_keys_with_params() {
        let u = parse("rtmp://127.0.0.1:19350/live/sub/stream?sig=1&t=2");
        assert_eq!(u.port, 19350);
        assert_eq!(u.app, "live/sub");
        assert_eq!(u.key, "stream?sig=1&t=2");

        let u = parse("rtmp://host/app?token=abc/key");
        assert_eq!((u.app.as_str(), u.key.as_str()), ("app?token=abc", "key"));

        let u = parse("RTMP://[::1]:1936/live/x");
        assert_eq!((u.host.as_str(), u.port), ("::1", 1936));
        assert_eq!(u.tc_url(), "rtmp://[::1]:1936/live");
    }

    #[test]
    fn malformed_urls_say_why_and_hide_the_key() {
        for bad in [
            "http://host/app/key",
            "rtmp://host",
            "rtmp://host/app",
            "rtmp://host/app/",
            "rtmp://:1935/app/key",
            "rtmp://host:99999/app/key",
            "rtmp://host:x/app/key",
            "rtmp:///app/key",
        ] {
            assert!(RtmpUrl::parse(bad).is_err(), "{bad}");
        }
        let e = RtmpUrl::parse("rtmp://host:x/app/secretkey").expect_err("bad port");
        assert!(!e.to_string().contains("secretkey"), "{e}");
        assert_eq!(
            parse("rtmp://h/app/secret").to_string(),
            "rtmp://h:1935/app/****"
        );
    }
}
