//! What a device offers (formats, sizes, frame rates) and choosing among it.
//!
//! The choice is a pure function of the enumerated offers and what the user
//! asked for, so it is tested here without a device.

use std::fmt;

use super::spec::{fourcc_str, PixelFormat};

/// A frame rate as a fraction of frames per second (the inverse of V4L2's interval).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    /// Frames per `den` seconds.
    pub num: u32,
    /// Seconds.
    pub den: u32,
}

impl Rate {
    /// The rate of a V4L2 frame interval `num/den` seconds (zero for an empty one).
    pub fn from_interval(num: u32, den: u32) -> Self {
        if num == 0 || den == 0 {
            Rate { num: 0, den: 1 }
        } else {
            Rate { num: den, den: num }
        }
    }

    /// Frames per second.
    pub fn fps(self) -> f64 {
        f64::from(self.num) / f64::from(self.den.max(1))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fps = self.fps();
        if (fps - fps.round()).abs() < 0.005 {
            write!(f, "{}", fps.round() as u64)
        } else {
            write!(f, "{fps:.2}")
        }
    }
}

/// The frame rates offered at one size.
#[derive(Debug, Clone, PartialEq)]
pub enum Rates {
    /// A list of rates.
    Discrete(Vec<Rate>),
    /// Any rate between these (a stepwise or continuous interval range).
    Range {
        /// Slowest rate.
        min: Rate,
        /// Fastest rate.
        max: Rate,
    },
    /// The driver does not enumerate rates (it takes whatever S_PARM gives).
    Unknown,
}

impl fmt::Display for Rates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rates::Discrete(list) => {
                let parts: Vec<String> = list.iter().map(Rate::to_string).collect();
                write!(f, "@{}", parts.join("/"))
            }
            Rates::Range { min, max } => write!(f, "@{min}-{max}"),
            Rates::Unknown => Ok(()),
        }
    }
}

/// The sizes offered for one pixel format.
#[derive(Debug, Clone, PartialEq)]
pub enum Sizes {
    /// A list of sizes, each with its rates.
    Discrete(Vec<(u32, u32, Rates)>),
    /// Any size in a range on a step grid; `rates` were enumerated at `max`.
    Stepwise {
        /// Smallest width and height.
        min: (u32, u32),
        /// Largest width and height.
        max: (u32, u32),
        /// Width and height steps.
        step: (u32, u32),
        /// Rates enumerated at the largest size.
        rates: Rates,
    },
}

/// One pixel format a device offers.
#[derive(Debug, Clone, PartialEq)]
pub struct FormatInfo {
    /// The V4L2 four-character code.
    pub fourcc: [u8; 4],
    /// The driver's description.
    pub description: String,
    /// The sizes offered (empty when the driver does not enumerate them).
    pub sizes: Option<Sizes>,
}

impl FormatInfo {
    /// The pixel format, when pstream handles this code.
    pub fn pixel_format(&self) -> Option<PixelFormat> {
        PixelFormat::from_fourcc(self.fourcc)
    }
}

impl fmt::Display for FormatInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", fourcc_str(self.fourcc))?;
        match &self.sizes {
            Some(Sizes::Discrete(list)) => {
                let parts: Vec<String> =
                    list.iter().map(|(w, h, r)| format!("{w}x{h}{r}")).collect();
                write!(f, " {}", parts.join(" "))
            }
            Some(Sizes::Stepwise {
                min,
                max,
                step,
                rates,
            }) => write!(
                f,
                " {}x{}..{}x{} step {}x{}{rates}",
                min.0, min.1, max.0, max.1, step.0, step.1
            ),
            None => Ok(()),
        }
    }
}

/// The offers on one line, for error messages: the formats pstream reads
/// with their sizes and rates (formats offering the same sizes share one
/// entry, "YUYV/NV12 640x480@30/15"), then how many others there are.
pub fn describe_offers(offers: &[FormatInfo]) -> String {
    if offers.is_empty() {
        return "no formats".to_owned();
    }
    offer_groups(offers).join("; ")
}

