//! Media sources and sinks: test pattern, tone, Y4M, WAV, devices.
