//! Crash-safe file and directory replacement.
//!
//! A reader must see either the old complete file or the new complete file, never a
//! torn one, even if the process or the machine dies mid-write. The recipe: write to a
//! temporary in the same directory (so the rename cannot cross file systems), fsync
//! it, rename it over the target (atomic on POSIX), then fsync the directory so the
//! rename itself survives a power cut.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Error, Result};

/// Distinguishes temporaries of concurrent writes within one process; the pid
/// distinguishes processes.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn unique_suffix() -> String {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}-{n}", std::process::id())
}

/// The directory holding `path`, `.` for a bare file name.
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Makes a completed rename or create in `dir` durable.
fn sync_dir(dir: &Path) -> Result<()> {
    // Directories can be opened and fsynced on Unix; elsewhere rename durability is
    // the file system's business.
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, "fsync directory", e))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Deletes a temporary on every exit path but success.
struct RemoveOnDrop<'a> {
    path: &'a Path,
    is_dir: bool,
    armed: bool,
}

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            // Best effort: the original error matters more than a cleanup failure.
            let _ = if self.is_dir {
                fs::remove_dir_all(self.path)
            } else {
                fs::remove_file(self.path)
            };
        }
    }
}

/// Replaces `path` with `bytes` atomically (see the module docs).
pub fn atomic_write(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    atomic_write_with(path, |out| out.write_all(bytes))
}

/// Replaces `path` atomically with whatever `write` writes (buffered), for outputs
/// too large to build in memory first. If `write` fails, the target is untouched and
/// the temporary is removed.
pub fn atomic_write_with<F>(path: impl AsRef<Path>, write: F) -> Result<()>
where
    F: FnOnce(&mut dyn Write) -> io::Result<()>,
{
    let path = path.as_ref();
    let dir = parent_dir(path);
    let Some(name) = path.file_name() else {
        return Err(Error::io(
            path,
            "atomic write",
            io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"),
        ));
    };
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".tmp-{}", unique_suffix()));
    let temp = dir.join(temp_name);

    let file = File::options()
        .write(true)
        .create_new(true)
        .open(&temp)
        .map_err(|e| Error::io(&temp, "create temporary file", e))?;
    let mut guard = RemoveOnDrop {
        path: &temp,
        is_dir: false,
        armed: true,
    };
    let mut out = BufWriter::with_capacity(1 << 20, file);
    write(&mut out).map_err(|e| Error::io(&temp, "write", e))?;
    let file = out
        .into_inner()
        .map_err(|e| Error::io(&temp, "write", e.into_error()))?;
    file.sync_all().map_err(|e| Error::io(&temp, "fsync", e))?;
    drop(file);
    fs::rename(&temp, path).map_err(|e| Error::io(path, "rename temporary into place", e))?;
    guard.armed = false;
    sync_dir(dir)
}

/// A directory that appears complete or not at all: fill [`AtomicDir::path`] (a
/// `<final>.tmp-<pid>-<n>` sibling), then [`AtomicDir::commit`] fsyncs everything in
/// it and renames it to the final name, replacing an existing directory of that name.
/// Dropped without commit, the temporary is removed.
///
/// Replacing moves the old directory aside first (`<final>.old-<pid>-<n>`), so after a
/// crash at that instant the final name may be absent, but never half-written.
#[derive(Debug)]
pub struct AtomicDir {
    final_path: PathBuf,
    temp_path: PathBuf,
    committed: bool,
}

impl AtomicDir {
    pub fn new(final_path: impl AsRef<Path>) -> Result<Self> {
        let final_path = final_path.as_ref().to_owned();
        let temp_path = sibling(&final_path, "tmp")?;
        match fs::create_dir(&temp_path) {
            Ok(()) => {}
            // Our pid is unique among live processes, so a directory carrying it was
            // left by a dead process that had the same pid: stale, safe to remove.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                fs::remove_dir_all(&temp_path)
                    .and_then(|()| fs::create_dir(&temp_path))
                    .map_err(|e| Error::io(&temp_path, "create temporary directory", e))?;
            }
            Err(e) => return Err(Error::io(&temp_path, "create temporary directory", e)),
        }
        Ok(AtomicDir {
            final_path,
            temp_path,
            committed: false,
        })
    }

    /// Where to write the directory's contents until commit.
    pub fn path(&self) -> &Path {
        &self.temp_path
    }

    pub fn final_path(&self) -> &Path {
        &self.final_path
    }

    /// Makes the contents durable and publishes them under the final name.
    pub fn commit(mut self) -> Result<PathBuf> {
        sync_tree(&self.temp_path)?;
        let parent = parent_dir(&self.final_path).to_owned();
        let old = if self.final_path.exists() {
            let old = sibling(&self.final_path, "old")?;
            fs::rename(&self.final_path, &old)
                .map_err(|e| Error::io(&self.final_path, "move previous directory aside", e))?;
            Some(old)
        } else {
            None
        };
        fs::rename(&self.temp_path, &self.final_path)
            .map_err(|e| Error::io(&self.final_path, "rename temporary directory into place", e))?;
        self.committed = true;
        sync_dir(&parent)?;
        if let Some(old) = old {
            fs::remove_dir_all(&old)
                .map_err(|e| Error::io(&old, "remove previous directory", e))?;
        }
        Ok(self.final_path.clone())
    }
}

impl Drop for AtomicDir {
    fn drop(&mut self) {
        if !self.committed {
            drop(RemoveOnDrop {
                path: &self.temp_path,
                is_dir: true,
                armed: true,
            });
        }
    }
}

/// `<dir>/<name>.<tag>-<pid>-<n>` beside `path`.
fn sibling(path: &Path, tag: &str) -> Result<PathBuf> {
    let Some(name) = path.file_name() else {
        return Err(Error::io(
            path,
            "atomic directory",
            io::Error::new(io::ErrorKind::InvalidInput, "the path names no directory"),
        ));
    };
    let mut sibling = name.to_owned();
    sibling.push(format!(".{tag}-{}", unique_suffix()));
    Ok(parent_dir(path).join(sibling))
}

/// fsyncs every file and directory under `dir`, children before parents.
fn sync_tree(dir: &Path) -> Result<()> {
    let entries = fs::read_dir(dir).map_err(|e| Error::io(dir, "list directory", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, "list directory", e))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| Error::io(&path, "stat", e))?;
        if kind.is_dir() {
            sync_tree(&path)?;
        } else if kind.is_file() {
            File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io(&path, "fsync", e))?;
        }
    }
    sync_dir(dir)
}
