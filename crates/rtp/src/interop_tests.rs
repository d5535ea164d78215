//! Tests on real GStreamer bytes (fixtures/capture.sh) and a sender wired
//! straight to a receiver.

use std::time::{Duration, Instant};

use bytes::Bytes;
use pstream_core::{Codec, EncodedUnit, PipelineClock};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::packet::RtpPacket;
use crate::payload::h264::{self, H264Depacketizer, H264Payloader, NAL_AUD};
use crate::payload::jpeg::jfif::fixtures::{jpeg, scan};
use crate::payload::jpeg::{make_tables, parse_jpeg};
use crate::payload::PT_JPEG;
use crate::receiver::{ReceiverConfig, RtpReceiver};
use crate::rtcp::{parse_compound, RtcpPacket};
use crate::sender::{KeyframeReason, RtpSender, SenderConfig, SenderEvent, TransmitKind};

fn datagrams(file: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = file;
    while let [a, b, tail @ ..] = rest {
        let n = usize::from(u16::from_be_bytes([*a, *b]));
        let (d, tail) = tail.split_at(n.min(tail.len()));
        out.push(d);
        rest = tail;
    }
    out
}

const GST_H264: &[u8] = include_bytes!("../fixtures/gst_h264.bin");
const GST_OPUS: &[u8] = include_bytes!("../fixtures/gst_opus.bin");
const GST_SR: &[u8] = include_bytes!("../fixtures/gst_sr.bin");
const GST_RR: &[u8] = include_bytes!("../fixtures/gst_rr.bin");

fn receiver(codec: Codec, latency: Duration) -> RtpReceiver {
    let mut cfg = ReceiverConfig::new(codec, "rx@test");
    cfg.latency = latency;
    RtpReceiver::new(cfg, &mut StdRng::seed_from_u64(1)).expect("config")
}

#[test]
fn gstreamer_h264_depacketizes_and_repacketizes() {
    let t0 = Instant::now();
    let mut r = receiver(Codec::H264, Duration::ZERO);
    for d in datagrams(GST_H264) {
        r.handle_rtp(t0, d).expect("valid RTP");
    }
    r.handle_timeout(t0);
    let units: Vec<_> = std::iter::from_fn(|| r.poll_unit()).collect();
    assert_eq!(units.len(), 6, "six frames");
    assert!(units[0].keyframe);
    assert!(units
        .iter()
        .all(|u| u.complete && u.data.starts_with(&[0, 0, 0, 1])));
    assert_eq!(r.stats().lost + r.stats().depay_errors, 0);
    // Our payloader on x264's real output gives the same units back, less AUDs.
    let mut pay = H264Payloader::new(1200).expect("mtu");
    for u in &units {
        let mut depay = H264Depacketizer::new();
        let mut seq = 0u16;
        pay.packetize(&u.data, |parts, marker| {
            let mut b = bytes::BytesMut::new();
            crate::packet::RtpHeader {
                marker,
                payload_type: 96,
                sequence: seq,
                timestamp: 1,
                ssrc: 1,
            }
            .write_to(&mut b);
            for p in parts {
                b.extend_from_slice(p);
            }
            assert!(b.len() <= 1200);
            let pkt = RtpPacket::parse(b.freeze()).expect("parses");
            depay.push(&pkt).expect("valid");
            seq += 1;
        });
        let back = depay.pop().expect("unit");
        let want: Vec<u8> = h264::nal_units(&u.data)
            .filter(|n| n[0] & 0x1f != NAL_AUD)
            .flat_map(|n| [&[0, 0, 0, 1][..], n].concat())
            .collect();
        assert_eq!(back.data, want);
    }
}

#[test]
fn gstreamer_opus_depacketizes() {
    let t0 = Instant::now();
    let mut r = receiver(Codec::Opus, Duration::ZERO);
    for d in datagrams(GST_OPUS) {
        r.handle_rtp(t0, d).expect("valid RTP");
    }
    let units: Vec<_> = std::iter::from_fn(|| r.poll_unit()).collect();
    assert_eq!(units.len(), datagrams(GST_OPUS).len());
    // opusenc's first packet is shifted by its lookahead; the rest are 20 ms.
    for w in units[1..].windows(2) {
        assert_eq!(w[1].rtp_timestamp.wrapping_sub(w[0].rtp_timestamp), 960);
    }
}

