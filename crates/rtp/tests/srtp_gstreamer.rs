//! SRTP against GStreamer's srtpenc/srtpdec (libsrtp underneath), both
//! ways, for every profile, on loopback UDP.
//!
//! - GStreamer encrypts (x264enc ! rtph264pay ! rtpsession ! srtpenc) and
//!   pstream's [`SrtpContext`] decrypts: every packet authenticates, the
//!   pictures depacketize whole, the SRTCP sender reports parse; a tampered
//!   and a replayed packet are refused and counted.
//! - pstream encrypts (RtpSender ! SrtpContext) and srtpdec decrypts into
//!   rtph264depay and multifilesink: one buffer per picture and per RTCP
//!   packet comes out (one file each), and a replayed and a tampered packet
//!   add none.

use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pstream_core::{Codec, EncodedUnit, PipelineClock};
use pstream_rtp::receiver::{ReceiverConfig, RtpReceiver};
use pstream_rtp::rtcp::{parse_compound, RtcpPacket};
use pstream_rtp::sender::{RtpSender, SenderConfig, TransmitKind};
use pstream_rtp::srtp::{MasterKey, SrtpContext, SrtpError, SrtpProfile};

/// Fails loudly when GStreamer is missing: the README's test command
/// installs it, so a missing one is a broken install, not a skip.
fn require_gstreamer() {
    let ok = Command::new("gst-inspect-1.0")
        .args(["srtpenc"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "gst-inspect-1.0 srtpenc failed: install GStreamer with gst-plugins-bad (scripts/install-deps.sh)"
    );
}

/// A gst-launch-1.0 process, killed by its PID when dropped.
struct Gst(Child);

impl Gst {
    fn start(args: &[String]) -> Gst {
        let child = Command::new("gst-launch-1.0")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("gst-launch-1.0 starts");
        Gst(child)
    }

    fn finish(mut self, limit: Duration) -> (String, String) {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Ok(Some(_)) = self.0.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let out = self.0.wait_with_output_ref();
        std::mem::forget(self);
        out
    }
}

trait OutputRef {
    fn wait_with_output_ref(&mut self) -> (String, String);
}

impl OutputRef for Child {
    fn wait_with_output_ref(&mut self) -> (String, String) {
        use std::io::Read;
        let _ = self.wait();
        let mut out = String::new();
        let mut err = String::new();
        if let Some(o) = self.stdout.as_mut() {
            let _ = o.read_to_string(&mut out);
        }
        if let Some(e) = self.stderr.as_mut() {
            let _ = e.read_to_string(&mut err);
        }
        (out, err)
    }
}

impl Drop for Gst {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// GStreamer's SRTP and SRTCP auth names (HMAC_SHA1_32 keeps the 80-bit
/// tag on SRTCP).
fn gst_auth(profile: SrtpProfile) -> (&'static str, &'static str) {
    // GStreamer's auth enum has no GCM entry; with a GCM cipher it is unused.
    match profile {
        SrtpProfile::AeadAes128Gcm => ("null", "null"),
        _ => (profile.gst_auth(), profile.gst_rtcp_auth()),
    }
}

fn split(args: &str) -> Vec<String> {
    args.split_whitespace().map(String::from).collect()
}

#[test]
fn gstreamer_srtpenc_to_pstream() {
    require_gstreamer();
    for profile in SrtpProfile::ALL {
        let key = MasterKey::generate(profile).expect("key");
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        sock.set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        let port = sock.local_addr().expect("addr").port();
        let (cipher, (auth, rtcp_auth)) = (profile.gst_cipher(), gst_auth(profile));
        let gst = Gst::start(&split(&format!(
            "-q rtpsession name=s rtcp-min-interval=300000000 \
             videotestsrc is-live=true num-buffers=60 ! video/x-raw,width=320,height=240,framerate=30/1 \
             ! x264enc tune=zerolatency key-int-max=30 ! rtph264pay pt=96 mtu=600 ! s.send_rtp_sink \
             s.send_rtp_src ! srtpenc name=e key={} rtp-cipher={cipher} rtp-auth={auth} \
             rtcp-cipher={cipher} rtcp-auth={rtcp_auth} ! udpsink host=127.0.0.1 port={port} \
             s.send_rtcp_src ! e.rtcp_sink_0 e.rtcp_src_0 ! udpsink host=127.0.0.1 port={port} sync=false async=false",
            key.to_hex()
        )));

        let mut ctx = SrtpContext::new(&key);
        let mut rx = RtpReceiver::with_seed(ReceiverConfig::new(Codec::H264, "rx@test"), 1)
            .expect("receiver");
        let mut buf = BytesMut::new();
        let (mut rtp, mut srs, mut first) = (0, 0, None::<Vec<u8>>);
        let mut rtp_ssrc = None;
        let t0 = Instant::now();
        let mut data = [0u8; 2048];
        while t0.elapsed() < Duration::from_secs(8) {
            let Ok(n) = sock.recv(&mut data) else {
                if rtp > 0 {
                    break;
                }
                continue;
            };
            let d = &data[..n];
            if (200..=206).contains(&d[1]) {
                let plain = ctx
                    .unprotect_rtcp(d, &mut buf)
                    .unwrap_or_else(|e| panic!("{profile}: {e}"));
                for p in parse_compound(&plain).expect("RTCP parses") {
                    if let RtcpPacket::SenderReport { ssrc, .. } = p {
                        assert_eq!(Some(ssrc), rtp_ssrc, "SR from the media source");
                        srs += 1;
                    }
                }
            } else {
                let plain = ctx
                    .unprotect_rtp(d, &mut buf)
                    .unwrap_or_else(|e| panic!("{profile}: {e}"));
                assert_eq!(&plain[..12], &d[..12], "the header travels in clear");
                rtp_ssrc = Some(u32::from_be_bytes([d[8], d[9], d[10], d[11]]));
                first.get_or_insert_with(|| d.to_vec());
                rtp += 1;
                rx.handle_rtp(Instant::now(), &plain).expect("RTP");
            }
        }
        drop(gst);
        rx.handle_timeout(Instant::now() + Duration::from_secs(1));
        let units: Vec<_> = std::iter::from_fn(|| rx.poll_unit()).collect();
        let complete = units.iter().filter(|u| u.complete).count();
        eprintln!(
            "{profile}: {rtp} SRTP packets, {srs} SRTCP SRs, {complete}/{} pictures complete",
            units.len()
        );
        assert!(rtp >= 100, "{profile}: {rtp} packets");
        assert!(complete >= 55, "{profile}: {complete} pictures");
        assert!(units[0].keyframe);
        assert!(srs >= 1, "{profile}: no SRTCP sender report");
        let st = ctx.stats();
        assert_eq!((st.auth_failures, st.replays), (0, 0), "{profile}");

        // A replay and a tampered copy of a genuine packet are refused.
        let first = first.expect("a packet");
        assert!(matches!(
            ctx.unprotect_rtp(&first, &mut buf),
            Err(SrtpError::Replayed { .. } | SrtpError::TooOld { .. })
        ));
        let mut forged = first.clone();
        let last = forged.len() - 1;
        // The payload's first byte: the first packet may be tiny (18 bytes
        // with HMAC_SHA1_32's 4-byte tag).
        forged[12] ^= 1;
        forged[last] ^= 1;
        forged[2] ^= 0x80; // a fresh sequence number, so not a replay
        assert!(matches!(
            ctx.unprotect_rtp(&forged, &mut buf),
            Err(SrtpError::RtpAuth { .. })
        ));
        let st = ctx.stats();
        assert_eq!((st.auth_failures, st.replays), (1, 1), "{profile}");
    }
}

fn units(n: usize, clock_start: Instant) -> Vec<EncodedUnit> {
    (0..n)
        .map(|i| {
            let key = i % 30 == 0;
            let mut d = vec![0, 0, 0, 1, if key { 0x65 } else { 0x41 }];
            d.extend((0..1500 + 37 * i).map(|j| (j % 251 + 1) as u8));
            EncodedUnit {
                codec: Codec::H264,
                keyframe: key,
                pts: Duration::from_millis(33 * i as u64),
                dts: None,
                capture: clock_start + Duration::from_millis(33 * i as u64),
                data: Bytes::from(d),
            }
        })
        .collect()
}

fn files(dir: &std::path::Path, prefix: &str) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn pstream_srtp_to_gstreamer_srtpdec() {
    require_gstreamer();
    for profile in SrtpProfile::ALL {
        let key = MasterKey::generate(profile).expect("key");
        let rtp_port = UdpSocket::bind("127.0.0.1:0").expect("probe");
        let rtcp_port = UdpSocket::bind("127.0.0.1:0").expect("probe");
        let (p0, p1) = (
            rtp_port.local_addr().expect("addr").port(),
            rtcp_port.local_addr().expect("addr").port(),
        );
        drop((rtp_port, rtcp_port));
        let ssrc = 0x1234_5678u32;
        let (cipher, (auth, rtcp_auth)) = (profile.gst_cipher(), gst_auth(profile));
        // One file per buffer out of srtpdec's pads: a count that does not
        // depend on gst-launch's -v notifications, which coalesce.
        let out_dir = std::env::temp_dir().join(format!(
            "pstream-srtpdec-{}-{}",
            std::process::id(),
            profile.sdes_name()
        ));
        let _ = std::fs::remove_dir_all(&out_dir);
        std::fs::create_dir_all(&out_dir).expect("output dir");
        let keycaps = format!(
            "srtp-key=(buffer){},srtp-cipher=(string){cipher},srtp-auth=(string){auth},\
             srtcp-cipher=(string){cipher},srtcp-auth=(string){rtcp_auth},roc=(uint)0",
            key.to_hex()
        );
        // One srtpdec per pad: GStreamer 1.22's srtpdec races when caps
        // reach its RTP and RTCP sink pads at once from two udpsrc threads
        // (heap corruption or SIGSEGV in about one start in ten, with no
        // packet sent at all); two instances keep the same decryption.
        let gst = Gst::start(&split(&format!(
            "srtpdec name=d srtpdec name=dc \
             udpsrc address=127.0.0.1 port={p0} caps=application/x-srtp,media=(string)video,clock-rate=(int)90000,\
             encoding-name=(string)H264,payload=(int)96,ssrc=(uint){ssrc},{keycaps} ! d.rtp_sink \
             udpsrc address=127.0.0.1 port={p1} caps=application/x-srtcp,ssrc=(uint){ssrc},{keycaps} ! dc.rtcp_sink \
             d.rtp_src ! rtph264depay ! video/x-h264,stream-format=byte-stream,alignment=au \
             ! multifilesink location={}/video-%05d \
             dc.rtcp_src ! multifilesink location={}/rtcp-%05d async=false",
            out_dir.display(),
            out_dir.display()
        )));
        // Give the pipeline time to reach PLAYING before anything is sent.
        std::thread::sleep(Duration::from_millis(1500));

        let origin = Instant::now();
        let clock = PipelineClock::with_origin(origin, 1_700_000_000_000_000);
        let cfg = SenderConfig::new(Codec::H264, clock, "tx@test").with_ssrc(ssrc);
        let mut tx = RtpSender::with_seed(cfg, 3).expect("sender");
        let mut ctx = SrtpContext::new(&key);
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let mut buf = BytesMut::new();
        let mut sent_rtp: Vec<Bytes> = Vec::new();
        let mut srs = 0;
        let all = units(40, origin);
        for (i, u) in all.iter().enumerate() {
            tx.push(u.capture, u).expect("push");
            if i % 10 == 9 {
                // Ten seconds on per ten pictures: past any randomised RTCP
                // interval, so each call sends one sender report.
                tx.handle_timeout(origin + Duration::from_secs(10 * (i as u64 / 10 + 1)));
            }
            while let Some(t) = tx.poll_transmit() {
                match t.kind {
                    TransmitKind::Rtp => {
                        let s = ctx.protect_rtp(&t.data, &mut buf).expect("protect");
                        sock.send_to(&s, ("127.0.0.1", p0)).expect("send");
                        sent_rtp.push(s);
                    }
                    TransmitKind::Rtcp => {
                        let s = ctx.protect_rtcp(&t.data, &mut buf).expect("protect");
                        sock.send_to(&s, ("127.0.0.1", p1)).expect("send");
                        srs += 1;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // A replay of a whole picture and a forged packet: nothing more may
        // come out of srtpdec.
        for s in &sent_rtp[..5] {
            sock.send_to(s, ("127.0.0.1", p0)).expect("send");
        }
        let mut forged = sent_rtp[sent_rtp.len() - 1].to_vec();
        forged[3] = forged[3].wrapping_add(1); // the next sequence number
        forged[30] ^= 0xff;
        sock.send_to(&forged, ("127.0.0.1", p0)).expect("send");
        std::thread::sleep(Duration::from_millis(1000));
        let (out, err) = gst.finish(Duration::ZERO);
        let _ = out;
        let pictures = files(&out_dir, "video-");
        let rtcp = files(&out_dir, "rtcp-");
        let _ = std::fs::remove_dir_all(&out_dir);
        eprintln!(
            "{profile}: srtpdec gave {pictures} pictures of 40 and {rtcp} RTCP packets of {srs}"
        );
        assert_eq!(pictures, 40, "{profile}: {err}");
        assert_eq!(rtcp, srs, "{profile}: {err}");
        assert!(srs >= 4);
    }
}
