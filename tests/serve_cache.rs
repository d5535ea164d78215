//! `pstream serve` behind two nginx `proxy_cache` edges (the README's
//! "Behind HTTP caches" configuration) while the recipe's ffmpeg publishes
//! and wrk plays 100 viewers spread over the edges for 30 s: playlists through an edge
//! are never more than one segment behind the origin's, and the origin sees
//! at most 2 requests per segment per edge, counted from its own request log.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::hls::{
    ffmpeg_publish, free_tcp_port, get_text, segment_number, segments, start_serve_env, wait_for,
};
use common::{require, serial, temp_dir, Proc};

/// The stream the test publishes.
const KEY: &str = "cached";

/// An edge's nginx configuration: the README's, with the test's ports,
/// paths and an address of its own to reach the origin from (so that the
/// origin's log tells the edges apart).
fn edge_config(dir: &Path, n: usize, port: u16, origin: u16, bind: &str) -> String {
    let d = dir.display();
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/edge{n}.pid;
error_log {d}/edge{n}.error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/edge{n}.body;
    proxy_temp_path {d}/edge{n}.proxy;
    fastcgi_temp_path {d}/edge{n}.fastcgi;
    uwsgi_temp_path {d}/edge{n}.uwsgi;
    scgi_temp_path {d}/edge{n}.scgi;
    proxy_cache_path {d}/edge{n}.cache levels=1:2 keys_zone=hls{n}:10m max_size=1g inactive=10m use_temp_path=off;
    server {{
        listen 127.0.0.1:{port};
        location /stream/ {{
            proxy_pass http://127.0.0.1:{origin};
            proxy_bind {bind};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache hls{n};
            proxy_cache_lock on;
            proxy_cache_lock_timeout 5s;
            proxy_cache_revalidate on;
            add_header X-Cache-Status $upstream_cache_status;
        }}
    }}
}}
"#
    )
}

/// A viewer for wrk: each playlist answer queues the newest segment it
/// lists, so the viewers fetch playlists and segments about one for one,
/// each connection every 200 ms.
const VIEWER_LUA: &str = r##"
local queue = {}
local playlist = "/stream/cached/source.m3u8"
delay = function() return 200 end
request = function()
  local nxt = table.remove(queue, 1)
  if nxt then return wrk.format("GET", "/stream/cached/" .. nxt) end
  return wrk.format("GET", playlist)
end
response = function(status, headers, body)
  if status == 200 and body and body:sub(1, 7) == "#EXTM3U" then
    local newest = nil
    for line in body:gmatch("[^\n]+") do
      if line:sub(-3) == ".ts" then newest = line end
    end
    if newest and #queue < 64 then table.insert(queue, newest) end
  end
end
"##;

/// The newest segment number a playlist lists, if any.
fn newest(playlist: &str) -> Option<u64> {
    segments(playlist).last().and_then(|s| segment_number(s))
}

