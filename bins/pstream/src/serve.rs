//! `pstream serve`: options to a [`ServeConfig`], then the library's server
//! (`pstream_embed::serve`: RTMP publishes in, HLS with lighter renditions
//! out, the publisher gate, per-stream stages, keys and the disk mirror)
//! with a stats line until Ctrl-C, SIGTERM or `--duration`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use clap::Args;
use pstream_codec::Rendition;
use pstream_embed::serve::{read_keys, Keys, RelayTarget, StreamKey};
use pstream_embed::{Error, HlsServer, ServeConfig};

use crate::stats::{ProcessPeak, StatsMode, StatsPrinter};

/// Options of `pstream serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to accept RTMP publishers on, e.g. 0.0.0.0:1935.
    #[arg(long, default_value = "0.0.0.0:1935")]
    pub rtmp: SocketAddr,
    /// Address to serve HLS on, e.g. 0.0.0.0:8935 (`/stream/<name>.m3u8`).
    #[arg(long, default_value = "0.0.0.0:8935")]
    pub http: SocketAddr,
    /// Lighter renditions, comma-separated (P144p30fps16x9, P240p30fps16x9,
    /// P360p30fps16x9, P720p30fps16x9), or `none` for the source alone.
    #[arg(long, default_value = "P144p30fps16x9", value_parser = parse_renditions)]
    pub renditions: RenditionList,
    /// Target segment duration in seconds (segments end at a keyframe).
    #[arg(long, default_value_t = 2.0, value_parser = parse_segment)]
    pub segment: f64,
    /// Segments listed in each media playlist.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub window: u64,
    /// Only these streams may publish: a file with one stream per line,
    /// `KEY NAME` (the secret publish key, then the public name viewers use
    /// in /stream/NAME.m3u8), or `KEY` alone (viewers see the key; a warning
    /// says so). `#` starts a comment. Other keys are refused with
    /// NetStream.Publish.BadName.
    #[arg(long)]
    pub keys: Option<PathBuf>,
    /// Without --keys, streams live at once; a publish past it is refused.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub max_streams: u64,
    /// Also write playlists and segments below this directory
    /// (`<name>.m3u8`, `<name>/<variant>.m3u8`,
    /// `<name>/<variant>/<session>-<n>.ts`); a stream's files go when it is
    /// dropped (--keep-ended).
    #[arg(long)]
    pub hls_dir: Option<PathBuf>,
    /// Seconds an ended stream stays listed (playlists ended with
    /// EXT-X-ENDLIST) before it and its --hls-dir files are dropped; without
    /// --keys at most --max-streams ended streams are kept.
    #[arg(long, value_name = "SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub keep_ended: u64,
    /// RTMP connections open at once; more are closed on accept.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub max_connections: u64,
    /// RTMP connections open at once from one IP address; more from it are
    /// closed on accept.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub max_connections_per_ip: u64,
    /// Serve Prometheus metrics at http://ADDR/metrics (off by default; an
    /// address of its own, e.g. 127.0.0.1:9935, so it can stay private).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
    /// Relay a stream as it arrives to an RTMP/RTMPS destination (Twitch,
    /// YouTube, another server), without re-encoding: NAME=URL for the
    /// source of the stream viewers know as NAME, NAME/RENDITION=URL for one
    /// of its renditions. Repeatable; a keys file can also list relays after
    /// KEY NAME. Logs and stats show the URL's stream key as ****.
    /// (Parsed after clap, whose own errors would echo the key.)
    #[arg(long = "relay", value_name = "NAME=URL")]
    pub relays: Vec<String>,
    /// MiB each relay may queue for a slow platform before dropping its
    /// oldest tags (1 to 64).
    #[arg(long, value_name = "MIB", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub relay_queue_mib: u64,
    /// UDP port for every WebRTC (WHEP) viewer session, on --http's IP;
    /// 0 picks a free one. Viewers POST offers to /stream/<name>/whep or
    /// open the page /stream/<name>/.
    #[arg(long, default_value_t = 8189)]
    pub webrtc_port: u16,
    /// The IP named in WebRTC candidates: the server's public address
    /// (behind a NAT, forward --webrtc-port to it). Default: --http's IP,
    /// or 127.0.0.1 when that is 0.0.0.0 (viewers on this machine only).
    #[arg(long)]
    pub webrtc_ip: Option<std::net::IpAddr>,
    /// No WebRTC: no UDP port, WHEP and WHIP (/whip) answer 404.
    #[arg(long)]
    pub no_webrtc: bool,
    /// WebRTC sessions open at once over all streams; more offers get 503.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub webrtc_max_sessions: u64,
    /// WebRTC sessions open at once on one stream; more offers get 503.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub webrtc_max_per_stream: u64,
    /// Stop after this many seconds (default: run until Ctrl-C or SIGTERM).
    #[arg(long)]
    pub duration: Option<f64>,
    /// No stats line.
    #[arg(long, short)]
    pub quiet: bool,
}

