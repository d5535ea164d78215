//! Hostile clients for the soak in `benches/hostile_soak.sh`: each attack runs
//! in its own process, bounded in time, and prints one `key=value` summary
//! line that the script checks.
//!
//! Usage: `hostile ATTACK ARGS... SECONDS`; see [`usage`] for the list. Every
//! attack only talks to loopback addresses given on its command line.

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pstream_rtmp::{PublishSession, RtmpUrl, SessionEvent};

/// What a failed attack setup says (the attack itself never fails: the
/// server's answers are what the summary reports).
type Res<T> = Result<T, String>;

fn usage() -> &'static str {
    "usage: hostile ATTACK ARGS... SECONDS
  chunk-flood RTMP_ADDR SECONDS        new chunk stream ids, then 1-byte type-3 headers, reconnecting
  half-handshakes RTMP_ADDR N SECONDS  N connections from this address that never finish the handshake
  amplify RTMP_ADDR KEY SECONDS        huge SPS/PPS, then 11-byte keyframes
  frozen RTMP_ADDR KEY SECONDS         keyframe-less video at one timestamp, then a 2^31 ms jump
  many-keys RTMP_ADDR SECONDS          publishes under ever new keys, holding them
  steal RTMP_ADDR NAME SECONDS         publishes under the name viewers see
  viewer HTTP_ADDR PATH SECONDS        polls a playlist every 200 ms, fetches every new segment
  pli-peer LISTEN_RTP SEND_RTCP SECONDS  a peer counting IDRs while PLIs come every 2 ms,
                                       first from 127.0.0.2, then from the peer's address
  rogue-ingest LISTEN SECONDS          an RTMP server answering with malformed commands"
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["chunk-flood", addr, secs] => chunk_flood(addr, secs),
        ["half-handshakes", addr, n, secs] => half_handshakes(addr, n, secs),
        ["amplify", addr, key, secs] => amplify(addr, key, secs),
        ["frozen", addr, key, secs] => frozen(addr, key, secs),
        ["many-keys", addr, secs] => many_keys(addr, secs),
        ["steal", addr, name, secs] => steal(addr, name, secs),
        ["viewer", addr, path, secs] => viewer(addr, path, secs),
        ["pli-peer", rtp, rtcp, secs] => pli_peer(rtp, rtcp, secs),
        ["rogue-ingest", listen, secs] => rogue_ingest(listen, secs),
        _ => Err(usage().to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hostile: {e}");
            ExitCode::from(2)
        }
    }
}

fn secs(s: &str) -> Res<Duration> {
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0 && *v < 3600.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("bad duration {s:?}"))
}

fn addr(s: &str) -> Res<SocketAddr> {
    s.parse().map_err(|e| format!("bad address {s:?}: {e}"))
}

/// A TCP connection to `to`, from the address in `HOSTILE_FROM` if set
/// (attackers come from their own loopback addresses, as from other hosts).
fn connect(to: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    let Some(from) = std::env::var("HOSTILE_FROM")
        .ok()
        .and_then(|f| f.parse::<std::net::IpAddr>().ok())
    else {
        return TcpStream::connect_timeout(&to, timeout);
    };
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(to),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    sock.bind(&SocketAddr::new(from, 0).into())?;
    sock.connect_timeout(&to.into(), timeout)?;
    Ok(sock.into())
}

