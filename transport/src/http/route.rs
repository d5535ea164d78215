//! Strict parsing of the request path into what it names.
//!
//! Only the three HLS shapes are accepted, and every component must be made
//! of a small safe alphabet. Nothing is ever decoded: a `%` anywhere is
//! refused, so `%2e%2e` cannot turn into `..` further down, and the catalog
//! only ever sees names that could not climb out of a directory if a
//! `--hls-dir` implementation mapped them to files.

/// Longest request path accepted (the longest legal one is well under this).
pub const MAX_PATH_LEN: usize = 256;

/// The longest session part of a segment name (`<session>-<sequence>.ts`).
const MAX_SESSION_LEN: usize = 32;

pub use pstream_rtmp::{is_safe_name, MAX_NAME_LEN};

/// What a request path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    /// `/stream/<key>.m3u8`.
    Master {
        /// Stream key.
        key: &'a str,
    },
    /// `/stream/<key>/<variant>.m3u8`.
    Media {
        /// Stream key.
        key: &'a str,
        /// "source" or a rendition name.
        variant: &'a str,
    },
    /// `/stream/<key>/<variant>/<session>-<sequence>.ts` (or `<sequence>.ts`).
    Segment {
        /// Stream key.
        key: &'a str,
        /// "source" or a rendition name.
        variant: &'a str,
        /// "<session>-<sequence>.ts" or "<sequence>.ts".
        name: &'a str,
    },
}

/// Why a path was refused before any lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Longer than [`MAX_PATH_LEN`]: 414.
    TooLong,
    /// Traversal, encoding, backslashes, control bytes or a name outside the
    /// safe alphabet: 400.
    Malformed,
    /// Well-formed but not one of the served shapes: 404.
    NoRoute,
}

/// Parses a request path (without the query) into a [`Route`].
pub fn parse(path: &str) -> Result<Route<'_>, Refusal> {
    if path.len() > MAX_PATH_LEN {
        return Err(Refusal::TooLong);
    }
    if path.contains("..")
        || path.contains("//")
        || path
            .bytes()
            .any(|b| b == b'%' || b == b'\\' || b.is_ascii_control() || !b.is_ascii())
    {
        return Err(Refusal::Malformed);
    }
    let rest = path.strip_prefix("/stream/").ok_or(Refusal::NoRoute)?;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [file] => {
            let key = file.strip_suffix(".m3u8").ok_or(Refusal::NoRoute)?;
            Ok(Route::Master { key: name(key)? })
        }
        [key, file] => {
            let variant = file.strip_suffix(".m3u8").ok_or(Refusal::NoRoute)?;
            Ok(Route::Media {
                key: name(key)?,
                variant: name(variant)?,
            })
        }
        [key, variant, file] => {
            let stem = file.strip_suffix(".ts").ok_or(Refusal::NoRoute)?;
            let (session, sequence) = stem.split_once('-').unwrap_or(("", stem));
            let session_ok = session.len() <= MAX_SESSION_LEN
                && session
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase());
            let sequence_ok = !sequence.is_empty()
                && sequence.len() <= 20
                && sequence.bytes().all(|b| b.is_ascii_digit());
            if !(session_ok && sequence_ok) || stem.starts_with('-') {
                return Err(Refusal::Malformed);
            }
            Ok(Route::Segment {
                key: name(key)?,
                variant: name(variant)?,
                name: file,
            })
        }
        _ => Err(Refusal::NoRoute),
    }
}

fn name(s: &str) -> Result<&str, Refusal> {
    if is_safe_name(s) {
        Ok(s)
    } else {
        Err(Refusal::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_shapes() {
        assert_eq!(
            parse("/stream/hello_world.m3u8"),
            Ok(Route::Master { key: "hello_world" })
        );
        assert_eq!(
            parse("/stream/hello_world/P144p30fps16x9.m3u8"),
            Ok(Route::Media {
                key: "hello_world",
                variant: "P144p30fps16x9"
            })
        );
        assert_eq!(
            parse("/stream/k-1/source/42.ts"),
            Ok(Route::Segment {
                key: "k-1",
                variant: "source",
                name: "42.ts"
            })
        );
        assert_eq!(
            parse("/stream/k/source/0123456789abcdef-42.ts"),
            Ok(Route::Segment {
                key: "k",
                variant: "source",
                name: "0123456789abcdef-42.ts"
            })
        );
    }

    #[test]
    fn traversal_and_encodings_are_refused() {
        for path in [
            "/stream/../etc/passwd",
            "/stream/k/../../x.m3u8",
            "/stream/k/source/..",
            "/stream/%2e%2e/source.m3u8",
            "/stream/%2E%2E/source/1.ts",
            "/stream/k%2fsource.m3u8",
            "/stream/k\\..\\x.m3u8",
            "/stream/k\0.m3u8",
            "/stream/k\n.m3u8",
            "/stream/k//source.m3u8",
            "/stream/kéy.m3u8",
            "/stream/k.y.m3u8",
            "/stream/k/source/1.2.ts",
            "/stream/k/source/x.ts",
            "/stream/k/source/.ts",
            "/stream/k/source/-1.ts",
            "/stream/k/source/abc-.ts",
            "/stream/k/source/abc-1-2.ts",
            "/stream/k/source/ABC-1.ts",
            "/stream/k/source/a_b-1.ts",
            "/stream/k/source/abc-x.ts",
            "/stream/.m3u8",
            "/stream/k/.m3u8",
        ] {
            assert_eq!(parse(path), Err(Refusal::Malformed), "{path:?}");
        }
    }

    #[test]
    fn long_paths_and_names_are_refused() {
        let long = format!("/stream/{}.m3u8", "k".repeat(MAX_PATH_LEN));
        assert_eq!(parse(&long), Err(Refusal::TooLong));
        let long_key = format!("/stream/{}.m3u8", "k".repeat(MAX_NAME_LEN + 1));
        assert_eq!(parse(&long_key), Err(Refusal::Malformed));
        let max_key = "k".repeat(MAX_NAME_LEN);
        assert_eq!(
            parse(&format!("/stream/{max_key}.m3u8")),
            Ok(Route::Master { key: &max_key })
        );
        let long_seq = format!("/stream/k/source/{}.ts", "1".repeat(21));
        assert_eq!(parse(&long_seq), Err(Refusal::Malformed));
        let long_session = format!("/stream/k/source/{}-1.ts", "a".repeat(MAX_SESSION_LEN + 1));
        assert_eq!(parse(&long_session), Err(Refusal::Malformed));
    }

    #[test]
    fn other_shapes_are_not_routes() {
        for path in [
            "/",
            "/stream",
            "/stream/",
            "/streams/k.m3u8",
            "/stream/k",
            "/stream/k.ts",
            "/stream/k/source",
            "/stream/k/source/1.m3u8",
            "/stream/k/source/1.ts/x",
            "/index.html",
        ] {
            assert_eq!(parse(path), Err(Refusal::NoRoute), "{path:?}");
        }
    }
}