/// The renditions of `--renditions`, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenditionList(pub Vec<Rendition>);

fn parse_renditions(s: &str) -> Result<RenditionList, String> {
    if s.trim() == "none" || s.trim().is_empty() {
        return Ok(RenditionList(Vec::new()));
    }
    let mut out = Vec::new();
    for name in s.split(',').map(str::trim) {
        let r: Rendition = name
            .parse()
            .map_err(|e: pstream_codec::scale::UnknownRendition| e.to_string())?;
        if !out.contains(&r) {
            out.push(r);
        }
    }
    Ok(RenditionList(out))
}

/// Parses `--relay` values; an error shows the URL with its key masked.
fn relays(specs: &[String]) -> anyhow::Result<Vec<RelayTarget>> {
    specs
        .iter()
        .map(|s| RelayTarget::parse(s).map_err(|e| anyhow::Error::new(e).context("--relay")))
        .collect()
}

fn parse_segment(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if !(0.5..=60.0).contains(&v) {
        return Err(format!(
            "segment duration {v} must be between 0.5 and 60 seconds"
        ));
    }
    Ok(v)
}

/// Reads `--keys`, naming the option in its errors.
fn keys(path: &Path) -> anyhow::Result<Vec<StreamKey>> {
    read_keys(path).map_err(|e| match e {
        Error::File { source, .. } => {
            anyhow::Error::new(source).context(format!("cannot read --keys {}", path.display()))
        }
        other => anyhow::Error::new(other).context("--keys"),
    })
}

fn config(args: &ServeArgs) -> anyhow::Result<ServeConfig> {
    Ok(ServeConfig {
        rtmp: args.rtmp.to_string(),
        http: args.http.to_string(),
        renditions: args.renditions.0.clone(),
        segment_seconds: args.segment,
        window: usize::try_from(args.window).unwrap_or(usize::MAX),
        keys: match &args.keys {
            Some(path) => Keys::Listed(keys(path)?),
            None => Keys::Any,
        },
        hls_dir: args.hls_dir.clone(),
        keep_ended: Duration::from_secs(args.keep_ended),
        max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
        max_connections_per_ip: usize::try_from(args.max_connections_per_ip).unwrap_or(usize::MAX),
        max_streams: usize::try_from(args.max_streams).unwrap_or(usize::MAX),
        metrics: args.metrics.clone(),
        relays: relays(&args.relays)?,
        relay_queue_bytes: usize::try_from(args.relay_queue_mib << 20).unwrap_or(usize::MAX),
        webrtc: (!args.no_webrtc)
            .then(|| SocketAddr::new(args.http.ip(), args.webrtc_port).to_string()),
        webrtc_ip: args.webrtc_ip,
        webrtc_max_sessions: usize::try_from(args.webrtc_max_sessions).unwrap_or(usize::MAX),
        webrtc_max_sessions_per_stream: usize::try_from(args.webrtc_max_per_stream)
            .unwrap_or(usize::MAX),
    })
}

