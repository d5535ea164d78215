//! Structured fuzzing harnesses, built only under `--cfg fuzzing` (as
//! cargo-fuzz builds): each fuzz target hands its input to one function here,
//! which derives a sequence of operations from it with `arbitrary` and checks
//! the session's invariants after every step, so the targets stay a few
//! lines and the invariants live next to the code they describe.

use std::collections::HashMap;

use arbitrary::{Arbitrary, Result, Unstructured};
use bytes::Bytes;
use rml_rtmp::chunk_io::ChunkSerializer;
use rml_rtmp::messages::MessagePayload;
use rml_rtmp::rml_amf0::Amf0Value;
use rml_rtmp::time::RtmpTimestamp;

use crate::session::MAX_SERVER_PARTIAL;
use crate::{amf, PublishSession, RtmpUrl, ServerEvent, ServerSession, SessionEvent};

/// Deepest AMF0 tree generated: past [`amf::MAX_DEPTH`], so the limit is hit.
const GEN_DEPTH: u32 = amf::MAX_DEPTH as u32 + 3;

/// An AMF0 value tree, generated with bounded nesting.
fn amf_value(u: &mut Unstructured<'_>, depth: u32) -> Result<Amf0Value> {
    let pick = if depth >= GEN_DEPTH {
        u.int_in_range(0..=3)?
    } else {
        u.int_in_range(0..=6)?
    };
    Ok(match pick {
        0 => Amf0Value::Number(u.arbitrary()?),
        1 => Amf0Value::Boolean(u.arbitrary()?),
        2 => Amf0Value::Utf8String(status_word(u)?),
        3 => Amf0Value::Null,
        4 | 5 => {
            let n = u.int_in_range(0..=4)?;
            let mut props = HashMap::new();
            for _ in 0..n {
                let key = if u.arbitrary()? {
                    ["code", "level", "description", "app"][u.int_in_range(0..=3)?].to_string()
                } else {
                    u.arbitrary()?
                };
                props.insert(key, amf_value(u, depth + 1)?);
            }
            Amf0Value::Object(props)
        }
        _ => {
            let n = u.int_in_range(0..=4)?;
            let mut items = Vec::new();
            for _ in 0..n {
                items.push(amf_value(u, depth + 1)?);
            }
            Amf0Value::StrictArray(items)
        }
    })
}

/// A string that is often one the session looks for.
fn status_word(u: &mut Unstructured<'_>) -> Result<String> {
    const WORDS: &[&str] = &[
        "NetStream.Publish.Start",
        "NetStream.Publish.BadName",
        "NetConnection.Connect.Rejected",
        "NetStream.Unpublish.Success",
        "NetConnection.Connect.Closed",
        "error",
        "status",
    ];
    if u.arbitrary()? {
        Ok(WORDS[u.choose_index(WORDS.len())?].to_string())
    } else {
        u.arbitrary()
    }
}

/// What the fuzzed server sends (or the client does) next.
#[derive(Debug)]
pub enum ClientStep {
    /// Raw bytes from the server, fed in one call.
    Raw(Vec<u8>),
    /// A command, chunked correctly, fed in pieces of `split` bytes.
    Command {
        /// Command name (`_result`, `onStatus`, ... or anything).
        name: String,
        /// Transaction id (often one the client is waiting on).
        txn: f64,
        /// The values after the transaction id (zero of them is a short command).
        values: Vec<Amf0Value>,
        /// Flag it as AMF3 (type 17, a 0 byte first).
        amf3: bool,
        /// Feed in pieces of this many bytes (at least 1).
        split: usize,
    },
    /// A protocol control or other message of any type with any body.
    Message {
        /// Message type id.
        type_id: u8,
        /// Body.
        body: Vec<u8>,
    },
    /// A type-0 chunk header claiming `len` bytes, then `body` (a lie when shorter).
    Lying {
        /// Chunk stream id (2-63).
        csid: u8,
        /// Claimed message length (24 bits).
        len: u32,
        /// What follows.
        body: Vec<u8>,
    },
    /// A command nested `depth` levels deep (written flat, without recursion).
    Deep {
        /// Nesting levels.
        depth: u16,
    },
    /// The client sends a media message of `len` bytes.
    Media {
        /// FLV tag type (8, 9 or 18).
        type_id: u8,
        /// Its timestamp.
        timestamp: u32,
        /// Its size.
        len: u16,
    },
    /// The client ends the publish.
    Close,
}

