//! A streaming sample-rate converter for interleaved f32: Kaiser-windowed sinc, polyphase.
//!
//! Output sample `n` is the band-limited input evaluated at input position
//! `n * in_rate / out_rate` exactly (rational arithmetic, no drift), so output
//! time lines up with input time; the price is a look-ahead of half the
//! filter length before a sample can be produced.

use crate::CodecError;

/// Filter length in input samples when upsampling; scaled up by the ratio when downsampling.
const BASE_TAPS: usize = 64;
/// Longest filter we build (downsampling by 8 and beyond).
const MAX_TAPS: usize = 512;
/// Phase tables up to this size are exact; larger ratios interpolate between phases.
const MAX_PHASES: usize = 1024;
/// Kaiser window β: about 80 dB stop-band attenuation.
const KAISER_BETA: f64 = 8.0;
/// Cut-off as a fraction of the lower Nyquist frequency (leaves room for the transition band).
const CUTOFF: f64 = 0.92;

/// Converts interleaved f32 audio from one sample rate to another, block by block.
#[derive(Debug, Clone)]
pub struct Resampler {
    in_rate: u32,
    out_rate: u32,
    channels: usize,
    /// Output step in input samples is `step_num / step_den` (reduced `in_rate / out_rate`).
    step_num: u64,
    step_den: u64,
    taps: usize,
    /// `phases + 1` rows of `taps` coefficients; row `p` is for fractional offset `p / phases`.
    table: Vec<f32>,
    phases: usize,
    exact: bool,
    /// Interleaved input not yet fully consumed, starting `taps / 2 - 1` frames before `pos`.
    buf: Vec<f32>,
    /// Integer input position (frame index into `buf`) of the next output sample.
    pos: usize,
    /// Fractional part of that position, in units of `1 / step_den`.
    frac: u64,
    /// Scratch row for interpolated coefficients.
    coeffs: Vec<f32>,
}

impl Resampler {
    /// Creates a converter for `channels` interleaved channels from `in_rate` to `out_rate` Hz.
    pub fn new(in_rate: u32, out_rate: u32, channels: u16) -> Result<Self, CodecError> {
        const C: &str = "resampler";
        if in_rate == 0 || out_rate == 0 {
            return Err(CodecError::config(C, "sample rate 0"));
        }
        if channels == 0 {
            return Err(CodecError::config(C, "0 channels"));
        }
        let g = gcd(u64::from(in_rate), u64::from(out_rate));
        let (step_num, step_den) = (u64::from(in_rate) / g, u64::from(out_rate) / g);
        let ratio = f64::from(out_rate) / f64::from(in_rate);
        let taps = if ratio >= 1.0 {
            BASE_TAPS
        } else {
            ((BASE_TAPS as f64 / ratio).ceil() as usize)
                .next_multiple_of(2)
                .min(MAX_TAPS)
        };
        // Cut-off in cycles per input sample.
        let fc = 0.5 * ratio.min(1.0) * CUTOFF;
        let exact = step_den as usize <= MAX_PHASES;
        let phases = if exact { step_den as usize } else { MAX_PHASES };
        let half = taps / 2;
        let mut table = Vec::with_capacity((phases + 1) * taps);
        for p in 0..=phases {
            let frac = p as f64 / phases as f64;
            let start = table.len();
            for k in 0..taps {
                // Tap k sits at input offset k - (half - 1) from the integer position.
                let t = k as f64 - (half as f64 - 1.0) - frac;
                table.push(kernel(t, fc, half as f64) as f32);
            }
            let sum: f32 = table[start..].iter().sum();
            if sum != 0.0 {
                table[start..].iter_mut().for_each(|c| *c /= sum);
            }
        }
        let channels = usize::from(channels);
        Ok(Self {
            in_rate,
            out_rate,
            channels,
            step_num,
            step_den,
            taps,
            table,
            phases,
            exact,
            buf: vec![0.0; (half - 1) * channels],
            pos: half - 1,
            frac: 0,
            coeffs: vec![0.0; taps],
        })
    }

