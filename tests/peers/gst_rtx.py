#!/usr/bin/python3
"""GStreamer rtpbin peers with retransmission (NACK + RTX), in costream's
port layout (video RTP +0, RTCP +1, the receiver's RTCP back to +5).

GStreamer 1.22's rtpbin has no RTX properties of its own, so this follows
GStreamer's own examples (tests/examples/rtp/server-rtpaux.c and
client-rtpaux.c): rtprtxsend / rtprtxreceive attached through rtpbin's
`request-aux-sender` / `request-aux-receiver` signals, `rtp-profile=avpf`,
and `do-retransmission=true` on the jitter buffer.

    gst_rtx.py recv --port-base N --seconds S   # decode H.264 from a sender
    gst_rtx.py send --port-base N --seconds S   # x264 to a receiver

Run with the system python (/usr/bin/python3, which has the gi bindings).
Prints `READY` once its sockets are bound, then one `RESULT {json}` line with the
counters: decoded pictures, the jitter buffer's stats and rtprtxreceive's
counts (recv); rtprtxsend's counts and frames sent (send).
"""

import argparse
import json
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, GObject, Gst  # noqa: E402

H264_CAPS = "application/x-rtp,media=(string)video,clock-rate=(int)90000,encoding-name=(string)H264"


def pt_map_structure(pt, rtx_pt):
    """The payload-type-map both RTX elements take: media pt -> RTX pt,
    as a guint (a Python int would be set as a gint, which they ignore)."""
    s = Gst.Structure.new_empty("application/x-rtp-pt-map")
    v = GObject.Value()
    v.init(GObject.TYPE_UINT)
    v.set_uint(rtx_pt)
    s.set_value(str(pt), v)
    return s


def aux_bin(factory, sessid, pt, rtx_pt, keep):
    """A bin around one rtprtxsend/rtprtxreceive with the pads rtpbin
    wants (src_%u / sink_%u), as the examples build it."""
    b = Gst.Bin.new(None)
    rtx = Gst.ElementFactory.make(factory, None)
    rtx.set_property("payload-type-map", pt_map_structure(pt, rtx_pt))
    b.add(rtx)
    b.add_pad(Gst.GhostPad.new("src_%u" % sessid, rtx.get_static_pad("src")))
    b.add_pad(Gst.GhostPad.new("sink_%u" % sessid, rtx.get_static_pad("sink")))
    keep.append(rtx)
    return b


def make_rtpbin(latency):
    rtpbin = Gst.ElementFactory.make("rtpbin", "rtpbin")
    rtpbin.set_property("latency", latency)
    Gst.util_set_object_arg(rtpbin, "rtp-profile", "avpf")
    return rtpbin


def link_request(src, src_pad, dst, dst_pad):
    """Links src.src_pad to dst.dst_pad, requesting pads as needed."""
    s = src.get_static_pad(src_pad) or src.request_pad_simple(src_pad)
    d = dst.get_static_pad(dst_pad) or dst.request_pad_simple(dst_pad)
    if s is None or d is None or s.link(d) != Gst.PadLinkReturn.OK:
        raise RuntimeError("cannot link %s.%s to %s.%s" % (src.get_name(), src_pad, dst.get_name(), dst_pad))


def recv(a, pipe, result):
    rtpbin = make_rtpbin(a.latency)
    rtpbin.set_property("do-retransmission", True)
    rtx_elems = []
    jitterbuffers = []
    rtpbin.connect(
        "request-aux-receiver",
        lambda _b, sessid: aux_bin("rtprtxreceive", sessid, a.pt, a.rtx_pt, rtx_elems),
    )

    def pt_map(_b, _session, pt):
        if pt == a.pt:
            return Gst.Caps.from_string(H264_CAPS + ",payload=(int)%d" % pt)
        if pt == a.rtx_pt:
            return Gst.Caps.from_string(
                "application/x-rtp,media=(string)video,clock-rate=(int)90000,"
                "encoding-name=(string)RTX,apt=(int)%d,payload=(int)%d" % (a.pt, pt)
            )
        return None

    rtpbin.connect("request-pt-map", pt_map)
    rtpbin.connect("new-jitterbuffer", lambda _b, jb, _s, _ssrc: jitterbuffers.append(jb))
    pipe.add(rtpbin)
    rtp_src = Gst.ElementFactory.make("udpsrc", "rtp_src")
    rtp_src.set_property("address", a.listen)
    rtp_src.set_property("port", a.port_base)
    rtp_src.set_property("caps", Gst.Caps.from_string(H264_CAPS))
    rtcp_src = Gst.ElementFactory.make("udpsrc", "rtcp_src")
    rtcp_src.set_property("address", a.listen)
    rtcp_src.set_property("port", a.port_base + 1)
    rtcp_sink = Gst.ElementFactory.make("udpsink", "rtcp_sink")
    rtcp_sink.set_property("host", a.peer)
    rtcp_sink.set_property("port", a.port_base + 5)
    rtcp_sink.set_property("sync", False)
    rtcp_sink.set_property("async", False)
    for e in (rtp_src, rtcp_src, rtcp_sink):
        pipe.add(e)
    link_request(rtp_src, "src", rtpbin, "recv_rtp_sink_0")
    link_request(rtcp_src, "src", rtpbin, "recv_rtcp_sink_0")
    link_request(rtpbin, "send_rtcp_src_0", rtcp_sink, "sink")

    decode = Gst.parse_bin_from_description(
        "rtph264depay ! avdec_h264 ! videoconvert ! fakesink name=vsink sync=false async=false signal-handoffs=true",
        True,
    )
    pipe.add(decode)
    decoded = {"n": 0, "caps": None}

    def handoff(_sink, _buf, pad):
        decoded["n"] += 1
        if decoded["caps"] is None and pad.get_current_caps() is not None:
            s = pad.get_current_caps().get_structure(0)
            decoded["caps"] = "%dx%d" % (s.get_value("width"), s.get_value("height"))

    decode.get_by_name("vsink").connect("handoff", handoff)
    linked = {"done": False}

    def pad_added(_b, pad):
        name = pad.get_name()
        if not name.startswith("recv_rtp_src_0_") or linked["done"]:
            return
        if not name.endswith("_%d" % a.pt):
            return
        linked["done"] = True
        pad.link(decode.get_static_pad("sink"))
        decode.sync_state_with_parent()

    rtpbin.connect("pad-added", pad_added)

    def collect():
        result["decoded"] = decoded["n"]
        result["size"] = decoded["caps"]
        if jitterbuffers:
            st = jitterbuffers[0].get_property("stats")
            for k in ("num-pushed", "num-lost", "num-late", "num-duplicates", "rtx-count", "rtx-success-count"):
                result["jb-" + k] = st.get_value(k)
            result["jb-rtx-rtt-ms"] = st.get_value("rtx-rtt") / 1e6
        for r in rtx_elems:
            for k in ("num-rtx-requests", "num-rtx-packets", "num-rtx-assoc-packets"):
                result[k] = r.get_property(k)

    return collect


