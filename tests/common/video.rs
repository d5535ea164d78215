//! Reading what `pstream recv` wrote: its Y4M pictures (timecodes, clean
//! or not) and its summary lines.

use std::io::BufReader;
use std::path::Path;

use pstream_capture::timecode::read_timecode_luma;
use pstream_capture::TestPattern;
use pstream_mux::Y4mReader;

/// One decoded picture of a Y4M file.
#[derive(Debug, Clone, Copy)]
pub struct Picture {
    /// Its position in the file.
    pub index: u64,
    /// The sender's capture time painted into it, if readable.
    pub timecode: Option<u64>,
    /// Luma PSNR in dB against the test pattern frame it should be, if asked for.
    pub psnr: Option<f64>,
}

/// Size, rate and pictures of a Y4M file written by `pstream recv`.
#[derive(Debug)]
pub struct Y4mScan {
    pub width: u32,
    pub height: u32,
    pub fps: (u32, u32),
    pub pictures: Vec<Picture>,
    pub truncated: bool,
}

/// Reads every picture of `path`, its timecode and, with `compare` set, its
/// luma PSNR against the test pattern frame the sender rendered for it.
///
/// The frame number is worked out from the timecode: the first picture is
/// taken as frame 0 (the receiver is up before the sender starts, so it is
/// the sender's first IDR) and later ones are `fps` apart; the best of the
/// three nearest frame numbers is used, so capture-time jitter of the
/// sender's pacer does not matter.
pub fn scan_y4m(path: &Path, compare: bool) -> Y4mScan {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut reader = Y4mReader::new(BufReader::with_capacity(4 << 20, file), "y4m")
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let f = reader.header().format;
    let (w, h) = (f.width, f.height);
    let pattern = compare.then(|| TestPattern::new(w, h));
    let period_us = 1e6 * f64::from(f.fps_den) / f64::from(f.fps_num);
    let mut first_tc: Option<u64> = None;
    let mut pictures = Vec::new();
    let mut index = 0;
    loop {
        let data = match reader.read_frame() {
            Ok(Some(d)) => d,
            Ok(None) => break,
            Err(e) => panic!("{}: {e}", path.display()),
        };
        let luma = &data[..(w * h) as usize];
        let timecode = read_timecode_luma(luma, w as usize, w, h);
        let psnr = match (&pattern, timecode) {
            (Some(p), Some(tc)) => {
                let t0 = *first_tc.get_or_insert(tc);
                let n = ((tc.saturating_sub(t0)) as f64 / period_us).round() as u64;
                (n.saturating_sub(1)..=n + 1)
                    .map(|k| luma_psnr(luma, &p.render(k, tc)[..luma.len()]))
                    .reduce(f64::max)
            }
            _ => None,
        };
        pictures.push(Picture {
            index,
            timecode,
            psnr,
        });
        index += 1;
    }
    Y4mScan {
        width: w,
        height: h,
        fps: (f.fps_num, f.fps_den),
        pictures,
        truncated: reader.truncated(),
    }
}

/// Luma PSNR in dB (99 for identical planes).
pub fn luma_psnr(a: &[u8], b: &[u8]) -> f64 {
    let n = a.len().min(b.len()).max(1);
    let se: u64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = i64::from(x) - i64::from(y);
            (d * d) as u64
        })
        .sum();
    if se == 0 {
        return 99.0;
    }
    10.0 * (255.0f64 * 255.0 / (se as f64 / n as f64)).log10()
}

/// Complete pictures in a Y4M file pstream is still writing, from its size
/// (the header line is variable; the frame size is known).
pub fn y4m_frames_so_far(path: &Path, width: u32, height: u32) -> u64 {
    let Ok(meta) = std::fs::metadata(path) else {
        return 0;
    };
    let head = header_len(path);
    let frame = 6 + u64::from(width) * u64::from(height) * 3 / 2;
    meta.len().saturating_sub(head) / frame
}

fn header_len(path: &Path) -> u64 {
    use std::io::Read;
    let mut buf = [0u8; 256];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut buf))
        .unwrap_or(0);
    buf[..n]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(u64::MAX, |p| p as u64 + 1)
}

/// The last line of `log` containing `marker` (e.g. "recv finished").
pub fn summary<'a>(log: &'a str, marker: &str) -> &'a str {
    log.lines()
        .rfind(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no {marker:?} line in:\n{log}"))
}

/// The number after `key` in the `stream` ("video"/"audio") part of a
/// pstream stats line: `stat(line, "video", "frames")`.
pub fn stat(line: &str, stream: &str, key: &str) -> Option<f64> {
    let part = line.split(" | ").find(|p| {
        p.split(": ")
            .last()
            .unwrap_or(p)
            .trim_start()
            .starts_with(stream)
    })?;
    let mut words = part.split_whitespace();
    while let Some(w) = words.next() {
        if w == key {
            return words.next()?.trim_end_matches('%').parse().ok();
        }
    }
    None
}

/// The `latency median X p95 Y p99 Z max W ms` figures of a recv line.
pub fn latency_figures(line: &str) -> Option<(f64, f64, f64, f64)> {
    let rest = line.split("latency median ").nth(1)?;
    let w: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| w.get(i).and_then(|s| s.parse::<f64>().ok());
    if w.get(1) != Some(&"p95") || w.get(3) != Some(&"p99") || w.get(5) != Some(&"max") {
        return None;
    }
    Some((num(0)?, num(2)?, num(4)?, num(6)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stats_lines() {
        let l = "2026 INFO recv finished: video 29.9 fps 2400 kbit/s frames 240 pkts 9 lost 2 late 0 dup 1 jitter 0.2 ms pli 3 discarded 4 | audio 96 kbit/s frames 400 pkts 400 lost 1 late 0 dup 0 jitter 0.1 ms concealed 1 | latency median 6.1 p95 8.0 p99 9.5 max 12.0 ms";
        assert_eq!(stat(l, "video", "frames"), Some(240.0));
        assert_eq!(stat(l, "video", "pli"), Some(3.0));
        assert_eq!(stat(l, "audio", "lost"), Some(1.0));
        assert_eq!(latency_figures(l), Some((6.1, 8.0, 9.5, 12.0)));
    }

    /// The tests call a picture damaged below 40 dB: a clean 720p picture
    /// decodes at about 48 dB, and showing the neighbouring frame instead
    /// (the box 6 pixels off) already falls well below 40.
    #[test]
    fn psnr_tells_a_neighbouring_frame_apart() {
        let p = TestPattern::new(1280, 720);
        let luma = 1280 * 720;
        let a = p.render(10, 1_700_000_000_000_000);
        let b = p.render(11, 1_700_000_000_000_000);
        assert_eq!(luma_psnr(&a[..luma], &a[..luma]), 99.0);
        let off = luma_psnr(&a[..luma], &b[..luma]);
        assert!(off < 40.0, "{off}");
    }
}
