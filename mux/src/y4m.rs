//! YUV4MPEG2 (`.y4m`) files: a reader, a paced source and a sink.
//!
//! A stream is one header line `YUV4MPEG2 W.. H.. F.. ...` followed by
//! frames, each a `FRAME` line (optionally with parameters, ignored) and
//! exactly one picture of planar data. Only 8-bit 4:2:0 is read (`C420`,
//! `C420jpeg`, `C420paldv`, `C420mpeg2`, or no `C` at all); the chroma siting
//! they differ in does not change the byte layout. `I` (interlacing), `A`
//! (pixel aspect) and `X` (extensions) are accepted and ignored.
//!
//! A stream that stops part-way through a frame (a truncated file, a writer
//! killed mid-frame) ends cleanly before that frame: [`Y4mReader::read_frame`]
//! returns `Ok(None)` and [`Y4mReader::truncated`] reports it. A malformed
//! frame marker is an error.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use pstream_core::source::MAX_DIMENSION;
use pstream_core::{
    Behind, MediaError, Pacer, PipelineClock, VideoFormat, VideoFrame, VideoSink, VideoSource,
};

use crate::FileError;

/// The magic that starts every YUV4MPEG2 stream.
const MAGIC: &[u8] = b"YUV4MPEG2";
/// Longest header line accepted, including the newline.
const MAX_HEADER_LEN: u64 = 4096;
/// Longest FRAME line accepted, including the newline.
const MAX_FRAME_LINE_LEN: u64 = 1024;
/// Chunk the reader grows a frame buffer by, so a lying header cannot make
/// it allocate a huge frame for a short input.
const READ_CHUNK: usize = 8 << 20;
/// Frame buffers kept for reuse: one being read, two queued for the
/// encoder, one in it. More in flight are allocated (and freed) as needed.
const POOL_MAX: usize = 4;
/// The buffered reader's size for files and stdin. Frame data bypasses it
/// (a read at least this large goes straight into the frame's buffer), so
/// it only has to hold the FRAME lines between pictures.
const READ_BUFFER: usize = 64 << 10;

/// Picture buffers the consumers of a [`Y4mReader`]'s frames have dropped,
/// for the reader to fill again: no allocation, and no fresh pages for the
/// kernel to fault in and zero, per picture.
#[derive(Debug, Default)]
struct Pool {
    free: Mutex<Vec<Vec<u8>>>,
}

/// A picture's buffer lent out as [`Bytes`]; it goes back to its pool
/// (while the reader exists) when the last `Bytes` of it is dropped.
struct Pooled {
    buf: Vec<u8>,
    pool: Weak<Pool>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.upgrade() {
            if let Ok(mut free) = pool.free.lock() {
                if free.len() < POOL_MAX {
                    free.push(std::mem::take(&mut self.buf));
                }
            }
        }
    }
}

/// The stream parameters from a YUV4MPEG2 header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Y4mHeader {
    /// Picture size and frame rate.
    pub format: VideoFormat,
    /// The colour space tag as written (`420jpeg` if the header had none).
    pub colour_space: String,
}

/// Reads pictures from a YUV4MPEG2 stream, unpaced.
#[derive(Debug)]
pub struct Y4mReader<R> {
    inner: R,
    name: String,
    header: Y4mHeader,
    frame_len: usize,
    frames: u64,
    truncated: bool,
    ended: bool,
    pool: Arc<Pool>,
}

impl<R: BufRead> Y4mReader<R> {
    /// Reads and checks the header; `name` (e.g. `y4m:/tmp/a.y4m`) prefixes errors.
    pub fn new(mut inner: R, name: impl Into<String>) -> Result<Self, FileError> {
        let name = name.into();
        let line = read_line(&mut inner, &name, MAX_HEADER_LEN, "header")?;
        let Some(line) = line.filter(|l| l.ends_with(b"\n")) else {
            return Err(FileError::malformed(
                &name,
                "file ends inside the YUV4MPEG2 header",
            ));
        };
        let header = parse_header(&line[..line.len() - 1], &name)?;
        let frame_len = VideoFrame::byte_len(header.format.width, header.format.height);
        Ok(Self {
            inner,
            name,
            header,
            frame_len,
            frames: 0,
            truncated: false,
            ended: false,
            pool: Arc::default(),
        })
    }

