//! The cryptographic transforms of the two SRTP profiles: the AES-CM key
//! derivation (RFC 3711 §4.3), AES-CM + HMAC-SHA1-80 (RFC 3711 §4.1.1,
//! §4.2.1) and AES-128-GCM (RFC 7714).
//!
//! RustCrypto's aes/ctr/hmac/sha1/aes-gcm rather than ring, although ring is
//! already in the tree through rustls: ring exposes AES only inside its
//! AEADs (and QUIC header protection), so it cannot do the raw AES counter
//! mode that AES_CM and the key derivation need, and mixing the two
//! libraries for one protocol would buy nothing. The RustCrypto crates are
//! pure Rust, build for aarch64, armv7 and ARMv6 alike, and pick AES and
//! carry-less multiply instructions at run time where the CPU has them.

use aes::cipher::{InnerIvInit, KeyInit, StreamCipher};
use aes::Aes128;
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes128Gcm, Nonce, Tag};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// Length of an AES-128 key.
pub(crate) const KEY_LEN: usize = 16;
/// Length of the AES-CM session salt.
pub(crate) const CM_SALT_LEN: usize = 14;
/// Length of the GCM session salt.
pub(crate) const GCM_SALT_LEN: usize = 12;
/// Length of the HMAC-SHA1 session key.
pub(crate) const AUTH_KEY_LEN: usize = 20;
/// Length of the HMAC-SHA1-80 tag.
pub(crate) const CM_TAG_LEN: usize = 10;
/// Length of the HMAC-SHA1-32 tag (SRTP only; SRTCP keeps the 80-bit one).
pub(crate) const CM_SHORT_TAG_LEN: usize = 4;
/// Length of the GCM tag.
pub(crate) const GCM_TAG_LEN: usize = 16;

type Ctr = ctr::Ctr128BE<Aes128>;

/// A counter-mode keystream from an expanded key (no key schedule per packet).
fn ctr(aes: Aes128, iv: &[u8; 16]) -> Ctr {
    Ctr::from_core(ctr::CtrCore::inner_iv_init(aes, iv.into()))
}

/// Key derivation labels (RFC 3711 §4.3.1, §4.3.2).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Label {
    RtpEncryption = 0,
    RtpAuth = 1,
    RtpSalt = 2,
    RtcpEncryption = 3,
    RtcpAuth = 4,
    RtcpSalt = 5,
}

/// The AES-CM PRF with a key derivation rate of 0: `out` gets the
/// keystream for `label` under the master key and salt. GCM's 12-byte
/// master salt is padded with zeros to 14, as libsrtp does (RFC 7714 §11).
pub(crate) fn derive(master_key: &[u8; KEY_LEN], master_salt: &[u8], label: Label, out: &mut [u8]) {
    let mut iv = [0u8; 16];
    let n = master_salt.len().min(CM_SALT_LEN);
    iv[..n].copy_from_slice(&master_salt[..n]);
    // key_id = label || 48 zero bits of index DIV kdr, aligned right in
    // the 112-bit salt: the label lands on byte 7.
    iv[7] ^= label as u8;
    out.fill(0);
    ctr(Aes128::new(master_key.into()), &iv).apply_keystream(out);
    iv.zeroize();
}

/// AES-CM + HMAC-SHA1-80 keys of one direction of RTP or RTCP.
#[derive(Clone)]
pub(crate) struct CmKeys {
    aes: Aes128,
    salt: [u8; CM_SALT_LEN],
    mac: Hmac<Sha1>,
}

impl std::fmt::Debug for CmKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CmKeys(..)")
    }
}

impl CmKeys {
    /// Session keys from the master key and salt (`rtcp`: the RTCP labels).
    pub(crate) fn derive(master_key: &[u8; KEY_LEN], master_salt: &[u8], rtcp: bool) -> Self {
        let (le, la, ls) = if rtcp {
            (Label::RtcpEncryption, Label::RtcpAuth, Label::RtcpSalt)
        } else {
            (Label::RtpEncryption, Label::RtpAuth, Label::RtpSalt)
        };
        let mut key = [0u8; KEY_LEN];
        let mut auth = [0u8; AUTH_KEY_LEN];
        let mut salt = [0u8; CM_SALT_LEN];
        derive(master_key, master_salt, le, &mut key);
        derive(master_key, master_salt, la, &mut auth);
        derive(master_key, master_salt, ls, &mut salt);
        let keys = Self::from_session(&key, &salt, &auth);
        key.zeroize();
        auth.zeroize();
        salt.zeroize();
        keys
    }

    /// Keys given directly (test vectors give session keys).
    pub(crate) fn from_session(key: &[u8; KEY_LEN], salt: &[u8; CM_SALT_LEN], auth: &[u8]) -> Self {
        Self {
            aes: Aes128::new(key.into()),
            salt: *salt,
            mac: hmac_sha1(auth),
        }
    }

