//! The errors of the shmdata follower and writer.
//!
//! Every message starts with `shmdata:PATH`, the way the user names the
//! source or sink on the command line, so that one line is enough to act on.

use std::path::PathBuf;

use thiserror::Error;

use super::caps::CapsError;
use super::proto::ProtoError;

/// An error following or serving a shmdata path.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ShmdataError {
    /// The path exists but is not a unix socket (a regular file, a
    /// directory...): it is not a shmdata writer's, and is left alone.
    #[error("shmdata:{}: not a unix socket (a shmdata writer's path is the socket it listens on)", path.display())]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// The path is longer than a unix socket address can hold.
    #[error("shmdata:{}: path too long for a unix socket ({len} bytes, at most {max})", path.display())]
    PathTooLong {
        /// The path.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
        /// The longest path a socket address holds.
        max: usize,
    },
    /// A writer is live on this path (it answered a connection), so it is
    /// not replaced.
    #[error("shmdata:{}: another writer is live on this path; stop it or pick another path", path.display())]
    WriterLive {
        /// The path.
        path: PathBuf,
    },
    /// The writer's caps name a media type pstream cannot convert.
    #[error("shmdata:{}: cannot take the writer's caps \"{caps}\": {source}", path.display())]
    UnsupportedCaps {
        /// The path.
        path: PathBuf,
        /// The caps string as the writer sent it.
        caps: String,
        /// What is wrong with them.
        #[source]
        source: CapsError,
    },
    /// The peer on the socket does not speak shmdata.
    #[error("shmdata:{}: the peer does not speak shmdata: {source}", path.display())]
    Protocol {
        /// The path.
        path: PathBuf,
        /// What was received.
        #[source]
        source: ProtoError,
    },
    /// A socket or System V IPC call failed.
    #[error("shmdata:{}: {action}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// What was being done ("bind", "create shared memory", ...).
        action: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A frame handed to the writer does not fit the shmdata caps (a zero
    /// size, a channel count caps cannot carry, ...).
    #[error("shmdata:{}: cannot write {what}: {source}", path.display())]
    BadMedia {
        /// The path.
        path: PathBuf,
        /// "video frame" or "audio block".
        what: &'static str,
        /// Why its caps are refused.
        #[source]
        source: CapsError,
    },
    /// The follower's reading thread stopped (it panicked); no more frames come.
    #[error("shmdata:{}: the reading thread stopped", path.display())]
    ReaderStopped {
        /// The path.
        path: PathBuf,
    },
}

impl ShmdataError {
    /// An I/O error on `path` while doing `action`.
    pub(crate) fn io(path: &std::path::Path, action: &'static str, source: std::io::Error) -> Self {
        ShmdataError::Io {
            path: path.to_owned(),
            action,
            source,
        }
    }
}
