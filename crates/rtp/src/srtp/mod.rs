//! SRTP and SRTCP (RFC 3711) with the AES_CM_128_HMAC_SHA1_80,
//! AES_CM_128_HMAC_SHA1_32 and AEAD_AES_128_GCM (RFC 7714) profiles,
//! sans-IO: byte buffers in, byte buffers out.
//!
//! One [`SrtpContext`] per direction and master key: the sender protects
//! every RTP and RTCP datagram it hands to its socket, the receiver
//! unprotects every datagram it reads before the RTP session sees it. The
//! context keeps, per SSRC, the rollover counter (RFC 3711 §3.3.1, estimated
//! on receipt as in Appendix A), a replay window of [`REPLAY_WINDOW`]
//! packets and the SRTCP index. A packet that fails authentication, replays
//! one already accepted or is older than the window is rejected with a typed
//! [`SrtpError`] and counted ([`SrtpStats`]); its payload is never decrypted
//! into the caller's hands, and it creates no per-SSRC state.
//!
//! Keys are SDES-style master keys ([`MasterKey`]): 30 bytes (16 key + 14
//! salt) for both AES_CM profiles, 28 (16 + 12) for GCM, written in base64 as in an SDP
//! `a=crypto` inline key, or in hex as GStreamer's srtpenc/srtpdec caps take
//! them. The key derivation rate is 0 and no MKI is used, as with GStreamer.

mod cipher;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};
use rand::TryRngCore;
use thiserror::Error;
use zeroize::Zeroize;

use cipher::{
    CmKeys, GcmKeys, CM_SALT_LEN, CM_SHORT_TAG_LEN, CM_TAG_LEN, GCM_SALT_LEN, GCM_TAG_LEN, KEY_LEN,
};

/// Packets (RTP) or SRTCP indices remembered per SSRC to refuse replays.
pub const REPLAY_WINDOW: u64 = 128;
/// Most SSRCs a context keeps state for; the least recently used goes.
pub const MAX_STREAMS: usize = 64;
/// Highest SRTCP index (31 bits); a context refuses to protect past it.
pub const MAX_SRTCP_INDEX: u32 = 0x7fff_ffff;
/// Highest RTP packet index (48 bits).
pub const MAX_RTP_INDEX: u64 = (1 << 48) - 1;

/// An SRTP protection profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SrtpProfile {
    /// AES-128 counter mode with an 80-bit HMAC-SHA1 tag (RFC 3711, RFC 4568).
    AesCm128HmacSha1_80,
    /// AES-128 counter mode with a 32-bit HMAC-SHA1 tag on SRTP and the
    /// 80-bit one on SRTCP (RFC 4568 §6.2.2): 6 bytes less per packet.
    AesCm128HmacSha1_32,
    /// AES-128 in Galois/counter mode with a 128-bit tag (RFC 7714).
    AeadAes128Gcm,
}

impl SrtpProfile {
    /// Every profile.
    pub const ALL: [SrtpProfile; 3] = [
        Self::AesCm128HmacSha1_80,
        Self::AesCm128HmacSha1_32,
        Self::AeadAes128Gcm,
    ];

    /// Length of the master key and salt together.
    pub fn master_len(self) -> usize {
        KEY_LEN + self.salt_len()
    }

    /// Length of the master salt.
    pub fn salt_len(self) -> usize {
        match self {
            Self::AesCm128HmacSha1_80 | Self::AesCm128HmacSha1_32 => CM_SALT_LEN,
            Self::AeadAes128Gcm => GCM_SALT_LEN,
        }
    }

    /// Bytes a protected RTP packet grows by (its tag).
    pub fn tag_len(self) -> usize {
        match self {
            Self::AesCm128HmacSha1_80 => CM_TAG_LEN,
            Self::AesCm128HmacSha1_32 => CM_SHORT_TAG_LEN,
            Self::AeadAes128Gcm => GCM_TAG_LEN,
        }
    }

