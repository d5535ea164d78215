//! The sans-IO RTMP publishing session: bytes in, bytes and events out.
//!
//! The caller owns the socket: it calls [`PublishSession::start`], writes
//! whatever [`PublishSession::poll_transmit`] returns, feeds every byte it
//! reads to [`PublishSession::handle_input`] (then polls transmit and
//! [`PublishSession::poll_event`] again), and once [`SessionEvent::Live`]
//! arrives sends media with [`PublishSession::send_media`]. The session never
//! reads a clock or touches the network, so it is tested against a scripted
//! server.
//!
//! The command sequence is the one OBS and ffmpeg use towards Twitch, YouTube
//! and nginx-rtmp: handshake; set chunk size 4096; `connect`; window
//! acknowledgement size; `releaseStream`, `FCPublish`, `createStream`;
//! `publish(key, "live")`; media; `FCUnpublish`, `deleteStream`.
//!
//! Every byte from the server is read by this crate's bounded readers
//! ([`crate::chunk`] with client-sized limits, [`crate::amf`]), so a hostile
//! or intercepted ingest costs its own connection (an error), never a panic,
//! a deep recursion or an unbounded allocation. rml_rtmp is kept for the
//! handshake (fixed-size packets, fuzzed through both sessions) and for
//! writing what we send, which we build ourselves.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use rml_rtmp::chunk_io::ChunkSerializer;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::messages::{MessagePayload, RtmpMessage, UserControlEventType};
use rml_rtmp::rml_amf0::Amf0Value;
use rml_rtmp::time::RtmpTimestamp;

use crate::amf;
use crate::chunk::{ChunkReader, Message};
use crate::{RtmpUrl, SessionError};

/// Chunk size pstream sends with (the default 128 costs a header every 128 bytes).
pub const CHUNK_SIZE: u32 = 4096;
/// Window acknowledgement size pstream asks the server to use.
pub const WINDOW_ACK_SIZE: u32 = 2_500_000;
/// RTMP message type id of AMF0 data (metadata).
const TYPE_DATA_AMF0: u8 = 18;
/// RTMP message type id of an AMF0 command.
const TYPE_COMMAND_AMF0: u8 = 20;
/// Largest message accepted from a server: servers send a publisher
/// control messages and commands of a few hundred bytes.
pub const MAX_SERVER_MESSAGE: usize = 64 << 10;
/// Most bytes the server's unfinished messages may hold together.
pub const MAX_SERVER_PARTIAL: usize = 256 << 10;

/// What the session has to tell its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// `NetStream.Publish.Start`: media may flow.
    Live,
    /// The server refused the app or key (`NetConnection.Connect.Rejected`,
    /// `NetStream.Publish.BadName`, ...); retrying the same will not help.
    Rejected {
        /// The status code or command that refused.
        code: String,
        /// The server's description, if it gave one.
        description: String,
    },
    /// The server ended the stream or the connection (`close`, unpublish notices).
    Closed {
        /// The status code or command.
        code: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Handshaking,
    Connecting,
    CreatingStream,
    Publishing,
    Live,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Txn {
    Connect,
    ReleaseStream,
    FcPublish,
    CreateStream,
    Other,
}

/// One RTMP publishing session (see the module docs).
pub struct PublishSession {
    url: RtmpUrl,
    state: State,
    handshake: Handshake,
    serializer: ChunkSerializer,
    reader: ChunkReader,
    out: Vec<u8>,
    events: VecDeque<SessionEvent>,
    txns: HashMap<u32, Txn>,
    next_txn: u32,
    stream_id: u32,
    received: u64,
    acked: u64,
    peer_window: Option<u32>,
    bytes_sent: u64,
    skipped: u64,
}

impl std::fmt::Debug for PublishSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishSession")
            .field("url", &self.url.to_string())
            .field("state", &self.state)
            .field("stream_id", &self.stream_id)
            .finish_non_exhaustive()
    }
}

