//! Container formats: FLV, MPEG-TS, HLS playlists, Y4M, WAV.
//!
//! - [`flv`]: [`FlvMuxer`] turns [`pstream_core::EncodedUnit`]s (H.264
//!   Annex-B, raw AAC) into FLV tags: `onMetaData`, the AVC and AAC sequence
//!   headers, then length-prefixed NAL units and raw AAC frames with
//!   millisecond timestamps that never go backwards.
//! - [`flv_demux`]: [`FlvDemuxer`] turns FLV tag bodies received over RTMP
//!   back into units (AVCC to Annex B, AAC sequence header to config).
//! - [`interleave`]: [`Interleaver`] merges the audio and video unit streams
//!   into capture-time order before they reach a muxer.
//! - [`hls`], [`ts`]: live HLS over MPEG-TS (the segmenter, media and
//!   master playlists); the server that holds live streams and mirrors them
//!   to disk is `pstream_embed::serve`.
//! - [`amf0`]: the few AMF0 encoders the metadata needs.
//! - [`y4m`], [`wav`]: YUV4MPEG2 and RIFF/WAVE readers and writers, and the
//!   paced file sources and sinks (`y4m:PATH`, `wav:PATH`) implementing
//!   pstream-core's [`VideoSource`](pstream_core::VideoSource) family of
//!   traits; their errors are [`FileError`].

pub mod amf0;
pub mod error;
pub mod flv;
pub mod flv_demux;
#[cfg(fuzzing)]
pub mod fuzzing;
pub mod hls;
pub mod interleave;
pub mod ts;
pub mod wav;
pub mod y4m;

pub use error::{FileError, MuxError};
pub use flv::{AudioInfo, FlvMuxer, FlvTag, StreamInfo, TagKind, VideoInfo};
pub use flv_demux::{DemuxError, FlvDemuxer};
pub use hls::{HlsConfig, HlsError, HlsEvent, HlsSegmenter};
pub use interleave::Interleaver;
pub use ts::{AudioSpecificConfig, TsError, TsMuxer, TsStreams};
pub use wav::{WavReader, WavSink, WavSource};
pub use y4m::{Y4mReader, Y4mSink, Y4mSource};