    /// The stream parameters.
    pub fn header(&self) -> &Y4mHeader {
        &self.header
    }

    /// How many complete frames have been read.
    pub fn frames_read(&self) -> u64 {
        self.frames
    }

    /// Whether the stream ended part-way through a frame.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Reads the next picture's I420 data, or `None` at end of stream
    /// (including a truncated final frame, see [`Y4mReader::truncated`]).
    pub fn read_frame(&mut self) -> Result<Option<Bytes>, FileError> {
        if self.ended {
            return Ok(None);
        }
        let line = read_line(
            &mut self.inner,
            &self.name,
            MAX_FRAME_LINE_LEN,
            "FRAME line",
        )?;
        let Some(line) = line else {
            self.ended = true;
            return Ok(None);
        };
        if !line.ends_with(b"\n") {
            self.end_truncated();
            return Ok(None);
        }
        let body = &line[..line.len() - 1];
        let params_ok = body.len() == 5 || body.get(5) == Some(&b' ');
        if !body.starts_with(b"FRAME") || !params_ok {
            self.ended = true;
            return Err(FileError::malformed(
                &self.name,
                format!(
                    "expected a FRAME line before frame {}, found \"{}\"",
                    self.frames,
                    preview(body)
                ),
            ));
        }
        if self.frame_len <= READ_CHUNK {
            return self.read_pooled();
        }
        let mut data = Vec::with_capacity(self.frame_len.min(READ_CHUNK));
        let got = (&mut self.inner)
            .take(self.frame_len as u64)
            .read_to_end(&mut data)
            .map_err(|e| FileError::io(&self.name, "cannot read frame data", e))?;
        if got < self.frame_len {
            self.end_truncated();
            return Ok(None);
        }
        self.frames += 1;
        Ok(Some(Bytes::from(data)))
    }

    /// Reads a picture of at most [`READ_CHUNK`] bytes into a buffer from
    /// the pool (a new one while fewer than [`POOL_MAX`] are in use).
    fn read_pooled(&mut self) -> Result<Option<Bytes>, FileError> {
        let reused = self.pool.free.lock().ok().and_then(|mut f| f.pop());
        let mut buf = reused.unwrap_or_else(|| vec![0; self.frame_len]);
        match self.inner.read_exact(&mut buf) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                self.end_truncated();
                return Ok(None);
            }
            Err(e) => return Err(FileError::io(&self.name, "cannot read frame data", e)),
        }
        self.frames += 1;
        Ok(Some(Bytes::from_owner(Pooled {
            buf,
            pool: Arc::downgrade(&self.pool),
        })))
    }

    fn end_truncated(&mut self) {
        self.ended = true;
        self.truncated = true;
    }
}

/// Reads one line of at most `max` bytes, keeping the newline; `None` at a
/// clean end of input; an unterminated line at end of input is returned as is.
fn read_line<R: BufRead>(
    r: &mut R,
    name: &str,
    max: u64,
    what: &str,
) -> Result<Option<Vec<u8>>, FileError> {
    let mut line = Vec::new();
    r.take(max)
        .read_until(b'\n', &mut line)
        .map_err(|e| FileError::io(name, "cannot read", e))?;
    if line.is_empty() {
        return Ok(None);
    }
    if !line.ends_with(b"\n") && line.len() as u64 >= max {
        return Err(FileError::malformed(
            name,
            format!(
                "{what} is longer than {max} bytes (\"{}...\")",
                preview(&line)
            ),
        ));
    }
    Ok(Some(line))
}

/// The first bytes of `b`, printable, for error messages.
fn preview(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(24)]);
    s.escape_debug().to_string()
}

