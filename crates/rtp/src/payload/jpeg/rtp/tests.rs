//! Round trips through the RFC 2435 payloader and depacketizer, and what
//! they refuse.

use bytes::Bytes;

use super::*;
use crate::packet::RtpHeader;
use crate::payload::error::JpegError;
use crate::payload::jpeg::jfif::fixtures::{jpeg, scan};
use crate::payload::jpeg::tables::make_tables;
use crate::payload::types::PT_JPEG;

fn packetize(p: &mut JpegPayloader, data: &[u8], seq0: u16, ts: u32) -> Vec<RtpPacket> {
    let mut pkts = Vec::new();
    let mut seq = seq0;
    p.packetize(data, |parts, marker| {
        pkts.push(RtpPacket {
            header: RtpHeader {
                marker,
                payload_type: PT_JPEG,
                sequence: seq,
                timestamp: ts,
                ssrc: 0x1234,
            },
            csrcs: vec![],
            extension: None,
            payload: Bytes::from(parts.concat()),
            padding: 0,
        });
        seq = seq.wrapping_add(1);
    })
    .expect("packetize");
    pkts
}

fn depay_all(d: &mut JpegDepacketizer, pkts: &[RtpPacket]) -> Vec<DepacketizedUnit> {
    for p in pkts {
        let _ = d.push(p);
    }
    std::iter::from_fn(|| d.pop()).collect()
}

#[test]
fn round_trip_with_standard_tables_sends_q_and_no_tables() {
    let (l, c) = make_tables(85);
    let body = scan(5000);
    let src = jpeg(320, 240, 0x22, &l, &c, 0, &body);
    let mut p = JpegPayloader::new(1200).expect("mtu");
    let pkts = packetize(&mut p, &src, 65534, 9000);
    assert_eq!(p.last_q(), Some(85));
    assert_eq!(pkts.len(), 5000usize.div_ceil(1200 - 12 - 8));
    let mut expect_off = 0;
    for (i, pkt) in pkts.iter().enumerate() {
        assert!(pkt.payload.len() + 12 <= 1200);
        let h = &pkt.payload[..8];
        let off = usize::from(h[1]) << 16 | usize::from(h[2]) << 8 | usize::from(h[3]);
        assert_eq!(off, expect_off);
        assert_eq!(&h[4..], &[1, 85, 40, 30]);
        assert_eq!(pkt.header.marker, i + 1 == pkts.len());
        expect_off += pkt.payload.len() - 8;
    }
    let mut d = JpegDepacketizer::new();
    let out = depay_all(&mut d, &pkts);
    assert_eq!(out.len(), 1);
    let u = &out[0];
    assert!(u.keyframe && u.complete);
    assert_eq!(u.timestamp, 9000);
    // The rebuilt JPEG parses back to the same essentials.
    let info = parse_jpeg(&u.data).expect("rebuilt JPEG parses");
    assert_eq!((info.width, info.height, info.rtp_type), (320, 240, 1));
    assert_eq!(info.luma.data, &l[..]);
    assert_eq!(info.chroma.data, &c[..]);
    assert_eq!(info.scan, &body[..]);
    assert_eq!(d.stats().frames, 1);
}

#[test]
fn round_trip_with_custom_tables_and_restart_interval() {
    let l: Vec<u8> = (1..=64).collect();
    let c: Vec<u8> = (2..=65).collect();
    let body = scan(3000);
    let src = jpeg(640, 480, 0x21, &l, &c, 40, &body);
    let mut p = JpegPayloader::new(500).expect("mtu");
    let pkts = packetize(&mut p, &src, 7, 1);
    assert_eq!(p.last_q(), Some(255));
    let first = &pkts[0].payload;
    assert_eq!(first[4], 64, "type 0 + restart");
    assert_eq!(&first[8..12], &[0, 40, 0xff, 0xff]);
    assert_eq!(&first[12..16], &[0, 0, 0, 128]);
    assert_eq!(&first[16..80], &l[..]);
    // Later packets carry the restart header but no tables.
    assert_eq!(pkts[1].payload[4], 64);
    assert_eq!(&pkts[1].payload[8..12], &[0, 40, 0xff, 0xff]);
    let mut d = JpegDepacketizer::new();
    let out = depay_all(&mut d, &pkts);
    assert_eq!(out.len(), 1);
    let info = parse_jpeg(&out[0].data).expect("parses");
    assert_eq!(
        (
            info.width,
            info.height,
            info.rtp_type,
            info.restart_interval
        ),
        (640, 480, 0, 40)
    );
    assert_eq!(info.luma.data, &l[..]);
    assert_eq!(info.chroma.data, &c[..]);
    assert_eq!(info.scan, &body[..]);
}

