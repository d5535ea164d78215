//! GStreamer peers the tests share.

use std::path::Path;
use std::time::Duration;

use super::Proc;

/// costream's GStreamer receiver (rtpbin, latency=0), video only, decoded
/// pictures counted by a fakesink.
pub fn rtpbin_receiver(base: u16, dir: &Path) -> Proc {
    let p = |o: u16| (base + o).to_string();
    let a: Vec<String> = [
        "-e", "-v", "rtpbin", "name=rtpbin", "latency=0",
        "udpsrc", "address=127.0.0.1",
        "caps=application/x-rtp,media=(string)video,clock-rate=(int)90000,encoding-name=(string)H264",
        &format!("port={}", p(0)), "!", "rtpbin.recv_rtp_sink_0",
        "rtpbin.", "!", "rtph264depay", "!", "decodebin", "!", "videoconvert",
        "!", "fakesink", "name=vsink", "silent=false", "sync=false",
        "udpsrc", "address=127.0.0.1", &format!("port={}", p(1)), "!", "rtpbin.recv_rtcp_sink_0",
        "rtpbin.send_rtcp_src_0", "!", "udpsink", "host=127.0.0.1", &format!("port={}", p(5)),
        "sync=false", "async=false",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let gst = Proc::start("rtpbin", "gst-launch-1.0".as_ref(), &a, dir);
    assert!(
        gst.wait_for_output("Setting pipeline to PLAYING", Duration::from_secs(30)),
        "the receiver did not start:\n{}",
        gst.stderr()
    );
    gst
}
