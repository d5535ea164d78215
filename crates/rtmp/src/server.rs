//! The sans-IO RTMP server session: one publisher's bytes in, responses and events out.
//!
//! The driver feeds every byte read to [`ServerSession::handle_input`],
//! writes what [`ServerSession::poll_transmit`] returns and acts on
//! [`ServerSession::poll_event`]: a [`ServerEvent::PublishRequested`] must be
//! answered with [`ServerSession::accept_publish`] or
//! [`ServerSession::reject_publish`] (which sends the status, then the
//! driver closes). The session speaks the publishing half of RTMP the way
//! nginx-rtmp answers ffmpeg, OBS and `pstream push`: handshake (both the
//! original and the digest variant), `connect`, `releaseStream`,
//! `FCPublish`, `createStream`, `publish`, media, `FCUnpublish` /
//! `deleteStream`. Chunks and AMF0 come through the bounded readers in
//! [`crate::chunk`] and [`crate::amf`], so hostile input is an error, never a
//! panic or an unbounded allocation.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use rml_rtmp::chunk_io::ChunkSerializer;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::messages::{
    MessagePayload, PeerBandwidthLimitType, RtmpMessage, UserControlEventType,
};
use rml_rtmp::rml_amf0::Amf0Value;
use rml_rtmp::time::RtmpTimestamp;
use thiserror::Error;

use rml_rtmp::chunk_io::ChunkSerializationError;
use rml_rtmp::handshake::HandshakeError;
use rml_rtmp::messages::MessageSerializationError;

use crate::amf;
use crate::chunk::{ChunkError, ChunkReader, Message};
use crate::{CHUNK_SIZE, WINDOW_ACK_SIZE};

/// The message stream id handed out by `createStream` (one stream per connection).
pub const PUBLISH_STREAM_ID: u32 = 1;

/// Why a server session cannot go on.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The handshake bytes are not RTMP.
    #[error("bad handshake")]
    Handshake(#[source] HandshakeError),
    /// The chunk stream broke a limit or the protocol.
    #[error(transparent)]
    Chunk(#[from] ChunkError),
    /// A message the session cannot accept at all.
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    /// An answer could not be encoded.
    #[error("protocol error: message")]
    Message(#[source] MessageSerializationError),
    /// An answer could not be cut into chunks.
    #[error("protocol error: chunking")]
    Chunking(#[source] ChunkSerializationError),
}

/// Longest stream key (also the longest rendition or segment name served over HTTP).
pub const MAX_NAME_LEN: usize = 64;

/// Whether `s` is a usable stream key or rendition name: 1 to
/// [`MAX_NAME_LEN`] of ASCII letters, digits, `_` and `-`, so that it is
/// also safe in an HTTP path and as a file name.
pub fn is_safe_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The kind of a media message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    /// An FLV audio tag body (type 8).
    Audio,
    /// An FLV video tag body (type 9).
    Video,
    /// Script data (`onMetaData`), `@setDataFrame` removed (type 18).
    Data,
}

/// One media message from the publisher: an FLV tag body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaMessage {
    /// Audio, video or script data.
    pub kind: MediaKind,
    /// RTMP timestamp in milliseconds.
    pub timestamp_ms: u32,
    /// The tag body.
    pub data: Bytes,
}

/// What the session has to tell its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// The client asks to publish `key` (the last path part of the publish
    /// name, without `?` parameters) in `app`; answer with accept or reject.
    PublishRequested {
        /// The application from `connect`.
        app: String,
        /// The stream key.
        key: String,
    },
    /// A media message of the accepted publish.
    Media(MediaMessage),
    /// The client ended the publish (`FCUnpublish`, `deleteStream`, `closeStream`).
    Unpublished,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Handshaking,
    Connected,
    PublishPending,
    Publishing,
    Closed,
}

/// One server-side RTMP connection (see the module docs).
pub struct ServerSession {
    state: State,
    handshake: Handshake,
    reader: ChunkReader,
    serializer: ChunkSerializer,
    out: Vec<u8>,
    events: VecDeque<ServerEvent>,
    app: String,
    received: u64,
    acked: u64,
    peer_window: Option<u32>,
    skipped: u64,
}