/// True when the error only means "nothing yet".
fn idle(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// A raw RTMP handshake (C0+C1, then C2 echoing S1): true once done.
fn handshake(sock: &mut TcpStream) -> bool {
    let mut hello = vec![3u8];
    hello.extend((0..1536u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8));
    if sock.write_all(&hello).is_err() {
        return false;
    }
    let mut s = vec![0u8; 1 + 1536 * 2];
    if sock.read_exact(&mut s).is_err() {
        return false;
    }
    sock.write_all(&s[1..1537]).is_ok()
}

/// Opens ever new chunk stream ids (type-0 headers, messages left unfinished),
/// then repeats one-byte type-3 headers; reconnects whenever cut off.
fn chunk_flood(a: &str, s: &str) -> Res<()> {
    let (a, dur) = (addr(a)?, secs(s)?);
    let deadline = Instant::now() + dur;
    let (mut conns, mut cut, mut bytes) = (0u64, 0u64, 0u64);
    while Instant::now() < deadline {
        let Ok(mut sock) = connect(a, Duration::from_secs(1)) else {
            cut += 1;
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        let _ = sock.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = sock.set_write_timeout(Some(Duration::from_secs(2)));
        conns += 1;
        if !handshake(&mut sock) {
            cut += 1;
            continue;
        }
        let mut burst = Vec::with_capacity(1 << 20);
        // 3-byte basic headers: csid = 64 + b1 + 256 * b2, up to 65599.
        for id in 0..60_000u32 {
            burst.extend([0x01, (id & 0xff) as u8, (id >> 8) as u8]);
            // Type 0: timestamp, length 1000 (more than one 128-byte chunk),
            // type 9, stream 1; then one chunk of payload.
            burst.extend([0, 0, 0, 0, 0x03, 0xe8, 9, 1, 0, 0, 0]);
            burst.extend([0x17; 128]);
        }
        // One-byte type-3 headers on a low id, each with a 128-byte chunk.
        for _ in 0..4096 {
            burst.push(0xc3);
            burst.extend([0x27; 128]);
        }
        let mut alive = true;
        while alive && Instant::now() < deadline {
            for piece in burst.chunks(64 * 1024) {
                match sock.write_all(piece) {
                    Ok(()) => bytes += piece.len() as u64,
                    Err(e) if idle(&e) => {}
                    Err(_) => {
                        alive = false;
                        cut += 1;
                        break;
                    }
                }
                if Instant::now() >= deadline {
                    break;
                }
            }
        }
    }
    println!("chunk-flood connections={conns} cut={cut} bytes={bytes}");
    Ok(())
}

/// Keeps `n` connections that sent half a handshake; replaces each one the
/// server closes. Reports how long the server let them live.
fn half_handshakes(a: &str, n: &str, s: &str) -> Res<()> {
    let (a, dur) = (addr(a)?, secs(s)?);
    let n: usize = n.parse().map_err(|_| format!("bad count {n:?}"))?;
    let deadline = Instant::now() + dur;
    let mut open: Vec<(TcpStream, Instant)> = Vec::new();
    let (mut opened, mut closed, mut refused) = (0u64, 0u64, 0u64);
    let mut longest = Duration::ZERO;
    while Instant::now() < deadline {
        while open.len() < n && Instant::now() < deadline {
            match connect(a, Duration::from_millis(500)) {
                Ok(mut c) => {
                    let _ = c.write_all(&[3u8; 700]);
                    let _ = c.set_nonblocking(true);
                    opened += 1;
                    open.push((c, Instant::now()));
                }
                Err(_) => {
                    refused += 1;
                    break;
                }
            }
        }
        open.retain_mut(|(c, since)| {
            let gone = matches!(c.read(&mut [0u8; 64]), Ok(0))
                || matches!(c.read(&mut [0u8; 1]), Err(ref e) if !idle(e));
            if gone {
                closed += 1;
                longest = longest.max(since.elapsed());
            }
            !gone
        });
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "half-handshakes opened={opened} closed={closed} refused={refused} longest_ms={}",
        longest.as_millis()
    );
    Ok(())
}

/// A publish set up over a raw socket; `None` if the server refused it.
fn publish(a: SocketAddr, key: &str) -> Option<(TcpStream, PublishSession)> {
    let url = RtmpUrl::parse(&format!("rtmp://{a}/live/{key}")).ok()?;
    let mut session = PublishSession::new(url);
    let mut sock = connect(a, Duration::from_secs(2)).ok()?;
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .ok()?;
    sock.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    session.start().ok()?;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = vec![0u8; 65536];
    while !session.is_live() {
        if Instant::now() >= deadline {
            return None;
        }
        while let Some(out) = session.poll_transmit() {
            sock.write_all(&out).ok()?;
        }
        match sock.read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => session.handle_input(&buf[..n]).ok()?,
            Err(e) if idle(&e) => {}
            Err(_) => return None,
        }
        while let Some(ev) = session.poll_event() {
            if ev != SessionEvent::Live {
                return None;
            }
        }
    }
    Some((sock, session))
}

/// Sends one media message; false once the server has closed.
fn send(sock: &mut TcpStream, session: &mut PublishSession, ty: u8, ts: u32, data: &[u8]) -> bool {
    if session
        .send_media(ty, ts, &Bytes::copy_from_slice(data))
        .is_err()
    {
        return false;
    }
    while let Some(out) = session.poll_transmit() {
        match sock.write_all(&out) {
            Ok(()) => {}
            Err(e) if idle(&e) => {}
            Err(_) => return false,
        }
    }
    // Drain what the server says (acks); a close shows as 0.
    let _ = sock.set_nonblocking(true);
    let mut buf = [0u8; 4096];
    let open = loop {
        match sock.read(&mut buf) {
            Ok(0) => break false,
            Ok(_) => continue,
            Err(e) if idle(&e) => break true,
            Err(_) => break false,
        }
    };
    let _ = sock.set_nonblocking(false);
    open
}

/// An AVC sequence header (FLV video tag body) with the given SPS and PPS.
fn avc_sequence_header(sps: &[Vec<u8>], pps: &[Vec<u8>]) -> Vec<u8> {
    let mut v = vec![0x17, 0, 0, 0, 0, 1, 0x42, 0xc0, 0x1e, 0xff];
    v.push(0xe0 | sps.len() as u8);
    for s in sps {
        v.extend((s.len() as u16).to_be_bytes());
        v.extend(s);
    }
    v.push(pps.len() as u8);
    for p in pps {
        v.extend((p.len() as u16).to_be_bytes());
        v.extend(p);
    }
    v
}

fn small_parameter_sets() -> Vec<u8> {
    avc_sequence_header(&[vec![0x67, 0x42, 0xc0, 0x1e]], &[vec![0x68, 0xce, 0x3c]])
}

/// Republishes a sequence header of 31 SPS + 255 PPS of 60,000 bytes (about
/// 17 MB, past what one RTMP message may carry in some servers), then sends
/// tiny keyframe tags that lack them.
fn amplify(a: &str, key: &str, s: &str) -> Res<()> {
    let (a, dur) = (addr(a)?, secs(s)?);
    let deadline = Instant::now() + dur;
    let (mut sessions, mut refused, mut keyframes) = (0u64, 0u64, 0u64);
    // Stays below the 16 MiB an RTMP message length can say: 31 SPS + 100 PPS.
    let big = avc_sequence_header(
        &vec![vec![0x67; 60_000]; 31],
        &vec![vec![0x68; 60_000]; 100],
    );
    while Instant::now() < deadline {
        let Some((mut sock, mut session)) = publish(a, key) else {
            refused += 1;
            std::thread::sleep(Duration::from_millis(200));
            continue;
        };
        sessions += 1;
        let mut ts = 0u32;
        if !send(&mut sock, &mut session, 9, ts, &big) {
            continue;
        }
        while Instant::now() < deadline {
            ts += 33;
            let tag = [0x17, 1, 0, 0, 0, 0, 0, 0, 2, 0x65, 0x88];
            if !send(&mut sock, &mut session, 9, ts, &tag) {
                break;
            }
            keyframes += 1;
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    println!("amplify sessions={sessions} refused={refused} keyframes={keyframes}");
    Ok(())
}

/// Keyframe-less 64 KiB video tags at one frozen timestamp at about 8 MB/s,
/// then a jump of 2^31 ms and a step back, reconnecting when cut off.
fn frozen(a: &str, key: &str, s: &str) -> Res<()> {
    let (a, dur) = (addr(a)?, secs(s)?);
    let deadline = Instant::now() + dur;
    let (mut sessions, mut refused, mut bytes) = (0u64, 0u64, 0u64);
    let mut inter = vec![0x27, 1, 0, 0, 0, 0, 0, 0xff, 0xf0, 0x41];
    inter.resize(65_536, 0x9a);
    let len = (inter.len() - 9) as u32;
    inter[5..9].copy_from_slice(&len.to_be_bytes());
    while Instant::now() < deadline {
        let Some((mut sock, mut session)) = publish(a, key) else {
            refused += 1;
            std::thread::sleep(Duration::from_millis(200));
            continue;
        };
        sessions += 1;
        if !send(&mut sock, &mut session, 9, 1000, &small_parameter_sets()) {
            continue;
        }
        let mut key_tag = vec![0x17, 1, 0, 0, 0, 0, 0, 0, 2, 0x65, 0x88];
        key_tag[5..9].copy_from_slice(&2u32.to_be_bytes());
        let _ = send(&mut sock, &mut session, 9, 1000, &key_tag);
        let mut n = 0u64;
        let mut alive = true;
        while alive && Instant::now() < deadline {
            // Frozen for a while, then 2^31 ms ahead, then back again.
            let ts = match (n / 200) % 3 {
                0 => 1000,
                1 => 1000 + (1u32 << 31),
                _ => 500,
            };
            alive = send(&mut sock, &mut session, 9, ts, &inter);
            bytes += inter.len() as u64;
            n += 1;
            std::thread::sleep(Duration::from_millis(8));
        }
    }
    println!("frozen sessions={sessions} refused={refused} bytes={bytes}");
    Ok(())
}

/// Publishes under ever new keys and keeps every accepted publish alive
/// (a keyframe each half second): a server without a cap on live streams
/// holds them all.
fn many_keys(a: &str, s: &str) -> Res<()> {
    let (a, dur) = (addr(a)?, secs(s)?);
    let deadline = Instant::now() + dur;
    let (mut accepted, mut refused, mut closed) = (0u64, 0u64, 0u64);
    let mut held: Vec<(TcpStream, PublishSession, u32)> = Vec::new();
    let mut held_max = 0usize;
    let keyframe = [0x17, 1, 0, 0, 0, 0, 0, 0, 2, 0x65, 0x88];
    let mut last_beat = Instant::now();
    let mut i = 0u64;
    while Instant::now() < deadline {
        i += 1;
        let key = format!("k{}x{i}", std::process::id());
        match publish(a, &key) {
            Some((mut sock, mut session)) => {
                accepted += 1;
                if send(&mut sock, &mut session, 9, 0, &small_parameter_sets())
                    && send(&mut sock, &mut session, 9, 0, &keyframe)
                {
                    held.push((sock, session, 0));
                } else {
                    closed += 1;
                }
            }
            None => refused += 1,
        }
        if last_beat.elapsed() >= Duration::from_millis(500) {
            last_beat = Instant::now();
            let before = held.len();
            held.retain_mut(|(sock, session, ts)| {
                *ts += 500;
                send(sock, session, 9, *ts, &keyframe)
            });
            closed += (before - held.len()) as u64;
        }
        held_max = held_max.max(held.len());
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("many-keys accepted={accepted} refused={refused} closed={closed} held_max={held_max}");
    Ok(())
}

/// Tries to publish under the public name viewers use.
fn steal(a: &str, name: &str, s: &str) -> Res<()> {
    let (a, dur) = (addr(a)?, secs(s)?);
    let deadline = Instant::now() + dur;
    let (mut accepted, mut refused) = (0u64, 0u64);
    while Instant::now() < deadline {
        match publish(a, name) {
            Some(_) => accepted += 1,
            None => refused += 1,
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    println!("steal accepted={accepted} refused={refused}");
    Ok(())
}

/// One HTTP/1.1 GET: status and body, within 5 s.
fn get(a: SocketAddr, path: &str) -> Option<(u16, Vec<u8>)> {
    let mut sock = TcpStream::connect_timeout(&a, Duration::from_secs(5)).ok()?;
    sock.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        sock,
        "GET {path} HTTP/1.1\r\nHost: {a}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    sock.take(64 << 20).read_to_end(&mut raw).ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body)?;
    }
    Some((status, body))
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&b[..eol]).ok()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.extend(b.get(eol + 2..eol + 2 + size)?);
        b = b.get(eol + 4 + size..)?;
    }
}

/// Polls a media playlist, fetches every segment once, and reports missed
/// media sequence numbers and the slowest playlist answer.
fn viewer(a: &str, path: &str, s: &str) -> Res<()> {
    let (a, dur) = (addr(a)?, secs(s)?);
    let deadline = Instant::now() + dur;
    let base = path.rsplit_once('/').map_or("", |(b, _)| b).to_owned();
    let mut seen = BTreeSet::new();
    let (mut polls, mut failed, mut fetched, mut bad_segments) = (0u64, 0u64, 0u64, 0u64);
    let mut slowest = Duration::ZERO;
    let mut over_half_second = 0u64;
    while Instant::now() < deadline {
        let t = Instant::now();
        let answer = get(a, path);
        let took = t.elapsed();
        polls += 1;
        slowest = slowest.max(took);
        if took > Duration::from_millis(500) {
            over_half_second += 1;
        }
        match answer {
            Some((200, body)) => {
                let text = String::from_utf8_lossy(&body);
                let first: u64 = text
                    .lines()
                    .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                let uris = text
                    .lines()
                    .filter(|l| !l.is_empty() && !l.starts_with('#'));
                for (seq, line) in (first..).zip(uris) {
                    if seen.insert(seq) {
                        let uri = if line.starts_with('/') {
                            line.to_owned()
                        } else {
                            format!("{base}/{line}")
                        };
                        match get(a, &uri) {
                            Some((200, b)) if !b.is_empty() => fetched += 1,
                            _ => bad_segments += 1,
                        }
                    }
                }
            }
            _ => failed += 1,
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let missed = match (seen.first(), seen.last()) {
        (Some(lo), Some(hi)) => (hi - lo + 1) - seen.len() as u64,
        _ => 0,
    };
    println!(
        "viewer polls={polls} failed={failed} segments={fetched} bad_segments={bad_segments} missed={missed} slowest_ms={} over_500ms={over_half_second}",
        slowest.as_millis()
    );
    Ok(())
}

/// The start of an IDR picture in an H.264 RTP payload (RFC 6184), if this packet has one.
fn starts_idr(payload: &[u8]) -> bool {
    match payload.first().map(|b| b & 0x1f) {
        Some(5) => true,
        // FU-A with the start bit.
        Some(28) => payload
            .get(1)
            .is_some_and(|h| h & 0x80 != 0 && h & 0x1f == 5),
        // STAP-A: any aggregated NAL that is an IDR slice.
        Some(24) => {
            let mut rest = &payload[1..];
            while rest.len() > 2 {
                let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                if rest.get(2).is_some_and(|n| n & 0x1f == 5) {
                    return true;
                }
                rest = rest.get(2 + len..).unwrap_or(&[]);
            }
            false
        }
        _ => false,
    }
}

/// A compound RTCP packet: an empty receiver report, then a PLI for `media`.
fn pli(sender: u32, media: u32) -> Vec<u8> {
    let mut p = vec![0x80, 201, 0, 1];
    p.extend(sender.to_be_bytes());
    p.extend([0x81, 206, 0, 2]);
    p.extend(sender.to_be_bytes());
    p.extend(media.to_be_bytes());
    p
}

/// The peer a `pstream send` streams to: receives its video RTP and counts
/// IDR pictures while PLIs arrive every 2 ms, in the first half of the run
/// from another address (127.0.0.2, spoofed), in the second from the peer's
/// own address.
fn pli_peer(rtp: &str, rtcp: &str, s: &str) -> Res<()> {
    let (rtp, rtcp, dur) = (addr(rtp)?, addr(rtcp)?, secs(s)?);
    let sock = UdpSocket::bind(rtp).map_err(|e| format!("bind {rtp}: {e}"))?;
    let spoof = UdpSocket::bind("127.0.0.2:0").map_err(|e| format!("bind 127.0.0.2: {e}"))?;
    sock.set_read_timeout(Some(Duration::from_millis(2)))
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let half = start + dur / 2;
    let deadline = start + dur;
    let mut buf = [0u8; 2048];
    let (mut packets, mut plis) = (0u64, 0u64);
    // IDRs seen while the spoofed PLIs ran, and while the peer's ran.
    let mut idrs = [0u64; 2];
    let mut ssrc = None;
    while Instant::now() < deadline {
        let phase = usize::from(Instant::now() >= half);
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            if n >= 12 && buf[0] >> 6 == 2 {
                packets += 1;
                ssrc = Some(u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]));
                let cc = usize::from(buf[0] & 0x0f);
                let mut off = 12 + 4 * cc;
                if buf[0] & 0x10 != 0 && n >= off + 4 {
                    off += 4 + 4 * usize::from(u16::from_be_bytes([buf[off + 2], buf[off + 3]]));
                }
                if off < n && starts_idr(&buf[off..n]) {
                    idrs[phase] += 1;
                }
            }
        }
        if let Some(media) = ssrc {
            let from = if phase == 0 { &spoof } else { &sock };
            if from.send_to(&pli(0x5eed_0001, media), rtcp).is_ok() {
                plis += 1;
            }
        }
    }
    println!(
        "pli-peer packets={packets} plis={plis} idrs_spoofed={} idrs_peer={} seconds_each={:.1}",
        idrs[0],
        idrs[1],
        dur.as_secs_f64() / 2.0
    );
    Ok(())
}

/// One AMF0 command message in a type-0 chunk on chunk stream 3 (the body is
/// written as it is, so it can be malformed).
fn command_chunk(body: &[u8]) -> Vec<u8> {
    let mut c = vec![0x03, 0, 0, 0];
    c.extend(&(body.len() as u32).to_be_bytes()[1..]);
    c.extend([20, 0, 0, 0, 0]);
    for (i, part) in body.chunks(128).enumerate() {
        if i > 0 {
            c.push(0xc3);
        }
        c.extend(part);
    }
    c
}

/// An RTMP ingest that completes the handshake and then answers with, in
/// turn: a `_result` of fewer than three values, an AMF object nested 100,000
/// deep, and a chunk that announces 16 MiB and stalls.
fn rogue_ingest(listen: &str, s: &str) -> Res<()> {
    let (listen, dur) = (addr(listen)?, secs(s)?);
    let server = TcpListener::bind(listen).map_err(|e| format!("bind {listen}: {e}"))?;
    server.set_nonblocking(true).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + dur;
    let (mut conns, mut served) = (0u64, 0u64);
    while Instant::now() < deadline {
        let mut sock = match server.accept() {
            Ok((sock, _)) => sock,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        conns += 1;
        let _ = sock.set_nonblocking(false);
        let _ = sock.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = sock.set_write_timeout(Some(Duration::from_secs(2)));
        let mut c0c1 = vec![0u8; 1537];
        if sock.read_exact(&mut c0c1).is_err() {
            continue;
        }
        let mut s012 = vec![3u8];
        s012.extend(vec![0u8; 1536]);
        s012.extend(&c0c1[1..]);
        let mut c2 = vec![0u8; 1536];
        if sock.write_all(&s012).is_err() || sock.read_exact(&mut c2).is_err() {
            continue;
        }
        // Let the client's connect arrive, then answer it badly.
        let _ = sock.read(&mut [0u8; 4096]);
        let reply = match conns % 3 {
            // `_result` with only its name: fewer than three values.
            1 => command_chunk(&[0x02, 0, 7, b'_', b'r', b'e', b's', b'u', b'l', b't']),
            // `_result`, 1, then an object nested 100,000 deep.
            2 => {
                let mut b = vec![0x02, 0, 7];
                b.extend(b"_result");
                b.push(0);
                b.extend(1.0f64.to_be_bytes());
                for _ in 0..100_000 {
                    b.extend([0x03, 0, 1, b'a']);
                }
                command_chunk(&b)
            }
            // A 16 MiB message, 100 bytes of it, then silence.
            _ => {
                let mut c = vec![0x03, 0, 0, 0, 0xff, 0xff, 0xff, 20, 0, 0, 0, 0];
                c.extend([0u8; 100]);
                c
            }
        };
        if sock.write_all(&reply).is_ok() {
            served += 1;
        }
        // Hold the connection a while, as a stalled server would.
        let hold = Instant::now() + Duration::from_secs(3);
        while Instant::now() < hold.min(deadline) {
            if matches!(sock.read(&mut [0u8; 4096]), Ok(0)) {
                break;
            }
        }
    }
    println!("rogue-ingest connections={conns} malformed_replies={served}");
    Ok(())
}
