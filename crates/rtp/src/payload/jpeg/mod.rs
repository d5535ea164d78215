//! Motion JPEG over RTP (RFC 2435), in three parts: [`jfif`] reads and
//! writes the JPEG structure, [`tables`] makes and recognises the RFC's
//! quantization tables, and [`rtp`] holds the payloader and depacketizer.
//!
//! The wire format carries no JPEG headers: only the scan data, the picture
//! size in 8-pixel units, a type (sampling; +64 when a restart interval
//! follows) and a Q value. Q 1..=99 stands for the standard tables scaled by
//! the RFC's `MakeTables`; Q 128..=255 means the tables travel in-band in the
//! first packet of each frame. Huffman tables are always the standard ones.
//!
//! The payloader checks the encoder's DQT against `MakeTables(q)`: when they
//! match (libjpeg's `jpeg_set_quality` for quality 1..=99 does) it sends Q =
//! `q` and no tables; otherwise Q = 255 and the tables in every frame.

pub mod jfif;
pub mod rtp;
pub mod tables;

pub use crate::payload::error::{JpegError, JpegUnsupported};
pub use crate::payload::types::{MAX_DIMENSION, MAX_SCAN_LEN, PT_JPEG};
pub use jfif::{parse_jpeg, JpegInfo};
pub use rtp::{
    JpegDepacketizer, JpegDepayStats, JpegPayloader, MAIN_HEADER_LEN, QTABLE_HEADER_LEN,
    RESTART_HEADER_LEN,
};
pub use tables::{make_tables, standard_q, QuantTable, Q_DYNAMIC};
