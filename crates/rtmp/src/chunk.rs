//! The RTMP chunk stream, read side, for untrusted peers.
//!
//! rml_rtmp's deserializer trusts its input (its arithmetic overflows on a
//! chunk that claims less than it already delivered, and it reserves the
//! whole claimed message length up front), so both the server and the
//! publishing client read chunks here: payload bytes are copied as they
//! arrive, a message may not claim more than [`MAX_MESSAGE_LEN`] (less with
//! [`ChunkReader::with_limits`]), and the partly received messages of one
//! connection may not hold more than [`MAX_PARTIAL_BYTES`] together. Only a
//! few header bytes are ever held back between calls.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use thiserror::Error;

/// Largest message a peer may send (a keyframe of a high-bitrate 4K stream fits).
pub const MAX_MESSAGE_LEN: usize = 8 << 20;
/// Most bytes all partly received messages of one connection may hold.
pub const MAX_PARTIAL_BYTES: usize = 16 << 20;
/// Most chunk streams with a message in progress at once.
pub const MAX_OPEN_STREAMS: usize = 64;
/// Most chunk stream ids one connection may use. Encoders use a handful
/// (ffmpeg and OBS: 2 to 8); each id costs a map entry for the life of the
/// connection, so a peer cycling through ids must not grow that map.
pub const MAX_CHUNK_STREAMS: usize = 256;
/// Largest chunk size a peer may announce.
pub const MAX_CHUNK_SIZE: u32 = 16 << 20;
/// Timestamp field value meaning "an extended timestamp follows".
const EXTENDED: u32 = 0xFF_FFFF;

/// Why a chunk stream cannot be read any further.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChunkError {
    /// A type 1-3 header on a chunk stream that never had a type 0 header.
    #[error("chunk stream {0} continues a message it never started")]
    NoPreviousHeader(u32),
    /// A message length over the reader's limit ([`MAX_MESSAGE_LEN`] unless set lower).
    #[error("message of {0} bytes is over the limit")]
    TooLarge(usize),
    /// Too many unfinished messages, or too many bytes in them.
    #[error("too many unfinished messages ({0} bytes held)")]
    TooManyPartial(usize),
    /// A new chunk stream id past [`MAX_CHUNK_STREAMS`].
    #[error("chunk stream {0} is one more than the {MAX_CHUNK_STREAMS} a connection may use")]
    TooManyStreams(u32),
    /// A set-chunk-size of 0 or over [`MAX_CHUNK_SIZE`].
    #[error("chunk size {0} out of range")]
    BadChunkSize(u32),
}

/// One complete message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The message type id (8 audio, 9 video, 20 command, ...).
    pub type_id: u8,
    /// The message stream id.
    pub stream_id: u32,
    /// Timestamp in milliseconds (absolute, wrapping at 2^32).
    pub timestamp: u32,
    /// The payload.
    pub data: Bytes,
}

/// What a chunk stream remembers from its last header.
#[derive(Debug, Clone, Default)]
struct StreamState {
    timestamp: u32,
    delta: u32,
    length: usize,
    type_id: u8,
    stream_id: u32,
    extended: bool,
    /// The message being assembled, if one is in progress.
    partial: Option<BytesMut>,
}

/// Where the reader is inside the current chunk.
#[derive(Debug, Clone, Copy)]
enum Stage {
    /// Waiting for a chunk header.
    Header,
    /// Copying `left` payload bytes of chunk stream `csid`.
    Payload { csid: u32, left: usize },
}

/// Reads chunks into messages (see the module docs).
#[derive(Debug)]
pub struct ChunkReader {
    chunk_size: usize,
    streams: HashMap<u32, StreamState>,
    pending: Vec<u8>,
    stage: Stage,
    partial_bytes: usize,
    /// Chunk streams with a message in progress (kept as a count, so each
    /// header costs the same however many streams the peer opened).
    open: usize,
    /// Largest message accepted.
    max_message: usize,
    /// Most bytes all unfinished messages may hold.
    max_partial: usize,
}

impl Default for ChunkReader {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkReader {
    /// A reader at the protocol's initial chunk size of 128.
    pub fn new() -> Self {
        Self::with_limits(MAX_MESSAGE_LEN, MAX_PARTIAL_BYTES)
    }