    /// XORs the keystream for `ssrc` and packet index `index` into `data`
    /// (RFC 3711 §4.1.1: IV = salt·2^16 ⊕ SSRC·2^64 ⊕ index·2^16).
    pub(crate) fn apply(&self, ssrc: u32, index: u64, data: &mut [u8]) {
        let mut iv = [0u8; 16];
        iv[..CM_SALT_LEN].copy_from_slice(&self.salt);
        for (b, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
            *b ^= s;
        }
        for (b, s) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
            *b ^= s;
        }
        ctr(self.aes.clone(), &iv).apply_keystream(data);
    }

    /// The 80-bit tag over `parts` (concatenated).
    pub(crate) fn tag(&self, parts: &[&[u8]]) -> [u8; CM_TAG_LEN] {
        let mut mac = self.mac.clone();
        for p in parts {
            mac.update(p);
        }
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; CM_TAG_LEN];
        tag.copy_from_slice(&full[..CM_TAG_LEN]);
        tag
    }

    /// Whether `tag` (the 80-bit tag or, for HMAC_SHA1_32, its first 4
    /// bytes) is the tag over `parts`, compared in constant time.
    pub(crate) fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        let full = self.tag(parts);
        // The caller cuts `tag` to the profile's length; anything else is
        // refused rather than compared on a shorter prefix.
        match full.get(..tag.len()) {
            Some(want) if tag.len() >= CM_SHORT_TAG_LEN => bool::from(want.ct_eq(tag)),
            _ => false,
        }
    }

    /// One AES block, for the keystream test vector.
    #[cfg(test)]
    pub(crate) fn block(&self, block: &mut [u8; 16]) {
        use aes::cipher::BlockEncrypt;
        self.aes.encrypt_block(block.into());
    }
}

/// HMAC-SHA1 keyed with `key` (at most 64 bytes, the block size: SRTP's are
/// 20). HMAC pads a short key with zeros to the block size, so padding it
/// here gives the same MAC through the infallible constructor.
fn hmac_sha1(key: &[u8]) -> Hmac<Sha1> {
    let mut block = [0u8; 64];
    let n = key.len().min(64);
    block[..n].copy_from_slice(&key[..n]);
    let mac = <Hmac<Sha1> as KeyInit>::new(&block.into());
    block.zeroize();
    mac
}

/// AEAD_AES_128_GCM keys of one direction of RTP or RTCP.
#[derive(Clone)]
pub(crate) struct GcmKeys {
    aead: Aes128Gcm,
    salt: [u8; GCM_SALT_LEN],
}

impl std::fmt::Debug for GcmKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GcmKeys(..)")
    }
}

impl GcmKeys {
    /// Session key and salt from the master key and salt.
    pub(crate) fn derive(master_key: &[u8; KEY_LEN], master_salt: &[u8], rtcp: bool) -> Self {
        let (le, ls) = if rtcp {
            (Label::RtcpEncryption, Label::RtcpSalt)
        } else {
            (Label::RtpEncryption, Label::RtpSalt)
        };
        let mut key = [0u8; KEY_LEN];
        let mut salt = [0u8; GCM_SALT_LEN];
        derive(master_key, master_salt, le, &mut key);
        derive(master_key, master_salt, ls, &mut salt);
        let keys = Self::from_session(&key, &salt);
        key.zeroize();
        salt.zeroize();
        keys
    }

    /// Keys given directly (test vectors give session keys).
    pub(crate) fn from_session(key: &[u8; KEY_LEN], salt: &[u8; GCM_SALT_LEN]) -> Self {
        Self {
            aead: Aes128Gcm::new(key.into()),
            salt: *salt,
        }
    }

    /// The 12-byte IV: `pad` (2 zero bytes) || SSRC || `mid` || `low`, XOR salt.
    fn iv(&self, ssrc: u32, mid: [u8; 2], low: [u8; 4]) -> [u8; GCM_SALT_LEN] {
        let mut iv = [0u8; GCM_SALT_LEN];
        iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
        iv[6..8].copy_from_slice(&mid);
        iv[8..12].copy_from_slice(&low);
        for (b, s) in iv.iter_mut().zip(self.salt) {
            *b ^= s;
        }
        iv
    }

    /// RTP IV (RFC 7714 §8.1): 00 00 || SSRC || ROC || SEQ, XOR salt.
    pub(crate) fn rtp_iv(&self, ssrc: u32, index: u64) -> [u8; GCM_SALT_LEN] {
        let b = index.to_be_bytes();
        self.iv(ssrc, [b[2], b[3]], [b[4], b[5], b[6], b[7]])
    }

    /// RTCP IV (RFC 7714 §9.1): 00 00 || SSRC || 00 00 || index, XOR salt.
    pub(crate) fn rtcp_iv(&self, ssrc: u32, index: u32) -> [u8; GCM_SALT_LEN] {
        self.iv(ssrc, [0, 0], index.to_be_bytes())
    }

    /// Encrypts `data` in place and returns the tag.
    pub(crate) fn seal(
        &self,
        iv: &[u8; GCM_SALT_LEN],
        aad: &[u8],
        data: &mut [u8],
    ) -> Option<[u8; GCM_TAG_LEN]> {
        let tag = self
            .aead
            .encrypt_in_place_detached(Nonce::from_slice(iv), aad, data)
            .ok()?;
        Some(tag.into())
    }

    /// Decrypts `data` in place if `tag` authenticates it (checked in
    /// constant time by aes-gcm); on failure `data` is left encrypted.
    pub(crate) fn open(
        &self,
        iv: &[u8; GCM_SALT_LEN],
        aad: &[u8],
        data: &mut [u8],
        tag: &[u8],
    ) -> bool {
        if tag.len() != GCM_TAG_LEN {
            return false;
        }
        self.aead
            .decrypt_in_place_detached(Nonce::from_slice(iv), aad, data, Tag::from_slice(tag))
            .is_ok()
    }
}
