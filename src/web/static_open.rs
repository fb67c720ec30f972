//! Opening a static file safely under its root, and the cache of file
//! versions (content hashes) behind ETags and `static_url`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorKind};

/// Why a path was refused: the status to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// 403: outside the root, or not a regular file.
    Forbidden,
    /// 404: no such file.
    NotFound,
}

/// A static root: its canonical path, and (on Linux) an open handle on it
/// for `openat2`.
pub(crate) struct Root {
    canonical: PathBuf,
    #[cfg(target_os = "linux")]
    dir: File,
    /// The path as configured, and the (device, inode) it led to.
    configured: PathBuf,
    id: (u64, u64),
    /// When it was last checked to lead there still.
    checked: Cell<Instant>,
}

/// How often a root is checked for having been replaced by another
/// directory of the same name (a deploy that swaps a symbolic link).
const RECHECK: Duration = Duration::from_secs(1);

impl Root {
    /// Opens `root`, which must be a directory.
    pub(crate) fn open(root: &Path) -> Result<Root, Error> {
        let canonical = root.canonicalize().map_err(|e| {
            Error::with_source(ErrorKind::Io, format!("static root {}", root.display()), e)
        })?;
        if !canonical.is_dir() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("static root {} is not a directory", root.display()),
            ));
        }
        let meta = std::fs::metadata(&canonical).map_err(|e| {
            Error::with_source(ErrorKind::Io, format!("static root {}", root.display()), e)
        })?;
        #[cfg(target_os = "linux")]
        let dir = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_PATH)
            .open(&canonical)
            .map_err(|e| {
                Error::with_source(ErrorKind::Io, format!("static root {}", root.display()), e)
            })?;
        Ok(Root {
            canonical,
            #[cfg(target_os = "linux")]
            dir,
            configured: root.to_owned(),
            id: (meta.dev(), meta.ino()),
            checked: Cell::new(Instant::now()),
        })
    }

    /// Whether the configured path still leads to this directory; looked
    /// at once a second at most (a clock read otherwise), so a root
    /// swapped by a deploy is served within a second, as a server that
    /// resolves the root per request would.
    pub(crate) fn is_current(&self) -> bool {
        let now = Instant::now();
        if now.duration_since(self.checked.get()) < RECHECK {
            return true;
        }
        self.checked.set(now);
        std::fs::metadata(&self.configured).is_ok_and(|m| (m.dev(), m.ino()) == self.id)
    }

    /// Opens `rel` (a path [`normalize`]d: relative, no `.` or `..`
    /// segments; empty for the root itself) for reading, if it resolves
    /// inside the root, symbolic links followed: Tornado's
    /// `validate_absolute_path`, which also refuses a path that leaves
    /// the root (403), and a missing file (404). Whether it is a regular
    /// file is for the caller to check (on the metadata).
    ///
    /// On Linux 5.6 and later one `openat2` with `RESOLVE_BENEATH` does
    /// it all in the kernel, atomically (no window between a check and the
    /// open for a symbolic link to be swapped); where the kernel refuses a
    /// link it cannot judge (an absolute one, which may well point inside
    /// the root), or has no `openat2`, the path is canonicalized and
    /// compared with the root's.
    pub(crate) fn open_file(&self, rel: &str) -> Result<File, Refused> {
        #[cfg(target_os = "linux")]
        match self.open_beneath(rel) {
            Ok(file) => return Ok(file),
            Err(e) => match e.raw_os_error() {
                Some(libc::ENOENT | libc::ENOTDIR | libc::ENAMETOOLONG) => {
                    return Err(Refused::NotFound)
                }
                Some(libc::EACCES | libc::EPERM | libc::ELOOP) => return Err(Refused::Forbidden),
                // EXDEV: a link the kernel would not follow beneath the
                // root; ENOSYS/EINVAL: no openat2 (old kernel, seccomp).
                _ => {}
            },
        }
        self.open_canonical(rel)
    }

    /// `openat2(root, rel, O_RDONLY, RESOLVE_BENEATH)`.
    #[cfg(target_os = "linux")]
    fn open_beneath(&self, rel: &str) -> io::Result<File> {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        let rel = if rel.is_empty() { "." } else { rel };
        let path =
            std::ffi::CString::new(rel).map_err(|_| io::Error::from_raw_os_error(libc::ENOENT))?;
        // O_NONBLOCK: opening a FIFO must not block the loop (it is then
        // refused as not a regular file); no effect on regular files.
        let how = OpenHow {
            flags: (libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK) as u64,
            mode: 0,
            resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS,
        };
        // SAFETY: `path` is a NUL-terminated string and `how` a valid
        // `open_how` of the size passed; both outlive the call, which
        // only reads them. The fd returned is new and owned by no one else.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                self.dir.as_raw_fd(),
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: as above: a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
        Ok(File::from(fd))
    }

    /// The portable way: canonicalize, compare, open.
    fn open_canonical(&self, rel: &str) -> Result<File, Refused> {
        if rel.contains('\0') {
            return Err(Refused::NotFound);
        }
        let full = self.canonical.join(rel);
        let canonical = match full.canonicalize() {
            Ok(path) => path,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Refused::NotFound),
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return Err(Refused::NotFound),
            Err(_) => return Err(Refused::Forbidden),
        };
        if !canonical.starts_with(&self.canonical) {
            return Err(Refused::Forbidden);
        }
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(&canonical)
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => Refused::NotFound,
                _ => Refused::Forbidden,
            })
    }
}

