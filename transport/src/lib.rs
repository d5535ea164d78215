//! Network transports: UDP for RTP and RTCP.