/// Parses the header line (without its newline).
fn parse_header(line: &[u8], name: &str) -> Result<Y4mHeader, FileError> {
    let rest = line
        .strip_prefix(MAGIC)
        .filter(|r| r.is_empty() || r[0] == b' ');
    let Some(rest) = rest else {
        return Err(FileError::malformed(
            name,
            format!("not a YUV4MPEG2 stream (starts with \"{}\")", preview(line)),
        ));
    };
    let (mut width, mut height, mut rate) = (None, None, None);
    let mut colour_space = String::from("420jpeg");
    for token in rest.split(|&b| b == b' ').filter(|t| !t.is_empty()) {
        let value = String::from_utf8_lossy(&token[1..]);
        match token[0] {
            b'W' => width = Some(parse_dimension(&value, "width", 'W', name)?),
            b'H' => height = Some(parse_dimension(&value, "height", 'H', name)?),
            b'F' => rate = Some(parse_rate(&value, name)?),
            b'C' => colour_space = value.into_owned(),
            b'I' | b'A' | b'X' => {}
            _ => {
                return Err(FileError::malformed(
                    name,
                    format!("unknown header parameter \"{}\"", preview(token)),
                ))
            }
        }
    }
    let width = width.ok_or_else(|| FileError::malformed(name, "header has no width (W)"))?;
    let height = height.ok_or_else(|| FileError::malformed(name, "header has no height (H)"))?;
    let (fps_num, fps_den) =
        rate.ok_or_else(|| FileError::malformed(name, "header has no frame rate (F)"))?;
    if !matches!(
        colour_space.as_str(),
        "420" | "420jpeg" | "420paldv" | "420mpeg2"
    ) {
        return Err(FileError::unsupported(
            name,
            format!(
                "unsupported colour space C{colour_space}, only 8-bit 4:2:0 is supported \
                 (C420, C420jpeg, C420paldv, C420mpeg2)"
            ),
        ));
    }
    Ok(Y4mHeader {
        format: VideoFormat {
            width,
            height,
            fps_num,
            fps_den,
        },
        colour_space,
    })
}

fn parse_dimension(value: &str, what: &str, tag: char, name: &str) -> Result<u32, FileError> {
    match value.parse::<u32>() {
        Ok(v) if (1..=MAX_DIMENSION).contains(&v) => Ok(v),
        _ => Err(FileError::malformed(
            name,
            format!("invalid {what} \"{tag}{value}\", expected 1..={MAX_DIMENSION}"),
        )),
    }
}

fn parse_rate(value: &str, name: &str) -> Result<(u32, u32), FileError> {
    let parsed = value
        .split_once(':')
        .and_then(|(n, d)| Some((n.parse::<u32>().ok()?, d.parse::<u32>().ok()?)));
    match parsed {
        Some((n, d)) if n > 0 && d > 0 => Ok((n, d)),
        _ => Err(FileError::malformed(
            name,
            format!("invalid frame rate \"F{value}\", expected F<num>:<den> with both non-zero"),
        )),
    }
}

/// A YUV4MPEG2 file or stdin as a [`VideoSource`], paced at its frame rate.
///
/// Every frame is delivered; if the caller stalls for more than a frame
/// period, the schedule restarts from now rather than bursting to catch up.
/// The size and rate a caller asks a test pattern for do not apply: the file
/// decides, see [`VideoSource::format`].
pub struct Y4mSource {
    reader: Y4mReader<Box<dyn BufRead + Send>>,
    clock: PipelineClock,
    pacer: Pacer,
}

impl Y4mSource {
    /// Opens a file; `name` (e.g. `y4m:/tmp/a.y4m`) prefixes errors.
    pub fn open(path: &Path, name: &str, clock: PipelineClock) -> Result<Self, FileError> {
        let file =
            File::open(path).map_err(|e| FileError::io(name, "cannot open for reading", e))?;
        Self::from_reader(
            Box::new(BufReader::with_capacity(READ_BUFFER, file)),
            name,
            clock,
        )
    }