/// Library errors in the terms of the command line.
fn cli_error(err: Error) -> anyhow::Error {
    match err {
        Error::Listen {
            service,
            addr,
            source,
        } => anyhow::Error::new(source).context(format!(
            "cannot listen on --{} {addr}",
            match service {
                "WebRTC" => "webrtc-port".to_string(),
                other => other.to_lowercase(),
            }
        )),
        Error::File {
            action: "create",
            path,
            source,
        } => anyhow::Error::new(source)
            .context(format!("cannot create --hls-dir {}", path.display())),
        other => other.into(),
    }
}

/// Runs `pstream serve` until Ctrl-C, SIGTERM or `--duration`.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = config(&args)?;
    let shutdown = crate::shutdown::install(args.duration)?;
    let mut server = HlsServer::start(&config, shutdown).map_err(cli_error)?;

    let mut printer = StatsPrinter::new(StatsMode::detect(args.quiet), "serve");
    let mut peak = ProcessPeak::default();
    let mut last = Instant::now();
    while !server.stopping() {
        thread::sleep(Duration::from_millis(50));
        if last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            peak.sample();
            let mut line = server.stats_line();
            if let Some((w, _)) = server.webrtc_stats() {
                line.push_str(&format!(
                    " | webrtc {} sessions, {} dropped datagrams",
                    w.sessions, w.dropped_datagrams
                ));
            }
            printer.show(&line);
        }
    }
    printer.finish();
    let result = server.wait();
    if !args.quiet {
        tracing::info!("serve finished: {} | {}", server.summary(), peak.line());
        if let Some((w, unsent)) = server.webrtc_stats() {
            tracing::info!(
                "webrtc: {} offers accepted, {} refused, {} connected, {} timed out, {} frames sent, {} skipped, {} Opus packets sent, {} rendition fallbacks, {} NACKs and {} key frame requests received, {} bytes sent, {} datagrams dropped, {} unsent",
                w.offers,
                w.refused,
                w.connected,
                w.timed_out,
                w.frames_sent,
                w.frames_skipped,
                w.audio_sent,
                w.fallbacks,
                w.nacks,
                w.keyframe_requests,
                w.bytes_sent,
                w.dropped_datagrams,
                unsent
            );
        }
        if let Some((w, audio_errors)) = server.whip_stats() {
            tracing::info!(
                "whip: {} offers accepted, {} refused, {} connected, {} timed out, {} video frames, {} audio packets ({} not turned into AAC), {} PLIs, {} video gaps, {} bad datagrams",
                w.offers,
                w.refused,
                w.connected,
                w.timed_out,
                w.video_frames,
                w.audio_packets,
                audio_errors,
                w.plis,
                w.video_gaps,
                w.bad_datagrams
            );
        }
    }
    Ok(result?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendition_lists_parse() {
        assert_eq!(
            parse_renditions("P144p30fps16x9,P360p30fps16x9"),
            Ok(RenditionList(vec![
                Rendition::P144p30fps16x9,
                Rendition::P360p30fps16x9
            ]))
        );
        assert_eq!(parse_renditions("none"), Ok(RenditionList(vec![])));
        assert!(parse_renditions("P100p").is_err());
    }

    #[test]
    fn keys_files_skip_comments_and_blanks() {
        let path = std::env::temp_dir().join(format!("pstream-keys-{}", std::process::id()));
        std::fs::write(&path, "# allowed\nalpha\n\n beta  viewers # second\n").expect("write");
        let keys = keys(&path).expect("keys");
        assert_eq!(
            keys.iter()
                .map(|k| (k.key.as_str(), k.name.as_str()))
                .collect::<Vec<_>>(),
            [("alpha", "alpha"), ("beta", "viewers")]
        );
        std::fs::write(&path, "# nothing\n").expect("write");
        assert!(super::keys(&path).is_err());
        std::fs::write(&path, "alpha one\nbeta one\n").expect("write");
        let dup = super::keys(&path).expect_err("a name twice");
        let line = format!("{}:2: ", path.display());
        assert!(
            format!("{dup:#}").starts_with(&format!("--keys: {line}")),
            "{dup:#}"
        );
        let _ = std::fs::remove_file(&path);
        let missing = super::keys(Path::new("/nonexistent/keys.txt")).expect_err("missing");
        assert!(format!("{missing:#}").starts_with("cannot read --keys /nonexistent/keys.txt: "));
    }
}
