//! A mirror of live HLS output on disk (`--hls-dir`), for nginx or a CDN.
//!
//! The layout matches the HTTP server's URLs under `/stream/`:
//! `<dir>/<key>.m3u8` (master), `<dir>/<key>/<variant>.m3u8` and
//! `<dir>/<key>/<variant>/<sequence>.ts`. Every file is written to a
//! temporary name in the same directory and renamed into place, so a reader
//! never sees half a playlist or segment; segments the segmenter has let go
//! of are deleted. Keys and variant names must already be safe file names
//! (the RTMP server only accepts `[A-Za-z0-9_.-]` keys).

use std::io;
use std::path::{Path, PathBuf};

use pstream_mux::hls::HlsEvent;

/// Writes HLS events of many streams below one directory (see the module docs).
#[derive(Debug, Clone)]
pub struct HlsDir {
    root: PathBuf,
}

/// Writes `data` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)
}

impl HlsDir {
    /// A mirror under `root` (created if missing).
    pub fn new(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(Self { root })
    }

    /// The directory mirrored into.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Acts on one event of `variant` of stream `key`; `playlist` is the
    /// variant's current media playlist.
    pub fn apply(
        &self,
        key: &str,
        variant: &str,
        event: &HlsEvent,
        playlist: &[u8],
    ) -> io::Result<()> {
        let dir = self.root.join(key);
        match event {
            HlsEvent::SegmentReady { name, data, .. } => {
                write_atomic(&dir.join(variant).join(name), data)
            }
            HlsEvent::SegmentRemoved { name } => {
                match std::fs::remove_file(dir.join(variant).join(name)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                    _ => Ok(()),
                }
            }
            HlsEvent::PlaylistUpdated => {
                write_atomic(&dir.join(format!("{variant}.m3u8")), playlist)
            }
        }
    }

    /// Writes the master playlist of `key`.
    pub fn write_master(&self, key: &str, master: &[u8]) -> io::Result<()> {
        write_atomic(&self.root.join(format!("{key}.m3u8")), master)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::time::Duration;

    #[test]
    fn writes_renames_and_deletes() {
        let root = std::env::temp_dir().join(format!("pstream-hlsdir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dir = HlsDir::new(&root).expect("dir");
        let ready = HlsEvent::SegmentReady {
            name: "0.ts".into(),
            duration: Duration::from_secs(2),
            data: Bytes::from_static(b"ts"),
        };
        dir.apply("k", "source", &ready, b"").expect("segment");
        dir.apply("k", "source", &HlsEvent::PlaylistUpdated, b"#EXTM3U\n")
            .expect("playlist");
        dir.write_master("k", b"#EXTM3U\nmaster").expect("master");
        assert_eq!(
            std::fs::read(root.join("k/source/0.ts")).expect("read"),
            b"ts"
        );
        assert_eq!(
            std::fs::read(root.join("k/source.m3u8")).expect("read"),
            b"#EXTM3U\n"
        );
        assert!(root.join("k.m3u8").is_file());
        let gone = HlsEvent::SegmentRemoved {
            name: "0.ts".into(),
        };
        dir.apply("k", "source", &gone, b"").expect("remove");
        dir.apply("k", "source", &gone, b"")
            .expect("removing twice is fine");
        assert!(!root.join("k/source/0.ts").exists());
        let names: Vec<_> = std::fs::read_dir(root.join("k"))
            .expect("list")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
        let _ = std::fs::remove_dir_all(&root);
    }
}