    /// Reads standard input.
    pub fn stdin(name: &str, clock: PipelineClock) -> Result<Self, FileError> {
        let input = BufReader::with_capacity(READ_BUFFER, std::io::stdin());
        Self::from_reader(Box::new(input), name, clock)
    }

    /// Reads any buffered stream.
    pub fn from_reader(
        input: Box<dyn BufRead + Send>,
        name: &str,
        clock: PipelineClock,
    ) -> Result<Self, FileError> {
        let reader = Y4mReader::new(input, name)?;
        let f = reader.header().format;
        Ok(Self {
            reader,
            clock,
            pacer: Pacer::new(f.fps_num, f.fps_den, Behind::Reanchor),
        })
    }

    /// Whether the input ended part-way through a frame.
    pub fn truncated(&self) -> bool {
        self.reader.truncated()
    }
}

impl VideoSource for Y4mSource {
    fn format(&self) -> VideoFormat {
        self.reader.header().format
    }

    fn next_frame(&mut self) -> Result<Option<VideoFrame>, MediaError> {
        // Read first so end of stream is reported without waiting a period.
        let Some(data) = self.reader.read_frame()? else {
            return Ok(None);
        };
        let n = self.pacer.wait(&self.clock);
        let f = self.format();
        VideoFrame::new(f.width, f.height, data, self.clock.now(), self.pacer.pts(n))
            .map(Some)
            .map_err(|source| {
                FileError::Frame {
                    name: self.reader.name.clone(),
                    source,
                }
                .into()
            })
    }
}

/// Writes pictures as a YUV4MPEG2 stream (`C420jpeg`, progressive, square pixels).
///
/// The header is written at open from the format given, so even an empty
/// stream is a valid file. Every frame must have that size: a frame of any
/// other size is refused with [`FileError::Mismatch`] and nothing is written.
pub struct Y4mSink {
    out: Option<BufWriter<Box<dyn Write + Send>>>,
    name: String,
    format: VideoFormat,
}

impl Y4mSink {
    /// Creates (or truncates) a file; `name` (e.g. `y4m:/tmp/a.y4m`) prefixes errors.
    pub fn create(path: &Path, name: &str, format: VideoFormat) -> Result<Self, FileError> {
        format.validate(name)?;
        let file = File::create(path).map_err(|e| FileError::io(name, "cannot create", e))?;
        Self::from_writer(Box::new(file), name, format)
    }

    /// Writes to standard output.
    pub fn stdout(name: &str, format: VideoFormat) -> Result<Self, FileError> {
        Self::from_writer(Box::new(std::io::stdout()), name, format)
    }

    /// Writes to any stream.
    pub fn from_writer(
        out: Box<dyn Write + Send>,
        name: &str,
        format: VideoFormat,
    ) -> Result<Self, FileError> {
        format.validate(name)?;
        let mut out = BufWriter::with_capacity(1 << 20, out);
        writeln!(
            out,
            "YUV4MPEG2 W{} H{} F{}:{} Ip A1:1 C420jpeg",
            format.width, format.height, format.fps_num, format.fps_den
        )
        .map_err(|e| FileError::io(name, "cannot write header", e))?;
        Ok(Self {
            out: Some(out),
            name: name.to_owned(),
            format,
        })
    }
}

impl Y4mSink {
    /// Writes one picture ([`VideoSink::write_frame`] with this crate's error).
    pub fn write(&mut self, frame: &VideoFrame) -> Result<(), FileError> {
        let Some(out) = self.out.as_mut() else {
            return Err(FileError::Finished {
                name: self.name.clone(),
            });
        };
        if (frame.width(), frame.height()) != (self.format.width, self.format.height) {
            return Err(FileError::Mismatch {
                name: self.name.clone(),
                reason: format!(
                    "frame is {}x{} but the stream was opened as {}x{}; \
                     YUV4MPEG2 cannot change size mid-stream",
                    frame.width(),
                    frame.height(),
                    self.format.width,
                    self.format.height
                ),
            });
        }
        // Flushed per picture: a reader on the pipe (`y4m:-`) or following
        // the file gets each picture as it is written, not three at a time
        // when three fit the buffer (640x360 does).
        out.write_all(b"FRAME\n")
            .and_then(|()| out.write_all(frame.data()))
            .and_then(|()| out.flush())
            .map_err(|e| FileError::io(&self.name, "cannot write frame", e))
    }