/// The entries [`describe_offers`] joins: one per group of readable formats
/// with the same sizes, then one naming the formats pstream cannot read.
pub fn offer_groups(offers: &[FormatInfo]) -> Vec<String> {
    let mut groups: Vec<(Vec<String>, String)> = Vec::new();
    let mut others: Vec<String> = Vec::new();
    for offer in offers {
        let full = offer.to_string();
        let name = fourcc_str(offer.fourcc);
        if offer.pixel_format().is_none() {
            others.push(name);
            continue;
        }
        let sizes = full[name.len()..].trim_start().to_owned();
        match groups.iter_mut().find(|(_, s)| *s == sizes) {
            Some((names, _)) => names.push(name),
            None => groups.push((vec![name], sizes)),
        }
    }
    let mut parts: Vec<String> = groups
        .into_iter()
        .map(|(names, sizes)| format!("{} {sizes}", names.join("/")).trim_end().to_owned())
        .collect();
    if !others.is_empty() {
        const SHOWN: usize = 6;
        let more = if others.len() > SHOWN { ", ..." } else { "" };
        others.truncate(SHOWN);
        parts.push(format!(
            "{} {} pstream cannot read ({}{more})",
            if parts.is_empty() { "only" } else { "and" },
            if others.len() == 1 {
                "format"
            } else {
                "formats"
            },
            others.join(", ")
        ));
    }
    parts
}

/// What the stream wants from the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Want {
    /// Wanted picture size.
    pub size: (u32, u32),
    /// Wanted frames per second.
    pub fps: u32,
    /// Prefer MJPEG (the stream is sent as MJPEG: no decode, no re-encode).
    pub prefer_mjpeg: bool,
    /// Prefer H.264 (the stream is sent as H.264: the camera's own, as it
    /// is). H.264 is never chosen otherwise: pstream does not decode it.
    pub prefer_h264: bool,
    /// The size must match exactly (given in the spec).
    pub exact_size: bool,
    /// The rate must match (given in the spec).
    pub exact_fps: bool,
    /// Only this pixel format (given in the spec).
    pub format: Option<PixelFormat>,
}

/// The format, size and rate to ask the device for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Choice {
    /// Pixel format.
    pub format: PixelFormat,
    /// Picture width.
    pub width: u32,
    /// Picture height.
    pub height: u32,
    /// Frame rate, `None` when the driver does not enumerate rates.
    pub rate: Option<Rate>,
}

/// Why nothing matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoMatch {
    /// No format pstream can read is offered (or not the one asked for).
    Format,
    /// The format is there but not at the size asked for.
    Size,
    /// The size is there but not at the rate asked for.
    Rate,
}

/// A rate counts as matching when it is within half a frame per second
/// (30000/1001 serves a request for 30).
const RATE_TOLERANCE: f64 = 0.5;

/// The size in a stepwise range closest to `want`.
fn nearest_in_range(want: u32, min: u32, max: u32, step: u32) -> u32 {
    let clamped = want.clamp(min, max.max(min));
    let step = step.max(1);
    let below = min + (clamped - min) / step * step;
    let above = below.saturating_add(step);
    if above <= max && above - clamped < clamped - below {
        above
    } else {
        below
    }
}

/// The rate to pick from `rates` for `fps`: the exact one, else the closest
/// (faster wins a tie: dropping frames is cheaper than repeating them).
fn pick_rate(rates: &Rates, fps: u32) -> Option<Rate> {
    let want = f64::from(fps);
    match rates {
        Rates::Discrete(list) => list.iter().copied().filter(|r| r.num > 0).min_by(|a, b| {
            let da = (a.fps() - want).abs();
            let db = (b.fps() - want).abs();
            da.total_cmp(&db).then(b.fps().total_cmp(&a.fps()))
        }),
        Rates::Range { min, max } => {
            if want < min.fps() {
                Some(*min)
            } else if want > max.fps() {
                Some(*max)
            } else {
                Some(Rate { num: fps, den: 1 })
            }
        }
        Rates::Unknown => None,
    }
}