    /// Input sample rate in Hz.
    pub fn in_rate(&self) -> u32 {
        self.in_rate
    }

    /// Output sample rate in Hz.
    pub fn out_rate(&self) -> u32 {
        self.out_rate
    }

    /// Input frames of look-ahead before output catches up with input.
    pub fn latency_frames(&self) -> usize {
        self.taps / 2
    }

    /// Converts `input` (interleaved, whole frames) and appends the result to `out`.
    ///
    /// A trailing partial frame in `input` is ignored.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        let ch = self.channels;
        let whole = input.len() / ch * ch;
        self.buf.extend_from_slice(&input[..whole]);
        let frames = self.buf.len() / ch;
        let half = self.taps / 2;
        let estimate = (whole / ch) as u64 * self.step_den / self.step_num + 1;
        out.reserve(estimate as usize * ch);

        while self.pos + half < frames {
            let first = self.pos + 1 - half;
            self.load_coeffs();
            let window = &self.buf[first * ch..(first + self.taps) * ch];
            for c in 0..ch {
                let mut acc = 0.0f32;
                for (k, coef) in self.coeffs.iter().enumerate() {
                    acc += window[k * ch + c] * coef;
                }
                out.push(acc);
            }
            self.frac += self.step_num;
            self.pos += (self.frac / self.step_den) as usize;
            self.frac %= self.step_den;
        }

        // Drop what no future output sample can reach.
        let keep_from = (self.pos + 1).saturating_sub(half).min(frames);
        if keep_from > 0 {
            self.buf.drain(..keep_from * ch);
            self.pos -= keep_from;
        }
    }

    /// Fills `coeffs` with the filter row for the current fractional position.
    fn load_coeffs(&mut self) {
        let taps = self.taps;
        if self.exact {
            let p = self.frac as usize;
            self.coeffs
                .copy_from_slice(&self.table[p * taps..(p + 1) * taps]);
        } else {
            let x = self.frac as f64 / self.step_den as f64 * self.phases as f64;
            let p = (x as usize).min(self.phases - 1);
            let w = (x - p as f64) as f32;
            let (a, b) = (
                &self.table[p * taps..(p + 1) * taps],
                &self.table[(p + 1) * taps..(p + 2) * taps],
            );
            for ((c, a), b) in self.coeffs.iter_mut().zip(a).zip(b) {
                *c = a + (b - a) * w;
            }
        }
    }
}

/// Kaiser-windowed sinc low-pass with cut-off `fc` (cycles/sample), support ±`half`.
fn kernel(t: f64, fc: f64, half: f64) -> f64 {
    let x = t / half;
    if x.abs() >= 1.0 {
        return 0.0;
    }
    let arg = 2.0 * fc * t;
    let sinc = if arg.abs() < 1e-12 {
        1.0
    } else {
        (std::f64::consts::PI * arg).sin() / (std::f64::consts::PI * arg)
    };
    let window = bessel_i0(KAISER_BETA * (1.0 - x * x).sqrt()) / bessel_i0(KAISER_BETA);
    2.0 * fc * sinc * window
}