impl<'a> Arbitrary<'a> for ClientStep {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(match u.int_in_range(0..=12)? {
            0 | 1 => ClientStep::Raw(u.arbitrary()?),
            2..=6 => {
                const NAMES: &[&str] = &["_result", "_error", "onStatus", "close", "onBWDone"];
                let name = if u.ratio(7, 8)? {
                    NAMES[u.choose_index(NAMES.len())?].to_string()
                } else {
                    u.arbitrary()?
                };
                let txn = if u.ratio(3, 4)? {
                    f64::from(u.int_in_range(0..=6u8)?)
                } else {
                    u.arbitrary()?
                };
                let n = u.int_in_range(0..=4)?;
                let mut values = Vec::new();
                for _ in 0..n {
                    values.push(amf_value(u, 0)?);
                }
                ClientStep::Command {
                    name,
                    txn,
                    values,
                    amf3: u.ratio(1, 8)?,
                    split: usize::from(u.int_in_range(1..=4096u16)?),
                }
            }
            7 | 8 => ClientStep::Message {
                type_id: if u.ratio(3, 4)? {
                    u.int_in_range(1..=6)?
                } else {
                    u.arbitrary()?
                },
                body: u.arbitrary()?,
            },
            9 => ClientStep::Lying {
                csid: u.int_in_range(2..=63)?,
                len: u.int_in_range(0..=0xFF_FFFF)?,
                body: u.arbitrary()?,
            },
            10 => ClientStep::Deep {
                depth: u.arbitrary()?,
            },
            11 => ClientStep::Media {
                type_id: [8, 9, 18][u.choose_index(3)?],
                timestamp: u.arbitrary()?,
                len: u.int_in_range(0..=20_000)?,
            },
            _ => ClientStep::Close,
        })
    }
}

/// The server side of the harness: chunks what it sends like a server would.
struct Server {
    ser: ChunkSerializer,
}

impl Server {
    fn message(&mut self, type_id: u8, data: Vec<u8>) -> Vec<u8> {
        let payload = MessagePayload {
            timestamp: RtmpTimestamp::new(0),
            type_id,
            message_stream_id: 0,
            data: Bytes::from(data),
        };
        self.ser
            .serialize(&payload, false, false)
            .map(|p| p.bytes)
            .unwrap_or_default()
    }
}

/// Drives a [`PublishSession`] against a fuzzed server: an original
/// handshake (or arbitrary handshake bytes), then [`ClientStep`]s. After
/// every step: bytes out are bounded by bytes in (plus the fixed handshake
/// and connect sequence, and what the client itself chose to send), the
/// server's unfinished messages are held within the client's limit, `Live`
/// comes at most once and only before any ending event, no event follows
/// `Rejected` or `Closed`, and an error ends the connection as a driver
/// would.
pub fn publish_session(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(url) = RtmpUrl::parse("rtmp://127.0.0.1/live/fuzzkey") else {
        return;
    };
    let mut c = PublishSession::new(url);
    let Ok(()) = c.start() else { return };
    let Some(c0c1) = c.poll_transmit() else {
        return;
    };
    let hello = if u.ratio(15, 16).unwrap_or(true) {
        let mut h = vec![3u8];
        h.extend([0u8; 1536]);
        h.extend(c0c1.get(1..1537).unwrap_or_default());
        h
    } else {
        u.arbitrary().unwrap_or_default()
    };
    if c.handle_input(&hello).is_err() {
        return;
    }
    // C2, set chunk size and connect: a fixed few kilobytes.
    let out = c.poll_transmit().map_or(0, |o| o.len());
    assert!(out <= 4096, "{out} bytes answered the handshake");
    let mut server = Server {
        ser: ChunkSerializer::new(),
    };
    let mut live = false;
    let mut ended = false;
    while !u.is_empty() {
        let Ok(step) = ClientStep::arbitrary(&mut u) else {
            return;
        };
        let mut allowance = 0usize;
        let input: Vec<Vec<u8>> = match step {
            ClientStep::Raw(b) => vec![b],
            ClientStep::Command {
                name,
                txn,
                values,
                amf3,
                split,
            } => {
                let mut all = vec![Amf0Value::Utf8String(name), Amf0Value::Number(txn)];
                all.extend(values);
                let mut body = if amf3 { vec![0] } else { vec![] };
                body.extend(amf::encode(all));
                let bytes = server.message(if amf3 { 17 } else { 20 }, body);
                bytes.chunks(split).map(<[u8]>::to_vec).collect()
            }
            ClientStep::Message { type_id, body } => {
                let size = match body.get(..4) {
                    Some(&[a, b, c, d]) if type_id == 1 => u32::from_be_bytes([a, b, c, d]),
                    _ => 0,
                };
                let bytes = server.message(type_id, body);
                if (1..=1 << 16).contains(&size) {
                    // A set chunk size the harness's own chunking follows too.
                    let _ = server.ser.set_max_chunk_size(size, RtmpTimestamp::new(0));
                }
                vec![bytes]
            }
            ClientStep::Lying { csid, len, body } => {
                let l = len.to_be_bytes();
                let mut b = vec![csid & 0x3F, 0, 0, 0, l[1], l[2], l[3], 20, 0, 0, 0, 0];
                b.extend(body);
                vec![b]
            }
            ClientStep::Deep { depth } => {
                let mut body = amf::encode(vec![
                    Amf0Value::Utf8String("onStatus".into()),
                    Amf0Value::Number(0.0),
                    Amf0Value::Null,
                ]);
                for _ in 0..depth {
                    body.extend([0x03, 0, 1, b'k']);
                }
                vec![server.message(20, body)]
            }
            ClientStep::Media {
                type_id,
                timestamp,
                len,
            } => {
                let body = Bytes::from(vec![0x17; usize::from(len)]);
                let was_live = c.is_live();
                if c.send_media(type_id, timestamp, &body).is_err() {
                    return;
                }
                let out = c.poll_transmit().map_or(0, |o| o.len());
                // The body, @setDataFrame, the first header and one of at
                // most 5 bytes per further 4096-byte chunk.
                let most = usize::from(len) + 16 + 16 + 5 * (usize::from(len) / 4096 + 1);
                assert!(out <= most, "{out} bytes out for {len} of media");
                assert!(was_live || out == 0, "media sent before live");
                continue;
            }
            ClientStep::Close => {
                // FCUnpublish and deleteStream.
                allowance = 512;
                let _ = c.close();
                ended = true;
                vec![]
            }
        };
        let fed: usize = input.iter().map(Vec::len).sum();
        let mut failed = false;
        for piece in &input {
            if c.handle_input(piece).is_err() {
                failed = true;
                break;
            }
        }
        let out = c.poll_transmit().map_or(0, |o| o.len());
        // Replies to connect and createStream (a few hundred bytes each, once),
        // acknowledgements and ping responses (under 32 bytes for each 12 in).
        assert!(
            out <= allowance + 2048 + 4 * fed,
            "{out} bytes out for {fed} in"
        );
        assert!(
            c.buffered_input() <= MAX_SERVER_PARTIAL + fed,
            "{} bytes held",
            c.buffered_input()
        );
        while let Some(ev) = c.poll_event() {
            assert!(!ended, "event {ev:?} after the session ended");
            match ev {
                SessionEvent::Live => {
                    assert!(!live, "live twice");
                    live = true;
                }
                SessionEvent::Rejected { .. } | SessionEvent::Closed { .. } => ended = true,
            }
        }
        assert_eq!(c.is_live(), live && !ended);
        if failed {
            // A driver closes the connection here.
            return;
        }
    }
}