/// Chooses the format, size and rate closest to `want` among `offers`.
///
/// Order of preference: the exact (else the closest) size, then the exact
/// rate, then the format (raw YU12 > NV12 > YUYV > MJPG for encoding; MJPG
/// first when the stream is MJPEG), then the closest rate.
pub fn choose(offers: &[FormatInfo], want: Want) -> Result<Choice, NoMatch> {
    let rank = |f: PixelFormat| -> usize {
        let base = PixelFormat::ALL
            .iter()
            .position(|p| *p == f)
            .unwrap_or(PixelFormat::ALL.len());
        if (want.prefer_mjpeg && f == PixelFormat::Mjpg)
            || (want.prefer_h264 && f == PixelFormat::H264)
        {
            0
        } else {
            base + 1
        }
    };
    // (size distance, rate not exact, format rank, rate distance in mHz)
    type Key = (u64, bool, usize, u64);
    let mut best: Option<(Key, Choice)> = None;
    let mut have_format = false;
    let mut have_size = false;
    let wanted_fps = f64::from(want.fps);
    for offer in offers {
        let Some(format) = offer.pixel_format() else {
            continue;
        };
        if want.format.is_some_and(|f| f != format) {
            continue;
        }
        if format == PixelFormat::H264 && !want.prefer_h264 {
            continue;
        }
        have_format = true;
        let candidates: Vec<(u32, u32, Option<Rate>)> = match &offer.sizes {
            Some(Sizes::Discrete(list)) => list
                .iter()
                .map(|(w, h, rates)| (*w, *h, pick_rate(rates, want.fps)))
                .collect(),
            Some(Sizes::Stepwise {
                min,
                max,
                step,
                rates,
            }) => vec![(
                nearest_in_range(want.size.0, min.0, max.0, step.0),
                nearest_in_range(want.size.1, min.1, max.1, step.1),
                pick_rate(rates, want.fps),
            )],
            // Not enumerated: ask for the wanted size and let S_FMT adjust it.
            None => vec![(want.size.0, want.size.1, None)],
        };
        for (w, h, rate) in candidates {
            let size_exact = (w, h) == want.size;
            if want.exact_size && !size_exact {
                continue;
            }
            have_size = true;
            let rate_diff = rate.map_or(0.0, |r| (r.fps() - wanted_fps).abs());
            let rate_exact = rate_diff <= RATE_TOLERANCE;
            if want.exact_fps && !rate_exact {
                continue;
            }
            let key: Key = (
                u64::from(w.abs_diff(want.size.0)) + u64::from(h.abs_diff(want.size.1)),
                !rate_exact,
                rank(format),
                (rate_diff * 1000.0) as u64,
            );
            let choice = Choice {
                format,
                width: w,
                height: h,
                rate,
            };
            if best.as_ref().is_none_or(|(k, _)| key < *k) {
                best = Some((key, choice));
            }
        }
    }
    match best {
        Some((_, c)) => Ok(c),
        None if !have_format => Err(NoMatch::Format),
        None if !have_size => Err(NoMatch::Size),
        None => Err(NoMatch::Rate),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fps(list: &[u32]) -> Rates {
        Rates::Discrete(list.iter().map(|&f| Rate { num: f, den: 1 }).collect())
    }

    /// A typical USB webcam: YUYV is slow at large sizes, MJPG is fast.
    fn webcam() -> Vec<FormatInfo> {
        vec![
            FormatInfo {
                fourcc: *b"YUYV",
                description: "YUYV 4:2:2".into(),
                sizes: Some(Sizes::Discrete(vec![
                    (640, 480, fps(&[30, 15])),
                    (1280, 720, fps(&[10])),
                ])),
            },
            FormatInfo {
                fourcc: *b"MJPG",
                description: "Motion-JPEG".into(),
                sizes: Some(Sizes::Discrete(vec![
                    (640, 480, fps(&[30])),
                    (1280, 720, fps(&[30, 60])),
                    (1920, 1080, fps(&[30])),
                ])),
            },
            FormatInfo {
                fourcc: *b"H264",
                description: "H.264".into(),
                sizes: Some(Sizes::Discrete(vec![(1280, 720, fps(&[30]))])),
            },
        ]
    }

    fn want(w: u32, h: u32, f: u32) -> Want {
        Want {
            size: (w, h),
            fps: f,
            prefer_mjpeg: false,
            prefer_h264: false,
            exact_size: false,
            exact_fps: false,
            format: None,
        }
    }

    fn choice(format: PixelFormat, w: u32, h: u32, f: u32) -> Choice {
        Choice {
            format,
            width: w,
            height: h,
            rate: Some(Rate { num: f, den: 1 }),
        }
    }

    #[test]
    fn raw_wins_when_it_offers_the_exact_size_and_rate() {
        assert_eq!(
            choose(&webcam(), want(640, 480, 30)),
            Ok(choice(PixelFormat::Yuyv, 640, 480, 30))
        );
    }

    #[test]
    fn the_exact_rate_beats_the_raw_format() {
        // YUYV has 720p only at 10 fps: MJPG gives 720p30.
        assert_eq!(
            choose(&webcam(), want(1280, 720, 30)),
            Ok(choice(PixelFormat::Mjpg, 1280, 720, 30))
        );
    }

    #[test]
    fn mjpeg_streams_prefer_mjpeg() {
        let w = Want {
            prefer_mjpeg: true,
            ..want(640, 480, 30)
        };
        assert_eq!(
            choose(&webcam(), w),
            Ok(choice(PixelFormat::Mjpg, 640, 480, 30))
        );
    }

    #[test]
    fn h264_is_taken_only_for_an_h264_stream() {
        // The webcam's H264 1280x720@30 is its best match for an H.264
        // stream, sent as it is.
        let w = Want {
            prefer_h264: true,
            ..want(1280, 720, 30)
        };
        assert_eq!(
            choose(&webcam(), w),
            Ok(choice(PixelFormat::H264, 1280, 720, 30))
        );
        // Otherwise never: pstream does not decode a camera's H.264.
        assert_eq!(
            choose(&webcam(), want(1280, 720, 30)),
            Ok(choice(PixelFormat::Mjpg, 1280, 720, 30))
        );
        let only_h264 = vec![webcam().remove(2)];
        assert_eq!(
            choose(&only_h264, want(1280, 720, 30)),
            Err(NoMatch::Format)
        );
    }

    #[test]
    fn without_an_exact_size_the_closest_is_taken() {
        assert_eq!(
            choose(&webcam(), want(1920, 1000, 30)),
            Ok(choice(PixelFormat::Mjpg, 1920, 1080, 30))
        );
        // 25 fps: 30 is the closest of YUYV's rates at 640x480.
        assert_eq!(
            choose(&webcam(), want(640, 480, 25)),
            Ok(choice(PixelFormat::Yuyv, 640, 480, 30))
        );
    }

    #[test]
    fn forced_options_narrow_the_choice_and_say_why_nothing_fits() {
        let forced = Want {
            format: Some(PixelFormat::Yuyv),
            ..want(1280, 720, 30)
        };
        assert_eq!(
            choose(&webcam(), forced),
            Ok(choice(PixelFormat::Yuyv, 1280, 720, 10))
        );
        let strict = Want {
            exact_fps: true,
            exact_size: true,
            ..forced
        };
        assert_eq!(choose(&webcam(), strict), Err(NoMatch::Rate));
        // A required rate alone takes the closest size that has it.
        let rate_only = Want {
            exact_fps: true,
            ..forced
        };
        assert_eq!(
            choose(&webcam(), rate_only),
            Ok(choice(PixelFormat::Yuyv, 640, 480, 30))
        );
        let size = Want {
            exact_size: true,
            ..want(800, 600, 30)
        };
        assert_eq!(choose(&webcam(), size), Err(NoMatch::Size));
        let nv12 = Want {
            format: Some(PixelFormat::Nv12),
            ..want(640, 480, 30)
        };
        assert_eq!(choose(&webcam(), nv12), Err(NoMatch::Format));
        assert_eq!(
            choose(&webcam()[2..], want(1280, 720, 30)),
            Err(NoMatch::Format)
        );
    }

    #[test]
    fn ntsc_rates_count_as_exact() {
        let offers = vec![FormatInfo {
            fourcc: *b"NV12",
            description: String::new(),
            sizes: Some(Sizes::Discrete(vec![(
                640,
                480,
                Rates::Discrete(vec![Rate::from_interval(1001, 30000)]),
            )])),
        }];
        let strict = Want {
            exact_fps: true,
            ..want(640, 480, 30)
        };
        let c = choose(&offers, strict).expect("29.97 serves 30");
        assert_eq!(
            c.rate,
            Some(Rate {
                num: 30000,
                den: 1001
            })
        );
    }

    #[test]
    fn stepwise_ranges_snap_to_their_grid() {
        let offers = vec![FormatInfo {
            fourcc: *b"YU12",
            description: String::new(),
            sizes: Some(Sizes::Stepwise {
                min: (16, 16),
                max: (1920, 1080),
                step: (16, 8),
                rates: Rates::Range {
                    min: Rate { num: 1, den: 1 },
                    max: Rate { num: 60, den: 1 },
                },
            }),
        }];
        assert_eq!(
            choose(&offers, want(1280, 720, 30)),
            Ok(choice(PixelFormat::Yu12, 1280, 720, 30))
        );
        let c = choose(&offers, want(1000, 5000, 120)).expect("clamped");
        // A tie between two grid points goes to the smaller.
        assert_eq!((c.width, c.height), (992, 1080));
        assert_eq!(c.rate, Some(Rate { num: 60, den: 1 }));
        assert_eq!(nearest_in_range(1001, 16, 1920, 16), 1008);
        assert_eq!(nearest_in_range(1, 16, 1920, 16), 16);
    }

    #[test]
    fn unenumerated_formats_ask_for_the_wanted_size() {
        let offers = vec![FormatInfo {
            fourcc: *b"YUYV",
            description: String::new(),
            sizes: None,
        }];
        let c = choose(&offers, want(320, 240, 30)).expect("taken");
        assert_eq!(
            (c.format, c.width, c.height, c.rate),
            (PixelFormat::Yuyv, 320, 240, None)
        );
    }

    #[test]
    fn offers_are_described_on_one_line() {
        assert_eq!(
            describe_offers(&webcam()),
            "YUYV 640x480@30/15 1280x720@10; MJPG 640x480@30 1280x720@30/60 1920x1080@30; \
             H264 1280x720@30"
        );
        // Formats with the same sizes share an entry; unreadable ones are only counted.
        let same = Some(Sizes::Discrete(vec![(320, 180, fps(&[30, 15]))]));
        let mut many: Vec<FormatInfo> = [*b"YUYV", *b"NV12", *b"UYVY", *b"RGB3"]
            .into_iter()
            .map(|fourcc| FormatInfo {
                fourcc,
                description: String::new(),
                sizes: same.clone(),
            })
            .collect();
        assert_eq!(
            describe_offers(&many),
            "YUYV/NV12 320x180@30/15; and formats pstream cannot read (UYVY, RGB3)"
        );
        many.drain(..2);
        assert_eq!(
            describe_offers(&many),
            "only formats pstream cannot read (UYVY, RGB3)"
        );
        assert_eq!(describe_offers(&[]), "no formats");
        assert_eq!(Rate::from_interval(1001, 30000).to_string(), "29.97");
    }
}
