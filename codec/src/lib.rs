//! Encoders and decoders behind small traits: H.264, Opus.