impl PublishSession {
    /// A session that will publish to `url`'s app and key.
    pub fn new(url: RtmpUrl) -> Self {
        Self {
            url,
            state: State::Idle,
            handshake: Handshake::new(PeerType::Client),
            serializer: ChunkSerializer::new(),
            reader: ChunkReader::with_limits(MAX_SERVER_MESSAGE, MAX_SERVER_PARTIAL),
            out: Vec::new(),
            events: VecDeque::new(),
            txns: HashMap::new(),
            next_txn: 1,
            stream_id: 0,
            received: 0,
            acked: 0,
            peer_window: None,
            bytes_sent: 0,
            skipped: 0,
        }
    }

    /// The destination, for messages.
    pub fn url(&self) -> &RtmpUrl {
        &self.url
    }

    /// True once the server has accepted the publish.
    pub fn is_live(&self) -> bool {
        self.state == State::Live
    }

    /// Server messages that could not be decoded and were skipped.
    pub fn skipped_messages(&self) -> u64 {
        self.skipped
    }

    /// Server bytes held between calls (unfinished messages, a partial
    /// chunk header): at most [`MAX_SERVER_PARTIAL`] and a header.
    pub fn buffered_input(&self) -> usize {
        self.reader.held_bytes()
    }

    /// Payload bytes queued by [`Self::send_media`] so far.
    pub fn media_bytes_sent(&self) -> u64 {
        self.bytes_sent
    }

    /// Begins the handshake (queues C0 and C1).
    pub fn start(&mut self) -> Result<(), SessionError> {
        let c0c1 = self
            .handshake
            .generate_outbound_p0_and_p1()
            .map_err(SessionError::Handshake)?;
        self.out.extend_from_slice(&c0c1);
        self.state = State::Handshaking;
        Ok(())
    }

