//! The messages of libshmdata's unix-socket protocol, sans I/O.
//!
//! libshmdata sends its C structs as they lie in memory, so the wire format
//! is the writer's native layout: a 16-bit message type, padding up to the
//! alignment of `size_t`, then the payload, all in native byte order. Writer
//! and followers share one machine (System V IPC is per kernel), so native
//! is right; [`WireLayout`] spells the layout out for one `size_t` width so
//! that both widths can be tested and fuzzed on any host.
//!
//! | message | type | payload | size on 64-bit (32-bit) |
//! | --- | --- | --- | --- |
//! | connect | 0 | `size_t` shm size, then 4096 bytes of NUL-terminated caps | 4112 (4104) |
//! | update | 1 | `size_t` frame size | 16 (8) |
//! | quit | 2 | none | 2 (2) |

use thiserror::Error;

/// Bytes of the caps field of a connect message, its NUL included.
pub const CAPS_FIELD: usize = 4096;

/// The 16-bit type that starts every message.
const CONNECT: u16 = 0;
const UPDATE: u16 = 1;
const QUIT: u16 = 2;

/// What was wrong with bytes received on a shmdata socket.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtoError {
    /// A message type that is not connect, update or quit.
    #[error("unknown message type {kind} (first bytes {head})")]
    UnknownType {
        /// The type read.
        kind: u16,
        /// The first bytes of the message, in hex.
        head: String,
    },
    /// A message that is valid but not where it was received (an update
    /// before the connect message, a second connect...).
    #[error("unexpected {what}")]
    Unexpected {
        /// What came.
        what: &'static str,
    },
    /// The caps field of the connect message has no terminating NUL.
    #[error("caps without a terminating NUL")]
    UnterminatedCaps,
    /// The caps field is not UTF-8 text.
    #[error("caps that are not UTF-8 text")]
    CapsNotText,
    /// Caps too long for the connect message (writer side).
    #[error("caps of {len} bytes do not fit the {max} bytes a connect message holds")]
    CapsTooLong {
        /// Length of the caps string.
        len: usize,
        /// The longest that fits.
        max: usize,
    },
    /// The writer announced a size that does not fit this machine's memory.
    #[error("size {size} does not fit in memory")]
    SizeOverflow {
        /// The size announced.
        size: u64,
    },
}

/// The in-memory layout libshmdata's structs have for one `size_t` width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireLayout {
    /// Bytes of a `size_t` (4 or 8); also its alignment on Linux ABIs.
    size_t: usize,
}

impl WireLayout {
    /// This machine's layout.
    pub const NATIVE: WireLayout = WireLayout {
        size_t: std::mem::size_of::<usize>(),
    };

    /// The layout for a `size_t` of 4 or 8 bytes (any other width is taken as 8).
    pub fn with_size_t(bytes: usize) -> Self {
        WireLayout {
            size_t: if bytes == 4 { 4 } else { 8 },
        }
    }

    /// Where the `size_t` field starts: the 16-bit type padded to its alignment.
    fn size_at(&self) -> usize {
        self.size_t
    }

    /// Bytes of a connect message.
    pub fn connect_len(&self) -> usize {
        self.size_at() + self.size_t + CAPS_FIELD
    }

    /// Bytes of an update message.
    pub fn update_len(&self) -> usize {
        self.size_at() + self.size_t
    }

    /// Bytes of a quit message.
    pub fn quit_len(&self) -> usize {
        2
    }

    fn put_size(&self, out: &mut [u8], size: u64) {
        let at = self.size_at();
        if self.size_t == 4 {
            out[at..at + 4].copy_from_slice(&(size as u32).to_ne_bytes());
        } else {
            out[at..at + 8].copy_from_slice(&size.to_ne_bytes());
        }
    }

    fn get_size(&self, msg: &[u8]) -> u64 {
        let at = self.size_at();
        if self.size_t == 4 {
            let mut b = [0u8; 4];
            b.copy_from_slice(&msg[at..at + 4]);
            u64::from(u32::from_ne_bytes(b))
        } else {
            let mut b = [0u8; 8];
            b.copy_from_slice(&msg[at..at + 8]);
            u64::from_ne_bytes(b)
        }
    }

