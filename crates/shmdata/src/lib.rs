//! shmdata in and out, in pure Rust: a follower that reads a shmdata
//! writer's frames (score's Shmdata output, GStreamer's `shmdatasink`) and a
//! writer that serves pstream's own to any follower (score's Shmdata input,
//! `shmdatasrc`, `sdflow`), both speaking libshmdata 1.3's protocol.
//!
//! # The protocol
//!
//! A writer owns three things, all named by one path:
//!
//! - a **unix stream socket** bound at the path, on which it talks to its
//!   followers;
//! - a **System V shared memory segment** under the key `ftok(path, 'n')`,
//!   holding one frame at a time at offset 0;
//! - a **System V semaphore set** of two under `ftok(path, 'm')`: number 0
//!   counts the followers that still have to read the current frame,
//!   number 1 is 1 while the writer writes.
//!
//! (`ftok` derives the keys from the socket file's inode, so a restarted
//! writer, with a new socket file, has new keys.)
//!
//! On the socket (messages in [`proto`]): on accepting a follower, the
//! writer sends a *connect* message with the segment's size and its caps
//! string (GStreamer caps, [`caps`]); the follower sends it back as its
//! acknowledgement, and from then on is notified of frames. For each frame
//! the writer:
//!
//! 1. waits until semaphore 0 is zero (every follower has released the
//!    previous frame) and sets semaphore 1;
//! 2. writes the frame into the segment (a new segment under the same key
//!    when the frame outgrows it; followers see the new size and re-attach);
//! 3. sends each follower an *update* message with the frame's size, and
//!    adds the number of followers notified to semaphore 0 (one read lock
//!    held on each follower's behalf);
//! 4. clears semaphore 1.
//!
//! A follower, on each update, waits for semaphore 1 to be zero (the *read
//! lock*), reads the frame, and decrements semaphore 0. A follower leaving
//! sends a *quit* message, which the writer acknowledges with one of its
//! own; a writer leaving removes its socket file, then sends *quit* to every
//! follower and removes its segment and semaphores.
//!
//! # What pstream does differently
//!
//! libshmdata's writer waits for every follower without a limit, so one
//! follower that stops reading stalls it and every other follower. pstream's
//! writer gives each follower one frame interval to release a frame; one that
//! has not (its notification still unread in its socket) is disconnected and
//! its release given back on its behalf, so the writer and the others go on
//! ([`writer`]). pstream's follower holds the read lock for one copy only and
//! converts outside it, on the caller's thread ([`follower`]); every wait on a
//! semaphore has a timeout, so a peer that dies holding one never hangs it.
//!
//! Video is converted to and from GStreamer's default layouts ([`pixels`]);
//! the writer publishes I420 and F32LE audio.
//!
//! The crate stands on `pstream-core` alone (no device stack, no codecs), so
//! that the spec dispatch can offer `shmdata:PATH` as a source and a sink
//! without more dependencies, and the caps and message parsers can be fuzzed
//! without building the rest.

pub mod caps;
mod error;
pub mod follower;
#[cfg(fuzzing)]
pub mod fuzzing;
pub mod media;
pub mod pixels;
pub mod proto;
mod sysv;
pub mod writer;

pub use caps::{AudioCaps, Caps, CapsError, PixelFormat, SampleFormat, VideoCaps};
pub use error::ShmdataError;
pub use follower::{FollowerCounters, FollowerEvent, FollowerOptions, ShmdataFollower, WaitReason};
pub use media::{ShmdataAudioSink, ShmdataAudioSource, ShmdataVideoSink, ShmdataVideoSource};
pub use proto::ProtoError;
pub use writer::{ShmdataWriter, WriterCounters, WriterOptions};

use std::path::Path;

use sysv::SemOp;

/// The follower's read lock: wait until the writer is not writing.
const READ_START: SemOp = SemOp::wait(1, 0);
/// The follower's release: one reader fewer to wait for (never blocking).
const READ_END: SemOp = SemOp::nowait(0, -1);

/// Longest path a unix socket address holds (`sun_path` less its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Refuses a path no unix socket can be bound or connected at.
fn check_path(path: &Path) -> Result<(), ShmdataError> {
    use std::os::unix::ffi::OsStrExt;
    let len = path.as_os_str().as_bytes().len();
    if len > MAX_SOCKET_PATH {
        return Err(ShmdataError::PathTooLong {
            path: path.to_owned(),
            len,
            max: MAX_SOCKET_PATH,
        });
    }
    if len == 0 {
        return Err(ShmdataError::io(
            path,
            "use the path",
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty path"),
        ));
    }
    Ok(())
}