    /// Length of the SRTCP tag (the packet grows by 4 more for its index):
    /// the 80-bit one for both AES_CM profiles (RFC 4568 §6.2.2).
    pub fn rtcp_tag_len(self) -> usize {
        match self {
            Self::AesCm128HmacSha1_80 | Self::AesCm128HmacSha1_32 => CM_TAG_LEN,
            Self::AeadAes128Gcm => GCM_TAG_LEN,
        }
    }

    /// The name in SDP `a=crypto` lines (RFC 4568, RFC 7714 §14.2).
    pub fn sdes_name(self) -> &'static str {
        match self {
            Self::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Self::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            Self::AeadAes128Gcm => "AEAD_AES_128_GCM",
        }
    }

    /// The profile an SDP `a=crypto` name stands for.
    pub fn from_sdes_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.sdes_name().eq_ignore_ascii_case(name))
    }

    /// GStreamer's `srtp-cipher` / `srtcp-cipher` caps value.
    pub fn gst_cipher(self) -> &'static str {
        match self {
            Self::AesCm128HmacSha1_80 | Self::AesCm128HmacSha1_32 => "aes-128-icm",
            Self::AeadAes128Gcm => "aes-128-gcm",
        }
    }

    /// GStreamer's `srtp-auth` caps value (srtpenc's `rtp-auth`).
    pub fn gst_auth(self) -> &'static str {
        match self {
            Self::AesCm128HmacSha1_80 => "hmac-sha1-80",
            Self::AesCm128HmacSha1_32 => "hmac-sha1-32",
            Self::AeadAes128Gcm => "aes-128-gcm",
        }
    }

    /// GStreamer's `srtcp-auth` caps value (srtpenc's `rtcp-auth`).
    pub fn gst_rtcp_auth(self) -> &'static str {
        match self {
            Self::AesCm128HmacSha1_80 | Self::AesCm128HmacSha1_32 => "hmac-sha1-80",
            Self::AeadAes128Gcm => "aes-128-gcm",
        }
    }
}

impl fmt::Display for SrtpProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.sdes_name())
    }
}

/// Why a master key was refused.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SrtpKeyError {
    /// The key and salt do not have the profile's length.
    #[error("the {profile} master key and salt are {want} bytes, not {got}")]
    Length {
        /// The profile.
        profile: SrtpProfile,
        /// Bytes given.
        got: usize,
        /// Bytes the profile needs.
        want: usize,
    },
    /// Neither hex of the right length nor valid base64.
    #[error("the master key is neither {hex_len} hex digits nor base64")]
    Base64 {
        /// How many hex digits would have been accepted.
        hex_len: usize,
        /// The base64 decoder's complaint.
        #[source]
        source: base64::DecodeError,
    },
    /// The operating system's random number generator failed.
    #[error("cannot read random bytes for a master key")]
    Rng(#[source] rand::rand_core::OsError),
}

/// An SRTP master key and salt for one profile. Zeroed when dropped; its
/// `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey {
    profile: SrtpProfile,
    key: [u8; KEY_LEN],
    salt: [u8; CM_SALT_LEN],
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({}, ..)", self.profile)
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.key.zeroize();
        self.salt.zeroize();
    }
}

impl MasterKey {
    /// A key from its bytes: the master key, then the master salt.
    pub fn new(profile: SrtpProfile, key_and_salt: &[u8]) -> Result<Self, SrtpKeyError> {
        let want = profile.master_len();
        if key_and_salt.len() != want {
            return Err(SrtpKeyError::Length {
                profile,
                got: key_and_salt.len(),
                want,
            });
        }
        let mut key = [0u8; KEY_LEN];
        let mut salt = [0u8; CM_SALT_LEN];
        key.copy_from_slice(&key_and_salt[..KEY_LEN]);
        salt[..profile.salt_len()].copy_from_slice(&key_and_salt[KEY_LEN..]);
        Ok(Self { profile, key, salt })
    }