    /// A reader whose messages may hold at most `max_message` bytes and
    /// whose unfinished messages at most `max_partial` together (each capped
    /// at the defaults): a publishing client expects only small control
    /// messages and commands from its server.
    pub fn with_limits(max_message: usize, max_partial: usize) -> Self {
        Self {
            chunk_size: 128,
            streams: HashMap::new(),
            pending: Vec::with_capacity(32),
            stage: Stage::Header,
            partial_bytes: 0,
            open: 0,
            max_message: max_message.min(MAX_MESSAGE_LEN),
            max_partial: max_partial.min(MAX_PARTIAL_BYTES),
        }
    }

    /// Input bytes held between calls: unfinished messages and a partial header.
    pub fn held_bytes(&self) -> usize {
        self.partial_bytes + self.pending.len()
    }

    /// Applies the peer's Set Chunk Size.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        let size = size & 0x7FFF_FFFF;
        if size == 0 || size > MAX_CHUNK_SIZE {
            return Err(ChunkError::BadChunkSize(size));
        }
        self.chunk_size = size as usize;
        Ok(())
    }

    /// Applies the peer's Abort: drops the unfinished message of `csid`.
    pub fn abort(&mut self, csid: u32) {
        if let Some(s) = self.streams.get_mut(&csid) {
            if let Some(p) = s.partial.take() {
                self.partial_bytes -= p.len();
                self.open -= 1;
            }
        }
    }

    /// Consumes bytes from `input` until one message completes (returned) or
    /// the input runs out (`Ok(None)`); `input` is advanced past what was used.
    ///
    /// Call again with the rest of the input after every message: a Set
    /// Chunk Size must take effect before the next chunk is read.
    pub fn read(&mut self, input: &mut &[u8]) -> Result<Option<Message>, ChunkError> {
        loop {
            match self.stage {
                Stage::Header => {
                    let need = self.header_len().unwrap_or(1);
                    if !self.take_pending(input, need) {
                        return Ok(None);
                    }
                    // The first bytes may reveal a longer header (extended timestamp).
                    if self.header_len() != Some(self.pending.len()) {
                        continue;
                    }
                    self.parse_header()?;
                }
                Stage::Payload { csid, left } => {
                    if left > 0 && input.is_empty() {
                        return Ok(None);
                    }
                    let n = left.min(input.len());
                    let (now, rest) = input.split_at(n);
                    *input = rest;
                    let Some(state) = self.streams.get_mut(&csid) else {
                        return Err(ChunkError::NoPreviousHeader(csid));
                    };
                    if state.partial.is_none() {
                        self.open += 1;
                    }
                    let partial = state.partial.get_or_insert_with(BytesMut::new);
                    partial.extend_from_slice(now);
                    self.partial_bytes += n;
                    if self.partial_bytes > self.max_partial {
                        return Err(ChunkError::TooManyPartial(self.partial_bytes));
                    }
                    let left = left - n;
                    if left > 0 {
                        self.stage = Stage::Payload { csid, left };
                        continue;
                    }
                    self.stage = Stage::Header;
                    if partial.len() >= state.length {
                        let data = state.partial.take().unwrap_or_default().freeze();
                        self.partial_bytes -= data.len();
                        self.open -= 1;
                        return Ok(Some(Message {
                            type_id: state.type_id,
                            stream_id: state.stream_id,
                            timestamp: state.timestamp,
                            data,
                        }));
                    }
                }
            }
        }
    }

    /// Moves bytes from `input` into `pending` until it holds `need`; false if short.
    fn take_pending(&mut self, input: &mut &[u8], need: usize) -> bool {
        if self.pending.len() < need {
            let n = (need - self.pending.len()).min(input.len());
            self.pending.extend_from_slice(&input[..n]);
            *input = &input[n..];
        }
        self.pending.len() >= need
    }

    /// The full header length given what is pending, or None if the basic header is still short.
    fn header_len(&self) -> Option<usize> {
        let first = *self.pending.first()?;
        let basic = match first & 0x3F {
            0 => 2,
            1 => 3,
            _ => 1,
        };
        let fmt = first >> 6;
        let msg = [11, 7, 3, 0][usize::from(fmt)];
        if self.pending.len() < basic + msg {
            // Enough to know whether an extended timestamp follows only once the header is in.
            return Some(basic + msg);
        }
        let csid = self.csid(basic);
        let ts_field = match fmt {
            3 => None,
            _ => Some(be24(&self.pending[basic..basic + 3])),
        };
        let extended = match ts_field {
            Some(t) => t == EXTENDED,
            None => self.streams.get(&csid).is_some_and(|s| s.extended),
        };
        Some(basic + msg + if extended { 4 } else { 0 })
    }

