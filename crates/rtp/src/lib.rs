//! Sans-IO RTP and RTCP: payloaders, depayloaders, sessions, jitter buffer.
