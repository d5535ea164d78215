//! RIFF/WAVE (`.wav`) files: a reader, a paced source and a sink.
//!
//! The reader takes PCM of 16, 24 or 32 bits and 32-bit IEEE float, plain or
//! as `WAVE_FORMAT_EXTENSIBLE`, at 100 Hz to 768 kHz with 1 to 8 channels.
//! It skips chunks it does not know (honouring the pad byte after an odd-sized
//! chunk) and stops at the end of the `data` chunk. A `data` size of
//! `0xFFFFFFFF` (what streaming writers put there) means "until end of file".
//! A file that ends before its `data` chunk says ends cleanly after the last
//! whole sample frame ([`WavReader::truncated`] reports it); a malformed or
//! truncated header is an error.
//!
//! The sink writes 16-bit PCM. Its header first says "size unknown"
//! (`0xFFFFFFFF`) and is patched with the real sizes after every second of
//! audio and on [`AudioSink::finish`] (or drop), so a file whose writer was
//! killed is still readable: it lacks what was still buffered (at most
//! 64 KiB), and its header covers up to a second less audio than the file
//! holds (in the first second, "unknown" sizes make readers go to the end).

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use pstream_core::source::{MAX_CHANNELS, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE};
use pstream_core::{
    AudioBlock, AudioFormat, AudioSink, AudioSource, Behind, MediaError, Pacer, PipelineClock,
};

use crate::FileError;

/// `WAVE_FORMAT_PCM`.
const TAG_PCM: u16 = 1;
/// `WAVE_FORMAT_IEEE_FLOAT`.
const TAG_FLOAT: u16 = 3;
/// `WAVE_FORMAT_EXTENSIBLE`.
const TAG_EXTENSIBLE: u16 = 0xFFFE;
/// Bytes 4..16 shared by every `KSDATAFORMAT_SUBTYPE_*` GUID of a WAVE tag.
const SUBTYPE_GUID_TAIL: [u8; 12] = [
    0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
];
/// A `data` size meaning "until end of file".
const SIZE_UNKNOWN: u32 = u32::MAX;
/// Size of the canonical 16-bit PCM header the sink writes.
const SINK_HEADER_LEN: u64 = 44;

/// How the samples in a WAVE file are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleEncoding {
    /// Signed 16-bit little-endian integers.
    Int16,
    /// Signed 24-bit little-endian integers, packed in 3 bytes.
    Int24,
    /// Signed 32-bit little-endian integers.
    Int32,
    /// 32-bit little-endian IEEE floats.
    Float32,
}

impl SampleEncoding {
    /// Bytes one sample takes.
    pub fn bytes(self) -> usize {
        match self {
            SampleEncoding::Int16 => 2,
            SampleEncoding::Int24 => 3,
            SampleEncoding::Int32 | SampleEncoding::Float32 => 4,
        }
    }

    /// Decodes one sample of `self.bytes()` bytes to -1.0..1.0 (non-finite floats become 0).
    fn decode(self, b: &[u8]) -> f32 {
        match self {
            SampleEncoding::Int16 => f32::from(i16::from_le_bytes([b[0], b[1]])) / 32_768.0,
            SampleEncoding::Int24 => {
                let v = i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8;
                v as f32 / 8_388_608.0
            }
            SampleEncoding::Int32 => {
                i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 / 2_147_483_648.0
            }
            SampleEncoding::Float32 => {
                let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                if v.is_finite() {
                    v
                } else {
                    0.0
                }
            }
        }
    }
}

/// The audio format and sample encoding of a WAVE file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavFormat {
    /// Sample rate and channels.
    pub audio: AudioFormat,
    /// How each sample is stored.
    pub encoding: SampleEncoding,
}

impl WavFormat {
    /// Bytes one sample frame (all channels) takes.
    pub fn frame_bytes(&self) -> usize {
        self.encoding.bytes() * usize::from(self.audio.channels)
    }
}

/// Reads samples from a RIFF/WAVE stream, unpaced.
#[derive(Debug)]
pub struct WavReader<R> {
    inner: R,
    name: String,
    format: WavFormat,
    /// Bytes left in the data chunk, or `None` for "until end of file".
    remaining: Option<u64>,
    truncated: bool,
    ended: bool,
    buf: Vec<u8>,
}