    /// The connect message a writer sends each new follower (and the
    /// follower sends back as its acknowledgement).
    pub fn encode_connect(&self, shm_size: u64, caps: &str) -> Result<Vec<u8>, ProtoError> {
        if caps.len() >= CAPS_FIELD {
            return Err(ProtoError::CapsTooLong {
                len: caps.len(),
                max: CAPS_FIELD - 1,
            });
        }
        let mut out = vec![0u8; self.connect_len()];
        out[..2].copy_from_slice(&CONNECT.to_ne_bytes());
        self.put_size(&mut out, shm_size);
        let at = self.size_at() + self.size_t;
        out[at..at + caps.len()].copy_from_slice(caps.as_bytes());
        Ok(out)
    }

    /// The update message announcing a frame of `size` bytes.
    pub fn encode_update(&self, size: u64) -> Vec<u8> {
        let mut out = vec![0u8; self.update_len()];
        out[..2].copy_from_slice(&UPDATE.to_ne_bytes());
        self.put_size(&mut out, size);
        out
    }

    /// The quit message (writer leaving, follower leaving, or its acknowledgement).
    pub fn encode_quit(&self) -> [u8; 2] {
        QUIT.to_ne_bytes()
    }
}

/// One message a follower receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// The writer's greeting: the shared memory size and the caps.
    Connect {
        /// Size of the shared memory segment when the follower connected.
        shm_size: u64,
        /// The caps string.
        caps: String,
    },
    /// A frame of `size` bytes is in the shared memory, its read lock
    /// taken on this follower's behalf.
    Update {
        /// Bytes of the frame.
        size: u64,
    },
    /// The writer is leaving (or acknowledges this follower's leaving).
    Quit,
}

/// Cuts the byte stream a follower receives into messages.
///
/// The first message must be a connect message, every later one an update
/// or a quit. It holds at most one message's bytes.
#[derive(Debug)]
pub struct FollowerDecoder {
    layout: WireLayout,
    buf: Vec<u8>,
    greeted: bool,
}

impl FollowerDecoder {
    /// A decoder for a fresh connection.
    pub fn new(layout: WireLayout) -> Self {
        FollowerDecoder {
            layout,
            buf: Vec::with_capacity(layout.connect_len()),
            greeted: false,
        }
    }

    /// How many more bytes to read before the next message can be decoded:
    /// reading no more than this keeps the buffer to one message.
    pub fn wanted(&self) -> usize {
        let need = if self.buf.len() < 2 {
            2
        } else {
            match self.kind() {
                CONNECT => self.layout.connect_len(),
                UPDATE => self.layout.update_len(),
                _ => self.layout.quit_len(),
            }
        };
        need.saturating_sub(self.buf.len()).max(1)
    }

    fn kind(&self) -> u16 {
        u16::from_ne_bytes([self.buf[0], self.buf[1]])
    }

