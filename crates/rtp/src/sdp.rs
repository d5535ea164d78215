//! SDP (RFC 4566) descriptions of what pstream sends, for ffplay, VLC, mpv.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::payload::PT_JPEG;
use crate::srtp::MasterKey;

/// The video stream of a session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdpVideo {
    /// H.264 (RFC 6184, packetization-mode 1) with the encoder's real parameter sets.
    H264 {
        /// Port the RTP arrives on (RTCP on port + 1).
        port: u16,
        /// Dynamic payload type.
        payload_type: u8,
        /// The sequence parameter set NAL unit, without a start code.
        sps: Vec<u8>,
        /// The picture parameter set NAL unit, without a start code.
        pps: Vec<u8>,
    },
    /// Motion JPEG (RFC 2435), static payload type 26 ([`PT_JPEG`]).
    Jpeg {
        /// Port the RTP arrives on (RTCP on port + 1).
        port: u16,
    },
}

/// The audio stream of a session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpOpus {
    /// Port the RTP arrives on (RTCP on port + 1).
    pub port: u16,
    /// Dynamic payload type.
    pub payload_type: u8,
    /// 1 (mono) or 2 (stereo) channels actually encoded.
    pub channels: u16,
}

/// A complete session description for one pstream sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// Session id for the o= line (any number; a timestamp works).
    pub session_id: u64,
    /// The address the media is sent to, for the c= line.
    pub peer: IpAddr,
    /// The video stream, if any.
    pub video: Option<SdpVideo>,
    /// The audio stream, if any.
    pub audio: Option<SdpOpus>,
    /// The SRTP master key both streams are protected with: each media
    /// line then says `RTP/SAVP` and carries it in an SDES `a=crypto` line
    /// (RFC 4568), which is how ffmpeg and ffplay take an SRTP key.
    pub srtp: Option<MasterKey>,
    /// The RTX payload type (RFC 4588) retransmissions of the video come
    /// with, on the video port: the video section then says `RTP/AVPF`
    /// (`RTP/SAVPF` with SRTP), lists it with `a=rtpmap:PT rtx/90000` and
    /// `a=fmtp:PT apt=VIDEO_PT`, and offers `nack` and `nack pli` feedback.
    pub video_rtx: Option<u8>,
}

impl SessionDescription {
    /// Renders the description with CRLF line ends, as RFC 4566 asks.
    pub fn render(&self) -> String {
        let family = if self.peer.is_ipv4() { "IP4" } else { "IP6" };
        let proto = if self.srtp.is_some() {
            "RTP/SAVP"
        } else {
            "RTP/AVP"
        };
        // RFC 4568 §9.1: the key is media-level, one line per m= section.
        let crypto = self.srtp.as_ref().map(|k| {
            format!(
                "a=crypto:1 {} inline:{}\r\n",
                k.profile().sdes_name(),
                k.to_base64()
            )
        });
        let crypto = crypto.as_deref().unwrap_or("");
        // RFC 4585: feedback (NACK) needs the AVPF profile.
        let video_proto = match (self.video_rtx.is_some(), self.srtp.is_some()) {
            (false, _) => proto,
            (true, false) => "RTP/AVPF",
            (true, true) => "RTP/SAVPF",
        };
        let rtx_pts = self
            .video_rtx
            .map_or_else(String::new, |pt| format!(" {pt}"));
        // The RTX lines for video payload type `apt`.
        let rtx_lines = |apt: u8| {
            self.video_rtx.map_or_else(String::new, |pt| {
                format!(
                    "a=rtcp-fb:{apt} nack\r\na=rtcp-fb:{apt} nack pli\r\n\
                     a=rtpmap:{pt} rtx/90000\r\na=fmtp:{pt} apt={apt}\r\n"
                )
            })
        };
        let mut s = String::new();
        // write! into a String cannot fail; results are ignored for brevity.
        let _ = write!(s, "v=0\r\n");
        let _ = write!(
            s,
            "o=- {id} {id} IN {family} {peer}\r\n",
            id = self.session_id,
            peer = self.peer
        );
        let _ = write!(s, "s=pstream\r\n");
        let _ = write!(s, "c=IN {family} {}\r\n", self.peer);
        let _ = write!(s, "t=0 0\r\n");
        match &self.video {
            Some(SdpVideo::H264 {
                port,
                payload_type: pt,
                sps,
                pps,
            }) => {
                let _ = write!(s, "m=video {port} {video_proto} {pt}{rtx_pts}\r\n");
                let _ = write!(s, "a=rtpmap:{pt} H264/90000\r\n");
                let mut fmtp = format!("a=fmtp:{pt} packetization-mode=1");
                if sps.len() >= 4 {
                    let _ = write!(
                        fmtp,
                        ";profile-level-id={:02x}{:02x}{:02x}",
                        sps[1], sps[2], sps[3]
                    );
                }
                if !sps.is_empty() && !pps.is_empty() {
                    let _ = write!(
                        fmtp,
                        ";sprop-parameter-sets={},{}",
                        base64(sps),
                        base64(pps)
                    );
                }
                let _ = write!(s, "{fmtp}\r\n{}", rtx_lines(*pt));
                let _ = write!(s, "a=rtcp:{}\r\n{crypto}", port + 1);
            }
            Some(SdpVideo::Jpeg { port }) => {
                let _ = write!(s, "m=video {port} {video_proto} {PT_JPEG}{rtx_pts}\r\n");
                let _ = write!(s, "a=rtpmap:{PT_JPEG} JPEG/90000\r\n{}", rtx_lines(PT_JPEG));
                let _ = write!(s, "a=rtcp:{}\r\n{crypto}", port + 1);
            }
            None => {}
        }
        if let Some(a) = &self.audio {
            let pt = a.payload_type;
            let _ = write!(s, "m=audio {} {proto} {pt}\r\n", a.port);
            // RFC 7587: the rtpmap always says 2 channels; sprop-stereo says
            // what the sender actually encodes.
            let _ = write!(s, "a=rtpmap:{pt} opus/48000/2\r\n");
            let stereo = u8::from(a.channels >= 2);
            let _ = write!(
                s,
                "a=fmtp:{pt} sprop-stereo={stereo};stereo={stereo};useinbandfec=0\r\n"
            );
            let _ = write!(s, "a=rtcp:{}\r\n{crypto}", a.port + 1);
        }
        s
    }
}