#[test]
fn payloader_refuses_what_rfc2435_cannot_carry() {
    let (l, c) = make_tables(50);
    let mut p = JpegPayloader::new(1200).expect("mtu");
    let big = jpeg(2048, 720, 0x22, &l, &c, 0, &scan(10));
    let err = p.packetize(&big, |_, _| {}).expect_err("too wide");
    assert_eq!(
        err,
        PayloaderError::Jpeg(JpegError::TooLarge {
            width: 2048,
            height: 720
        })
    );
    assert!(err.to_string().contains("2040"));
    let ok = jpeg(2040, 2040, 0x22, &l, &c, 0, &scan(10));
    assert!(p.packetize(&ok, |_, _| {}).is_ok());
    let s444 = jpeg(64, 64, 0x11, &l, &c, 0, &scan(10));
    assert!(matches!(
        p.packetize(&s444, |_, _| {}),
        Err(PayloaderError::Jpeg(JpegError::Unsupported(_)))
    ));
    assert_eq!(
        p.packetize(b"not a jpeg", |_, _| {}),
        Err(PayloaderError::Jpeg(JpegError::NotJpeg))
    );
    for cut in [3, 10, 30, 100, 300] {
        let src = jpeg(64, 64, 0x22, &l, &c, 0, &scan(10));
        let _ = p.packetize(&src[..cut], |_, _| {});
    }
    assert!(JpegPayloader::new(100).is_err());
}

fn frames(n: u32, mtu: usize) -> Vec<Vec<RtpPacket>> {
    let (l, c) = make_tables(60);
    let mut p = JpegPayloader::new(mtu).expect("mtu");
    let mut seq = 100u16;
    (0..n)
        .map(|f| {
            let src = jpeg(160, 120, 0x22, &l, &c, 0, &scan(2000 + f as usize));
            let pk = packetize(&mut p, &src, seq, f * 3000);
            seq = seq.wrapping_add(pk.len() as u16);
            pk
        })
        .collect()
}

#[test]
fn a_hole_drops_the_frame_and_the_next_one_survives() {
    let f = frames(3, 600);
    let mut d = JpegDepacketizer::new();
    let mut all: Vec<RtpPacket> = Vec::new();
    all.extend(f[0].iter().cloned());
    // Frame 1 loses a middle packet.
    all.extend(
        f[1].iter()
            .enumerate()
            .filter(|(i, _)| *i != 1)
            .map(|(_, p)| p.clone()),
    );
    all.extend(f[2].iter().cloned());
    let out = depay_all(&mut d, &all);
    assert_eq!(
        out.iter().map(|u| u.timestamp).collect::<Vec<_>>(),
        [0, 6000]
    );
    assert_eq!(d.stats().dropped_frames, 1);
    assert_eq!(d.stats().dropped_packets, 0);
}

#[test]
fn lost_first_or_last_packet_drops_the_frame() {
    let f = frames(3, 600);
    let mut d = JpegDepacketizer::new();
    let mut all: Vec<RtpPacket> = Vec::new();
    all.extend(f[0][1..].iter().cloned());
    let n = f[1].len();
    all.extend(f[1][..n - 1].iter().cloned());
    all.extend(f[2].iter().cloned());
    let out = depay_all(&mut d, &all);
    assert_eq!(out.iter().map(|u| u.timestamp).collect::<Vec<_>>(), [6000]);
    assert_eq!(d.stats().dropped_frames, 2);
}

#[test]
fn overlaps_lies_and_nonsense_are_errors_not_panics() {
    let f = frames(1, 600);
    let mut d = JpegDepacketizer::new();
    // Overlap: packet 1 twice.
    let mut pk = f[0].clone();
    pk.insert(2, f[0][1].clone());
    for p in &pk {
        let r = d.push(p);
        if p.header.sequence == f[0][1].header.sequence && r.is_err() {
            assert!(matches!(
                r.as_ref().map_err(|e| &e.kind),
                Err(DepayErrorKind::JpegOverlap { .. })
            ));
        }
    }
    assert!(d.pop().is_none());
    assert_eq!(d.stats().dropped_frames, 1);

    let mk = |payload: Vec<u8>, marker: bool| RtpPacket {
        header: RtpHeader {
            marker,
            payload_type: 26,
            sequence: 1,
            timestamp: 77,
            ssrc: 5,
        },
        csrcs: vec![],
        extension: None,
        payload: Bytes::from(payload),
        padding: 0,
    };
    let kind = |d: &mut JpegDepacketizer, payload: Vec<u8>| {
        d.push(&mk(payload, true)).expect_err("bad").kind
    };
    let mut d = JpegDepacketizer::new();
    assert_eq!(
        kind(&mut d, vec![0; 5]),
        DepayErrorKind::JpegHeaderTruncated(5)
    );
    assert_eq!(
        kind(&mut d, vec![0, 0, 0, 0, 3, 50, 10, 10, 1]),
        DepayErrorKind::JpegType(3)
    );
    assert_eq!(
        kind(&mut d, vec![0, 0, 0, 0, 1, 110, 10, 10, 1]),
        DepayErrorKind::JpegQ(110)
    );
    assert_eq!(
        kind(&mut d, vec![0, 0, 0, 0, 1, 50, 0, 10, 1]),
        DepayErrorKind::JpegSize {
            width: 0,
            height: 10
        }
    );
    // Offset far past what a 16x16 picture can need.
    assert!(matches!(
        kind(&mut d, vec![0, 0x10, 0, 0, 1, 50, 2, 2, 1]),
        DepayErrorKind::JpegOffset { .. }
    ));
    // In-band table length longer than the packet.
    let mut lie = vec![0, 0, 0, 0, 1, 255, 10, 10, 0, 0, 0x10, 0];
    lie.extend([1; 100]);
    assert!(matches!(
        kind(&mut d, lie),
        DepayErrorKind::JpegTables { .. }
    ));
    // Table length neither one nor two tables.
    let mut short = vec![0, 0, 0, 0, 1, 255, 10, 10, 0, 0, 0, 100];
    short.extend([1; 120]);
    assert_eq!(
        kind(&mut d, short),
        DepayErrorKind::JpegTables {
            declared: 100,
            needed: 128
        }
    );
    // Q 200 with no tables and none cached.
    assert_eq!(
        kind(&mut d, vec![0, 0, 0, 0, 1, 200, 10, 10, 0, 0, 0, 0, 5]),
        DepayErrorKind::JpegNoTables { q: 200 }
    );
    assert!(d.pop().is_none());
    let e = d.push(&mk(vec![0; 3], true)).expect_err("bad");
    assert!(e.to_string().contains("ssrc 0x00000005 seq 1 ts 77"), "{e}");
}

