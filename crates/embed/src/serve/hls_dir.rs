//! A mirror of live HLS output on disk (`--hls-dir`), for nginx or a CDN.
//!
//! The layout matches the HTTP server's URLs under `/stream/`:
//! `<dir>/<name>.m3u8` (master), `<dir>/<name>/<variant>.m3u8` and
//! `<dir>/<name>/<variant>/<session>-<sequence>.ts`. Every file is written
//! to a temporary file of its own (a random name, created new, never
//! through a symlink) in the same directory and renamed into place, so a
//! reader never sees half a playlist or segment. Directories are opened
//! level by level with `O_NOFOLLOW` and files made, renamed and removed
//! relative to them (`openat`, `renameat`, `unlinkat`), so nothing planted
//! in the directory (a symlink where a file or a temporary file goes, a
//! symlink in place of a stream's directory, even one swapped in between
//! two writes) makes a write, or a removal, land outside it. Segments the
//! segmenter has let go of are deleted, and a dropped stream's files with
//! it ([`HlsDir::remove_stream`]). Names must be single
//! path components (stream names and variant names are `[A-Za-z0-9_-]`).

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use pstream_mux::hls::HlsEvent;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rustix::fs::{mkdirat, openat, renameat, unlinkat, AtFlags, Mode, OFlags, CWD};

/// Writes HLS events of many streams below one directory (see the module docs).
#[derive(Debug, Clone)]
pub struct HlsDir {
    root: PathBuf,
}

/// Refuses a name that is not one plain path component.
fn component(name: &str) -> io::Result<&str> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a file name"),
        ));
    }
    Ok(name)
}

/// A directory opened as it is now: with `O_NOFOLLOW`, a symlink there
/// (planted, or swapped in after any check) is refused, never followed.
fn open_dir(at: &OwnedFd, name: &str) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    openat(at, name, flags, Mode::empty()).map_err(|e| {
        let e = io::Error::from(e);
        match e.raw_os_error() {
            Some(code)
                if code == rustix::io::Errno::LOOP.raw_os_error()
                    || code == rustix::io::Errno::NOTDIR.raw_os_error() =>
            {
                io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{name} is not a directory (a symlink is not followed)"),
                )
            }
            _ => e,
        }
    })
}

/// Writes `data` to `name` in the directory `dir` through a new temporary
/// file of a random name there (created exclusively, `O_NOFOLLOW`) and a
/// rename, which replaces whatever is at `name` (a planted symlink
/// included) without following it.
fn write_file(dir: &OwnedFd, name: &str, data: &[u8]) -> io::Result<()> {
    let name = component(name)?;
    let mut rng = StdRng::from_os_rng();
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    // Something already at a random name (planted there) costs another try.
    let (tmp, file) = (0..4)
        .map(|_| {
            let tmp = format!(".{name}.{:016x}.tmp", rng.random::<u64>());
            let file = openat(dir, tmp.as_str(), flags, Mode::from_raw_mode(0o644));
            (tmp, file)
        })
        .find(|(_, f)| !matches!(f, Err(e) if *e == rustix::io::Errno::EXIST))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("no free temporary name for {name}"),
            )
        })?;
    // Only a file this call created is ever removed.
    let mut file = File::from(file?);
    let renamed = file
        .write_all(data)
        .and_then(|()| Ok(renameat(dir, tmp.as_str(), dir, name)?));
    if renamed.is_err() {
        let _ = unlinkat(dir, tmp.as_str(), AtFlags::empty());
    }
    renamed
}

/// `Ok` for a file that is not there.
fn gone(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

impl HlsDir {
    /// A mirror under `root` (created if missing).
    pub fn new(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root)?;
        Ok(Self { root })
    }

    /// The directory mirrored into.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/<parts...>` opened level by level, each a real directory
    /// (never through a symlink) and, with `create`, made when missing. The
    /// root itself is the operator's choice and is taken as it is.
    fn dir(&self, parts: &[&str], create: bool) -> io::Result<OwnedFd> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let mut fd = openat(CWD, &self.root, flags, Mode::empty())?;
        for part in parts {
            let part = component(part)?;
            fd = match open_dir(&fd, part) {
                Err(e) if create && e.kind() == io::ErrorKind::NotFound => {
                    match mkdirat(&fd, part, Mode::from_raw_mode(0o755)) {
                        Err(e) if e != rustix::io::Errno::EXIST => return Err(e.into()),
                        _ => open_dir(&fd, part)?,
                    }
                }
                other => other?,
            };
        }
        Ok(fd)
    }

    /// Acts on one event of `variant` of stream `name`; `playlist` is the
    /// variant's current media playlist.
    pub fn apply(
        &self,
        name: &str,
        variant: &str,
        event: &HlsEvent,
        playlist: &[u8],
    ) -> io::Result<()> {
        match event {
            HlsEvent::SegmentReady {
                name: seg, data, ..
            } => write_file(&self.dir(&[name, variant], true)?, seg, data),
            HlsEvent::SegmentRemoved { name: seg } => {
                let dir = match self.dir(&[name, variant], false) {
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                    other => other?,
                };
                gone(unlinkat(&dir, component(seg)?, AtFlags::empty()).map_err(io::Error::from))
            }
            HlsEvent::PlaylistUpdated => write_file(
                &self.dir(&[name], true)?,
                &format!("{variant}.m3u8"),
                playlist,
            ),
        }
    }

    /// Writes the master playlist of stream `name`.
    pub fn write_master(&self, name: &str, master: &[u8]) -> io::Result<()> {
        write_file(
            &self.dir(&[], false)?,
            &format!("{}.m3u8", component(name)?),
            master,
        )
    }

    /// Removes every file of stream `name` (its master playlist, any
    /// temporary file of it a crash left, and its directory), once the
    /// server has dropped the stream. A symlink in place of any is removed
    /// itself, never what it points to.
    pub fn remove_stream(&self, name: &str) -> io::Result<()> {
        let name = component(name)?;
        let root = self.dir(&[], false)?;
        let unlink = |at: &OwnedFd, file: &str, flags| {
            gone(unlinkat(at, file, flags).map_err(io::Error::from))
        };
        let master = format!("{name}.m3u8");
        unlink(&root, &master, AtFlags::empty())?;
        let tmp = format!(".{master}.");
        for entry in fs::read_dir(&self.root)?.filter_map(|e| e.ok()) {
            let file = entry.file_name();
            let file = file.to_string_lossy();
            if file.starts_with(&tmp) && file.ends_with(".tmp") {
                unlink(&root, &file, AtFlags::empty())?;
            }
        }
        // The stream's directory holds a directory per variant, each of
        // files; anything else in it (planted) is left, and so is the
        // directory then.
        let dir = match open_dir(&root, name) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            // A symlink (or a file) where the directory goes: remove it alone.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return unlink(&root, name, AtFlags::empty())
            }
            other => other?,
        };
        for entry in list(&dir)? {
            match open_dir(&dir, &entry) {
                Ok(variant) => {
                    for file in list(&variant)? {
                        unlink(&variant, &file, AtFlags::empty())?;
                    }
                    unlink(&dir, &entry, AtFlags::REMOVEDIR)?;
                }
                Err(_) => unlink(&dir, &entry, AtFlags::empty())?,
            }
        }
        unlink(&root, name, AtFlags::REMOVEDIR)
    }
}