/// The kernel's `struct open_how` (libc's is `non_exhaustive`).
#[cfg(target_os = "linux")]
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Normalizes a URL path (already percent-decoded) into a relative path
/// under the root: empty and `.` segments dropped, `..` taking one back.
/// `Err(Forbidden)` if it is absolute or a `..` would climb above the
/// root (Tornado: the joined, `abspath`ed path no longer starts with the
/// root: 403). `out` receives the path (cleared first).
pub(crate) fn normalize(path: &str, out: &mut String) -> Result<(), Refused> {
    out.clear();
    if path.starts_with('/') || path.starts_with('\\') {
        return Err(Refused::Forbidden);
    }
    if path.contains('\0') {
        return Err(Refused::NotFound);
    }
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                let cut = out.rfind('/').unwrap_or(0);
                if out.is_empty() {
                    return Err(Refused::Forbidden);
                }
                out.truncate(cut);
            }
            segment => {
                if !out.is_empty() {
                    out.push('/');
                }
                out.push_str(segment);
            }
        }
    }
    Ok(())
}

/// Files up to this size are versioned by a hash of their content; larger
/// ones by a hash of their identity (device, inode, size, modification
/// and change times), so a first request never blocks the loop hashing a huge file.
pub const HASH_CONTENT_MAX: u64 = 16 << 20;

/// How many versions the cache keeps; past it, it starts over.
const VERSIONS_MAX: usize = 4096;

/// A file's version, as of one size and modification time.
#[derive(Clone)]
pub(crate) struct Version {
    len: u64,
    /// Modification and change times (s, ns): a write changes both, and
    /// the change time cannot be set back by `touch -d`.
    times: [i64; 4],
    /// `"<32 hex digits>"`: the ETag; the digits are the `?v=` version.
    pub(crate) etag: Rc<str>,
    /// The modification time as an HTTP date.
    pub(crate) last_modified: Rc<str>,
}

impl Version {
    /// The version hash (hex, 32 digits).
    pub(crate) fn hash(&self) -> &str {
        &self.etag[1..self.etag.len() - 1]
    }
}

thread_local! {
    /// Versions by (device, inode), checked against size, mtime and ctime on
    /// each use: a file rewritten gets a new version, and no path string
    /// is hashed or stored. Per thread: a loop and its applications live on
    /// one (Tornado keeps one per process, and never rechecks).
    static VERSIONS: RefCell<HashMap<(u64, u64), Version>> = RefCell::new(HashMap::new());
}

