//! One msgen writes a project at a time.
//!
//! Every command that writes holds an exclusive advisory lock (`flock`) on
//! `.msgen/lock` from before it reads `services.toml` until it has written its last
//! file, so two `add-service` at once cannot both read the old file and each write
//! back a version without the other's service. The kernel drops the lock when the
//! process ends, killed or not: there is no stale lock to clean up. The file holds
//! the holder's pid, for the "busy" message.

use std::fs::{self, File, OpenOptions};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::Path;

use anyhow::{bail, Context as _, Result};

use crate::apply::STATE_DIR;

/// Held while it lives.
#[derive(Debug)]
pub struct ProjectLock {
    _file: File,
}

/// Another msgen holds the project.
#[derive(Debug, thiserror::Error)]
#[error("{root} is busy: another msgen (pid {pid}) is writing it; try again when it is done")]
pub struct Busy {
    pub root: String,
    pub pid: String,
}

impl ProjectLock {
    /// Takes the lock of the project at `root`, or fails at once with [`Busy`].
    pub fn acquire(root: &Path) -> Result<Self> {
        let dir = root.join(STATE_DIR);
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.file_type().is_symlink() => bail!(
                "refusing to use {}: it is a symbolic link, which could lead outside the project",
                dir.display()
            ),
            Ok(_) => {}
            Err(_) => fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?,
        }
        let path = dir.join("lock");
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            // A symbolic link planted at `.msgen/lock` is refused, not followed.
            options.custom_flags(libc::O_NOFOLLOW);
        }
        let mut file = options
            .open(&path)
            .with_context(|| format!("cannot open the lock {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(Busy {
                    root: root.display().to_string(),
                    pid: if pid.is_empty() {
                        "unknown".into()
                    } else {
                        pid.to_string()
                    },
                }
                .into());
            }
            Err(fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
        // Ours now: say who holds it.
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "{}", std::process::id())?;
        Ok(Self { _file: file })
    }
}