    /// Flushes and closes the stream ([`VideoSink::finish`] with this crate's error).
    pub fn close(&mut self) -> Result<(), FileError> {
        match self.out.take() {
            Some(mut out) => out
                .flush()
                .map_err(|e| FileError::io(&self.name, "cannot flush", e)),
            None => Ok(()),
        }
    }
}

impl VideoSink for Y4mSink {
    fn write_frame(&mut self, frame: &VideoFrame) -> Result<(), MediaError> {
        Ok(self.write(frame)?)
    }

    fn finish(&mut self) -> Result<(), MediaError> {
        Ok(self.close()?)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use super::*;

    const NAME: &str = "y4m:test.y4m";

    fn reader(input: &[u8]) -> Result<Y4mReader<Cursor<Vec<u8>>>, FileError> {
        Y4mReader::new(Cursor::new(input.to_vec()), NAME)
    }

    fn err(input: &[u8]) -> String {
        reader(input).expect_err("should be refused").to_string()
    }

    /// A `Write` that keeps what was written, shared with the test.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn frame(w: u32, h: u32, seed: u8) -> VideoFrame {
        let data: Vec<u8> = (0..VideoFrame::byte_len(w, h))
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect();
        VideoFrame::new(w, h, Bytes::from(data), Instant::now(), Duration::ZERO).expect("valid")
    }

    #[test]
    fn write_then_read_round_trips() {
        let format = VideoFormat {
            width: 33,
            height: 17,
            fps_num: 30_000,
            fps_den: 1001,
        };
        let buf = Shared::default();
        let mut sink = Y4mSink::from_writer(Box::new(buf.clone()), NAME, format).expect("open");
        let frames: Vec<_> = (0..3).map(|i| frame(33, 17, i)).collect();
        for f in &frames {
            sink.write_frame(f).expect("write");
        }
        sink.finish().expect("finish");
        let late = sink
            .write_frame(&frames[0])
            .expect_err("written after finish");
        assert!(matches!(
            late.cause().and_then(|c| c.downcast_ref::<FileError>()),
            Some(FileError::Finished { .. })
        ));
        let bytes = buf.0.lock().expect("lock").clone();
        assert!(bytes.starts_with(b"YUV4MPEG2 W33 H17 F30000:1001 Ip A1:1 C420jpeg\nFRAME\n"));

        let mut r = reader(&bytes).expect("header");
        assert_eq!(r.header().format, format);
        for f in &frames {
            assert_eq!(r.read_frame().expect("ok").as_ref(), Some(f.data()));
        }
        assert_eq!(r.read_frame().expect("ok"), None);
        assert!(!r.truncated());
        assert_eq!(r.frames_read(), 3);
    }

    #[test]
    fn sink_refuses_a_frame_of_another_size() {
        let format = VideoFormat {
            width: 16,
            height: 16,
            fps_num: 25,
            fps_den: 1,
        };
        let mut sink =
            Y4mSink::from_writer(Box::new(Shared::default()), NAME, format).expect("open");
        let e = sink
            .write_frame(&frame(16, 18, 0))
            .expect_err("size change");
        assert!(e.to_string().contains("16x18"), "{e}");
    }

    #[test]
    fn frame_parameters_and_header_extras_are_accepted() {
        let mut input = b"YUV4MPEG2 W2 H2 F25:1 It A10:11 C420mpeg2 XYSCSS=420MPEG2\n".to_vec();
        input.extend_from_slice(b"FRAME Ixyz\n");
        input.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
        let mut r = reader(&input).expect("header");
        assert_eq!(r.header().colour_space, "420mpeg2");
        assert_eq!(
            r.read_frame().expect("ok").as_deref(),
            Some(&[1u8, 2, 3, 4, 5, 6][..])
        );
    }