/// Modified Bessel function of the first kind, order 0 (power series).
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let q = x * x / 4.0;
    for k in 1..50 {
        term *= q / (k * k) as f64;
        sum += term;
        if term < sum * 1e-16 {
            break;
        }
    }
    sum
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, freq: f64, frames: usize, channels: usize) -> Vec<f32> {
        (0..frames)
            .flat_map(|i| {
                let v =
                    (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin() * 0.5;
                std::iter::repeat_n(v as f32, channels)
            })
            .collect()
    }

    /// Frequency estimated from rising zero crossings of channel `c`.
    fn frequency(x: &[f32], channels: usize, c: usize, rate: u32) -> f64 {
        let s: Vec<f32> = x.iter().skip(c).step_by(channels).copied().collect();
        let ups: Vec<usize> = (1..s.len())
            .filter(|&i| s[i - 1] < 0.0 && s[i] >= 0.0)
            .collect();
        let (first, last) = (ups[0], ups[ups.len() - 1]);
        (ups.len() - 1) as f64 * f64::from(rate) / (last - first) as f64
    }

    fn run_in_chunks(r: &mut Resampler, x: &[f32], chunk_frames: &[usize]) -> Vec<f32> {
        let mut out = Vec::new();
        let mut at = 0;
        let mut i = 0;
        while at < x.len() {
            let n = (chunk_frames[i % chunk_frames.len()] * r.channels).min(x.len() - at);
            r.process(&x[at..at + n], &mut out);
            at += n;
            i += 1;
        }
        out
    }

    #[test]
    fn sine_44k1_to_48k_keeps_frequency_length_and_level() {
        let ch = 2;
        let input = sine(44_100, 1000.0, 44_100, ch);
        let mut r = Resampler::new(44_100, 48_000, ch as u16).expect("resampler");
        let out = run_in_chunks(&mut r, &input, &[441, 1000, 37, 4410]);
        let out_frames = out.len() / ch;
        // One second in, one second out, minus the look-ahead still held back.
        let expected = 48_000.0 - r.latency_frames() as f64 * 48_000.0 / 44_100.0;
        assert!(
            (out_frames as f64 - expected).abs() <= 2.0,
            "{out_frames} vs {expected}"
        );
        let f = frequency(&out, ch, 1, 48_000);
        assert!((f - 1000.0).abs() < 1.0, "frequency {f}");
        let steady = &out[4800 * ch..40_000 * ch];
        let rms = (steady.iter().map(|v| v * v).sum::<f32>() / steady.len() as f32).sqrt();
        assert!((rms - 0.5 / 2f32.sqrt()).abs() < 0.005, "rms {rms}");
    }

    #[test]
    fn output_is_time_aligned_and_close_to_ideal() {
        let input = sine(44_100, 1000.0, 22_050, 1);
        let mut r = Resampler::new(44_100, 48_000, 1).expect("resampler");
        let mut out = Vec::new();
        r.process(&input, &mut out);
        let ideal = sine(48_000, 1000.0, out.len(), 1);
        let err = out[2000..20_000]
            .iter()
            .zip(&ideal[2000..20_000])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(err < 1e-3, "max error {err}");
    }

    #[test]
    fn chunking_does_not_change_the_output() {
        let input = sine(32_000, 440.0, 8000, 2);
        let mut a = Resampler::new(32_000, 48_000, 2).expect("resampler");
        let mut b = a.clone();
        let mut whole = Vec::new();
        a.process(&input, &mut whole);
        let chunked = run_in_chunks(&mut b, &input, &[1, 7, 160, 333]);
        assert_eq!(whole, chunked);
    }

    #[test]
    fn downsampling_and_odd_ratios_work() {
        for (from, to) in [
            (96_000, 48_000),
            (48_000, 8_000),
            (47_999, 48_000),
            (22_050, 48_000),
        ] {
            let input = sine(from, 440.0, from as usize, 1);
            let mut r = Resampler::new(from, to, 1).expect("resampler");
            let mut out = Vec::new();
            r.process(&input, &mut out);
            let f = frequency(&out, 1, 0, to);
            assert!((f - 440.0).abs() < 1.0, "{from}->{to}: {f}");
        }
    }

    #[test]
    fn downsampling_removes_content_above_the_new_nyquist() {
        let input = sine(48_000, 6000.0, 48_000, 1);
        let mut r = Resampler::new(48_000, 8_000, 1).expect("resampler");
        let mut out = Vec::new();
        r.process(&input, &mut out);
        let peak = out[1000..].iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(peak < 0.005, "aliased peak {peak}");
    }

    #[test]
    fn bad_rates_are_refused() {
        assert!(Resampler::new(0, 48_000, 1).is_err());
        assert!(Resampler::new(48_000, 48_000, 0).is_err());
    }
}