impl<R: Read> WavReader<R> {
    /// Reads and checks the header up to the start of the samples; `name`
    /// (e.g. `wav:/tmp/a.wav`) prefixes errors.
    pub fn new(mut inner: R, name: impl Into<String>) -> Result<Self, FileError> {
        let name = name.into();
        let mut riff = [0u8; 12];
        read_header_bytes(&mut inner, &mut riff, &name, "the RIFF header")?;
        match &riff[0..4] {
            b"RIFF" => {}
            b"RF64" => {
                return Err(FileError::unsupported(
                    &name,
                    "RF64 (WAVE over 4 GiB) is not supported",
                ))
            }
            other => {
                return Err(FileError::malformed(
                    &name,
                    format!("not a RIFF/WAVE file (starts with {})", fourcc(other)),
                ))
            }
        }
        if &riff[8..12] != b"WAVE" {
            return Err(FileError::malformed(
                &name,
                format!("RIFF file of form {}, not WAVE", fourcc(&riff[8..12])),
            ));
        }
        let mut format = None;
        let remaining = loop {
            let mut head = [0u8; 8];
            let what = if format.is_some() {
                "a chunk header (no data chunk found)"
            } else {
                "a chunk header (no fmt chunk found)"
            };
            read_header_bytes(&mut inner, &mut head, &name, what)?;
            let id = [head[0], head[1], head[2], head[3]];
            let size = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
            match &id {
                b"fmt " => {
                    format = Some(read_fmt(&mut inner, size, &name)?);
                }
                b"data" => {
                    if format.is_none() {
                        return Err(FileError::malformed(
                            &name,
                            "data chunk comes before the fmt chunk",
                        ));
                    }
                    break (size != SIZE_UNKNOWN).then_some(u64::from(size));
                }
                _ => skip(
                    &mut inner,
                    u64::from(size) + u64::from(size & 1),
                    &name,
                    &id,
                )?,
            }
        };
        let Some(format) = format else {
            return Err(FileError::malformed(&name, "no fmt chunk"));
        };
        Ok(Self {
            inner,
            name,
            format,
            remaining,
            truncated: false,
            ended: false,
            buf: Vec::new(),
        })
    }

    /// The format of the samples.
    pub fn format(&self) -> WavFormat {
        self.format
    }

    /// Whether the file ended before the end its data chunk announced.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Appends up to `max_frames` sample frames to `out` as f32 and returns
    /// how many; 0 means end of stream.
    pub fn read_frames(
        &mut self,
        max_frames: usize,
        out: &mut Vec<f32>,
    ) -> Result<usize, FileError> {
        if self.ended || max_frames == 0 {
            return Ok(0);
        }
        let frame_bytes = self.format.frame_bytes();
        let mut want = (max_frames * frame_bytes) as u64;
        if let Some(rem) = self.remaining {
            want = want.min(rem);
        }
        self.buf.clear();
        let got = (&mut self.inner)
            .take(want)
            .read_to_end(&mut self.buf)
            .map_err(|e| FileError::io(&self.name, "cannot read samples", e))?;
        if let Some(rem) = self.remaining.as_mut() {
            *rem -= got as u64;
        }
        if (got as u64) < want {
            self.ended = true;
            self.truncated = self.remaining.is_some();
        }
        if self.remaining == Some(0) {
            self.ended = true;
        }
        let frames = got / frame_bytes;
        let bytes = self.format.encoding.bytes();
        out.extend(
            self.buf[..frames * frame_bytes]
                .chunks_exact(bytes)
                .map(|b| self.format.encoding.decode(b)),
        );
        if frames == 0 {
            self.ended = true;
        }
        Ok(frames)
    }
}

/// Four bytes as a quoted chunk id for error messages.
fn fourcc(b: &[u8]) -> String {
    format!("\"{}\"", String::from_utf8_lossy(b).escape_debug())
}

/// Fills `buf` from the header, or fails saying the file ends inside `what`.
fn read_header_bytes<R: Read>(
    r: &mut R,
    buf: &mut [u8],
    name: &str,
    what: &str,
) -> Result<(), FileError> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            FileError::malformed(name, format!("file ends inside {what}"))
        } else {
            FileError::io(name, "cannot read header", e)
        }
    })
}

/// Skips `n` bytes of a chunk, failing if the file ends first.
fn skip<R: Read>(r: &mut R, n: u64, name: &str, id: &[u8; 4]) -> Result<(), FileError> {
    let skipped = std::io::copy(&mut r.take(n), &mut std::io::sink())
        .map_err(|e| FileError::io(name, "cannot read header", e))?;
    if skipped < n {
        return Err(FileError::malformed(
            name,
            format!("file ends inside chunk {}", fourcc(id)),
        ));
    }
    Ok(())
}