    fn csid(&self, basic: usize) -> u32 {
        let p = &self.pending;
        match basic {
            2 => 64 + u32::from(p[1]),
            3 => 64 + u32::from(p[1]) + 256 * u32::from(p[2]),
            _ => u32::from(p[0] & 0x3F),
        }
    }

    /// Parses the complete header in `pending` and sets up the payload stage.
    fn parse_header(&mut self) -> Result<(), ChunkError> {
        let first = self.pending[0];
        let fmt = first >> 6;
        let basic = match first & 0x3F {
            0 => 2,
            1 => 3,
            _ => 1,
        };
        let csid = self.csid(basic);
        let h = &self.pending[basic..];
        if fmt != 0 && !self.streams.contains_key(&csid) {
            return Err(ChunkError::NoPreviousHeader(csid));
        }
        if !self.streams.contains_key(&csid) && self.streams.len() >= MAX_CHUNK_STREAMS {
            return Err(ChunkError::TooManyStreams(csid));
        }
        let open = self.open;
        let state = self.streams.entry(csid).or_default();
        let starting = state.partial.is_none();
        if starting && open >= MAX_OPEN_STREAMS {
            return Err(ChunkError::TooManyPartial(self.partial_bytes));
        }
        let msg_len = [11, 7, 3, 0][usize::from(fmt)];
        let ext = if h.len() >= msg_len + 4 {
            Some(u32::from_be_bytes([
                h[msg_len],
                h[msg_len + 1],
                h[msg_len + 2],
                h[msg_len + 3],
            ]))
        } else {
            None
        };
        if fmt <= 2 {
            let field = be24(&h[0..3]);
            state.extended = field == EXTENDED;
            let value = if state.extended {
                ext.unwrap_or(0)
            } else {
                field
            };
            if fmt == 0 {
                state.timestamp = value;
                state.delta = 0;
            } else {
                state.delta = value;
                state.timestamp = state.timestamp.wrapping_add(value);
            }
        } else if starting {
            // A type 3 chunk starting a new message repeats the last delta.
            state.timestamp = state.timestamp.wrapping_add(state.delta);
        }
        if fmt <= 1 {
            let length = be24(&h[3..6]) as usize;
            if length > self.max_message {
                return Err(ChunkError::TooLarge(length));
            }
            if !starting && length != state.length {
                // A new header in the middle of a message: the old one is abandoned.
                if let Some(p) = state.partial.take() {
                    self.partial_bytes -= p.len();
                    self.open -= 1;
                }
            }
            state.length = length;
            state.type_id = h[6];
        }
        if fmt == 0 {
            state.stream_id = u32::from_le_bytes([h[7], h[8], h[9], h[10]]);
        }
        let have = state.partial.as_ref().map_or(0, |p| p.len());
        let left = state.length.saturating_sub(have).min(self.chunk_size);
        self.pending.clear();
        self.stage = Stage::Payload { csid, left };
        Ok(())
    }
}

fn be24(b: &[u8]) -> u32 {
    (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2])
}

#[cfg(test)]
mod tests {
    use super::*;
    use rml_rtmp::chunk_io::ChunkSerializer;
    use rml_rtmp::messages::MessagePayload;
    use rml_rtmp::time::RtmpTimestamp;

    fn payload(ts: u32, type_id: u8, len: usize) -> MessagePayload {
        MessagePayload {
            timestamp: RtmpTimestamp::new(ts),
            type_id,
            message_stream_id: 1,
            data: Bytes::from((0..len).map(|i| i as u8).collect::<Vec<_>>()),
        }
    }

    fn read_all(r: &mut ChunkReader, mut input: &[u8]) -> Vec<Message> {
        let mut out = Vec::new();
        while let Some(m) = r.read(&mut input).expect("read") {
            out.push(m);
        }
        assert!(input.is_empty());
        out
    }

    #[test]
    fn reads_what_rml_rtmp_writes_byte_by_byte_and_at_once() {
        let mut ser = ChunkSerializer::new();
        let mut bytes = Vec::new();
        let msgs = [
            payload(0, 9, 1000),
            payload(33, 9, 50),
            payload(40, 8, 300),
            payload(0x0100_0000 + 5, 9, 10),
            payload(0x0100_0000 + 38, 9, 10),
        ];
        for m in &msgs {
            bytes.extend(ser.serialize(m, false, false).expect("ser").bytes);
        }
        let mut r = ChunkReader::new();
        let got = read_all(&mut r, &bytes);
        let mut r2 = ChunkReader::new();
        let mut got2 = Vec::new();
        for b in &bytes {
            got2.extend(read_all(&mut r2, std::slice::from_ref(b)));
        }
        for got in [got, got2] {
            assert_eq!(got.len(), msgs.len());
            for (g, m) in got.iter().zip(&msgs) {
                assert_eq!(g.timestamp, m.timestamp.value);
                assert_eq!(g.type_id, m.type_id);
                assert_eq!(g.stream_id, 1);
                assert_eq!(g.data, m.data);
            }
        }
    }