    /// Bytes to write to the server, if any.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if self.out.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.out))
        }
    }

    /// The next event, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// Feeds bytes read from the server. An error means the connection is unusable.
    pub fn handle_input(&mut self, data: &[u8]) -> Result<(), SessionError> {
        match self.state {
            State::Idle => Err(SessionError::NotStarted),
            State::Closed => Ok(()),
            State::Handshaking => {
                let result = self
                    .handshake
                    .process_bytes(data)
                    .map_err(SessionError::Handshake)?;
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
                        self.send_connect()?;
                        if remaining_bytes.is_empty() {
                            Ok(())
                        } else {
                            self.handle_chunks(&remaining_bytes)
                        }
                    }
                }
            }
            _ => self.handle_chunks(data),
        }
    }

    /// Queues one media or metadata message (an FLV tag body) on the publish stream.
    ///
    /// `type_id` is the FLV tag type: 8 audio, 9 video, 18 script data (sent
    /// as `@setDataFrame`). Ignored unless the session is live.
    pub fn send_media(
        &mut self,
        type_id: u8,
        timestamp_ms: u32,
        data: &Bytes,
    ) -> Result<(), SessionError> {
        if self.state != State::Live {
            return Ok(());
        }
        let data = if type_id == TYPE_DATA_AMF0 {
            // "@setDataFrame" then the tag's "onMetaData" + array.
            let mut d = Vec::with_capacity(data.len() + 16);
            d.extend_from_slice(&[0x02, 0x00, 13]);
            d.extend_from_slice(b"@setDataFrame");
            d.extend_from_slice(data);
            Bytes::from(d)
        } else {
            data.clone()
        };
        self.bytes_sent += data.len() as u64;
        let payload = MessagePayload {
            timestamp: RtmpTimestamp::new(timestamp_ms),
            type_id,
            message_stream_id: self.stream_id,
            data,
        };
        let packet = self
            .serializer
            .serialize(&payload, false, false)
            .map_err(SessionError::Chunking)?;
        self.out.extend_from_slice(&packet.bytes);
        Ok(())
    }

    /// Queues a clean goodbye (`FCUnpublish`, `deleteStream`) and stops.
    pub fn close(&mut self) -> Result<(), SessionError> {
        if matches!(self.state, State::Live | State::Publishing) {
            let key = Amf0Value::Utf8String(self.url.key.clone());
            self.command("FCUnpublish", Txn::Other, vec![key], 0)?;
            let id = Amf0Value::Number(f64::from(self.stream_id));
            self.command("deleteStream", Txn::Other, vec![id], 0)?;
        }
        self.state = State::Closed;
        Ok(())
    }

    fn send_connect(&mut self) -> Result<(), SessionError> {
        let packet = self
            .serializer
            .set_max_chunk_size(CHUNK_SIZE, RtmpTimestamp::new(0))
            .map_err(SessionError::Chunking)?;
        self.out.extend_from_slice(&packet.bytes);
        let mut obj = HashMap::new();
        obj.insert(
            "app".to_string(),
            Amf0Value::Utf8String(self.url.app.clone()),
        );
        obj.insert(
            "type".to_string(),
            Amf0Value::Utf8String("nonprivate".into()),
        );
        obj.insert(
            "flashVer".to_string(),
            Amf0Value::Utf8String("FMLE/3.0 (compatible; pstream)".into()),
        );
        obj.insert(
            "tcUrl".to_string(),
            Amf0Value::Utf8String(self.url.tc_url()),
        );
        self.command_with_object("connect", Txn::Connect, Amf0Value::Object(obj), vec![], 0)?;
        self.state = State::Connecting;
        Ok(())
    }

    fn command(
        &mut self,
        name: &str,
        txn: Txn,
        args: Vec<Amf0Value>,
        stream: u32,
    ) -> Result<(), SessionError> {
        self.command_with_object(name, txn, Amf0Value::Null, args, stream)
    }

    fn command_with_object(
        &mut self,
        name: &str,
        txn: Txn,
        object: Amf0Value,
        args: Vec<Amf0Value>,
        stream: u32,
    ) -> Result<(), SessionError> {
        let id = self.next_txn;
        self.next_txn += 1;
        self.txns.insert(id, txn);
        let msg = RtmpMessage::Amf0Command {
            command_name: name.to_string(),
            transaction_id: f64::from(id),
            command_object: object,
            additional_arguments: args,
        };
        self.send_message(msg, stream)
    }

    fn send_message(&mut self, msg: RtmpMessage, stream: u32) -> Result<(), SessionError> {
        let payload = msg
            .into_message_payload(RtmpTimestamp::new(0), stream)
            .map_err(SessionError::Message)?;
        let packet = self
            .serializer
            .serialize(&payload, false, false)
            .map_err(SessionError::Chunking)?;
        self.out.extend_from_slice(&packet.bytes);
        Ok(())
    }

    fn handle_chunks(&mut self, data: &[u8]) -> Result<(), SessionError> {
        self.received += data.len() as u64;
        let mut input = data;
        // Each call may complete one message (a Set Chunk Size must apply
        // before the next chunk is read); loop until the buffer runs dry.
        while self.state != State::Closed {
            let Some(msg) = self
                .reader
                .read(&mut input)
                .map_err(SessionError::BadChunk)?
            else {
                break;
            };
            self.handle_message(msg)?;
        }
        if let Some(window) = self.peer_window {
            if window > 0 && self.received - self.acked >= u64::from(window) {
                self.acked = self.received;
                let seq = self.received as u32;
                self.send_message(
                    RtmpMessage::Acknowledgement {
                        sequence_number: seq,
                    },
                    0,
                )?;
            }
        }
        Ok(())
    }

    fn handle_message(&mut self, msg: Message) -> Result<(), SessionError> {
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
                let size = be32(&msg.data).ok_or(SessionError::ShortControl {
                    what: "set chunk size",
                    len: msg.data.len(),
                })?;
                self.reader
                    .set_chunk_size(size)
                    .map_err(SessionError::ServerChunkSize)?;
            }
            2 => match be32(&msg.data) {
                Some(csid) => self.reader.abort(csid),
                None => self.skipped += 1,
            },
            // Acknowledgement, peer bandwidth, media and data: nothing to do
            // for a publisher.
            3 | 6 | 8 | 9 | 15 | 18 => {}
            4 => {
                // User control: only a ping request (event 6) needs an answer.
                match (msg.data.get(..2), msg.data.get(2..).and_then(be32)) {
                    (Some([0, 6]), Some(ts)) => self.send_message(
                        RtmpMessage::UserControl {
                            event_type: UserControlEventType::PingResponse,
                            stream_id: None,
                            buffer_length: None,
                            timestamp: Some(RtmpTimestamp::new(ts)),
                        },
                        0,
                    )?,
                    (Some(_), Some(_)) => {}
                    _ => self.skipped += 1,
                }
            }
            5 => match be32(&msg.data) {
                Some(size) => self.peer_window = Some(size),
                None => self.skipped += 1,
            },
            17 | TYPE_COMMAND_AMF0 => {
                // AMF3-flagged commands start with a 0 byte and then carry AMF0.
                let body = if msg.type_id == 17 {
                    msg.data.get(1..).unwrap_or_default()
                } else {
                    &msg.data[..]
                };
                match amf::decode_all(body) {
                    Ok(values) => self.handle_values(values)?,
                    Err(e) if e.is_over_limit() => {
                        return Err(SessionError::CommandOverLimit(e));
                    }
                    // A type this reader does not know (typed objects,
                    // references, AMF3) or a cut value: dropped and counted.
                    Err(_) => self.skipped += 1,
                }
            }
            _ => self.skipped += 1,
        }
        Ok(())
    }

    /// A decoded command: name, transaction id, command object, arguments.
    fn handle_values(&mut self, values: Vec<Amf0Value>) -> Result<(), SessionError> {
        let count = values.len();
        let mut it = values.into_iter();
        let Some(Amf0Value::Utf8String(name)) = it.next() else {
            self.skipped += 1;
            return Ok(());
        };
        let txn_id = match it.next() {
            Some(Amf0Value::Number(n)) => n,
            _ => 0.0,
        };
        if count < 3 {
            // Replies without their command object. ffmpeg's listener sends
            // short notices (onFCPublish), which are ignored; a reply the
            // session acts on cannot be read without one.
            let awaited = matches!(
                self.txns.get(&(txn_id as u32)),
                Some(Txn::Connect | Txn::CreateStream)
            );
            let needed = match name.as_str() {
                "_result" | "_error" => awaited,
                "onStatus" => true,
                _ => false,
            };
            if needed {
                return Err(SessionError::BadReply {
                    command: name.chars().take(64).collect(),
                    why: "fewer than three values",
                });
            }
            return Ok(());
        }
        let object = it.next().unwrap_or(Amf0Value::Null);
        self.handle_command(&name, txn_id, object, it.collect())
    }

    fn handle_command(
        &mut self,
        name: &str,
        txn_id: f64,
        object: Amf0Value,
        args: Vec<Amf0Value>,
    ) -> Result<(), SessionError> {
        let txn = self.txns.remove(&(txn_id as u32));
        match (name, txn) {
            ("_result", Some(Txn::Connect)) => {
                self.send_message(
                    RtmpMessage::WindowAcknowledgement {
                        size: WINDOW_ACK_SIZE,
                    },
                    0,
                )?;
                let key = Amf0Value::Utf8String(self.url.key.clone());
                self.command("releaseStream", Txn::ReleaseStream, vec![key.clone()], 0)?;
                self.command("FCPublish", Txn::FcPublish, vec![key], 0)?;
                self.command("createStream", Txn::CreateStream, vec![], 0)?;
                self.state = State::CreatingStream;
            }
            ("_result", Some(Txn::CreateStream)) => {
                let id = args.iter().find_map(|a| match a {
                    Amf0Value::Number(n) => Some(*n),
                    _ => None,
                });
                let Some(id) =
                    id.filter(|n| n.is_finite() && *n >= 0.0 && *n < f64::from(u32::MAX))
                else {
                    return Err(SessionError::NoStreamId);
                };
                self.stream_id = id as u32;
                let args = vec![
                    Amf0Value::Utf8String(self.url.key.clone()),
                    Amf0Value::Utf8String("live".into()),
                ];
                self.command("publish", Txn::Other, args, self.stream_id)?;
                self.state = State::Publishing;
            }
            // releaseStream and FCPublish are courtesy calls many servers refuse.
            ("_error", Some(Txn::ReleaseStream | Txn::FcPublish)) => {}
            ("_error", _) => {
                let (code, description) = status_of(&object, &args);
                self.reject(
                    if code.is_empty() {
                        name.to_string()
                    } else {
                        code
                    },
                    description,
                );
            }
            ("onStatus", _) => {
                let (code, description) = status_of(&object, &args);
                let level = level_of(&args);
                if code == "NetStream.Publish.Start" {
                    if self.state == State::Publishing {
                        self.state = State::Live;
                        self.events.push_back(SessionEvent::Live);
                    }
                } else if level == "error"
                    || code.ends_with("BadName")
                    || code.ends_with("Rejected")
                    || code.ends_with("Failed")
                {
                    self.reject(code, description);
                } else if code.starts_with("NetStream.Unpublish")
                    || code == "NetConnection.Connect.Closed"
                {
                    self.state = State::Closed;
                    self.events.push_back(SessionEvent::Closed { code });
                }
            }
            ("close", _) => {
                self.state = State::Closed;
                self.events.push_back(SessionEvent::Closed {
                    code: "close".into(),
                });
            }
            _ => {}
        }
        Ok(())
    }

    fn reject(&mut self, code: String, description: String) {
        self.state = State::Closed;
        self.events
            .push_back(SessionEvent::Rejected { code, description });
    }
}

