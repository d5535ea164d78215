//! The comma lists `pstream bench encode` takes (`--sizes 640x360,1280x720`,
//! `--presets fast,quality`, `--threads 1,2`, ...), parsed the same way for
//! the command line and for programs that embed the benchmark.

use pstream_codec::H264Preset;

use super::encode::BenchCodec;

/// Why a list or one of its items cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ListError {
    /// The list has no items, or an empty item between two commas.
    #[error("{what} list {list:?} has an empty item")]
    EmptyItem {
        /// What the list holds ("size", "preset", ...).
        what: &'static str,
        /// The list as given.
        list: String,
    },
    /// The same item twice: the table would have two identical rows.
    #[error("{what} {item:?} is listed twice")]
    Duplicate {
        /// What the list holds.
        what: &'static str,
        /// The repeated item.
        item: String,
    },
    /// An item that is not a valid value.
    #[error("{what} {item:?}: {why}")]
    BadItem {
        /// What the list holds.
        what: &'static str,
        /// The item as given.
        item: String,
        /// What is wrong with it.
        why: String,
    },
}

impl ListError {
    fn bad(what: &'static str, item: &str, why: impl Into<String>) -> Self {
        ListError::BadItem {
            what,
            item: item.to_owned(),
            why: why.into(),
        }
    }
}

/// Splits `list` at commas (spaces around items ignored) and parses each
/// item with `item`; empty items and duplicates are refused.
pub fn parse_list<T: PartialEq>(
    list: &str,
    what: &'static str,
    item: impl Fn(&str) -> Result<T, ListError>,
) -> Result<Vec<T>, ListError> {
    let mut out: Vec<T> = Vec::new();
    for raw in list.split(',') {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(ListError::EmptyItem {
                what,
                list: list.to_owned(),
            });
        }
        let value = item(raw)?;
        if out.contains(&value) {
            return Err(ListError::Duplicate {
                what,
                item: raw.to_owned(),
            });
        }
        out.push(value);
    }
    Ok(out)
}

/// One picture size, `WIDTHxHEIGHT`: even, 16x16 to 4096x4096 (what every
/// pstream command takes; the H.264 encoder's own limit, 3840x2160, is
/// checked when the benchmark starts).
pub fn parse_size(s: &str) -> Result<(u32, u32), ListError> {
    const WHAT: &str = "size";
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| ListError::bad(WHAT, s, "not WIDTHxHEIGHT"))?;
    let w: u32 = w
        .parse()
        .map_err(|_| ListError::bad(WHAT, s, "bad width"))?;
    let h: u32 = h
        .parse()
        .map_err(|_| ListError::bad(WHAT, s, "bad height"))?;
    if !(16..=4096).contains(&w) || !(16..=4096).contains(&h) || w % 2 != 0 || h % 2 != 0 {
        return Err(ListError::bad(
            WHAT,
            s,
            "must be even and between 16x16 and 4096x4096",
        ));
    }
    Ok((w, h))
}

/// The name `--preset` gives an H.264 preset.
pub fn preset_name(p: H264Preset) -> &'static str {
    match p {
        H264Preset::Fast => "fast",
        H264Preset::Balanced => "balanced",
        H264Preset::Quality => "quality",
    }
}

/// Every H.264 preset pstream has, fastest first.
pub const PRESETS: [H264Preset; 3] = [H264Preset::Fast, H264Preset::Balanced, H264Preset::Quality];

/// One H.264 preset by name: `fast`, `balanced` or `quality`.
pub fn parse_preset(s: &str) -> Result<H264Preset, ListError> {
    PRESETS
        .into_iter()
        .find(|p| preset_name(*p) == s)
        .ok_or_else(|| ListError::bad("preset", s, "not one of fast, balanced, quality"))
}

/// One codec by name: `h264`, `mjpeg`, `opus` or `aac`.
pub fn parse_codec(s: &str) -> Result<BenchCodec, ListError> {
    BenchCodec::ALL
        .into_iter()
        .find(|c| c.name() == s)
        .ok_or_else(|| ListError::bad("codec", s, "not one of h264, mjpeg, opus, aac"))
}

/// An unsigned number in `range`, named `what` in errors.
pub fn parse_number<T>(
    s: &str,
    what: &'static str,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ListError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    let v: T = s
        .parse()
        .map_err(|_| ListError::bad(what, s, "not a whole number"))?;
    if !range.contains(&v) {
        return Err(ListError::bad(
            what,
            s,
            format!("must be between {} and {}", range.start(), range.end()),
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_a_list_in_order() {
        assert_eq!(
            parse_list("640x360, 1280x720,1920X1080", "size", parse_size),
            Ok(vec![(640, 360), (1280, 720), (1920, 1080)])
        );
        assert_eq!(
            parse_list("320x240", "size", parse_size),
            Ok(vec![(320, 240)])
        );
    }

    #[test]
    fn bad_lists_name_the_bad_item() {
        let e = |s: &str| {
            parse_list(s, "size", parse_size)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert_eq!(
            e("640x360,,1280x720"),
            "size list \"640x360,,1280x720\" has an empty item"
        );
        assert_eq!(e(""), "size list \"\" has an empty item");
        assert_eq!(e("640x360,640x360"), "size \"640x360\" is listed twice");
        assert_eq!(
            e("640x361"),
            "size \"640x361\": must be even and between 16x16 and 4096x4096"
        );
        assert_eq!(e("640"), "size \"640\": not WIDTHxHEIGHT");
        assert_eq!(e("axb"), "size \"axb\": bad width");
        assert_eq!(
            e("8x8"),
            "size \"8x8\": must be even and between 16x16 and 4096x4096"
        );
    }

    #[test]
    fn presets_codecs_and_numbers_parse() {
        assert_eq!(
            parse_list("fast,quality", "preset", parse_preset),
            Ok(vec![H264Preset::Fast, H264Preset::Quality])
        );
        assert!(
            parse_list("fast,slow", "preset", parse_preset).is_err_and(
                |e| e.to_string() == "preset \"slow\": not one of fast, balanced, quality"
            )
        );
        assert_eq!(
            parse_list("aac,h264", "codec", parse_codec),
            Ok(vec![BenchCodec::Aac, BenchCodec::H264])
        );
        let threads = |s| parse_list(s, "threads", |t| parse_number(t, "threads", 0u16..=16));
        assert_eq!(threads("1,2,4"), Ok(vec![1, 2, 4]));
        assert!(threads("1,17")
            .is_err_and(|e| e.to_string() == "threads \"17\": must be between 0 and 16"));
        assert!(threads("-1").is_err_and(|e| e.to_string() == "threads \"-1\": not a whole number"));
        for p in PRESETS {
            assert_eq!(parse_preset(preset_name(p)), Ok(p));
        }
    }
}