    /// A key from text: hex (as GStreamer's caps take it: 60 digits for
    /// AES_CM, 56 for GCM) or base64 (as SDES inline keys are written, with
    /// or without an `inline:` prefix; a `|lifetime|MKI` suffix is ignored).
    pub fn parse(profile: SrtpProfile, text: &str) -> Result<Self, SrtpKeyError> {
        let text = text.trim();
        let text = text.strip_prefix("inline:").unwrap_or(text);
        let text = text.split('|').next().unwrap_or(text);
        let hex_len = 2 * profile.master_len();
        if text.len() == hex_len && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            let bytes: Vec<u8> = text
                .as_bytes()
                .chunks_exact(2)
                .map(|p| (hex_digit(p[0]) << 4) | hex_digit(p[1]))
                .collect();
            return Self::new(profile, &bytes);
        }
        let mut bytes = BASE64
            .decode(text)
            .map_err(|source| SrtpKeyError::Base64 { hex_len, source })?;
        let key = Self::new(profile, &bytes);
        bytes.zeroize();
        key
    }

    /// A fresh random key from the operating system's generator.
    pub fn generate(profile: SrtpProfile) -> Result<Self, SrtpKeyError> {
        let mut bytes = [0u8; KEY_LEN + CM_SALT_LEN];
        let n = profile.master_len();
        rand::rngs::OsRng
            .try_fill_bytes(&mut bytes[..n])
            .map_err(SrtpKeyError::Rng)?;
        let key = Self::new(profile, &bytes[..n]);
        bytes.zeroize();
        key
    }

    /// The profile this key is for.
    pub fn profile(&self) -> SrtpProfile {
        self.profile
    }

    /// The key and salt in base64, as an SDES `inline:` key.
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.bytes())
    }

    /// The key and salt in hex, as GStreamer's `srtp-key` caps field.
    pub fn to_hex(&self) -> String {
        self.bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    fn bytes(&self) -> Vec<u8> {
        let mut v = self.key.to_vec();
        v.extend_from_slice(&self.salt[..self.profile.salt_len()]);
        v
    }

    fn salt(&self) -> &[u8] {
        &self.salt[..self.profile.salt_len()]
    }
}

fn hex_digit(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}

/// A fresh master key for `profile`, in base64 (what `pstream keygen` prints).
pub fn keygen(profile: SrtpProfile) -> Result<String, SrtpKeyError> {
    Ok(MasterKey::generate(profile)?.to_base64())
}

/// Why a packet was not protected or not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SrtpError {
    /// Too short for its header, tag or SRTCP index.
    #[error("{what} of {len} bytes is too short: {needed} needed")]
    Truncated {
        /// "SRTP", "SRTCP", "RTP" or "RTCP".
        what: &'static str,
        /// Its length.
        len: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// The version bits are not 2.
    #[error("{what} version is not 2 (first byte {first:#04x})")]
    Version {
        /// "SRTP" or "SRTCP" (or their plain forms when protecting).
        what: &'static str,
        /// The first byte.
        first: u8,
    },
    /// The SRTP tag does not match: forged, corrupted or another key.
    #[error("SRTP packet ssrc {ssrc:#010x} seq {seq} (ROC {roc}) failed authentication")]
    RtpAuth {
        /// Its SSRC.
        ssrc: u32,
        /// Its sequence number.
        seq: u16,
        /// The rollover counter it was checked with.
        roc: u32,
    },
    /// The SRTCP tag does not match.
    #[error("SRTCP packet ssrc {ssrc:#010x} index {index} failed authentication")]
    RtcpAuth {
        /// The SSRC of its first packet's sender.
        ssrc: u32,
        /// Its SRTCP index.
        index: u32,
    },
    /// A packet already accepted once.
    #[error("{what} ssrc {ssrc:#010x} index {index} replayed")]
    Replayed {
        /// "SRTP" or "SRTCP".
        what: &'static str,
        /// Its SSRC.
        ssrc: u32,
        /// Its packet index (ROC << 16 | seq) or SRTCP index.
        index: u64,
    },
    /// Older than the replay window reaches: cannot be told from a replay.
    #[error(
        "{what} ssrc {ssrc:#010x} index {index} is behind the replay window (highest {highest})"
    )]
    TooOld {
        /// "SRTP" or "SRTCP".
        what: &'static str,
        /// Its SSRC.
        ssrc: u32,
        /// Its packet index or SRTCP index.
        index: u64,
        /// The highest index accepted.
        highest: u64,
    },
    /// The packet or SRTCP index space of an SSRC is used up: rekey.
    #[error("{what} index space of ssrc {ssrc:#010x} exhausted; a new master key is needed")]
    IndexExhausted {
        /// "SRTP" or "SRTCP".
        what: &'static str,
        /// The SSRC.
        ssrc: u32,
    },
}