/// What the fuzzed publisher sends next to a [`ServerSession`].
#[derive(Debug)]
pub enum ServerStep {
    /// Bytes from the client, fed in one call.
    Feed(Vec<u8>),
    /// Answer a pending publish request (accept or refuse).
    Answer(bool),
}

impl<'a> Arbitrary<'a> for ServerStep {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(if u.ratio(7, 8)? {
            ServerStep::Feed(u.arbitrary()?)
        } else {
            ServerStep::Answer(u.arbitrary()?)
        })
    }
}

/// Drives a [`ServerSession`] with an optional valid handshake, then
/// [`ServerStep`]s. After every step: queued output is bounded by the input,
/// at most one publish request is pending, its key is safe to serve, and
/// media only flows once a publish was accepted.
pub fn server_session(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let mut s = ServerSession::new();
    if u.arbitrary().unwrap_or(false) {
        // C0, C1 and C2 of the original (digest-less) handshake, so the
        // chunk and command layers get the rest of the input.
        let mut hello = vec![3u8];
        hello.extend(std::iter::repeat_n(0u8, 1536 * 2));
        if s.handle_input(&hello).is_err() {
            return;
        }
    }
    let mut pending: Option<String> = None;
    let mut accepted = false;
    while !u.is_empty() {
        let Ok(step) = ServerStep::arbitrary(&mut u) else {
            return;
        };
        let fed = match step {
            ServerStep::Feed(b) => {
                if s.handle_input(&b).is_err() {
                    return;
                }
                b.len()
            }
            ServerStep::Answer(accept) => {
                if let Some(key) = pending.take() {
                    accepted |= accept;
                    let r = if accept {
                        s.accept_publish(&key)
                    } else {
                        s.reject_publish("NetStream.Publish.BadName", "fuzz")
                    };
                    if r.is_err() {
                        return;
                    }
                }
                0
            }
        };
        while let Some(ev) = s.poll_event() {
            match ev {
                ServerEvent::PublishRequested { key, .. } => {
                    assert!(pending.is_none(), "two publish requests pending");
                    assert!(crate::is_safe_name(&key), "unsafe key {key:?}");
                    pending = Some(key);
                }
                ServerEvent::Media(_) => assert!(accepted, "media before any accepted publish"),
                ServerEvent::Unpublished => pending = None,
            }
        }
        let out = s.poll_transmit().map_or(0, |o| o.len());
        // Answers are a few hundred bytes per command; the handshake 3073.
        assert!(out <= 4096 + fed * 64, "{out} bytes out for {fed} in");
        if s.is_closed() {
            return;
        }
    }
}