/// Standard base64 with padding (RFC 4648), as sprop-parameter-sets wants.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn base64_matches_rfc4648_vectors() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn h264_and_opus_description() {
        let sdp = SessionDescription {
            session_id: 42,
            peer: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
            video: Some(SdpVideo::H264 {
                port: 5000,
                payload_type: 96,
                sps: vec![0x67, 0x42, 0xc0, 0x1f, 0xaa],
                pps: vec![0x68, 0xce, 0x3c, 0x80],
            }),
            audio: Some(SdpOpus {
                port: 5002,
                payload_type: 97,
                channels: 2,
            }),
            srtp: None,
            video_rtx: None,
        }
        .render();
        assert!(sdp.starts_with("v=0\r\n"));
        assert!(sdp.contains("c=IN IP4 192.0.2.7\r\n"));
        assert!(sdp.contains("m=video 5000 RTP/AVP 96\r\n"));
        assert!(sdp.contains("a=rtpmap:96 H264/90000\r\n"));
        assert!(sdp.contains(
            "a=fmtp:96 packetization-mode=1;profile-level-id=42c01f;sprop-parameter-sets=Z0LAH6o=,aM48gA==\r\n"
        ));
        assert!(sdp.contains("m=audio 5002 RTP/AVP 97\r\n"));
        assert!(sdp.contains("a=rtpmap:97 opus/48000/2\r\n"));
        assert!(sdp.contains("sprop-stereo=1"));
    }

    #[test]
    fn ipv6_and_mono_and_jpeg() {
        let sdp = SessionDescription {
            session_id: 1,
            peer: IpAddr::V6(Ipv6Addr::LOCALHOST),
            video: Some(SdpVideo::Jpeg { port: 6000 }),
            audio: Some(SdpOpus {
                port: 6002,
                payload_type: 97,
                channels: 1,
            }),
            srtp: None,
            video_rtx: None,
        }
        .render();
        assert!(sdp.contains("c=IN IP6 ::1\r\n"));
        assert!(sdp.contains("m=video 6000 RTP/AVP 26\r\n"));
        assert!(sdp.contains("sprop-stereo=0"));
    }

    #[test]
    fn srtp_key_makes_savp_with_a_crypto_line_per_stream() {
        use crate::srtp::SrtpProfile;
        let key = MasterKey::parse(
            SrtpProfile::AesCm128HmacSha1_80,
            "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
        )
        .expect("key");
        let sdp = SessionDescription {
            session_id: 1,
            peer: IpAddr::V4(Ipv4Addr::LOCALHOST),
            video: Some(SdpVideo::Jpeg { port: 6000 }),
            audio: Some(SdpOpus {
                port: 6002,
                payload_type: 97,
                channels: 2,
            }),
            srtp: Some(key),
            video_rtx: None,
        }
        .render();
        assert!(sdp.contains("m=video 6000 RTP/SAVP 26\r\n"), "{sdp}");
        assert!(sdp.contains("m=audio 6002 RTP/SAVP 97\r\n"), "{sdp}");
        let line = "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n";
        assert_eq!(sdp.matches(line).count(), 2, "{sdp}");
        // Each crypto line belongs to its media section.
        let video = &sdp[sdp.find("m=video").expect("video")..sdp.find("m=audio").expect("audio")];
        assert!(video.contains(line), "{sdp}");
    }

    #[test]
    fn rtx_adds_avpf_the_rtx_payload_type_and_nack_feedback_to_video_only() {
        let sdp = SessionDescription {
            session_id: 1,
            peer: IpAddr::V4(Ipv4Addr::LOCALHOST),
            video: Some(SdpVideo::H264 {
                port: 5000,
                payload_type: 96,
                sps: vec![0x67, 0x42, 0xc0, 0x1f],
                pps: vec![0x68, 0xce],
            }),
            audio: Some(SdpOpus {
                port: 5002,
                payload_type: 97,
                channels: 2,
            }),
            srtp: None,
            video_rtx: Some(98),
        }
        .render();
        let video = &sdp[sdp.find("m=video").expect("video")..sdp.find("m=audio").expect("audio")];
        assert!(
            video.starts_with("m=video 5000 RTP/AVPF 96 98\r\n"),
            "{sdp}"
        );
        for line in [
            "a=rtpmap:98 rtx/90000\r\n",
            "a=fmtp:98 apt=96\r\n",
            "a=rtcp-fb:96 nack\r\n",
            "a=rtcp-fb:96 nack pli\r\n",
        ] {
            assert!(video.contains(line), "{line} missing: {sdp}");
        }
        assert!(sdp.contains("m=audio 5002 RTP/AVP 97\r\n"), "{sdp}");
        assert_eq!(sdp.matches("rtx").count(), 1, "{sdp}");
    }
}