#[test]
fn gstreamer_rtcp_parses_and_feeds_sessions() {
    let sr = parse_compound(datagrams(GST_SR)[0]).expect("SR parses");
    let RtcpPacket::SenderReport { ssrc, .. } = sr[0] else {
        panic!("{sr:?}");
    };
    assert!(
        matches!(&sr[1], RtcpPacket::Sdes { chunks } if chunks[0].ssrc == ssrc && chunks[0].cname.is_some())
    );

    let rr = parse_compound(datagrams(GST_RR)[0]).expect("RR parses");
    let RtcpPacket::ReceiverReport { reports, .. } = &rr[0] else {
        panic!("{rr:?}");
    };
    let media_ssrc = reports[0].ssrc;
    assert!(matches!(&rr[1], RtcpPacket::Sdes { .. }));
    // A sender with that SSRC takes the report.
    let clock = PipelineClock::with_origin(Instant::now(), 1_700_000_000_000_000);
    let mut cfg = SenderConfig::new(Codec::H264, clock, "tx");
    cfg.ssrc = Some(media_ssrc);
    let mut s = RtpSender::new(cfg, &mut StdRng::seed_from_u64(1)).expect("config");
    s.handle_rtcp(clock.origin(), datagrams(GST_RR)[0])
        .expect("valid");
    assert!(matches!(
        s.poll_event(),
        Some(SenderEvent::ReceiverReport(_))
    ));
}

/// A sender and receiver joined by a fake network with a 30 ms one-way delay.
#[test]
fn sender_and_receiver_loopback() {
    let origin = Instant::now();
    let clock = PipelineClock::with_origin(origin, 1_700_000_000_000_000);
    let mut rng = StdRng::seed_from_u64(8);
    let mut tx = RtpSender::new(SenderConfig::new(Codec::H264, clock, "tx"), &mut rng).expect("tx");
    let mut rx = RtpReceiver::new(ReceiverConfig::new(Codec::H264, "rx"), &mut rng).expect("rx");
    let delay = Duration::from_millis(30);
    let mut sent = Vec::new();
    let mut got = Vec::new();
    let mut keyframe_requests = 0;
    let mut rtt = None;
    for f in 0..150u64 {
        let now = origin + Duration::from_millis(f * 33);
        let mut data = vec![0, 0, 0, 1, if f % 30 == 0 { 0x65 } else { 0x41 }];
        data.extend((0..(f as usize * 37) % 4000 + 1).map(|i| (i % 200 + 1) as u8));
        let unit = EncodedUnit {
            codec: Codec::H264,
            keyframe: f % 30 == 0,
            pts: Duration::from_millis(f * 33),
            dts: None,
            capture: now,
            data: Bytes::from(data),
        };
        tx.push(now, &unit).expect("push");
        sent.push(unit);
        if tx.next_timeout().is_some_and(|t| t <= now) {
            tx.handle_timeout(now);
        }
        while let Some(t) = tx.poll_transmit() {
            match t.kind {
                TransmitKind::Rtp => rx.handle_rtp(now + delay, &t.data).expect("rtp"),
                TransmitKind::Rtcp => rx.handle_rtcp(now + delay, &t.data).expect("rtcp"),
            }
        }
        let at_rx = now + delay;
        if rx.next_timeout().is_some_and(|t| t <= at_rx) {
            rx.handle_timeout(at_rx);
        }
        if f == 100 {
            assert!(rx.request_keyframe(at_rx));
        }
        while let Some(t) = rx.poll_transmit() {
            tx.handle_rtcp(at_rx + delay, &t.data).expect("rtcp back");
        }
        while let Some(e) = tx.poll_event() {
            match e {
                SenderEvent::KeyframeRequested { reason } => {
                    assert_eq!(reason, KeyframeReason::Pli);
                    keyframe_requests += 1;
                }
                SenderEvent::ReceiverReport(r) => rtt = r.rtt.or(rtt),
                SenderEvent::Bye { .. } | SenderEvent::Remb { .. } => {}
            }
        }
        got.extend(std::iter::from_fn(|| rx.poll_unit()));
    }
    rx.handle_timeout(origin + Duration::from_secs(10));
    got.extend(std::iter::from_fn(|| rx.poll_unit()));
    assert_eq!(got.len(), sent.len());
    for (u, s) in got.iter().zip(&sent) {
        assert_eq!(u.data, s.data);
        assert!(u.complete);
        assert_eq!(u.keyframe, s.keyframe);
        // The SR mapping gives back each unit's capture time to the microsecond.
        if let Some(ntp) = u.sender_ntp {
            let us = clock.unix_micros(s.capture);
            assert!(
                ntp.to_unix_micros().abs_diff(us) <= 12,
                "{} vs {us}",
                ntp.to_unix_micros()
            );
        }
    }
    assert!(got.iter().skip(40).all(|u| u.sender_ntp.is_some()));
    assert_eq!(keyframe_requests, 1);
    let rtt = rtt.expect("an RTT");
    assert!(
        rtt.abs_diff(2 * delay) < Duration::from_millis(1),
        "{rtt:?}"
    );
    let report = tx.stats().last_report.expect("a report");
    assert_eq!(report.cumulative_lost, 0);
    tx.close(origin + Duration::from_secs(6));
    while let Some(t) = tx.poll_transmit() {
        rx.handle_rtcp(origin + Duration::from_secs(6), &t.data)
            .expect("bye");
    }
    assert!(!rx.request_keyframe(origin + Duration::from_secs(7)));
}

