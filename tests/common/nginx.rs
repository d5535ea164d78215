//! nginx with Debian's RTMP module as a real RTMP server for the tests
//! that publish to one (tests/push_rtmp.rs, tests/serve_relay.rs, the
//! guest's camera in tests/v4l2_vm.rs), and waiting for
//! listeners (nginx's, `ffmpeg -listen 1`'s).

use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::{require, Proc};

/// Waits until something accepts TCP connections on `port`.
pub fn wait_listening(port: u16, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// nginx with the RTMP module on 127.0.0.1:`port`, app `live` with HLS and recording under `dir`.
pub fn start_nginx(dir: &Path, port: u16, name: &str) -> Proc {
    start_nginx_with(dir, port, name, "", "")
}

/// Like [`start_nginx`], with extra top-level config and `load_module` lines.
pub fn start_nginx_with(dir: &Path, port: u16, name: &str, modules: &str, extra: &str) -> Proc {
    require("nginx");
    let module = Path::new("/usr/lib/nginx/modules/ngx_rtmp_module.so");
    assert!(
        module.is_file(),
        "libnginx-mod-rtmp is not installed; run scripts/install-deps.sh"
    );
    for sub in ["hls", "rec", "logs"] {
        std::fs::create_dir_all(dir.join(sub)).expect("create nginx dir");
    }
    let d = dir.display();
    let conf = format!(
        "load_module {module};
{modules}
daemon off;
master_process off;
worker_processes 1;
error_log {d}/logs/error.log info;
pid {d}/logs/nginx.pid;
events {{ worker_connections 64; }}
{extra}
rtmp {{
  server {{
    listen 127.0.0.1:{port};
    chunk_size 4096;
    application live {{
      live on;
      record all;
      record_path {d}/rec;
      record_unique on;
      hls on;
      hls_path {d}/hls;
      # A fragment is cut at the first keyframe at least this long after
      # the last: just under the 2 s GOP, so that a keyframe stamped a
      # millisecond early (capture jitter) still ends a segment.
      hls_fragment 1900ms;
      hls_playlist_length 60s;
      hls_cleanup off;
    }}
  }}
}}
",
        module = module.display()
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).expect("write nginx.conf");
    // Workers drop to `nobody`, which must be able to write the output dirs.
    let _ = Command::new("chmod")
        .args(["-R", "a+rwx"])
        .arg(dir)
        .status();
    let args = vec![
        "-p".to_string(),
        dir.display().to_string(),
        "-e".to_string(),
        dir.join("logs/startup.log").display().to_string(),
        "-c".to_string(),
        conf_path.display().to_string(),
    ];
    let p = Proc::start(name, Path::new("/usr/sbin/nginx"), &args, dir);
    assert!(
        wait_listening(port, Duration::from_secs(10)),
        "nginx did not listen on {port}: {}",
        p.stderr()
    );
    p
}

/// ffmpeg's listener accepts only once, so wait for its socket without connecting:
/// a LISTEN (state 0A) entry for 127.0.0.1:`port` in /proc/net/tcp.
pub fn wait_listening_ffmpeg(port: u16) -> bool {
    let want = format!("0100007F:{port:04X}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        let listening = table.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(1) == Some(&want.as_str()) && f.get(3) == Some(&"0A")
        });
        if listening {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}