    #[test]
    fn a_dropped_picture_buffer_is_filled_again() {
        let mut input = b"YUV4MPEG2 W2 H2 F25:1\n".to_vec();
        for i in 0..4u8 {
            input.extend_from_slice(b"FRAME\n");
            input.extend_from_slice(&[i; 6]);
        }
        let mut r = reader(&input).expect("header");
        let first = r.read_frame().expect("ok").expect("frame 0");
        let at = first.as_ptr();
        drop(first);
        let second = r.read_frame().expect("ok").expect("frame 1");
        assert_eq!(second.as_ptr(), at, "the dropped buffer is reused");
        assert_eq!(second.as_ref(), &[1; 6]);
        // While the second is still held, the third gets another buffer.
        let third = r.read_frame().expect("ok").expect("frame 2");
        assert_ne!(third.as_ptr(), second.as_ptr());
        assert_eq!(
            (second.as_ref(), third.as_ref()),
            (&[1; 6][..], &[2; 6][..])
        );
        // A picture outliving its reader keeps its data.
        drop(r);
        assert_eq!(third.as_ref(), &[2; 6]);
    }

    #[test]
    fn truncated_final_frame_ends_cleanly() {
        let mut input = b"YUV4MPEG2 W2 H2 F25:1\nFRAME\n".to_vec();
        input.extend_from_slice(&[0; 6]);
        input.extend_from_slice(b"FRAME\n\x01\x02");
        let mut r = reader(&input).expect("header");
        assert!(r.read_frame().expect("ok").is_some());
        assert_eq!(r.read_frame().expect("ok"), None);
        assert!(r.truncated());
        assert_eq!(r.read_frame().expect("ok"), None);

        let mut r = reader(b"YUV4MPEG2 W2 H2 F25:1\nFRA").expect("header");
        assert_eq!(r.read_frame().expect("ok"), None);
        assert!(r.truncated());
    }

    #[test]
    fn malformed_headers_are_named() {
        assert!(err(b"").contains("ends inside the YUV4MPEG2 header"));
        assert!(err(b"YUV4MPEG2 W2 H2 F25:1").contains("ends inside"));
        assert!(err(b"RIFF....WAVE\n").contains("not a YUV4MPEG2 stream"));
        assert!(err(b"YUV4MPEG2X W2\n").contains("not a YUV4MPEG2 stream"));
        assert!(err(b"YUV4MPEG2 H2 F25:1\n").contains("no width (W)"));
        assert!(err(b"YUV4MPEG2 W2 F25:1\n").contains("no height (H)"));
        assert!(err(b"YUV4MPEG2 W2 H2\n").contains("no frame rate (F)"));
        assert!(err(b"YUV4MPEG2 W0 H2 F25:1\n").contains("invalid width \"W0\""));
        assert!(err(b"YUV4MPEG2 Wx H2 F25:1\n").contains("invalid width"));
        assert!(err(b"YUV4MPEG2 W2 H99999 F25:1\n").contains("invalid height"));
        assert!(err(b"YUV4MPEG2 W2 H2 F25:0\n").contains("invalid frame rate \"F25:0\""));
        assert!(err(b"YUV4MPEG2 W2 H2 F25\n").contains("invalid frame rate"));
        assert!(err(b"YUV4MPEG2 W2 H2 F25:1 Q7\n").contains("unknown header parameter \"Q7\""));
        let e = err(b"YUV4MPEG2 W2 H2 F25:1 C444\n");
        assert_eq!(
            e,
            "y4m:test.y4m: unsupported colour space C444, only 8-bit 4:2:0 is supported \
             (C420, C420jpeg, C420paldv, C420mpeg2)"
        );
        assert!(err(b"YUV4MPEG2 W2 H2 F25:1 Cmono\n").contains("Cmono"));
        assert!(err(b"YUV4MPEG2 W2 H2 F25:1 C420p10\n").contains("C420p10"));
        let long = [b"YUV4MPEG2 ".as_slice(), &[b'X'; 5000]].concat();
        assert!(err(&long).contains("header is longer than 4096 bytes"));
    }