/// The `code` and `description` of a status object, wherever the server put it.
fn status_of(object: &Amf0Value, args: &[Amf0Value]) -> (String, String) {
    for v in std::iter::once(object).chain(args.iter()) {
        if let Amf0Value::Object(props) = v {
            let get = |k: &str| match props.get(k) {
                Some(Amf0Value::Utf8String(s)) => s.clone(),
                _ => String::new(),
            };
            let (code, description) = (get("code"), get("description"));
            if !code.is_empty() || !description.is_empty() {
                return (code, description);
            }
        }
    }
    (String::new(), String::new())
}

fn level_of(args: &[Amf0Value]) -> String {
    args.iter()
        .find_map(|v| match v {
            Amf0Value::Object(p) => match p.get("level") {
                Some(Amf0Value::Utf8String(s)) => Some(s.clone()),
                _ => None,
            },
            _ => None,
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use rml_rtmp::sessions::{
        ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
    };

    use super::*;
    use crate::chunk::ChunkError;

    /// Runs our client against rml_rtmp's own server session, byte for byte.
    struct Pair {
        client: PublishSession,
        server: ServerSession,
        server_hs: Handshake,
        server_ready: bool,
        server_events: Vec<ServerSessionEvent>,
        reject_key: bool,
        initial: Vec<ServerSessionResult>,
    }

    impl Pair {
        fn new(url: &str, reject_key: bool) -> Self {
            let (server, initial) = ServerSession::new(ServerSessionConfig::new()).expect("server");
            let mut client = PublishSession::new(RtmpUrl::parse(url).expect("url"));
            client.start().expect("start");
            Pair {
                client,
                server,
                server_hs: Handshake::new(PeerType::Server),
                server_ready: false,
                server_events: Vec::new(),
                reject_key,
                initial,
            }
        }

        /// Moves bytes both ways until neither side has anything to say.
        fn pump(&mut self) {
            for _ in 0..50 {
                let Some(bytes) = self.client.poll_transmit() else {
                    break;
                };
                let mut to_client = Vec::new();
                let mut input = bytes;
                if !self.server_ready {
                    match self
                        .server_hs
                        .process_bytes(&input)
                        .expect("server handshake")
                    {
                        HandshakeProcessResult::InProgress { response_bytes } => {
                            to_client.extend(response_bytes);
                            input = Vec::new();
                        }
                        HandshakeProcessResult::Completed {
                            response_bytes,
                            remaining_bytes,
                        } => {
                            to_client.extend(response_bytes);
                            self.server_ready = true;
                            input = remaining_bytes;
                            let initial = std::mem::take(&mut self.initial);
                            self.server_results(initial, &mut to_client);
                        }
                    }
                }
                if self.server_ready && !input.is_empty() {
                    let results = self.server.handle_input(&input).expect("server input");
                    self.server_results(results, &mut to_client);
                }
                if !to_client.is_empty() {
                    self.client.handle_input(&to_client).expect("client input");
                }
            }
        }

        fn server_results(&mut self, results: Vec<ServerSessionResult>, to_client: &mut Vec<u8>) {
            for r in results {
                match r {
                    ServerSessionResult::OutboundResponse(p) => to_client.extend(p.bytes),
                    ServerSessionResult::RaisedEvent(ev) => {
                        let follow = match &ev {
                            ServerSessionEvent::ConnectionRequested { request_id, .. } => {
                                self.server.accept_request(*request_id).expect("accept")
                            }
                            ServerSessionEvent::PublishStreamRequested { request_id, .. } => {
                                if self.reject_key {
                                    self.server
                                        .reject_request(
                                            *request_id,
                                            "NetStream.Publish.BadName",
                                            "bad key",
                                        )
                                        .expect("reject")
                                } else {
                                    self.server.accept_request(*request_id).expect("accept")
                                }
                            }
                            _ => Vec::new(),
                        };
                        self.server_events.push(ev);
                        self.server_results(follow, to_client);
                    }
                    ServerSessionResult::UnhandleableMessageReceived(_) => {}
                }
            }
        }
    }

    #[test]
    fn publishes_app_and_key_and_media_reaches_the_server() {
        let mut p = Pair::new("rtmp://127.0.0.1/live/sub/key?x=1", false);
        p.pump();
        assert_eq!(p.client.poll_event(), Some(SessionEvent::Live));
        assert!(p.client.is_live());
        let connected = p.server_events.iter().any(|e| {
            matches!(e, ServerSessionEvent::ConnectionRequested { app_name, .. } if app_name == "live/sub")
        });
        assert!(connected, "{:?}", p.server_events);
        let published = p.server_events.iter().any(|e| {
            matches!(e, ServerSessionEvent::PublishStreamRequested { stream_key, .. } if stream_key == "key?x=1")
        });
        assert!(published, "{:?}", p.server_events);

        let body = Bytes::from(vec![0x17u8; 10_000]);
        p.client.send_media(9, 40, &body).expect("send");
        let meta = Bytes::from_static(&[
            0x02, 0, 10, b'o', b'n', b'M', b'e', b't', b'a', b'D', b'a', b't', b'a', 0x05,
        ]);
        p.client.send_media(18, 0, &meta).expect("send");
        p.pump();
        // rml's server needs a metadata object to report it; the video is what matters here.
        let video: Vec<_> = p
            .server_events
            .iter()
            .filter_map(|e| match e {
                ServerSessionEvent::VideoDataReceived {
                    data, timestamp, ..
                } => Some((data.len(), timestamp.value)),
                _ => None,
            })
            .collect();
        assert_eq!(video, [(10_000, 40)]);

        p.client.close().expect("close");
        let bye = p.client.poll_transmit().expect("goodbye bytes");
        let results = p.server.handle_input(&bye).expect("server input");
        let stopped = results.iter().any(|r| {
            matches!(
                r,
                ServerSessionResult::RaisedEvent(ServerSessionEvent::PublishStreamFinished { .. })
            )
        });
        assert!(stopped, "deleteStream ends the publish");
    }

    #[test]
    fn a_refused_key_is_reported_as_rejected() {
        let mut p = Pair::new("rtmp://127.0.0.1/live/badkey", true);
        p.pump();
        match p.client.poll_event() {
            Some(SessionEvent::Rejected { code, description }) => {
                assert_eq!(code, "NetStream.Publish.BadName");
                assert_eq!(description, "bad key");
            }
            other => panic!("{other:?}"),
        }
        assert!(!p.client.is_live());
    }

    #[test]
    fn short_and_undecodable_commands_are_skipped() {
        let mut p = Pair::new("rtmp://127.0.0.1/live/k", false);
        p.pump();
        let mut ser = ChunkSerializer::new();
        ser.set_max_chunk_size(4096, RtmpTimestamp::new(0))
            .expect("size");
        for data in [
            vec![0x02, 0, 8, b'o', b'n', b'B', b'W', b'D', b'o', b'n', b'e'],
            vec![
                0x02, 0, 7, b'_', b'r', b'e', b's', b'u', b'l', b't', 0x00, 0x40, 0, 0, 0, 0, 0, 0,
                0,
            ],
            vec![0xff, 0xfe],
        ] {
            let payload = MessagePayload {
                timestamp: RtmpTimestamp::new(0),
                type_id: TYPE_COMMAND_AMF0,
                message_stream_id: 0,
                data: Bytes::from(data),
            };
            let packet = ser.serialize(&payload, true, false).expect("serialize");
            // The server's chunk size is 4096 after the pump, so one chunk holds each.
            p.client
                .handle_input(&packet.bytes)
                .expect("skipped, not fatal");
        }
        assert!(p.client.is_live());
        assert_eq!(p.client.skipped_messages(), 1);
    }

    /// A client that has sent `connect` (transaction 1) after an original
    /// (digest-less) handshake with a scripted server.
    fn connecting() -> PublishSession {
        let mut c = PublishSession::new(RtmpUrl::parse("rtmp://127.0.0.1/live/k").expect("url"));
        c.start().expect("start");
        let c0c1 = c.poll_transmit().expect("C0 C1");
        let mut s0s1s2 = vec![3u8];
        s0s1s2.extend([0u8; 1536]);
        s0s1s2.extend(&c0c1[1..1537]);
        c.handle_input(&s0s1s2).expect("handshake");
        assert_eq!(c.state, State::Connecting);
        let _ = c.poll_transmit();
        c
    }

    /// `values` as one AMF0 command message (type `type_id`) in chunks of 4096.
    fn server_message(type_id: u8, data: Vec<u8>) -> Vec<u8> {
        let mut ser = ChunkSerializer::new();
        let mut out = ser
            .set_max_chunk_size(4096, RtmpTimestamp::new(0))
            .expect("size")
            .bytes;
        let payload = MessagePayload {
            timestamp: RtmpTimestamp::new(0),
            type_id,
            message_stream_id: 0,
            data: Bytes::from(data),
        };
        out.extend(ser.serialize(&payload, true, false).expect("ser").bytes);
        out
    }

    fn amf(values: Vec<Amf0Value>) -> Vec<u8> {
        amf::encode(values)
    }

    /// `_result` and `onStatus` of fewer than three values, as AMF0 and as
    /// AMF3-flagged commands (which rml_rtmp's decoder panicked on): a reply
    /// the session acts on is a typed error; short notices are ignored.
    #[test]
    fn short_replies_are_typed_errors() {
        let short_result = amf(vec![
            Amf0Value::Utf8String("_result".into()),
            Amf0Value::Number(1.0),
        ]);
        let short_status = amf(vec![
            Amf0Value::Utf8String("onStatus".into()),
            Amf0Value::Number(0.0),
        ]);
        for (type_id, data, name) in [
            (20, short_result.clone(), "_result"),
            (17, [&[0u8][..], &short_result].concat(), "_result"),
            (20, short_status.clone(), "onStatus"),
            (17, [&[0u8][..], &short_status].concat(), "onStatus"),
        ] {
            let mut c = connecting();
            match c.handle_input(&server_message(type_id, data)) {
                Err(SessionError::BadReply { command, .. }) => assert_eq!(command, name),
                other => panic!("type {type_id} {name}: {other:?}"),
            }
        }
        // ffmpeg's listener answers FCPublish with a lone "onFCPublish".
        let mut c = connecting();
        let notice = amf(vec![Amf0Value::Utf8String("onFCPublish".into())]);
        c.handle_input(&server_message(20, notice))
            .expect("ignored");
        assert_eq!(c.state, State::Connecting);
    }

    /// AMF nested 100,000 deep (a 400 KB message, over the client's message
    /// limit) and 10,000 deep (40 KB, within it): errors, with no recursion
    /// past the reader's depth limit.
    #[test]
    fn deeply_nested_amf_is_a_typed_error() {
        for (depth, type_id) in [(100_000, 20), (10_000, 20), (10_000, 17), (10_000, 18)] {
            let mut data = if type_id == 17 { vec![0] } else { vec![] };
            data.extend(amf(vec![
                Amf0Value::Utf8String("onStatus".into()),
                Amf0Value::Number(0.0),
                Amf0Value::Null,
            ]));
            for _ in 0..depth {
                data.extend([0x03, 0, 1, b'k']);
            }
            let mut c = connecting();
            let got = c.handle_input(&server_message(type_id, data));
            match (depth, type_id, got) {
                (100_000, _, Err(SessionError::BadChunk(ChunkError::TooLarge(n)))) => {
                    assert_eq!(n, 21 + 400_000)
                }
                (_, 17 | 20, Err(SessionError::CommandOverLimit(e))) => {
                    assert_eq!(e, amf::AmfError::TooDeep)
                }
                // Data messages are not read by a publisher at all.
                (_, 18, Ok(())) => {}
                (d, t, other) => panic!("{d} deep, type {t}: {other:?}"),
            }
            assert!(c.reader.held_bytes() <= MAX_SERVER_PARTIAL);
        }
    }

    /// A message claiming 16 MiB is refused at its header; one claiming 60 KB
    /// (within the limit) that then stalls holds only the bytes that came.
    #[test]
    fn a_lying_message_length_is_refused_or_held_in_bytes_received() {
        let mut c = connecting();
        let mut lie = vec![0x03, 0, 0, 0, 0xFF, 0xFF, 0xFF, 20, 0, 0, 0, 0];
        lie.extend([0x02; 100]);
        match c.handle_input(&lie) {
            Err(SessionError::BadChunk(ChunkError::TooLarge(n))) => assert_eq!(n, 0xFF_FFFF),
            other => panic!("{other:?}"),
        }
        let mut c = connecting();
        let mut stall = vec![0x03, 0, 0, 0, 0, 0xEA, 0x60, 20, 0, 0, 0, 0];
        stall.extend([0x02; 100]);
        c.handle_input(&stall).expect("waits for the rest");
        assert_eq!(c.reader.held_bytes(), 100);
    }

    /// After the handshake: a chunk that restarts a message with a length
    /// shorter than what it already delivered (rml_rtmp's deserializer
    /// overflowed on it), then bytes that are no chunks at all.
    #[test]
    fn garbage_after_the_handshake_is_a_typed_error() {
        let mut c = connecting();
        let mut junk = vec![0x03, 0, 0, 0, 0, 0, 200, 20, 0, 0, 0, 0];
        junk.extend([0x05; 128]);
        junk.extend([0x43, 0, 0, 0, 0, 0, 10, 20]);
        junk.extend([0x05; 10]);
        junk.extend([0x47; 4000]);
        match c.handle_input(&junk) {
            Err(SessionError::BadChunk(ChunkError::NoPreviousHeader(7))) => {}
            other => panic!("{other:?}"),
        }
        assert!(c.reader.held_bytes() <= 200);
    }

    #[test]
    fn garbage_from_the_server_is_an_error_not_a_panic() {
        let mut p = Pair::new("rtmp://127.0.0.1/live/k", false);
        p.pump();
        let mut junk = Vec::new();
        for i in 0..4096u32 {
            junk.push((i.wrapping_mul(2_654_435_761) >> 13) as u8);
        }
        // These bytes start a chunk of a 1.5 MB message.
        assert!(matches!(
            p.client.handle_input(&junk),
            Err(SessionError::BadChunk(ChunkError::TooLarge(_)))
        ));
    }
}