#[test]
fn one_in_band_table_serves_all_components() {
    // ffmpeg's RTP muxer sends one 64-byte table when its encoder uses one.
    let l: Vec<u8> = (3..=66).collect();
    let mut payload = vec![0, 0, 0, 0, 1, 255, 2, 2, 0, 0, 0, 64];
    payload.extend(&l);
    payload.extend([9, 8, 7]);
    let pkt = RtpPacket {
        header: RtpHeader {
            marker: true,
            payload_type: 26,
            sequence: 1,
            timestamp: 1,
            ssrc: 5,
        },
        csrcs: vec![],
        extension: None,
        payload: Bytes::from(payload),
        padding: 0,
    };
    let mut d = JpegDepacketizer::new();
    d.push(&pkt).expect("valid");
    let u = d.pop().expect("a frame");
    let info = parse_jpeg(&u.data).expect("parses");
    assert_eq!(info.luma.data, &l[..]);
    assert_eq!(info.chroma.data, &l[..]);
    assert_eq!((info.width, info.height), (16, 16));
}

#[test]
fn tables_for_q_128_to_254_are_cached() {
    let l: Vec<u8> = (1..=64).collect();
    let mut first = vec![0, 0, 0, 0, 1, 200, 2, 2, 0, 0, 0, 128];
    first.extend(&l);
    first.extend(&l);
    first.extend([1, 2, 3]);
    let later = vec![0, 0, 0, 0, 1, 200, 2, 2, 0, 0, 0, 0, 4, 5, 6];
    let mut d = JpegDepacketizer::new();
    for (i, payload) in [first, later].into_iter().enumerate() {
        let pkt = RtpPacket {
            header: RtpHeader {
                marker: true,
                payload_type: 26,
                sequence: i as u16,
                timestamp: i as u32 * 10,
                ssrc: 5,
            },
            csrcs: vec![],
            extension: None,
            payload: Bytes::from(payload),
            padding: 0,
        };
        d.push(&pkt).expect("valid");
    }
    let out: Vec<_> = std::iter::from_fn(|| d.pop()).collect();
    assert_eq!(out.len(), 2);
    let info = parse_jpeg(&out[1].data).expect("parses");
    assert_eq!(info.luma.data, &l[..]);
    assert_eq!(info.scan, &[4, 5, 6]);
}

#[test]
fn random_payloads_never_panic() {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    let mut rng = StdRng::seed_from_u64(11);
    let mut d = JpegDepacketizer::new();
    let good = frames(2, 300);
    for i in 0..50_000u32 {
        let mut payload: Vec<u8> = if rng.random_bool(0.5) {
            let f = &good[rng.random_range(0..2)];
            f[rng.random_range(0..f.len())].payload.to_vec()
        } else {
            (0..rng.random_range(0..40)).map(|_| rng.random()).collect()
        };
        for _ in 0..rng.random_range(0..3) {
            if !payload.is_empty() {
                let at = rng.random_range(0..payload.len());
                payload[at] = rng.random();
            }
        }
        let pkt = RtpPacket {
            header: RtpHeader {
                marker: rng.random_bool(0.2),
                payload_type: 26,
                sequence: i as u16,
                timestamp: rng.random_range(0..4) * 3000,
                ssrc: 1,
            },
            csrcs: vec![],
            extension: None,
            payload: Bytes::from(payload),
            padding: 0,
        };
        let _ = d.push(&pkt);
        while let Some(u) = d.pop() {
            assert!(u.data.starts_with(&[0xff, 0xd8]));
        }
    }
    let mut p = JpegPayloader::new(200).expect("mtu");
    for _ in 0..5_000 {
        let mut src = good[0][0].payload.to_vec();
        src.splice(0..0, [0xff, 0xd8]);
        let n = rng.random_range(0..src.len());
        src[n] = rng.random();
        let _ = p.packetize(&src, |parts, _| {
            assert!(parts.iter().map(|p| p.len()).sum::<usize>() + 12 <= 200);
        });
    }
}