    #[test]
    fn bad_frame_marker_is_an_error() {
        let mut r = reader(b"YUV4MPEG2 W2 H2 F25:1\nFRAMEX\n").expect("header");
        let e = r.read_frame().expect_err("bad marker").to_string();
        assert!(
            e.contains("expected a FRAME line before frame 0, found \"FRAMEX\""),
            "{e}"
        );
        let mut r = reader(b"YUV4MPEG2 W2 H2 F25:1\ngarbage\n").expect("header");
        assert!(r.read_frame().is_err());
    }

    #[test]
    fn a_lying_header_does_not_allocate_the_lie() {
        let mut r = reader(b"YUV4MPEG2 W16384 H16384 F25:1\nFRAME\nabc").expect("header");
        assert_eq!(r.read_frame().expect("ok"), None);
        assert!(r.truncated());
    }

    #[test]
    fn source_paces_at_the_file_rate_and_ends() {
        let mut input = b"YUV4MPEG2 W2 H2 F50:1\n".to_vec();
        for i in 0..4u8 {
            input.extend_from_slice(b"FRAME\n");
            input.extend_from_slice(&[i; 6]);
        }
        let clock = PipelineClock::start();
        let mut src =
            Y4mSource::from_reader(Box::new(Cursor::new(input)), NAME, clock).expect("open");
        let t = Instant::now();
        let mut pts = Vec::new();
        while let Some(f) = src.next_frame().expect("ok") {
            assert_eq!(f.y()[0], pts.len() as u8);
            pts.push(f.pts);
        }
        assert_eq!(pts.len(), 4);
        assert_eq!(pts[3], Duration::from_millis(60));
        assert!(
            t.elapsed() >= Duration::from_millis(55),
            "{:?}",
            t.elapsed()
        );
        assert!(!src.truncated());
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let seeds: [&[u8]; 5] = [
            b"YUV4MPEG2 W4 H2 F25:1\nFRAME\n",
            b"",
            b"YUV4MPEG2 ",
            b"YUV4MPEG2 W4 H2 F25:1\n",
            b"YUV4MPEG2 W4 H2 F25:1 C420\nFRAME",
        ];
        let (mut parsed, mut frames) = (0, 0);
        let mut valid = b"YUV4MPEG2 W4 H2 F25:1 Ip C420jpeg\n".to_vec();
        for k in 0..3 {
            valid.extend_from_slice(b"FRAME\n");
            valid.extend_from_slice(&[k; 12]);
        }
        for i in 0..5000 {
            let mut input = seeds[i % seeds.len()].to_vec();
            let len = (next() % 200) as usize;
            let alphabet = b"YUV4MPEG2 WHFCIAX0123456789:\nFRAME";
            for _ in 0..len {
                let r = next();
                input.push(if r & 1 == 0 {
                    alphabet[(r >> 8) as usize % alphabet.len()]
                } else {
                    (r >> 16) as u8
                });
            }
            if i % 3 == 0 {
                // Or corrupt a few bytes of a valid stream.
                input = valid.clone();
                for _ in 0..1 + next() % 4 {
                    let at = next() as usize % input.len();
                    input[at] = (next() >> 24) as u8;
                }
            }
            if let Ok(mut r) = reader(&input) {
                parsed += 1;
                for _ in 0..4 {
                    match r.read_frame() {
                        Ok(Some(data)) => {
                            assert_eq!(data.len(), r.frame_len);
                            frames += 1;
                        }
                        Ok(None) | Err(_) => break,
                    }
                }
            }
        }
        // The loop must reach past the header, or it tests little.
        assert!(
            parsed > 500 && frames > 50,
            "{parsed} headers, {frames} frames"
        );
    }
}