/// Reads and checks a `fmt ` chunk of `size` bytes (and its pad byte).
fn read_fmt<R: Read>(r: &mut R, size: u32, name: &str) -> Result<WavFormat, FileError> {
    if size < 16 {
        return Err(FileError::malformed(
            name,
            format!("fmt chunk is {size} bytes, at least 16 needed"),
        ));
    }
    let mut fmt = [0u8; 40];
    let keep = (size as usize).min(fmt.len());
    read_header_bytes(r, &mut fmt[..keep], name, "the fmt chunk")?;
    skip(
        r,
        u64::from(size) - keep as u64 + u64::from(size & 1),
        name,
        b"fmt ",
    )?;

    let u16_at = |i: usize| u16::from_le_bytes([fmt[i], fmt[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([fmt[i], fmt[i + 1], fmt[i + 2], fmt[i + 3]]);
    let mut tag = u16_at(0);
    let channels = u16_at(2);
    let sample_rate = u32_at(4);
    let block_align = u16_at(12);
    let bits = u16_at(14);
    if tag == TAG_EXTENSIBLE {
        if keep < 40 {
            return Err(FileError::malformed(
                name,
                format!("WAVE_FORMAT_EXTENSIBLE fmt chunk is {size} bytes, 40 needed"),
            ));
        }
        let sub = u32_at(24);
        if fmt[28..40] != SUBTYPE_GUID_TAIL || sub > u32::from(u16::MAX) {
            return Err(FileError::unsupported(
                name,
                "WAVE_FORMAT_EXTENSIBLE with a sub-format other than PCM or IEEE float",
            ));
        }
        tag = sub as u16;
    }
    let encoding = match (tag, bits) {
        (TAG_PCM, 16) => SampleEncoding::Int16,
        (TAG_PCM, 24) => SampleEncoding::Int24,
        (TAG_PCM, 32) => SampleEncoding::Int32,
        (TAG_FLOAT, 32) => SampleEncoding::Float32,
        (TAG_PCM, _) => {
            return Err(FileError::unsupported(
                name,
                format!("{bits}-bit PCM is not supported, only 16, 24 and 32-bit"),
            ))
        }
        (TAG_FLOAT, _) => {
            return Err(FileError::unsupported(
                name,
                format!("{bits}-bit float is not supported, only 32-bit"),
            ))
        }
        _ => {
            return Err(FileError::unsupported(
                name,
                format!(
                    "format tag 0x{tag:04X} is not supported, only PCM (1), IEEE float (3) \
                     and WAVE_FORMAT_EXTENSIBLE of those"
                ),
            ))
        }
    };
    if channels == 0 {
        return Err(FileError::malformed(name, "fmt chunk says 0 channels"));
    }
    if channels > MAX_CHANNELS {
        return Err(FileError::unsupported(
            name,
            format!("{channels} channels is not supported, at most {MAX_CHANNELS}"),
        ));
    }
    if sample_rate == 0 {
        return Err(FileError::malformed(name, "fmt chunk says 0 Hz"));
    }
    if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&sample_rate) {
        return Err(FileError::unsupported(
            name,
            format!(
                "sample rate {sample_rate} Hz is not supported, only \
                 {MIN_SAMPLE_RATE}..={MAX_SAMPLE_RATE} Hz"
            ),
        ));
    }
    let format = WavFormat {
        audio: AudioFormat {
            sample_rate,
            channels,
        },
        encoding,
    };
    if usize::from(block_align) != format.frame_bytes() {
        return Err(FileError::malformed(
            name,
            format!("block align {block_align} does not match {channels} channels of {bits} bits"),
        ));
    }
    Ok(format)
}

/// A WAVE file or stdin as an [`AudioSource`], paced in 10 ms blocks.
///
/// Every block is delivered; if the caller stalls for more than 10 ms the
/// schedule restarts from now rather than bursting. The last block may be
/// shorter. The rate and channels a caller asks a tone for do not apply:
/// the file decides, see [`AudioSource::format`].
pub struct WavSource {
    reader: WavReader<Box<dyn Read + Send>>,
    clock: PipelineClock,
    pacer: Pacer,
    blocks: u64,
}

impl WavSource {
    /// Opens a file; `name` (e.g. `wav:/tmp/a.wav`) prefixes errors.
    pub fn open(path: &Path, name: &str, clock: PipelineClock) -> Result<Self, FileError> {
        let file =
            File::open(path).map_err(|e| FileError::io(name, "cannot open for reading", e))?;
        Self::from_reader(
            Box::new(BufReader::with_capacity(1 << 16, file)),
            name,
            clock,
        )
    }

    /// Reads standard input.
    pub fn stdin(name: &str, clock: PipelineClock) -> Result<Self, FileError> {
        let input = BufReader::with_capacity(1 << 16, std::io::stdin());
        Self::from_reader(Box::new(input), name, clock)
    }

    /// Reads any stream.
    pub fn from_reader(
        input: Box<dyn Read + Send>,
        name: &str,
        clock: PipelineClock,
    ) -> Result<Self, FileError> {
        Ok(Self {
            reader: WavReader::new(input, name)?,
            clock,
            pacer: Pacer::new(100, 1, Behind::Reanchor),
            blocks: 0,
        })
    }

    /// The sample encoding of the file.
    pub fn wav_format(&self) -> WavFormat {
        self.reader.format()
    }

    /// Whether the file ended before the end its data chunk announced.
    pub fn truncated(&self) -> bool {
        self.reader.truncated()
    }
}

impl AudioSource for WavSource {
    fn format(&self) -> AudioFormat {
        self.reader.format().audio
    }

    fn next_block(&mut self) -> Result<Option<AudioBlock>, MediaError> {
        let format = self.format();
        let frames = format.block_frames(self.blocks);
        let mut samples = Vec::with_capacity(frames * usize::from(format.channels));
        // Read first so end of stream is reported without waiting a period.
        if self.reader.read_frames(frames, &mut samples)? == 0 {
            return Ok(None);
        }
        self.blocks += 1;
        let n = self.pacer.wait(&self.clock);
        Ok(Some(AudioBlock {
            sample_rate: format.sample_rate,
            channels: format.channels,
            samples,
            capture: self.clock.now(),
            pts: self.pacer.pts(n),
        }))
    }
}

/// Writes blocks as a 16-bit PCM WAVE file (see the module notes on the header).
///
/// Every block must have the rate and channel count given at open; any other
/// is refused with [`FileError::Mismatch`] and nothing is written.
pub struct WavSink {
    out: Option<BufWriter<File>>,
    name: String,
    format: AudioFormat,
    data_bytes: u64,
    unpatched: u64,
    patch_every: u64,
    buf: Vec<u8>,
}

impl WavSink {
    /// Creates (or truncates) a file; `name` (e.g. `wav:/tmp/a.wav`) prefixes errors.
    pub fn create(path: &Path, name: &str, format: AudioFormat) -> Result<Self, FileError> {
        format.validate(name)?;
        let file = File::create(path).map_err(|e| FileError::io(name, "cannot create", e))?;
        let mut out = BufWriter::with_capacity(1 << 16, file);
        let channels = format.channels;
        let block_align = channels * 2;
        let mut h = Vec::with_capacity(SINK_HEADER_LEN as usize);
        h.extend_from_slice(b"RIFF");
        h.extend_from_slice(&SIZE_UNKNOWN.to_le_bytes());
        h.extend_from_slice(b"WAVEfmt ");
        h.extend_from_slice(&16u32.to_le_bytes());
        h.extend_from_slice(&TAG_PCM.to_le_bytes());
        h.extend_from_slice(&channels.to_le_bytes());
        h.extend_from_slice(&format.sample_rate.to_le_bytes());
        h.extend_from_slice(&(format.sample_rate * u32::from(block_align)).to_le_bytes());
        h.extend_from_slice(&block_align.to_le_bytes());
        h.extend_from_slice(&16u16.to_le_bytes());
        h.extend_from_slice(b"data");
        h.extend_from_slice(&SIZE_UNKNOWN.to_le_bytes());
        out.write_all(&h)
            .map_err(|e| FileError::io(name, "cannot write header", e))?;
        Ok(Self {
            out: Some(out),
            name: name.to_owned(),
            format,
            data_bytes: 0,
            unpatched: 0,
            patch_every: u64::from(format.sample_rate) * u64::from(block_align),
            buf: Vec::new(),
        })
    }

    /// Writes the current sizes into the header and returns to the end.
    fn patch(&mut self) -> Result<(), FileError> {
        let Some(out) = self.out.as_mut() else {
            return Ok(());
        };
        let data = self.data_bytes as u32;
        let riff = (SINK_HEADER_LEN - 8) as u32 + data;
        let r = (|| {
            out.seek(SeekFrom::Start(4))?;
            out.write_all(&riff.to_le_bytes())?;
            out.seek(SeekFrom::Start(SINK_HEADER_LEN - 4))?;
            out.write_all(&data.to_le_bytes())?;
            out.seek(SeekFrom::End(0))?;
            out.flush()
        })();
        r.map_err(|e| FileError::io(&self.name, "cannot update the header sizes", e))?;
        self.unpatched = 0;
        Ok(())
    }
}

impl WavSink {
    /// Writes one block ([`AudioSink::write_block`] with this crate's error).
    pub fn write(&mut self, block: &AudioBlock) -> Result<(), FileError> {
        if self.out.is_none() {
            return Err(FileError::Finished {
                name: self.name.clone(),
            });
        }
        if (block.sample_rate, block.channels) != (self.format.sample_rate, self.format.channels) {
            return Err(FileError::Mismatch {
                name: self.name.clone(),
                reason: format!(
                    "block is {} Hz {} channels but the file was opened as {} Hz {} channels",
                    block.sample_rate,
                    block.channels,
                    self.format.sample_rate,
                    self.format.channels
                ),
            });
        }
        let whole = block.frames() * usize::from(block.channels);
        let bytes = whole as u64 * 2;
        if SINK_HEADER_LEN - 8 + self.data_bytes + bytes > u64::from(u32::MAX - 1) {
            return Err(FileError::unsupported(
                &self.name,
                "WAVE file would exceed 4 GiB; stop earlier or split the recording",
            ));
        }
        self.buf.clear();
        for &s in &block.samples[..whole] {
            // `as` saturates and maps NaN to 0.
            let v = (s * 32_768.0).round().clamp(-32_768.0, 32_767.0) as i16;
            self.buf.extend_from_slice(&v.to_le_bytes());
        }
        if let Some(out) = self.out.as_mut() {
            out.write_all(&self.buf)
                .map_err(|e| FileError::io(&self.name, "cannot write samples", e))?;
        }
        self.data_bytes += bytes;
        self.unpatched += bytes;
        if self.unpatched >= self.patch_every {
            self.patch()?;
        }
        Ok(())
    }

    /// Patches the header and closes the file ([`AudioSink::finish`] with
    /// this crate's error); later writes fail.
    pub fn close(&mut self) -> Result<(), FileError> {
        if self.out.is_none() {
            return Ok(());
        }
        let r = self.patch();
        self.out = None;
        r
    }
}

impl AudioSink for WavSink {
    fn write_block(&mut self, block: &AudioBlock) -> Result<(), MediaError> {
        Ok(self.write(block)?)
    }

    fn finish(&mut self) -> Result<(), MediaError> {
        Ok(self.close()?)
    }
}

impl Drop for WavSink {
    fn drop(&mut self) {
        // Best effort: a sink dropped without finish still leaves a valid file.
        let _ = self.close();
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;
    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    use super::*;

    const NAME: &str = "wav:test.wav";

    fn temp_path(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("pstream-capture-{}-{tag}.wav", std::process::id()))
    }

    fn reader(input: &[u8]) -> Result<WavReader<Cursor<Vec<u8>>>, FileError> {
        WavReader::new(Cursor::new(input.to_vec()), NAME)
    }

    fn err(input: &[u8]) -> String {
        reader(input).expect_err("should be refused").to_string()
    }

    /// A WAVE file: RIFF header, the given chunks (padded when odd), with a
    /// data chunk of `data` last.
    fn wav(chunks: &[(&[u8; 4], Vec<u8>)], data: &[u8]) -> Vec<u8> {
        let mut body = b"WAVE".to_vec();
        let data_chunk = (b"data", data.to_vec());
        for (id, payload) in chunks
            .iter()
            .map(|(i, p)| (*i, p))
            .chain([(data_chunk.0, &data_chunk.1)])
        {
            body.extend_from_slice(id);
            body.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            body.extend_from_slice(payload);
            if payload.len() % 2 == 1 && id != b"data" {
                body.push(0);
            }
        }
        let mut out = b"RIFF".to_vec();
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    fn fmt(tag: u16, channels: u16, rate: u32, bits: u16) -> Vec<u8> {
        let align = channels * bits / 8;
        let mut f = Vec::new();
        f.extend_from_slice(&tag.to_le_bytes());
        f.extend_from_slice(&channels.to_le_bytes());
        f.extend_from_slice(&rate.to_le_bytes());
        f.extend_from_slice(&(rate * u32::from(align)).to_le_bytes());
        f.extend_from_slice(&align.to_le_bytes());
        f.extend_from_slice(&bits.to_le_bytes());
        f
    }

    fn extensible(sub: u16, channels: u16, rate: u32, bits: u16) -> Vec<u8> {
        let mut f = fmt(TAG_EXTENSIBLE, channels, rate, bits);
        f.extend_from_slice(&22u16.to_le_bytes());
        f.extend_from_slice(&bits.to_le_bytes());
        f.extend_from_slice(&3u32.to_le_bytes());
        f.extend_from_slice(&u32::from(sub).to_le_bytes());
        f.extend_from_slice(&SUBTYPE_GUID_TAIL);
        f
    }

    fn read_all(input: &[u8]) -> (WavFormat, Vec<f32>) {
        let mut r = reader(input).expect("header");
        let mut out = Vec::new();
        while r.read_frames(7, &mut out).expect("ok") > 0 {}
        (r.format(), out)
    }

    fn block(rate: u32, channels: u16, samples: Vec<f32>) -> AudioBlock {
        AudioBlock {
            sample_rate: rate,
            channels,
            samples,
            capture: Instant::now(),
            pts: Duration::ZERO,
        }
    }

    #[test]
    fn sixteen_bit_write_then_read_round_trips() {
        let path = temp_path("roundtrip");
        let format = AudioFormat {
            sample_rate: 44_100,
            channels: 2,
        };
        let mut sink = WavSink::create(&path, NAME, format).expect("create");
        let mut written = Vec::new();
        for n in 0..30u64 {
            let frames = format.block_frames(n);
            let samples: Vec<f32> = (0..frames * 2)
                .map(|i| ((i as i64 * 977 + n as i64 * 13) % 65_536 - 32_768) as f32 / 32_768.0)
                .collect();
            written.extend_from_slice(&samples);
            sink.write_block(&block(44_100, 2, samples)).expect("write");
        }
        sink.finish().expect("finish");
        let bytes = std::fs::read(&path).expect("read back");
        let _ = std::fs::remove_file(&path);
        assert_eq!(
            bytes.len() as u64,
            SINK_HEADER_LEN + written.len() as u64 * 2
        );
        assert_eq!(
            u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize,
            bytes.len() - 8
        );
        let (f, samples) = read_all(&bytes);
        assert_eq!(f.audio, format);
        assert_eq!(f.encoding, SampleEncoding::Int16);
        assert_eq!(samples, written);
    }

    #[test]
    fn sink_clamps_and_refuses_mismatched_blocks() {
        let path = temp_path("clamp");
        let format = AudioFormat {
            sample_rate: 8_000,
            channels: 1,
        };
        let mut sink = WavSink::create(&path, NAME, format).expect("create");
        sink.write_block(&block(8_000, 1, vec![2.0, -2.0, f32::NAN, 0.5]))
            .expect("write");
        let e = sink
            .write_block(&block(48_000, 1, vec![0.0]))
            .expect_err("rate change");
        assert!(e.to_string().contains("48000 Hz"), "{e}");
        drop(sink);
        let bytes = std::fs::read(&path).expect("read back");
        let _ = std::fs::remove_file(&path);
        let (_, samples) = read_all(&bytes);
        assert_eq!(samples, vec![32_767.0 / 32_768.0, -1.0, 0.0, 0.5]);
    }

    #[test]
    fn header_is_patched_every_second_for_killed_writers() {
        let path = temp_path("killed");
        let format = AudioFormat {
            sample_rate: 1_000,
            channels: 1,
        };
        let mut sink = WavSink::create(&path, NAME, format).expect("create");
        for _ in 0..150 {
            sink.write_block(&block(1_000, 1, vec![0.25; 10]))
                .expect("write");
        }
        // Still open, as if the process died now: the header covers 1 s.
        let bytes = std::fs::read(&path).expect("read back");
        let (_, samples) = read_all(&bytes);
        assert_eq!(samples.len(), 1_000);
        sink.finish().expect("finish");
        let bytes = std::fs::read(&path).expect("read back");
        let _ = std::fs::remove_file(&path);
        assert_eq!(read_all(&bytes).1.len(), 1_500);
    }

    #[test]
    fn reads_24_32_float_and_extensible() {
        let s24 = [0x00, 0x00, 0x80, 0xFF, 0xFF, 0x7F]; // -1.0, ~+1.0
        let (f, s) = read_all(&wav(&[(b"fmt ", fmt(1, 1, 48_000, 24))], &s24));
        assert_eq!(f.encoding, SampleEncoding::Int24);
        assert_eq!(s[0], -1.0);
        assert!((s[1] - 1.0).abs() < 1e-6);

        let s32 = [0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0xC0]; // 0.5, -0.5
        let (f, s) = read_all(&wav(&[(b"fmt ", fmt(1, 2, 48_000, 32))], &s32));
        assert_eq!(f.encoding, SampleEncoding::Int32);
        assert_eq!(s, vec![0.5, -0.5]);

        let mut fl = 0.25f32.to_le_bytes().to_vec();
        fl.extend_from_slice(&f32::INFINITY.to_le_bytes());
        let (f, s) = read_all(&wav(&[(b"fmt ", fmt(3, 1, 96_000, 32))], &fl));
        assert_eq!(f.encoding, SampleEncoding::Float32);
        assert_eq!(s, vec![0.25, 0.0]);

        let (f, s) = read_all(&wav(&[(b"fmt ", extensible(3, 2, 48_000, 32))], &fl));
        assert_eq!((f.encoding, f.audio.channels), (SampleEncoding::Float32, 2));
        assert_eq!(s, vec![0.25, 0.0]);
        let (f, _) = read_all(&wav(&[(b"fmt ", extensible(1, 6, 48_000, 24))], &[0; 18]));
        assert_eq!((f.encoding, f.audio.channels), (SampleEncoding::Int24, 6));
    }

    #[test]
    fn unknown_and_odd_chunks_are_skipped() {
        let input = wav(
            &[
                (b"JUNK", vec![1, 2, 3]),
                (b"fmt ", fmt(1, 1, 8_000, 16)),
                (b"LIST", vec![9; 5]),
            ],
            &[0x00, 0x40, 0x00, 0xC0],
        );
        assert_eq!(read_all(&input).1, vec![0.5, -0.5]);
    }

    #[test]
    fn unknown_data_size_reads_to_end_and_short_data_is_truncated() {
        let mut input = unknown_size(wav(&[(b"fmt ", fmt(1, 1, 8_000, 16))], &[]));
        input.extend_from_slice(&[0x00, 0x40, 0x00, 0xC0, 0x01]);
        let mut r = reader(&input).expect("header");
        let mut out = Vec::new();
        while r.read_frames(100, &mut out).expect("ok") > 0 {}
        assert_eq!(out, vec![0.5, -0.5]);
        assert!(!r.truncated());

        let mut input = wav(&[(b"fmt ", fmt(1, 1, 8_000, 16))], &[0x00, 0x40, 0, 0]);
        input.truncate(input.len() - 1);
        let mut r = reader(&input).expect("header");
        let mut out = Vec::new();
        while r.read_frames(100, &mut out).expect("ok") > 0 {}
        assert_eq!(out, vec![0.5]);
        assert!(r.truncated());
    }

    #[test]
    fn malformed_headers_are_named() {
        let good_fmt = fmt(1, 2, 48_000, 16);
        assert!(err(b"").contains("file ends inside the RIFF header"));
        assert!(err(b"RIFX\0\0\0\0WAVE").contains("not a RIFF/WAVE file (starts with \"RIFX\")"));
        assert!(err(b"RF64\0\0\0\0WAVE").contains("RF64"));
        assert!(err(b"RIFF\0\0\0\0AVI ").contains("form \"AVI \", not WAVE"));
        assert!(err(b"RIFF\0\0\0\0WAVE").contains("no fmt chunk found"));
        assert!(err(b"RIFF\0\0\0\0WAVEdata\0\0\0\0").contains("data chunk comes before"));
        assert!(
            err(b"RIFF\0\0\0\0WAVEJUNK\xff\0\0\0ab").contains("file ends inside chunk \"JUNK\"")
        );
        let mut no_data = wav(&[(b"fmt ", good_fmt.clone())], &[]);
        no_data.truncate(no_data.len() - 8);
        assert!(err(&no_data).contains("no data chunk found"));
        assert!(
            err(&wav(&[(b"fmt ", good_fmt[..12].to_vec())], &[])).contains("fmt chunk is 12 bytes")
        );
        let mut cut = wav(&[(b"fmt ", good_fmt.clone())], &[]);
        cut.truncate(12 + 8 + 10);
        assert!(err(&cut).contains("file ends inside the fmt chunk"));
        assert!(err(&wav(&[(b"fmt ", fmt(1, 1, 8_000, 8))], &[])).contains("8-bit PCM"));
        assert!(err(&wav(&[(b"fmt ", fmt(3, 1, 8_000, 64))], &[])).contains("64-bit float"));
        assert!(err(&wav(&[(b"fmt ", fmt(0x55, 1, 8_000, 16))], &[])).contains("format tag 0x0055"));
        assert!(err(&wav(&[(b"fmt ", fmt(1, 0, 8_000, 16))], &[])).contains("0 channels"));
        assert!(err(&wav(&[(b"fmt ", fmt(1, 9, 8_000, 16))], &[])).contains("9 channels"));
        assert!(err(&wav(&[(b"fmt ", fmt(1, 1, 0, 16))], &[])).contains("0 Hz"));
        assert!(err(&wav(&[(b"fmt ", fmt(1, 1, 50, 16))], &[])).contains("50 Hz"));
        let mut bad_align = good_fmt.clone();
        bad_align[12] = 3;
        assert!(err(&wav(&[(b"fmt ", bad_align)], &[])).contains("block align 3"));
        let mut ext = extensible(1, 2, 48_000, 16);
        ext[30] = 0x42;
        assert!(err(&wav(&[(b"fmt ", ext)], &[])).contains("sub-format"));
        let ext = extensible(1, 2, 48_000, 16);
        assert!(err(&wav(&[(b"fmt ", ext[..24].to_vec())], &[])).contains("40 needed"));
    }

    #[test]
    fn source_delivers_10ms_blocks_then_ends() {
        let data: Vec<u8> = (0..(8_000 / 100 * 3 + 17) as u16)
            .flat_map(|i| (i as i16).to_le_bytes())
            .collect();
        let input = wav(&[(b"fmt ", fmt(1, 1, 8_000, 16))], &data);
        let mut src =
            WavSource::from_reader(Box::new(Cursor::new(input)), NAME, PipelineClock::start())
                .expect("open");
        let t = Instant::now();
        let mut lens = Vec::new();
        while let Some(b) = src.next_block().expect("ok") {
            assert_eq!(b.pts, Duration::from_millis(10 * lens.len() as u64));
            lens.push(b.frames());
        }
        assert_eq!(lens, vec![80, 80, 80, 17]);
        assert!(
            t.elapsed() >= Duration::from_millis(25),
            "{:?}",
            t.elapsed()
        );
        assert!(!src.truncated());
    }

    /// Sets the size of the trailing, empty data chunk to "until end of file".
    fn unknown_size(mut input: Vec<u8>) -> Vec<u8> {
        let at = input.len() - 4;
        input[at..].copy_from_slice(&SIZE_UNKNOWN.to_le_bytes());
        input
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut parsed, mut read) = (0, 0);
        let prefixes = [
            Vec::new(),
            b"RIFF\x10\0\0\0WAVE".to_vec(),
            wav(&[(b"fmt ", fmt(1, 2, 48_000, 16))], &[]),
            unknown_size(wav(&[(b"fmt ", fmt(1, 2, 48_000, 16))], &[])),
            unknown_size(wav(&[(b"fmt ", fmt(1, 1, 8_000, 24))], &[])),
            wav(&[(b"fmt ", extensible(3, 2, 48_000, 32))], &[])[..40].to_vec(),
        ];
        let valid = wav(
            &[
                (b"LIST", vec![7; 3]),
                (b"fmt ", extensible(1, 2, 48_000, 24)),
            ],
            &[0x11; 60],
        );
        for i in 0..5000 {
            let mut input = prefixes[i % prefixes.len()].clone();
            let len = (next() % 120) as usize;
            let alphabet: &[u8] = b"RIFFWAVEfmt data\x01\x02\x03\x10\x18\x20\xfe\xff\0\0\0\0";
            for _ in 0..len {
                let r = next();
                input.push(if r & 1 == 0 {
                    alphabet[(r >> 8) as usize % alphabet.len()]
                } else {
                    (r >> 16) as u8
                });
            }
            if i % 3 == 0 {
                // Or corrupt a few bytes of a valid file with an odd extra chunk.
                input = valid.clone();
                for _ in 0..1 + next() % 4 {
                    let at = next() as usize % input.len();
                    input[at] = (next() >> 24) as u8;
                }
            }
            if let Ok(mut r) = reader(&input) {
                parsed += 1;
                let mut out = Vec::new();
                for _ in 0..4 {
                    let before = out.len();
                    match r.read_frames(5, &mut out) {
                        Ok(0) | Err(_) => break,
                        Ok(n) if n > 0 => read += 1,
                        Ok(n) => assert_eq!(
                            out.len() - before,
                            n * usize::from(r.format().audio.channels)
                        ),
                    }
                }
            }
        }
        assert!(parsed > 500 && read > 50, "{parsed} headers, {read} reads");
    }
}