/// Counters for the stats line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SrtpStats {
    /// Packets protected (RTP and RTCP).
    pub protected: u64,
    /// Packets accepted (RTP and RTCP).
    pub unprotected: u64,
    /// Packets whose tag did not match.
    pub auth_failures: u64,
    /// Packets refused as replays (or older than the window).
    pub replays: u64,
    /// Packets too short or not RTP/RTCP at all.
    pub malformed: u64,
}

/// The keys of one profile for RTP or RTCP.
#[derive(Debug, Clone)]
enum Keys {
    Cm(CmKeys),
    Gcm(GcmKeys),
}

/// A replay window: the highest index accepted and a bitmap of the
/// [`REPLAY_WINDOW`] before it.
#[derive(Debug, Clone, Copy, Default)]
struct Replay {
    highest: u64,
    seen: u128,
}

impl Replay {
    fn check(&self, what: &'static str, ssrc: u32, index: u64) -> Result<(), SrtpError> {
        if index > self.highest {
            return Ok(());
        }
        let back = self.highest - index;
        if back >= REPLAY_WINDOW {
            return Err(SrtpError::TooOld {
                what,
                ssrc,
                index,
                highest: self.highest,
            });
        }
        if self.seen & (1 << back) != 0 {
            return Err(SrtpError::Replayed { what, ssrc, index });
        }
        Ok(())
    }

    fn accept(&mut self, index: u64) {
        if index > self.highest {
            let shift = index - self.highest;
            self.seen = if shift >= REPLAY_WINDOW {
                0
            } else {
                self.seen << shift
            };
            self.seen |= 1;
            self.highest = index;
        } else {
            self.seen |= 1 << (self.highest - index);
        }
    }
}

/// What a context knows of one SSRC.
#[derive(Debug, Clone, Default)]
struct Stream {
    /// RTP: the highest index sent or accepted (ROC << 16 | seq).
    rtp: Option<Replay>,
    /// SRTCP: the index of the last packet sent.
    rtcp_sent: u32,
    /// SRTCP: the indices accepted.
    rtcp: Option<Replay>,
    last_used: u64,
}

/// SRTP/SRTCP state of one direction under one master key.
pub struct SrtpContext {
    profile: SrtpProfile,
    rtp: Keys,
    rtcp: Keys,
    streams: HashMap<u32, Stream>,
    uses: u64,
    stats: SrtpStats,
}

impl fmt::Debug for SrtpContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtpContext")
            .field("profile", &self.profile)
            .field("streams", &self.streams.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// Length of the RTP header through its CSRCs and extension.
fn rtp_header_len(what: &'static str, p: &[u8]) -> Result<usize, SrtpError> {
    let short = |needed| SrtpError::Truncated {
        what,
        len: p.len(),
        needed,
    };
    if p.len() < 12 {
        return Err(short(12));
    }
    if p[0] >> 6 != 2 {
        return Err(SrtpError::Version { what, first: p[0] });
    }
    let mut len = 12 + 4 * usize::from(p[0] & 0x0f);
    if p[0] & 0x10 != 0 {
        let ext = p.get(len + 2..len + 4).ok_or(short(len + 4))?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    if p.len() < len {
        return Err(short(len));
    }
    Ok(len)
}

fn be32(p: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]])
}

impl SrtpContext {
    /// A context for `key`: session keys are derived once (KDR 0).
    pub fn new(key: &MasterKey) -> Self {
        let (rtp, rtcp) = match key.profile {
            SrtpProfile::AesCm128HmacSha1_80 | SrtpProfile::AesCm128HmacSha1_32 => (
                Keys::Cm(CmKeys::derive(&key.key, key.salt(), false)),
                Keys::Cm(CmKeys::derive(&key.key, key.salt(), true)),
            ),
            SrtpProfile::AeadAes128Gcm => (
                Keys::Gcm(GcmKeys::derive(&key.key, key.salt(), false)),
                Keys::Gcm(GcmKeys::derive(&key.key, key.salt(), true)),
            ),
        };
        Self::with_keys(key.profile, rtp, rtcp)
    }

