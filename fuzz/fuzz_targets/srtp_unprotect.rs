//! SRTP and SRTCP from the network: arbitrary bytes never authenticate,
//! leave no state behind, and what pstream protects from the same bytes
//! (when they are an RTP or RTCP packet) comes back whole.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pstream_rtp::srtp::{MasterKey, SrtpContext, SrtpProfile};

fuzz_target!(|data: &[u8]| {
    let Some((&choice, packet)) = data.split_first() else {
        return;
    };
    let profile = if choice & 1 == 0 {
        SrtpProfile::AesCm128HmacSha1_80
    } else {
        SrtpProfile::AeadAes128Gcm
    };
    let rtcp = choice & 2 != 0;
    let material: Vec<u8> = (0..profile.master_len() as u8).collect();
    let Ok(key) = MasterKey::new(profile, &material) else {
        return;
    };
    let (mut tx, mut rx) = (SrtpContext::new(&key), SrtpContext::new(&key));
    let mut buf = BytesMut::new();
    // Without the key, nothing authenticates (a forged tag is 2^-80 at best).
    let forged = if rtcp {
        rx.unprotect_rtcp(packet, &mut buf)
    } else {
        rx.unprotect_rtp(packet, &mut buf)
    };
    assert!(forged.is_err(), "unkeyed bytes authenticated");
    let protected = if rtcp {
        tx.protect_rtcp(packet, &mut buf)
    } else {
        tx.protect_rtp(packet, &mut buf)
    };
    if let Ok(p) = protected {
        let back = if rtcp {
            rx.unprotect_rtcp(&p, &mut buf)
        } else {
            rx.unprotect_rtp(&p, &mut buf)
        };
        assert_eq!(back.as_deref(), Ok(packet), "a refused forgery left state behind");
    }
});