    #[test]
    fn follows_a_set_chunk_size() {
        let mut ser = ChunkSerializer::new();
        let size = ser
            .set_max_chunk_size(4096, RtmpTimestamp::new(0))
            .expect("size");
        let big = ser
            .serialize(&payload(0, 9, 10_000), false, false)
            .expect("ser");
        let mut r = ChunkReader::new();
        let mut input = &size.bytes[..];
        let m = r.read(&mut input).expect("read").expect("message");
        assert_eq!(m.type_id, 1);
        r.set_chunk_size(4096).expect("size");
        let got = read_all(&mut r, &big.bytes);
        assert_eq!(got[0].data.len(), 10_000);
    }

    #[test]
    fn lying_and_hostile_headers_are_errors() {
        // A type 1 header on a chunk stream never opened.
        let mut r = ChunkReader::new();
        let mut input: &[u8] = &[0x44, 0, 0, 0, 0, 0, 10, 9];
        assert_eq!(r.read(&mut input), Err(ChunkError::NoPreviousHeader(4)));
        // A message length of 16 MiB - 1.
        let mut r = ChunkReader::new();
        let mut input: &[u8] = &[0x04, 0, 0, 0, 0xFF, 0xFF, 0xFF, 9, 1, 0, 0, 0];
        assert_eq!(r.read(&mut input), Err(ChunkError::TooLarge(0xFF_FFFF)));
        // Many chunk streams each opening a message.
        let mut r = ChunkReader::new();
        let mut bytes = Vec::new();
        for csid in 0..100u8 {
            // 200-byte messages: the first 128-byte chunk of each leaves it unfinished.
            bytes.extend([0x00, csid, 0, 0, 0, 0, 0, 200, 9, 1, 0, 0, 0]);
            bytes.extend([0xAA; 128]);
        }
        let mut input = &bytes[..];
        let err = loop {
            match r.read(&mut input) {
                Ok(None) => panic!("accepted {} open messages", MAX_OPEN_STREAMS + 1),
                Ok(Some(_)) => {}
                Err(e) => break e,
            }
        };
        assert!(matches!(err, ChunkError::TooManyPartial(_)));
        assert!(r.set_chunk_size(0).is_err());
    }

    /// A peer cycling through chunk stream ids, each carrying one complete
    /// 1-byte message (3-byte basic headers: ids 64 to 65599), is cut off
    /// at the cap instead of growing the reader's map; the messages before
    /// it are read, and an abandoned or aborted message frees its slot.
    #[test]
    fn chunk_stream_ids_are_capped() {
        let mut r = ChunkReader::new();
        let mut bytes = Vec::new();
        for i in 0..10_000u16 {
            bytes.push(0x01);
            bytes.extend(i.to_le_bytes());
            bytes.extend([0, 0, 0, 0, 0, 1, 9, 1, 0, 0, 0, 0xAA]);
        }
        let mut input = &bytes[..];
        let mut read = 0;
        let err = loop {
            match r.read(&mut input) {
                Ok(Some(m)) => {
                    assert_eq!(&m.data[..], &[0xAA]);
                    read += 1;
                }
                Ok(None) => panic!("all 10,000 chunk stream ids accepted"),
                Err(e) => break e,
            }
        };
        assert_eq!(read, MAX_CHUNK_STREAMS);
        assert_eq!(
            err,
            ChunkError::TooManyStreams(64 + MAX_CHUNK_STREAMS as u32)
        );
        assert_eq!(r.open, 0);
        // Unfinished messages: counted while open, freed by abort.
        let mut r = ChunkReader::new();
        let mut input: &[u8] = &[0x04, 0, 0, 0, 0, 0, 200, 9, 1, 0, 0, 0, 1, 2, 3];
        assert_eq!(r.read(&mut input), Ok(None));
        assert_eq!(r.open, 1);
        r.abort(4);
        assert_eq!((r.open, r.partial_bytes), (0, 0));
    }
}