    fn with_keys(profile: SrtpProfile, rtp: Keys, rtcp: Keys) -> Self {
        Self {
            profile,
            rtp,
            rtcp,
            streams: HashMap::new(),
            uses: 0,
            stats: SrtpStats::default(),
        }
    }

    /// The profile.
    pub fn profile(&self) -> SrtpProfile {
        self.profile
    }

    /// The counters so far.
    pub fn stats(&self) -> SrtpStats {
        self.stats
    }

    /// The rollover counter of `ssrc`, once a packet of it was handled.
    pub fn roc(&self, ssrc: u32) -> Option<u32> {
        Some((self.streams.get(&ssrc)?.rtp?.highest >> 16) as u32)
    }

    /// The stream of `ssrc`, created (evicting the least recently used
    /// beyond [`MAX_STREAMS`]) only when a packet of it was protected or
    /// authenticated.
    fn stream(&mut self, ssrc: u32) -> &mut Stream {
        self.uses += 1;
        if !self.streams.contains_key(&ssrc) && self.streams.len() >= MAX_STREAMS {
            if let Some(old) = self
                .streams
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| *k)
            {
                self.streams.remove(&old);
            }
        }
        let uses = self.uses;
        let s = self.streams.entry(ssrc).or_default();
        s.last_used = uses;
        s
    }

    fn fail<T>(&mut self, e: SrtpError) -> Result<T, SrtpError> {
        match e {
            SrtpError::RtpAuth { .. } | SrtpError::RtcpAuth { .. } => self.stats.auth_failures += 1,
            SrtpError::Replayed { .. } | SrtpError::TooOld { .. } => self.stats.replays += 1,
            SrtpError::Truncated { .. } | SrtpError::Version { .. } => self.stats.malformed += 1,
            SrtpError::IndexExhausted { .. } => {}
        }
        Err(e)
    }

    /// Protects an RTP packet into `buf` and returns the SRTP packet.
    pub fn protect_rtp(&mut self, packet: &[u8], buf: &mut BytesMut) -> Result<Bytes, SrtpError> {
        let header = match rtp_header_len("RTP", packet) {
            Ok(h) => h,
            Err(e) => return self.fail(e),
        };
        let ssrc = be32(packet, 8);
        let seq = u16::from_be_bytes([packet[2], packet[3]]);
        // The sender's index: the ROC steps up when the sequence number
        // wraps (a resend of an older packet keeps the older ROC).
        let stream = self.stream(ssrc);
        let index = match stream.rtp {
            None => u64::from(seq),
            Some(r) => estimate_index(r.highest, seq),
        };
        if index > MAX_RTP_INDEX {
            return Err(SrtpError::IndexExhausted { what: "SRTP", ssrc });
        }
        let replay = stream.rtp.get_or_insert_with(Replay::default);
        if index >= replay.highest {
            replay.highest = index;
        }
        let roc = (index >> 16) as u32;
        buf.clear();
        buf.reserve(packet.len() + self.profile.tag_len());
        buf.put_slice(packet);
        match &self.rtp {
            Keys::Cm(k) => {
                k.apply(ssrc, index, &mut buf[header..]);
                let tag = k.tag(&[&buf[..], &roc.to_be_bytes()]);
                // HMAC_SHA1_32 sends the tag's first 4 bytes (RFC 3711 §4.2).
                buf.put_slice(&tag[..self.profile.tag_len()]);
            }
            Keys::Gcm(k) => {
                let iv = k.rtp_iv(ssrc, index);
                let (aad, body) = buf.split_at_mut(header);
                // GCM refuses only plaintexts of gigabytes, not datagrams.
                let Some(tag) = k.seal(&iv, aad, body) else {
                    return Err(SrtpError::IndexExhausted { what: "SRTP", ssrc });
                };
                buf.put_slice(&tag);
            }
        }
        self.stats.protected += 1;
        Ok(buf.split().freeze())
    }

    /// Authenticates and decrypts an SRTP packet into `buf`; returns the RTP
    /// packet. Nothing of a rejected packet is returned or remembered.
    pub fn unprotect_rtp(&mut self, packet: &[u8], buf: &mut BytesMut) -> Result<Bytes, SrtpError> {
        let tag_len = self.profile.tag_len();
        let header = match rtp_header_len("SRTP", packet) {
            Ok(h) if packet.len() >= h + tag_len => h,
            Ok(h) => {
                return self.fail(SrtpError::Truncated {
                    what: "SRTP",
                    len: packet.len(),
                    needed: h + tag_len,
                })
            }
            Err(e) => return self.fail(e),
        };
        let ssrc = be32(packet, 8);
        let seq = u16::from_be_bytes([packet[2], packet[3]]);
        let known = self.streams.get(&ssrc).and_then(|s| s.rtp);
        // RFC 3711 Appendix A: the index closest to the highest accepted;
        // a new SSRC starts with ROC 0.
        let index = known.map_or(u64::from(seq), |r| estimate_index(r.highest, seq));
        let roc = (index >> 16) as u32;
        if let Some(r) = known {
            if let Err(e) = r.check("SRTP", ssrc, index) {
                return self.fail(e);
            }
        }
        let (body, tag) = packet.split_at(packet.len() - tag_len);
        buf.clear();
        buf.reserve(body.len());
        buf.put_slice(body);
        let ok = match &self.rtp {
            Keys::Cm(k) => {
                let ok = k.verify(&[body, &roc.to_be_bytes()], tag);
                if ok {
                    k.apply(ssrc, index, &mut buf[header..]);
                }
                ok
            }
            Keys::Gcm(k) => {
                let iv = k.rtp_iv(ssrc, index);
                let (aad, data) = buf.split_at_mut(header);
                k.open(&iv, aad, data, tag)
            }
        };
        if !ok {
            buf.clear();
            return self.fail(SrtpError::RtpAuth { ssrc, seq, roc });
        }
        self.stream(ssrc)
            .rtp
            .get_or_insert(Replay {
                highest: index,
                seen: 0,
            })
            .accept(index);
        self.stats.unprotected += 1;
        Ok(buf.split().freeze())
    }

    /// Protects an RTCP compound into `buf` (encrypted, E bit set) and
    /// returns the SRTCP packet.
    pub fn protect_rtcp(&mut self, packet: &[u8], buf: &mut BytesMut) -> Result<Bytes, SrtpError> {
        if packet.len() < 8 {
            return self.fail(SrtpError::Truncated {
                what: "RTCP",
                len: packet.len(),
                needed: 8,
            });
        }
        if packet[0] >> 6 != 2 {
            return self.fail(SrtpError::Version {
                what: "RTCP",
                first: packet[0],
            });
        }
        let ssrc = be32(packet, 4);
        let stream = self.stream(ssrc);
        if stream.rtcp_sent >= MAX_SRTCP_INDEX {
            return Err(SrtpError::IndexExhausted {
                what: "SRTCP",
                ssrc,
            });
        }
        // The first packet carries index 1, as libsrtp's do.
        stream.rtcp_sent += 1;
        let index = stream.rtcp_sent;
        let trailer = (index | 0x8000_0000).to_be_bytes();
        buf.clear();
        buf.reserve(packet.len() + 4 + self.profile.rtcp_tag_len());
        buf.put_slice(packet);
        match &self.rtcp {
            Keys::Cm(k) => {
                k.apply(ssrc, u64::from(index), &mut buf[8..]);
                buf.put_slice(&trailer);
                let tag = k.tag(&[&buf[..]]);
                buf.put_slice(&tag);
            }
            Keys::Gcm(k) => {
                let iv = k.rtcp_iv(ssrc, index);
                let mut aad = [0u8; 12];
                aad[..8].copy_from_slice(&packet[..8]);
                aad[8..].copy_from_slice(&trailer);
                let Some(tag) = k.seal(&iv, &aad, &mut buf[8..]) else {
                    return Err(SrtpError::IndexExhausted {
                        what: "SRTCP",
                        ssrc,
                    });
                };
                buf.put_slice(&tag);
                buf.put_slice(&trailer);
            }
        }
        self.stats.protected += 1;
        Ok(buf.split().freeze())
    }

    /// Authenticates and (if its E bit says so) decrypts an SRTCP packet
    /// into `buf`; returns the RTCP compound.
    pub fn unprotect_rtcp(
        &mut self,
        packet: &[u8],
        buf: &mut BytesMut,
    ) -> Result<Bytes, SrtpError> {
        let tag_len = self.profile.rtcp_tag_len();
        let needed = 8 + 4 + tag_len;
        if packet.len() < needed {
            return self.fail(SrtpError::Truncated {
                what: "SRTCP",
                len: packet.len(),
                needed,
            });
        }
        if packet[0] >> 6 != 2 {
            return self.fail(SrtpError::Version {
                what: "SRTCP",
                first: packet[0],
            });
        }
        let ssrc = be32(packet, 4);
        // AES_CM: ... || E+index || tag; GCM: ... || tag || E+index.
        let (trailer_at, tag_at) = match self.rtcp {
            Keys::Cm(_) => (packet.len() - tag_len - 4, packet.len() - tag_len),
            Keys::Gcm(_) => (packet.len() - 4, packet.len() - 4 - tag_len),
        };
        let word = be32(packet, trailer_at);
        let encrypted = word & 0x8000_0000 != 0;
        let index = word & MAX_SRTCP_INDEX;
        let known = self.streams.get(&ssrc).and_then(|s| s.rtcp);
        if let Some(r) = known {
            if let Err(e) = r.check("SRTCP", ssrc, u64::from(index)) {
                return self.fail(e);
            }
        }
        buf.clear();
        let ok = match &self.rtcp {
            Keys::Cm(k) => {
                let tag = &packet[tag_at..];
                let ok = k.verify(&[&packet[..tag_at]], tag);
                if ok {
                    buf.put_slice(&packet[..trailer_at]);
                    if encrypted {
                        k.apply(ssrc, u64::from(index), &mut buf[8..]);
                    }
                }
                ok
            }
            Keys::Gcm(k) => {
                let iv = k.rtcp_iv(ssrc, index);
                let tag = &packet[tag_at..trailer_at];
                if encrypted {
                    let mut aad = [0u8; 12];
                    aad[..8].copy_from_slice(&packet[..8]);
                    aad[8..].copy_from_slice(&packet[trailer_at..]);
                    buf.put_slice(&packet[..tag_at]);
                    let ok = k.open(&iv, &aad, &mut buf[8..], tag);
                    if !ok {
                        buf.clear();
                    }
                    ok
                } else {
                    // Authentication only (RFC 7714 §9.2): the whole packet
                    // and the E+index word are the associated data.
                    let mut aad = packet[..tag_at].to_vec();
                    aad.extend_from_slice(&packet[trailer_at..]);
                    let ok = k.open(&iv, &aad, &mut [], tag);
                    if ok {
                        buf.put_slice(&packet[..tag_at]);
                    }
                    ok
                }
            }
        };
        if !ok {
            return self.fail(SrtpError::RtcpAuth { ssrc, index });
        }
        self.stream(ssrc)
            .rtcp
            .get_or_insert(Replay {
                highest: u64::from(index),
                seen: 0,
            })
            .accept(u64::from(index));
        self.stats.unprotected += 1;
        Ok(buf.split().freeze())
    }
}

/// RFC 3711 Appendix A: the packet index of `seq` nearest to `highest`
/// (ROC − 1, ROC or ROC + 1 with the highest's sequence number as pivot).
fn estimate_index(highest: u64, seq: u16) -> u64 {
    let roc = highest >> 16;
    let s_l = (highest & 0xffff) as u16;
    let v = if s_l < 0x8000 {
        if seq > s_l && seq - s_l > 0x8000 {
            roc.wrapping_sub(1)
        } else {
            roc
        }
    } else if s_l - 0x8000 > seq {
        roc + 1
    } else {
        roc
    };
    // Before the first rollover, "ROC − 1" does not exist: such a packet
    // gets an index far above any real one and fails authentication.
    (v << 16) | u64::from(seq)
}