/// MJPEG from an RFC 2435 sender session to a receiver session.
#[test]
fn sender_to_receiver_round_trip_through_rtp_sessions() {
    let t0 = Instant::now();
    let clock = PipelineClock::with_origin(t0, 1_700_000_000_000_000);
    let cfg = SenderConfig::new(Codec::Mjpeg, clock, "tx");
    assert_eq!((cfg.payload_type, cfg.clock_rate), (PT_JPEG, 90_000));
    let mut tx = RtpSender::with_seed(cfg, 1).expect("sender");
    let mut rcfg = ReceiverConfig::new(Codec::Mjpeg, "rx");
    rcfg.latency = Duration::ZERO;
    let mut rx = RtpReceiver::with_seed(rcfg, 2).expect("receiver");
    let (l, c) = make_tables(90);
    let mut sent = Vec::new();
    for f in 0..5u32 {
        let at = t0 + Duration::from_millis(u64::from(f) * 33);
        let data = jpeg(352, 288, 0x22, &l, &c, 0, &scan(4000 + f as usize * 100));
        let unit = EncodedUnit {
            codec: Codec::Mjpeg,
            keyframe: true,
            pts: at - t0,
            dts: None,
            capture: at,
            data: Bytes::from(data.clone()),
        };
        tx.push(at, &unit).expect("push");
        while let Some(t) = tx.poll_transmit() {
            if t.kind == TransmitKind::Rtp {
                let p = RtpPacket::parse(t.data.clone()).expect("rtp");
                assert_eq!(p.header.payload_type, 26);
                rx.handle_rtp(at, &t.data).expect("rtp");
            }
        }
        sent.push(data);
    }
    let got: Vec<_> = std::iter::from_fn(|| rx.poll_unit()).collect();
    assert_eq!(got.len(), 5);
    for (u, src) in got.iter().zip(&sent) {
        assert!(u.keyframe && u.complete);
        let a = parse_jpeg(&u.data).expect("rebuilt");
        let b = parse_jpeg(src).expect("source");
        assert_eq!(
            (a.width, a.height, a.rtp_type),
            (b.width, b.height, b.rtp_type)
        );
        assert_eq!((a.luma, a.chroma, a.scan), (b.luma, b.chroma, b.scan));
    }
    let ts: Vec<u32> = got.iter().map(|u| u.rtp_timestamp).collect();
    assert!(ts.windows(2).all(|w| w[1].wrapping_sub(w[0]) == 33 * 90));
}
