//! Test vectors (RFC 3711 Appendix B, RFC 7714 §16-17, libsrtp's reference
//! packets) and the behaviour around them: rollover, replay, tampering.

use bytes::BytesMut;

use super::cipher::{derive, CmKeys, GcmKeys, Label};
use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn arr<const N: usize>(s: &str) -> [u8; N] {
    hex(s).try_into().expect("length")
}

const MASTER: &str = "E1F97A0D3E018BE0D64FA32C06DE4139 0EC675AD498AFEEBB6960B3AABE6";

#[test]
fn rfc3711_b3_key_derivation() {
    let key: [u8; 16] = arr("E1F97A0D3E018BE0D64FA32C06DE4139");
    let salt = hex("0EC675AD498AFEEBB6960B3AABE6");
    let mut out = [0u8; 16];
    derive(&key, &salt, Label::RtpEncryption, &mut out);
    assert_eq!(out.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
    let mut out = [0u8; 14];
    derive(&key, &salt, Label::RtpSalt, &mut out);
    assert_eq!(out.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
    // The appendix runs the authentication key out to 94 bytes.
    let mut out = [0u8; 94];
    derive(&key, &salt, Label::RtpAuth, &mut out);
    assert_eq!(
        out.to_vec(),
        hex(
            "CEBE321F6FF7716B6FD4AB49AF256A15 6D38BAA48F0A0ACF3C34E2359E6CDBCE
             E049646C43D9327AD175578EF7227098 6371C10C9A369AC2F94A8C5FBCDDDC25
             6D6E919A48B610EF17C2041E47403576 6B68642C59BBFC2F34DB60DBDFB2"
        )
    );
    // SRTCP labels, as other implementations derive them.
    let mut out = [0u8; 16];
    derive(&key, &salt, Label::RtcpEncryption, &mut out);
    assert_eq!(out.to_vec(), hex("4C1AA45A81F73D61C800BBB00FBB1EAA"));
    let mut out = [0u8; 14];
    derive(&key, &salt, Label::RtcpSalt, &mut out);
    assert_eq!(out.to_vec(), hex("9581C7AD87B3E530BF3E4454A8B3"));
}

#[test]
fn rfc3711_b2_aes_cm_keystream() {
    let keys = CmKeys::from_session(
        &arr("2B7E151628AED2A6ABF7158809CF4F3C"),
        &arr("F0F1F2F3F4F5F6F7F8F9FAFBFCFD"),
        &[0; 20],
    );
    let mut ks = [0u8; 48];
    keys.apply(0, 0, &mut ks);
    assert_eq!(
        ks.to_vec(),
        hex(
            "E03EAD0935C95E80E166B16DD92B4EB4 D23513162B02D0F72A43A2FE4A5F97AB
             41E95B3BB0A2E8DD477901E4FCA894C0"
        )
    );
    // Block 0xFEFF of the same keystream is AES(IV + 0xFEFF).
    let mut block: [u8; 16] = arr("F0F1F2F3F4F5F6F7F8F9FAFBFCFDFEFF");
    keys.block(&mut block);
    let mut long = vec![0u8; 16 * 0xff00];
    keys.apply(0, 0, &mut long);
    assert_eq!(&long[16 * 0xfeff..], &block[..]);
}

fn cm_context() -> SrtpContext {
    SrtpContext::new(
        &MasterKey::parse(SrtpProfile::AesCm128HmacSha1_80, &hex_text(MASTER)).expect("key"),
    )
}

fn hex_text(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

#[test]
fn libsrtp_reference_packets() {
    let plain = hex("800f1234decafbadcafebabe abababababababababababababababab");
    let want =
        hex("800f1234decafbadcafebabe 4e55dc4ce79978d88ca4d215949d2402 b78d6acc99ea179b8dbb");
    let mut tx = cm_context();
    let mut buf = BytesMut::new();
    assert_eq!(
        tx.protect_rtp(&plain, &mut buf).expect("protect").to_vec(),
        want
    );
    let mut rx = cm_context();
    assert_eq!(
        rx.unprotect_rtp(&want, &mut buf)
            .expect("unprotect")
            .to_vec(),
        plain
    );

    let plain = hex("81c8000bcafebabe abababababababababababababababab");
    let want =
        hex("81c8000bcafebabe 7128035be487b9bdbef89041f977a5a8 80000001 993e08cd54d6c1230798");
    assert_eq!(
        tx.protect_rtcp(&plain, &mut buf).expect("protect").to_vec(),
        want
    );
    assert_eq!(
        rx.unprotect_rtcp(&want, &mut buf)
            .expect("unprotect")
            .to_vec(),
        plain
    );
    assert_eq!(rx.stats().unprotected, 2);
    assert_eq!(tx.stats().protected, 2);
}

fn gcm_vector_context() -> SrtpContext {
    let k = || {
        GcmKeys::from_session(
            &arr("000102030405060708090a0b0c0d0e0f"),
            &arr("517569642070726f2071756f"),
        )
    };
    SrtpContext::with_keys(SrtpProfile::AeadAes128Gcm, Keys::Gcm(k()), Keys::Gcm(k()))
}

#[test]
fn rfc7714_16_1_rtp() {
    let plain = hex("8040f17b8041f8d35501a0b2 47616c6c696120657374206f6d6e69732064697669736120696e207061727465732074726573");
    let want = hex(
        "8040f17b8041f8d35501a0b2 f24de3a3fb34de6cacba861c9d7e4bcabe633bd50d294e6f42a5f47a
         51c7d19b36de3adf8833899d7f27beb16a9152cf765ee4390cce",
    );
    let mut buf = BytesMut::new();
    assert_eq!(
        gcm_vector_context()
            .protect_rtp(&plain, &mut buf)
            .expect("protect")
            .to_vec(),
        want
    );
    assert_eq!(
        gcm_vector_context()
            .unprotect_rtp(&want, &mut buf)
            .expect("open")
            .to_vec(),
        plain
    );
}

const RTCP_7714: &str = "81c8000d4d6172734e5450314e545032525450200000042a0000e9304c756e61
                         deadbeefdeadbeefdeadbeefdeadbeefdeadbeef";

#[test]
fn rfc7714_17_rtcp() {
    let plain = hex(RTCP_7714);
    let want = hex(
        "81c8000d4d617273 63e94885dcdab67ca727d7662f6b7e997ff5c0f76c06f32dc676a5f1730d6fda
         4ce09b4686303ded0bb9275bc84aa45896cf4d2fc5abf87245d9eade 800005d4",
    );
    let mut tx = gcm_vector_context();
    tx.stream(0x4d61_7273).rtcp_sent = 0x5d3;
    let mut buf = BytesMut::new();
    assert_eq!(
        tx.protect_rtcp(&plain, &mut buf).expect("protect").to_vec(),
        want
    );
    assert_eq!(
        gcm_vector_context()
            .unprotect_rtcp(&want, &mut buf)
            .expect("open")
            .to_vec(),
        plain
    );
    // §17.3: authenticated, not encrypted (E = 0).
    let tagged = [
        hex(RTCP_7714),
        hex("841dd9683dd78ec92ae58790125f62b3 000005d4"),
    ]
    .concat();
    assert_eq!(
        gcm_vector_context()
            .unprotect_rtcp(&tagged, &mut buf)
            .expect("open")
            .to_vec(),
        plain
    );
    let mut bad = tagged.clone();
    bad[20] ^= 1;
    assert_eq!(
        gcm_vector_context().unprotect_rtcp(&bad, &mut buf),
        Err(SrtpError::RtcpAuth {
            ssrc: 0x4d61_7273,
            index: 0x5d4
        })
    );
}

fn rtp(seq: u16, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 96];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0x30, 0x39]);
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn pair(profile: SrtpProfile) -> (SrtpContext, SrtpContext) {
    let key = MasterKey::generate(profile).expect("os rng");
    (SrtpContext::new(&key), SrtpContext::new(&key))
}

#[test]
fn round_trips_across_the_rollover_and_refuses_replays() {
    for profile in SrtpProfile::ALL {
        let (mut tx, mut rx) = pair(profile);
        let mut buf = BytesMut::new();
        let mut out = BytesMut::new();
        let mut kept = Vec::new();
        for i in 0..20u16 {
            let seq = 65526u16.wrapping_add(i);
            let plain = rtp(seq, 7, b"some media payload");
            let s = tx.protect_rtp(&plain, &mut buf).expect("protect");
            assert_eq!(s.len(), plain.len() + profile.tag_len());
            assert_ne!(
                &s[12..plain.len()],
                &plain[12..],
                "{profile}: payload encrypted"
            );
            assert_eq!(&s[..12], &plain[..12], "header in clear");
            kept.push(s);
        }
        assert_eq!(tx.roc(7), Some(1));
        // Delivered out of order within the window: all accepted once.
        for &i in &[
            0usize, 2, 1, 5, 4, 3, 19, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18,
        ] {
            rx.unprotect_rtp(&kept[i], &mut out)
                .unwrap_or_else(|e| panic!("{profile} packet {i}: {e}"));
        }
        assert_eq!(rx.roc(7), Some(1));
        let err = rx.unprotect_rtp(&kept[10], &mut out).expect_err("replay");
        assert_eq!(
            err,
            SrtpError::Replayed {
                what: "SRTP",
                ssrc: 7,
                index: 1 << 16, // rollover counter 1, sequence number 0
            }
        );
        assert_eq!(rx.stats().replays, 1);
        // RTCP: accepted once, then refused.
        let rr = [0x81, 201, 0, 1, 0, 0, 0, 7];
        let s = tx.protect_rtcp(&rr, &mut buf).expect("protect");
        assert_eq!(&rx.unprotect_rtcp(&s, &mut out).expect("open")[..], &rr);
        assert!(matches!(
            rx.unprotect_rtcp(&s, &mut out),
            Err(SrtpError::Replayed {
                what: "SRTCP",
                ssrc: 7,
                index: 1
            })
        ));
    }
}

#[test]
fn tampering_anywhere_is_refused_and_nothing_is_returned() {
    for profile in SrtpProfile::ALL {
        let (mut tx, mut rx) = pair(profile);
        let mut buf = BytesMut::new();
        let s = tx
            .protect_rtp(&rtp(100, 9, &[0x55; 40]), &mut buf)
            .expect("protect")
            .to_vec();
        let c = tx
            .protect_rtcp(
                &[
                    0x80, 200, 0, 6, 0, 0, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                    16, 17, 18, 19, 20,
                ],
                &mut buf,
            )
            .expect("protect")
            .to_vec();
        for i in 0..s.len() {
            let mut t = s.clone();
            t[i] ^= 0x04;
            let r = rx.unprotect_rtp(&t, &mut buf);
            assert!(r.is_err(), "{profile}: byte {i} flipped yet accepted");
            assert!(buf.is_empty());
        }
        for i in 0..c.len() {
            let mut t = c.clone();
            t[i] ^= 0x20;
            assert!(
                rx.unprotect_rtcp(&t, &mut buf).is_err(),
                "{profile}: RTCP byte {i}"
            );
        }
        // No state was created by the forgeries: the real ones still pass.
        rx.unprotect_rtp(&s, &mut buf).expect("genuine");
        rx.unprotect_rtcp(&c, &mut buf).expect("genuine");
        let st = rx.stats();
        assert!(
            st.auth_failures as usize >= s.len() + c.len() - 12,
            "{st:?}"
        );
        // Another key is refused.
        let (_, mut other) = pair(profile);
        assert!(matches!(
            other.unprotect_rtp(&s, &mut buf),
            Err(SrtpError::RtpAuth {
                ssrc: 9,
                seq: 100,
                roc: 0
            })
        ));
        // Truncated and garbage.
        assert!(matches!(
            rx.unprotect_rtp(&s[..15], &mut buf),
            Err(SrtpError::Truncated { .. })
        ));
        assert!(matches!(
            rx.unprotect_rtp(&[0x40; 40], &mut buf),
            Err(SrtpError::Version { .. })
        ));
        assert!(matches!(
            rx.unprotect_rtcp(&[0x80; 10], &mut buf),
            Err(SrtpError::Truncated { .. })
        ));
    }
}

#[test]
fn far_behind_is_too_old() {
    let (mut tx, mut rx) = pair(SrtpProfile::AesCm128HmacSha1_80);
    let mut buf = BytesMut::new();
    let first = tx
        .protect_rtp(&rtp(1000, 1, b"x"), &mut buf)
        .expect("p")
        .to_vec();
    for seq in 1001..1200 {
        let p = tx.protect_rtp(&rtp(seq, 1, b"x"), &mut buf).expect("p");
        rx.unprotect_rtp(&p, &mut buf).expect("u");
    }
    assert!(matches!(
        rx.unprotect_rtp(&first, &mut buf),
        Err(SrtpError::TooOld {
            index: 1000,
            highest: 1199,
            ..
        })
    ));
}

#[test]
fn roc_estimation_follows_appendix_a() {
    assert_eq!(estimate_index(5, 7), 7);
    assert_eq!(estimate_index(65530, 3), (1 << 16) | 3);
    assert_eq!(estimate_index((1 << 16) | 3, 65530), 65530);
    assert_eq!(estimate_index((2 << 16) | 40000, 100), (3 << 16) | 100);
    assert_eq!(estimate_index((2 << 16) | 40000, 20000), (2 << 16) | 20000);
    assert!(
        estimate_index(3, 65530) > MAX_RTP_INDEX,
        "before the first rollover"
    );
}

#[test]
fn master_keys_parse_from_base64_and_hex() {
    let cm = SrtpProfile::AesCm128HmacSha1_80;
    let hexkey = hex_text(MASTER);
    let a = MasterKey::parse(cm, &hexkey).expect("hex");
    let b64 = a.to_base64();
    assert_eq!(b64.len(), 40);
    assert_eq!(MasterKey::parse(cm, &b64).expect("b64"), a);
    assert_eq!(
        MasterKey::parse(cm, &format!("inline:{b64}|2^31|1:1")).expect("sdes"),
        a
    );
    assert_eq!(
        MasterKey::parse(cm, &hexkey.to_uppercase()).expect("HEX"),
        a
    );
    assert_eq!(a.to_hex(), hexkey.to_lowercase());
    assert!(matches!(
        MasterKey::parse(SrtpProfile::AeadAes128Gcm, &b64),
        Err(SrtpKeyError::Length {
            got: 30,
            want: 28,
            ..
        })
    ));
    assert!(matches!(
        MasterKey::parse(cm, "not a key!"),
        Err(SrtpKeyError::Base64 { .. })
    ));
    assert!(!format!("{a:?}").contains("e1f9"), "Debug hides the key");
    let g = keygen(SrtpProfile::AeadAes128Gcm).expect("rng");
    assert_eq!(
        MasterKey::parse(SrtpProfile::AeadAes128Gcm, &g)
            .expect("parses")
            .profile(),
        SrtpProfile::AeadAes128Gcm
    );
    assert_ne!(keygen(cm).expect("rng"), keygen(cm).expect("rng"));
    assert_eq!(
        SrtpProfile::from_sdes_name("aes_cm_128_hmac_sha1_80"),
        Some(cm)
    );
}

#[test]
fn streams_are_bounded() {
    let (mut tx, mut rx) = pair(SrtpProfile::AeadAes128Gcm);
    let mut buf = BytesMut::new();
    for ssrc in 0..(MAX_STREAMS as u32 * 3) {
        let p = tx.protect_rtp(&rtp(1, ssrc, b"x"), &mut buf).expect("p");
        rx.unprotect_rtp(&p, &mut buf).expect("u");
    }
    assert!(tx.streams.len() <= MAX_STREAMS && rx.streams.len() <= MAX_STREAMS);
}

#[test]
fn sha1_32_cuts_the_srtp_tag_to_4_bytes_and_keeps_srtcp_at_80_bits() {
    let bytes: Vec<u8> = (1..=30).collect();
    let long = MasterKey::new(SrtpProfile::AesCm128HmacSha1_80, &bytes).expect("key");
    let short = MasterKey::new(SrtpProfile::AesCm128HmacSha1_32, &bytes).expect("key");
    let (mut tx80, mut tx32) = (SrtpContext::new(&long), SrtpContext::new(&short));
    let mut rx32 = SrtpContext::new(&short);
    let mut buf = BytesMut::new();
    let plain = rtp(7, 0x0102_0304, b"a picture slice");
    let p80 = tx80.protect_rtp(&plain, &mut buf).expect("80");
    let p32 = tx32.protect_rtp(&plain, &mut buf).expect("32");
    // Same keystream, the tag cut to its first 4 bytes (RFC 3711 §4.2).
    assert_eq!(p32.len(), plain.len() + 4);
    assert_eq!(&p32[..], &p80[..p80.len() - 6]);
    assert_eq!(
        &rx32.unprotect_rtp(&p32, &mut buf).expect("u")[..],
        &plain[..]
    );
    let mut forged = p32.to_vec();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    forged[3] = forged[3].wrapping_add(1);
    assert!(matches!(
        rx32.unprotect_rtp(&forged, &mut buf),
        Err(SrtpError::RtpAuth { .. })
    ));
    // SRTCP keeps the 80-bit tag: the two profiles protect RTCP alike.
    let rr = [0x80, 201, 0, 1, 0, 0, 0, 9];
    let c80 = tx80.protect_rtcp(&rr, &mut buf).expect("80");
    let c32 = tx32.protect_rtcp(&rr, &mut buf).expect("32");
    assert_eq!(c80, c32);
    assert_eq!(c32.len(), rr.len() + 4 + 10);
    assert_eq!(
        &rx32.unprotect_rtcp(&c32, &mut buf).expect("u")[..],
        &rr[..]
    );
}