/// The names in an open directory, `.` and `..` left out.
fn list(dir: &OwnedFd) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name != "." && name != ".." {
            names.push(name);
        }
    }
    Ok(names)
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

    #[test]
    fn planted_symlinks_are_never_followed_out_of_the_directory() {
        use std::os::unix::fs::symlink;
        let base =
            std::env::temp_dir().join(format!("pstream-hlsdir-links-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let (root, outside) = (base.join("hls"), base.join("outside"));
        std::fs::create_dir_all(&outside).expect("outside");
        let dir = HlsDir::new(&root).expect("dir");
        let victim = outside.join("victim.txt");
        std::fs::write(&victim, b"keep me").expect("victim");
        let ready = |name: &str| HlsEvent::SegmentReady {
            name: name.into(),
            duration: Duration::from_secs(2),
            data: Bytes::from_static(b"ts"),
        };
        // A symlink where the master playlist, a media playlist, a segment
        // or the old predictable temporary name goes: replaced, not followed.
        std::fs::create_dir_all(root.join("k/source")).expect("dirs");
        for link in [
            "k.m3u8",
            ".k.m3u8.tmp",
            "k/source.m3u8",
            "k/.source.m3u8.tmp",
            "k/source/0.ts",
            "k/source/.0.ts.tmp",
        ] {
            symlink(&victim, root.join(link)).expect("plant");
        }
        dir.write_master("k", b"#EXTM3U\nmaster").expect("master");
        dir.apply("k", "source", &HlsEvent::PlaylistUpdated, b"#EXTM3U\n")
            .expect("playlist");
        dir.apply("k", "source", &ready("0.ts"), b"")
            .expect("segment");
        assert_eq!(std::fs::read(&victim).expect("victim"), b"keep me");
        for file in ["k.m3u8", "k/source.m3u8", "k/source/0.ts"] {
            let meta = std::fs::symlink_metadata(root.join(file)).expect("written");
            assert!(meta.is_file(), "{file} is still a symlink");
        }
        // A symlink in place of a stream's directory: writes and removals refused.
        symlink(&outside, root.join("evil")).expect("plant dir");
        std::fs::create_dir_all(outside.join("source")).expect("outside dir");
        std::fs::write(outside.join("source/1.ts"), b"keep me too").expect("outside ts");
        assert!(dir.apply("evil", "source", &ready("2.ts"), b"").is_err());
        assert!(dir
            .apply("evil", "source", &HlsEvent::PlaylistUpdated, b"x")
            .is_err());
        let gone = HlsEvent::SegmentRemoved {
            name: "1.ts".into(),
        };
        assert!(dir.apply("evil", "source", &gone, b"").is_err());
        assert!(outside.join("source/1.ts").is_file());
        assert!(!outside.join("source/2.ts").exists());
        assert!(!outside.join("source.m3u8").exists());
        // Names that are not one path component are refused.
        assert!(dir.write_master("../up", b"x").is_err());
        assert!(dir.apply("k", "..", &ready("3.ts"), b"").is_err());
        // A symlink in place of a variant's directory: refused the same way.
        std::fs::create_dir_all(root.join("k2")).expect("k2");
        symlink(outside.join("source"), root.join("k2/source")).expect("plant variant dir");
        assert!(dir.apply("k2", "source", &ready("4.ts"), b"").is_err());
        assert!(!outside.join("source/4.ts").exists());
        // Removing streams removes the links, never what they point to.
        symlink(&victim, root.join("k/source/planted.ts")).expect("plant in dir");
        dir.remove_stream("k2").expect("remove k2");
        dir.remove_stream("k").expect("remove k");
        dir.remove_stream("evil").expect("remove evil");
        assert!(dir.remove_stream("..").is_err());
        assert_eq!(std::fs::read(&victim).expect("victim"), b"keep me");
        assert!(outside.join("source/1.ts").is_file());
        let left: Vec<_> = std::fs::read_dir(&root)
            .expect("list")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "{left:?}");
        let _ = std::fs::remove_dir_all(&base);
    }
}
