//! Checks a V4L2 memory-to-memory codec pair on this machine (a Pi's
//! bcm2835-codec: /dev/video11 encodes, /dev/video10 decodes; vicodec in
//! the V4L2 guest test, tests/v4l2_vm.rs): raw I420 pictures through the
//! stateful encoder, the coded frames through the stateful decoder, the
//! pictures written back out to compare with the input.
//!
//!   pstream-m2m-check ENCODER DECODER FOURCC WIDTH HEIGHT KEYINT IN.yuv CODED OUT.yuv
//!
//! IN.yuv is tight I420; CODED receives the coded frames, each after its
//! length (4 bytes, big-endian) and a key frame byte; OUT.yuv the decoded
//! pictures. A key frame is asked for at picture 7 (counted when the
//! device cannot). One summary line goes to stdout.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use pstream_capture::v4l2::{M2mDecoder, M2mEncoder, M2mEncoderConfig};

fn run(args: &[String]) -> Result<String, String> {
    let [enc_dev, dec_dev, fourcc, w, h, keyint, input, coded_path, output] = args else {
        return Err("usage: pstream-m2m-check ENCODER DECODER FOURCC WIDTH HEIGHT KEYINT IN.yuv CODED OUT.yuv".into());
    };
    let coded: [u8; 4] = fourcc
        .as_bytes()
        .try_into()
        .map_err(|_| format!("fourcc {fourcc:?} is not 4 bytes"))?;
    let num = |s: &str| s.parse::<u32>().map_err(|e| format!("{s}: {e}"));
    let (width, height, keyint) = (num(w)?, num(h)?, num(keyint)?);
    let raw = std::fs::read(input).map_err(|e| format!("{input}: {e}"))?;
    let frame = (width * height * 3 / 2) as usize;
    if raw.is_empty() || raw.len() % frame != 0 {
        return Err(format!(
            "{input}: {} bytes are not whole {width}x{height} I420 pictures",
            raw.len()
        ));
    }
    let config = M2mEncoderConfig {
        coded,
        width,
        height,
        fps: 30.0,
        bitrate_bps: 2_000_000,
        keyint_frames: keyint,
    };
    let mut enc = M2mEncoder::open(Path::new(enc_dev), config).map_err(|e| e.to_string())?;
    let plan = enc.controls().clone();
    let set: Vec<String> = plan
        .set
        .iter()
        .map(|c| format!("{}={}", c.name, c.meaning))
        .collect();
    println!(
        "encoder controls set: {}; missing: {}",
        set.join(", "),
        plan.missing.join(", ")
    );
    let started = Instant::now();
    let mut packets = Vec::new();
    for (i, pic) in raw.chunks_exact(frame).enumerate() {
        if i == 7 {
            enc.request_keyframe();
        }
        let out = enc
            .encode(pic, width, height, Duration::from_millis(i as u64 * 33))
            .map_err(|e| e.to_string())?;
        packets.extend(out);
    }
    packets.extend(enc.drain().map_err(|e| e.to_string())?);
    let encode_time = started.elapsed();
    let mut file = std::fs::File::create(coded_path).map_err(|e| format!("{coded_path}: {e}"))?;
    for p in &packets {
        file.write_all(&(p.data.len() as u32).to_be_bytes())
            .and_then(|_| file.write_all(&[u8::from(p.keyframe)]))
            .and_then(|_| file.write_all(&p.data))
            .map_err(|e| format!("{coded_path}: {e}"))?;
    }
    let mut dec =
        M2mDecoder::open(Path::new(dec_dev), coded, width, height).map_err(|e| e.to_string())?;
    let mut pictures = Vec::new();
    for p in &packets {
        pictures.extend(dec.decode(&p.data).map_err(|e| e.to_string())?);
    }
    pictures.extend(dec.finish().map_err(|e| e.to_string())?);
    let mut out = std::fs::File::create(output).map_err(|e| format!("{output}: {e}"))?;
    for pic in &pictures {
        out.write_all(pic).map_err(|e| format!("{output}: {e}"))?;
    }
    let keys: Vec<String> = packets
        .iter()
        .enumerate()
        .filter(|(_, p)| p.keyframe)
        .map(|(i, _)| i.to_string())
        .collect();
    let bytes: usize = packets.iter().map(|p| p.data.len()).sum();
    Ok(format!(
        "pstream-m2m-check: pictures {} coded {} bytes {bytes} keyframes [{}] keyframes-unsupported {} decoded {} size {:?} encode-ms {}",
        raw.len() / frame,
        packets.len(),
        keys.join(","),
        enc.keyframes_unsupported(),
        pictures.len(),
        dec.size(),
        encode_time.as_millis()
    ))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pstream-m2m-check: {e}");
            ExitCode::FAILURE
        }
    }
}