/// The version of `file` (whose metadata is `meta`), from the cache or
/// computed now.
pub(crate) fn version(file: &File, meta: &Metadata) -> io::Result<Version> {
    let key = (meta.dev(), meta.ino());
    let mtime = (meta.mtime(), meta.mtime_nsec());
    let times = [mtime.0, mtime.1, meta.ctime(), meta.ctime_nsec()];
    let cached = VERSIONS.with(|v| {
        v.borrow()
            .get(&key)
            .filter(|v| v.len == meta.len() && v.times == times)
            .cloned()
    });
    if let Some(version) = cached {
        return Ok(version);
    }
    let mut hasher = Sha256::new();
    if meta.len() <= HASH_CONTENT_MAX {
        let mut buf = vec![0u8; 64 * 1024];
        let mut at = 0u64;
        loop {
            let n = file.read_at(&mut buf, at)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            at += n as u64;
        }
    } else {
        hasher.update(b"squall-static-identity\0");
        for n in [meta.dev(), meta.ino(), meta.len()] {
            hasher.update(n.to_le_bytes());
        }
        for t in times {
            hasher.update(t.to_le_bytes());
        }
    }
    let digest = hasher.finalize();
    let mut etag = String::with_capacity(34);
    etag.push('"');
    for b in &digest[..16] {
        etag.push_str(&format!("{b:02x}"));
    }
    etag.push('"');
    let modified = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime.0.max(0) as u64);
    let version = Version {
        len: meta.len(),
        times,
        etag: etag.into(),
        last_modified: crate::httputil::format_timestamp(modified).into(),
    };
    VERSIONS.with(|v| {
        let mut v = v.borrow_mut();
        if v.len() >= VERSIONS_MAX {
            v.clear();
        }
        v.insert(key, version.clone());
    });
    Ok(version)
}

/// Empties this thread's cache of versions (Tornado's
/// `StaticFileHandler.reset()`); it refills as files are asked for.
pub fn reset() {
    VERSIONS.with(|v| v.borrow_mut().clear());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both ways of opening (`openat2` and the portable one) refuse and
    /// accept the same paths.
    #[test]
    fn opening_under_the_root() {
        let base = std::env::temp_dir().join(format!("squall-static-open-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("a.txt"), "a").unwrap();
        std::fs::write(base.join("secret"), "s").unwrap();
        let link = |target: &Path, name: &str| {
            std::os::unix::fs::symlink(target, root.join(name)).unwrap()
        };
        link(&base.join("secret"), "out-abs");
        link(Path::new("../secret"), "out-rel");
        link(&root.join("a.txt"), "in-abs");
        link(Path::new("sub/../a.txt"), "in-rel");
        link(Path::new("missing"), "dangling");
        let r = Root::open(&root).unwrap();
        let cases: &[(&str, Result<(), Refused>)] = &[
            ("a.txt", Ok(())),
            ("in-abs", Ok(())),
            ("in-rel", Ok(())),
            ("sub", Ok(())),
            ("", Ok(())),
            ("out-abs", Err(Refused::Forbidden)),
            ("out-rel", Err(Refused::Forbidden)),
            ("missing", Err(Refused::NotFound)),
            ("dangling", Err(Refused::NotFound)),
            ("a.txt/x", Err(Refused::NotFound)),
        ];
        for &(rel, want) in cases {
            assert_eq!(r.open_file(rel).map(drop), want, "{rel:?}");
            assert_eq!(r.open_canonical(rel).map(drop), want, "{rel:?} (portable)");
        }
        assert!(Root::open(&root.join("a.txt")).is_err());
        assert!(Root::open(&base.join("nope")).is_err());
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn normalizing() {
        let mut out = String::new();
        let ok = |p: &str| {
            let mut out = String::new();
            normalize(p, &mut out).map(|()| out)
        };
        assert_eq!(ok("a/b.txt").unwrap(), "a/b.txt");
        assert_eq!(ok("").unwrap(), "");
        assert_eq!(ok("./a//b/").unwrap(), "a/b");
        assert_eq!(ok("a/../b").unwrap(), "b");
        assert_eq!(ok("a/b/../../c").unwrap(), "c");
        assert_eq!(ok("a/..").unwrap(), "");
        assert_eq!(ok("..").unwrap_err(), Refused::Forbidden);
        assert_eq!(ok("../x").unwrap_err(), Refused::Forbidden);
        assert_eq!(ok("a/../../x").unwrap_err(), Refused::Forbidden);
        assert_eq!(ok("/etc/passwd").unwrap_err(), Refused::Forbidden);
        assert_eq!(ok("a\0b").unwrap_err(), Refused::NotFound);
        assert_eq!(ok("..."), Ok("...".to_owned())); // a name, not a climb
        normalize("x/y", &mut out).unwrap();
        normalize("z", &mut out).unwrap();
        assert_eq!(out, "z");
    }
}