impl std::fmt::Debug for ServerSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSession")
            .field("state", &self.state)
            .field("app", &self.app)
            .finish_non_exhaustive()
    }
}

impl Default for ServerSession {
    fn default() -> Self {
        Self::new()
    }
}

/// The stream key of a publish: the last non-empty `/` part of the publish
/// URL's path (`app` then the publish name, `?` parameters removed), so
/// `rtmp://host/live/KEY` and `rtmp://host/KEY` (where ffmpeg sends the
/// whole path as the app and an empty name) both give `KEY`. None unless the
/// HTTP side can serve it ([`is_safe_name`]: ASCII letters,
/// digits, `_` and `-`, at most 64), which also makes it a safe file name.
pub fn stream_key<'a>(app: &'a str, publish_name: &'a str) -> Option<&'a str> {
    let strip = |s: &'a str| s.split('?').next().unwrap_or_default();
    let last = |s: &'a str| strip(s).rsplit('/').find(|p| !p.is_empty());
    let key = last(publish_name).or_else(|| last(app))?;
    is_safe_name(key).then_some(key)
}

impl ServerSession {
    /// A session waiting for the client's handshake.
    pub fn new() -> Self {
        Self {
            state: State::Handshaking,
            handshake: Handshake::new(PeerType::Server),
            reader: ChunkReader::new(),
            serializer: ChunkSerializer::new(),
            out: Vec::new(),
            events: VecDeque::new(),
            app: String::new(),
            received: 0,
            acked: 0,
            peer_window: None,
            skipped: 0,
        }
    }

    /// True once the handshake is over.
    pub fn handshake_done(&self) -> bool {
        self.state != State::Handshaking
    }

    /// True while an accepted publish is live.
    pub fn is_publishing(&self) -> bool {
        self.state == State::Publishing
    }

    /// True once the session refused the client and wants the connection closed.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Messages that were ignored (undecodable commands, media before publish).
    pub fn skipped_messages(&self) -> u64 {
        self.skipped
    }