def send(a, pipe, result):
    rtpbin = make_rtpbin(a.latency)
    rtx_elems = []
    rtpbin.connect(
        "request-aux-sender",
        lambda _b, sessid: aux_bin("rtprtxsend", sessid, a.pt, a.rtx_pt, rtx_elems),
    )
    pipe.add(rtpbin)
    w, h = a.size.split("x")
    frames = int(a.seconds * 30)
    enc = Gst.parse_bin_from_description(
        "videotestsrc is-live=true num-buffers=%d ! video/x-raw,width=%s,height=%s,framerate=30/1 "
        "! videoconvert ! x264enc tune=zerolatency bitrate=%d speed-preset=ultrafast key-int-max=60 "
        "! rtph264pay pt=%d config-interval=-1 mtu=1200" % (frames, w, h, a.bitrate, a.pt),
        True,
    )
    pipe.add(enc)
    rtp_sink = Gst.ElementFactory.make("udpsink", "rtp_sink")
    rtp_sink.set_property("host", a.peer)
    rtp_sink.set_property("port", a.port_base)
    rtcp_sink = Gst.ElementFactory.make("udpsink", "rtcp_sink")
    rtcp_sink.set_property("host", a.peer)
    rtcp_sink.set_property("port", a.port_base + 1)
    rtcp_sink.set_property("sync", False)
    rtcp_sink.set_property("async", False)
    rtcp_src = Gst.ElementFactory.make("udpsrc", "rtcp_src")
    rtcp_src.set_property("address", a.listen)
    rtcp_src.set_property("port", a.port_base + 5)
    for e in (rtp_sink, rtcp_sink, rtcp_src):
        pipe.add(e)
    link_request(enc, "src", rtpbin, "send_rtp_sink_0")
    link_request(rtpbin, "send_rtp_src_0", rtp_sink, "sink")
    link_request(rtpbin, "send_rtcp_src_0", rtcp_sink, "sink")
    link_request(rtcp_src, "src", rtpbin, "recv_rtcp_sink_0")
    result["frames"] = frames

    def collect():
        for r in rtx_elems:
            for k in ("num-rtx-requests", "num-rtx-packets"):
                result[k] = r.get_property(k)

    return collect


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", choices=["send", "recv"])
    ap.add_argument("--peer", default="127.0.0.1")
    ap.add_argument("--listen", default="127.0.0.1")
    ap.add_argument("--port-base", type=int, required=True)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--pt", type=int, default=96)
    ap.add_argument("--rtx-pt", type=int, default=98)
    ap.add_argument("--latency", type=int, default=200, help="rtpbin latency (ms): the repair budget")
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--bitrate", type=int, default=1000, help="x264enc kbit/s")
    a = ap.parse_args()
    Gst.init(None)
    pipe = Gst.Pipeline.new("peer")
    result = {"mode": a.mode}
    collect = (recv if a.mode == "recv" else send)(a, pipe, result)
    loop = GLib.MainLoop()
    state = {"error": None}

    def on_message(_bus, msg):
        if msg.type == Gst.MessageType.ERROR:
            err, dbg = msg.parse_error()
            state["error"] = "%s (%s)" % (err.message, dbg)
            loop.quit()
        elif msg.type == Gst.MessageType.EOS:
            # The sender's source ended: let the last retransmissions go.
            GLib.timeout_add(500, loop.quit)

    bus = pipe.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)
    # A bound for the receiver (and the sender, should EOS never come).
    GLib.timeout_add(int(a.seconds * 1000) + (0 if a.mode == "recv" else 5000), loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, 2, loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, 15, loop.quit)
    if pipe.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
        print("cannot start the pipeline", file=sys.stderr)
        return 1
    # The sockets are bound by now (udpsrc binds going to PAUSED); the
    # pipeline itself reaches PLAYING only once the first picture is in.
    print("READY", flush=True)
    loop.run()
    collect()
    pipe.set_state(Gst.State.NULL)
    if state["error"]:
        result["error"] = state["error"]
    print("RESULT " + json.dumps(result, sort_keys=True), flush=True)
    return 1 if state["error"] else 0


if __name__ == "__main__":
    sys.exit(main())