#[test]
fn two_nginx_edges_carry_the_viewers_with_at_most_two_origin_requests_per_segment() {
    let _g = serial();
    require("nginx");
    require("wrk");
    let dir = temp_dir("serve-cache");
    // The origin logs every request (peer, path, status) at debug level.
    let s = start_serve_env(
        &dir,
        &["--renditions", "none"],
        &[(
            "PSTREAM_LOG".to_string(),
            "info,pstream_transport::http=debug".to_string(),
        )],
    );
    let binds = ["127.0.0.2", "127.0.0.3"];
    let mut edges: Vec<(u16, Proc)> = Vec::new();
    for (n, bind) in binds.iter().enumerate() {
        let port = free_tcp_port();
        let conf = dir.join(format!("edge{n}.conf"));
        std::fs::write(&conf, edge_config(&dir, n, port, s.http, bind)).expect("write conf");
        let args: Vec<String> = vec![
            "-p".into(),
            dir.display().to_string(),
            "-e".into(),
            dir.join(format!("edge{n}.stderr.log"))
                .display()
                .to_string(),
            "-c".into(),
            conf.display().to_string(),
        ];
        let proc = Proc::start(&format!("edge{n}"), Path::new("nginx"), &args, &dir);
        edges.push((port, proc));
    }
    let edges_started = Instant::now();
    let _ff = ffmpeg_publish(&dir, "ffmpeg", s.rtmp, KEY, "640x480", 40);
    let path = format!("/stream/{KEY}/source.m3u8");
    // Both edges answer with the live playlist.
    for (port, edge) in &edges {
        let ok = wait_for(Duration::from_secs(15), || {
            (segments(&get_text(*port, &path)).len() >= 2).then_some(())
        });
        assert!(
            ok.is_some(),
            "edge on {port} serves no playlist: {}\nserve: {}",
            edge.stderr(),
            s.proc.stderr()
        );
    }

    // 100 viewers for 30 s, 50 on each edge.
    let script = dir.join("viewer.lua");
    std::fs::write(&script, VIEWER_LUA).expect("write viewer.lua");
    let mut viewers: Vec<Proc> = edges
        .iter()
        .enumerate()
        .map(|(n, (port, _))| {
            let args: Vec<String> = vec![
                "-t1".into(),
                "-c50".into(),
                "-d30s".into(),
                "--timeout".into(),
                "5s".into(),
                "-s".into(),
                script.display().to_string(),
                format!("http://127.0.0.1:{port}"),
            ];
            Proc::start(&format!("wrk{n}"), Path::new("wrk"), &args, &dir)
        })
        .collect();

    // Meanwhile, what a viewer gets through each edge against the origin.
    let started = Instant::now();
    let mut samples = 0;
    let mut worst_lag = 0i64;
    while started.elapsed() < Duration::from_secs(30) {
        for (port, _) in &edges {
            let through = get_text(*port, &path);
            let origin = get_text(s.http, &path);
            let (Some(e), Some(o)) = (newest(&through), newest(&origin)) else {
                panic!("no segments: edge {port}:\n{through}\norigin:\n{origin}");
            };
            let lag = o as i64 - e as i64;
            worst_lag = worst_lag.max(lag);
            assert!(
                lag <= 1,
                "edge {port} is {lag} segments behind: {e} vs {o}\n{through}\n{origin}"
            );
            samples += 1;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let mut requests = 0u64;
    for (n, wrk) in viewers.iter_mut().enumerate() {
        assert_eq!(
            wrk.wait(Duration::from_secs(15)),
            Some(0),
            "wrk {n}: {}",
            wrk.stderr()
        );
        let out = wrk.stdout();
        println!("wrk {n}:\n{out}");
        assert!(!out.contains("Non-2xx"), "wrk {n}: {out}");
        let total = out
            .lines()
            .find_map(|l| l.trim().split_once(" requests in "))
            .and_then(|(n, _)| n.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no request count: {out}"));
        requests += total;
    }

    // The origin's own log: requests per (edge, segment).
    let edge_secs = edges_started.elapsed().as_secs_f64();
    let log = s.proc.stderr();
    let mut per_segment: HashMap<(String, String), u64> = HashMap::new();
    let mut playlists: HashMap<String, u64> = HashMap::new();
    for line in log.lines().filter(|l| l.contains("http request")) {
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .map(|v| v.trim_matches('"').to_string())
        };
        let (Some(peer), Some(path)) = (field("peer="), field("path=")) else {
            continue;
        };
        let ip = peer
            .rsplit_once(':')
            .map_or(peer.clone(), |(ip, _)| ip.to_string());
        if path.ends_with(".ts") {
            *per_segment.entry((ip, path)).or_default() += 1;
        } else {
            *playlists.entry(ip).or_default() += 1;
        }
    }
    let origin_segments: u64 = per_segment.values().sum();
    println!(
        "{requests} viewer requests over 30 s; {samples} playlist samples, worst lag {worst_lag}; \
         origin: {origin_segments} segment requests for {} (edge, segment) pairs, \
         playlist requests by peer over {edge_secs:.1} s {playlists:?}",
        per_segment.len()
    );
    for bind in binds {
        assert!(
            per_segment.keys().any(|(ip, _)| ip == bind),
            "no segment request from the edge at {bind}: {per_segment:?}"
        );
        // Each edge keeps a playlist for up to half a segment (max-age=1):
        // a few revalidations a second, not one per viewer request.
        let asked = playlists.get(bind).copied().unwrap_or(0);
        assert!(
            (asked as f64) < 5.0 * edge_secs,
            "the edge at {bind} asked for playlists {asked} times in {edge_secs:.1} s"
        );
    }
    let worst = per_segment.iter().max_by_key(|(_, n)| **n);
    assert!(
        worst.is_some_and(|(_, n)| *n <= 2),
        "an edge asked the origin for a segment more than twice: {worst:?}"
    );
    assert!(requests >= 2000, "viewers made only {requests} requests");
    assert!(
        origin_segments * 20 < requests,
        "the edges did not carry the load: {origin_segments} of {requests}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