    /// Bytes to write to the client, if any.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if self.out.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.out))
        }
    }

    /// Bytes queued for the client and not yet taken.
    pub fn pending_transmit(&self) -> usize {
        self.out.len()
    }

    /// The next event, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// Feeds bytes read from the client. An error means: close the connection.
    pub fn handle_input(&mut self, data: &[u8]) -> Result<(), ServerError> {
        match self.state {
            State::Closed => Ok(()),
            State::Handshaking => {
                let result = self
                    .handshake
                    .process_bytes(data)
                    .map_err(ServerError::Handshake)?;
                match result {
                    HandshakeProcessResult::InProgress { response_bytes } => {
                        self.out.extend_from_slice(&response_bytes);
                        Ok(())
                    }
                    HandshakeProcessResult::Completed {
                        response_bytes,
                        remaining_bytes,
                    } => {
                        self.out.extend_from_slice(&response_bytes);
                        self.state = State::Connected;
                        self.handle_chunks(&remaining_bytes)
                    }
                }
            }
            _ => self.handle_chunks(data),
        }
    }

    /// Accepts the pending publish: `StreamBegin` and `NetStream.Publish.Start`.
    pub fn accept_publish(&mut self, key: &str) -> Result<(), ServerError> {
        if self.state != State::PublishPending {
            return Ok(());
        }
        self.send(
            RtmpMessage::UserControl {
                event_type: UserControlEventType::StreamBegin,
                stream_id: Some(PUBLISH_STREAM_ID),
                buffer_length: None,
                timestamp: None,
            },
            0,
        )?;
        self.on_status(
            "status",
            "NetStream.Publish.Start",
            &format!("{key} is now published"),
        )?;
        self.state = State::Publishing;
        Ok(())
    }

    /// Refuses the pending publish with an error status (e.g.
    /// `NetStream.Publish.BadName`); the driver then flushes and closes.
    pub fn reject_publish(&mut self, code: &str, description: &str) -> Result<(), ServerError> {
        self.on_status("error", code, description)?;
        self.state = State::Closed;
        Ok(())
    }

    fn on_status(&mut self, level: &str, code: &str, description: &str) -> Result<(), ServerError> {
        let mut info = HashMap::new();
        info.insert("level".to_string(), Amf0Value::Utf8String(level.into()));
        info.insert("code".to_string(), Amf0Value::Utf8String(code.into()));
        info.insert(
            "description".to_string(),
            Amf0Value::Utf8String(description.into()),
        );
        self.command(
            "onStatus",
            0.0,
            Amf0Value::Null,
            vec![Amf0Value::Object(info)],
            PUBLISH_STREAM_ID,
        )
    }

    fn command(
        &mut self,
        name: &str,
        txn: f64,
        object: Amf0Value,
        args: Vec<Amf0Value>,
        stream: u32,
    ) -> Result<(), ServerError> {
        let mut values = vec![
            Amf0Value::Utf8String(name.to_string()),
            Amf0Value::Number(txn),
            object,
        ];
        values.extend(args);
        let payload = MessagePayload {
            timestamp: RtmpTimestamp::new(0),
            type_id: 20,
            message_stream_id: stream,
            data: Bytes::from(amf::encode(values)),
        };
        self.write_payload(&payload)
    }

    fn send(&mut self, msg: RtmpMessage, stream: u32) -> Result<(), ServerError> {
        let payload = msg
            .into_message_payload(RtmpTimestamp::new(0), stream)
            .map_err(ServerError::Message)?;
        self.write_payload(&payload)
    }

    fn write_payload(&mut self, payload: &MessagePayload) -> Result<(), ServerError> {
        let packet = self
            .serializer
            .serialize(payload, false, false)
            .map_err(ServerError::Chunking)?;
        self.out.extend_from_slice(&packet.bytes);
        Ok(())
    }

    fn handle_chunks(&mut self, data: &[u8]) -> Result<(), ServerError> {
        self.received += data.len() as u64;
        let mut input = data;
        while self.state != State::Closed {
            let Some(msg) = self.reader.read(&mut input)? else {
                break;
            };
            self.handle_message(msg)?;
        }
        if let Some(window) = self.peer_window {
            if window > 0 && self.received - self.acked >= u64::from(window) {
                self.acked = self.received;
                self.send(
                    RtmpMessage::Acknowledgement {
                        sequence_number: self.received as u32,
                    },
                    0,
                )?;
            }
        }
        Ok(())
    }

    fn handle_message(&mut self, msg: Message) -> Result<(), ServerError> {
        let be32 = |d: &[u8]| -> Option<u32> {
            Some(u32::from_be_bytes([
                *d.first()?,
                *d.get(1)?,
                *d.get(2)?,
                *d.get(3)?,
            ]))
        };
        match msg.type_id {
            1 => {
                let size = be32(&msg.data).ok_or(ServerError::Protocol("short set chunk size"))?;
                self.reader.set_chunk_size(size)?;
            }
            2 => {
                if let Some(csid) = be32(&msg.data) {
                    self.reader.abort(csid);
                }
            }
            4 => {
                // Ping request: answer with the same timestamp.
                if msg.data.len() >= 6 && msg.data[0] == 0 && msg.data[1] == 6 {
                    let ts = be32(&msg.data[2..]).unwrap_or(0);
                    self.send(
                        RtmpMessage::UserControl {
                            event_type: UserControlEventType::PingResponse,
                            stream_id: None,
                            buffer_length: None,
                            timestamp: Some(RtmpTimestamp::new(ts)),
                        },
                        0,
                    )?;
                }
            }
            5 => self.peer_window = be32(&msg.data),
            8 | 9 | 18 => self.media(msg),
            17 | 20 => {
                // AMF3 commands start with a 0 byte and then carry AMF0.
                let body = if msg.type_id == 17 {
                    msg.data.get(1..).unwrap_or_default()
                } else {
                    &msg.data[..]
                };
                match amf::decode_command(body) {
                    Ok((name, txn, object, args)) => {
                        self.handle_command(&name, txn, object, args)?
                    }
                    Err(_) => self.skipped += 1,
                }
            }
            // Acknowledgements, peer bandwidth, AMF3 data, aggregates: nothing to do.
            _ => self.skipped += 1,
        }
        Ok(())
    }

    fn media(&mut self, msg: Message) {
        if self.state != State::Publishing {
            self.skipped += 1;
            return;
        }
        let kind = match msg.type_id {
            8 => MediaKind::Audio,
            9 => MediaKind::Video,
            _ => MediaKind::Data,
        };
        let mut data = msg.data;
        if kind == MediaKind::Data {
            // ffmpeg and OBS wrap onMetaData in "@setDataFrame".
            const SET_DATA_FRAME: &[u8] = b"\x02\x00\x0d@setDataFrame";
            if data.starts_with(SET_DATA_FRAME) {
                data = data.slice(SET_DATA_FRAME.len()..);
            }
        }
        self.events.push_back(ServerEvent::Media(MediaMessage {
            kind,
            timestamp_ms: msg.timestamp,
            data,
        }));
    }

    fn handle_command(
        &mut self,
        name: &str,
        txn: f64,
        object: Amf0Value,
        args: Vec<Amf0Value>,
    ) -> Result<(), ServerError> {
        match name {
            "connect" => {
                if let Amf0Value::Object(props) = &object {
                    if let Some(Amf0Value::Utf8String(app)) = props.get("app") {
                        self.app = app.chars().take(256).collect();
                    }
                }
                self.send(
                    RtmpMessage::WindowAcknowledgement {
                        size: WINDOW_ACK_SIZE,
                    },
                    0,
                )?;
                self.send(
                    RtmpMessage::SetPeerBandwidth {
                        size: WINDOW_ACK_SIZE,
                        limit_type: PeerBandwidthLimitType::Dynamic,
                    },
                    0,
                )?;
                let packet = self
                    .serializer
                    .set_max_chunk_size(CHUNK_SIZE, RtmpTimestamp::new(0))
                    .map_err(ServerError::Chunking)?;
                self.out.extend_from_slice(&packet.bytes);
                let mut props = HashMap::new();
                props.insert(
                    "fmsVer".to_string(),
                    Amf0Value::Utf8String("FMS/3,0,1,123".into()),
                );
                props.insert("capabilities".to_string(), Amf0Value::Number(31.0));
                let mut info = HashMap::new();
                info.insert("level".to_string(), Amf0Value::Utf8String("status".into()));
                info.insert(
                    "code".to_string(),
                    Amf0Value::Utf8String("NetConnection.Connect.Success".into()),
                );
                info.insert(
                    "description".to_string(),
                    Amf0Value::Utf8String("Connection succeeded.".into()),
                );
                info.insert("objectEncoding".to_string(), Amf0Value::Number(0.0));
                self.command(
                    "_result",
                    txn,
                    Amf0Value::Object(props),
                    vec![Amf0Value::Object(info)],
                    0,
                )?;
            }
            "createStream" => {
                self.command(
                    "_result",
                    txn,
                    Amf0Value::Null,
                    vec![Amf0Value::Number(f64::from(PUBLISH_STREAM_ID))],
                    0,
                )?;
            }
            "publish" => {
                if self.state != State::Connected {
                    return Err(ServerError::Protocol("publish while already publishing"));
                }
                let name = args.iter().find_map(|a| match a {
                    Amf0Value::Utf8String(s) => Some(s.as_str()),
                    _ => None,
                });
                match stream_key(&self.app, name.unwrap_or_default()) {
                    Some(key) => {
                        self.events.push_back(ServerEvent::PublishRequested {
                            app: self.app.clone(),
                            key: key.to_string(),
                        });
                        self.state = State::PublishPending;
                    }
                    None => self.reject_publish(
                        "NetStream.Publish.BadName",
                        "stream key must be 1-64 characters of A-Z a-z 0-9 _ -",
                    )?,
                }
            }
            "FCUnpublish" | "deleteStream" | "closeStream" => {
                if matches!(self.state, State::Publishing | State::PublishPending) {
                    self.state = State::Connected;
                    self.events.push_back(ServerEvent::Unpublished);
                }
            }
            // Courtesy calls that clients expect an answer to, when they ask for one.
            "releaseStream" | "FCPublish" | "getStreamLength" | "_checkbw" => {
                if txn > 0.0 {
                    self.command("_result", txn, Amf0Value::Null, vec![], 0)?;
                }
            }
            _ => {
                if txn > 0.0 {
                    self.command("_error", txn, Amf0Value::Null, vec![], 0)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PublishSession, RtmpUrl, SessionEvent};

    /// Moves bytes between our client and our server until both are quiet.
    fn pump(
        client: &mut PublishSession,
        server: &mut ServerSession,
        accept: Option<bool>,
    ) -> Vec<ServerEvent> {
        let mut seen = Vec::new();
        for _ in 0..100 {
            let mut moved = false;
            if let Some(b) = client.poll_transmit() {
                server.handle_input(&b).expect("server input");
                moved = true;
            }
            while let Some(ev) = server.poll_event() {
                if let ServerEvent::PublishRequested { key, .. } = ev {
                    match accept {
                        Some(true) => server.accept_publish(&key).expect("accept"),
                        _ => server
                            .reject_publish("NetStream.Publish.BadName", "not allowed")
                            .expect("reject"),
                    }
                } else {
                    seen.push(ev);
                }
            }
            if let Some(b) = server.poll_transmit() {
                client.handle_input(&b).expect("client input");
                moved = true;
            }
            if !moved {
                break;
            }
        }
        seen
    }

    #[test]
    fn stream_keys_are_the_last_path_part() {
        assert_eq!(stream_key("live", "hello_world"), Some("hello_world"));
        assert_eq!(stream_key("live", "sub/key?token=1"), Some("key"));
        assert_eq!(stream_key("hello_world", ""), Some("hello_world"));
        assert_eq!(stream_key("live/x?t=1", ""), Some("x"));
        assert_eq!(stream_key("live", "a/.."), None);
        assert_eq!(stream_key("", ""), None);
        assert_eq!(stream_key("live", "bad key"), None);
        assert_eq!(stream_key("live", &"k".repeat(65)), None);
        assert_eq!(stream_key("live", "a.b"), None);
    }

    #[test]
    fn our_client_publishes_and_media_arrives() {
        let url = RtmpUrl::parse("rtmp://127.0.0.1/live/hello_world").expect("url");
        let mut client = PublishSession::new(url);
        let mut server = ServerSession::new();
        client.start().expect("start");
        pump(&mut client, &mut server, Some(true));
        assert_eq!(client.poll_event(), Some(SessionEvent::Live));
        assert!(server.is_publishing());
        client
            .send_media(9, 66, &Bytes::from(vec![0x17; 9000]))
            .expect("send");
        let media = pump(&mut client, &mut server, Some(true));
        assert!(
            media
                == vec![ServerEvent::Media(MediaMessage {
                    kind: MediaKind::Video,
                    timestamp_ms: 66,
                    data: Bytes::from(vec![0x17; 9000]),
                })],
            "{} events",
            media.len()
        );
        client.close().expect("close");
        let end = pump(&mut client, &mut server, Some(true));
        assert_eq!(end, vec![ServerEvent::Unpublished]);
    }

    #[test]
    fn a_refused_key_reaches_the_client_as_bad_name() {
        let url = RtmpUrl::parse("rtmp://127.0.0.1/live/nope").expect("url");
        let mut client = PublishSession::new(url);
        let mut server = ServerSession::new();
        client.start().expect("start");
        pump(&mut client, &mut server, Some(false));
        assert!(server.is_closed());
        match client.poll_event() {
            Some(SessionEvent::Rejected { code, .. }) => {
                assert_eq!(code, "NetStream.Publish.BadName")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn garbage_is_an_error() {
        let mut server = ServerSession::new();
        assert!(server.handle_input(&[0x47; 4000]).is_err());
    }
}