    /// Adds received bytes (at most [`wanted`](Self::wanted) of them) and
    /// returns a message once one is complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Option<Message>, ProtoError> {
        let mut rest = bytes;
        let mut out = None;
        while !rest.is_empty() {
            if out.is_some() {
                // The caller passed more than `wanted`: refuse rather than
                // queue, so the buffer stays bounded.
                return Err(ProtoError::Unexpected {
                    what: "bytes beyond the message asked for",
                });
            }
            let take = self.wanted().min(rest.len());
            self.buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            out = self.try_decode()?;
        }
        Ok(out)
    }

    fn try_decode(&mut self) -> Result<Option<Message>, ProtoError> {
        if self.buf.len() < 2 {
            return Ok(None);
        }
        let kind = self.kind();
        let len = match kind {
            CONNECT => self.layout.connect_len(),
            UPDATE => self.layout.update_len(),
            QUIT => self.layout.quit_len(),
            other => {
                let head = self
                    .buf
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                return Err(ProtoError::UnknownType { kind: other, head });
            }
        };
        match (kind, self.greeted) {
            (CONNECT, true) => {
                return Err(ProtoError::Unexpected {
                    what: "second connect message",
                })
            }
            (UPDATE, false) => {
                return Err(ProtoError::Unexpected {
                    what: "update before the connect message",
                })
            }
            _ => {}
        }
        if self.buf.len() < len {
            return Ok(None);
        }
        let msg = match kind {
            CONNECT => {
                let shm_size = self.layout.get_size(&self.buf);
                let at = self.layout.size_at() + self.layout.size_t;
                let field = &self.buf[at..at + CAPS_FIELD];
                let end = field
                    .iter()
                    .position(|&b| b == 0)
                    .ok_or(ProtoError::UnterminatedCaps)?;
                let caps = std::str::from_utf8(&field[..end])
                    .map_err(|_| ProtoError::CapsNotText)?
                    .to_owned();
                self.greeted = true;
                Message::Connect { shm_size, caps }
            }
            UPDATE => Message::Update {
                size: self.layout.get_size(&self.buf),
            },
            _ => Message::Quit,
        };
        self.buf.clear();
        Ok(Some(msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_sizes_match_libshmdata_structs() {
        // sizeof(onConnectData), sizeof(UpdateMsg), sizeof(QuitMsg) on LP64
        // and ILP32.
        let l64 = WireLayout::with_size_t(8);
        assert_eq!(
            (l64.connect_len(), l64.update_len(), l64.quit_len()),
            (4112, 16, 2)
        );
        let l32 = WireLayout::with_size_t(4);
        assert_eq!(
            (l32.connect_len(), l32.update_len(), l32.quit_len()),
            (4104, 8, 2)
        );
    }

    #[test]
    fn a_conversation_decodes_byte_by_byte() {
        for layout in [WireLayout::with_size_t(4), WireLayout::with_size_t(8)] {
            let mut stream = layout
                .encode_connect(117_120, "video/x-raw, format=(string)I420")
                .expect("fits");
            stream.extend(layout.encode_update(117_120));
            stream.extend(layout.encode_update(5));
            stream.extend(layout.encode_quit());
            let mut d = FollowerDecoder::new(layout);
            let mut got = Vec::new();
            let mut pos = 0;
            while pos < stream.len() {
                let n = d.wanted().min(stream.len() - pos).min(3);
                if let Some(m) = d.push(&stream[pos..pos + n]).expect("valid") {
                    got.push(m);
                }
                pos += n;
            }
            assert_eq!(
                got,
                [
                    Message::Connect {
                        shm_size: 117_120,
                        caps: "video/x-raw, format=(string)I420".into()
                    },
                    Message::Update { size: 117_120 },
                    Message::Update { size: 5 },
                    Message::Quit
                ]
            );
        }
    }

    #[test]
    fn garbage_is_refused_with_its_bytes() {
        let mut d = FollowerDecoder::new(WireLayout::NATIVE);
        let e = d.push(b"GE").expect_err("garbage");
        assert!(e.to_string().contains("47 45"), "{e}");
        let mut d = FollowerDecoder::new(WireLayout::NATIVE);
        let update = WireLayout::NATIVE.encode_update(3);
        let e = d.push(&update[..2]).expect_err("update first");
        assert!(e.to_string().contains("update before"), "{e}");
        let l = WireLayout::NATIVE;
        let mut bad = l.encode_connect(1, "").expect("fits");
        let n = bad.len();
        bad[n - CAPS_FIELD..].fill(b'a');
        let mut d = FollowerDecoder::new(l);
        assert_eq!(d.push(&bad), Err(ProtoError::UnterminatedCaps));
        assert!(l.encode_connect(1, &"x".repeat(CAPS_FIELD)).is_err());
    }

    #[test]
    fn more_than_wanted_is_refused() {
        let l = WireLayout::NATIVE;
        let mut d = FollowerDecoder::new(l);
        let mut two = l.encode_connect(1, "a").expect("fits");
        two.extend(l.encode_quit());
        assert!(d.push(&two).is_err());
    }
}
