//! The worker's shared-memory directory: made at start under a tmpfs base (`/dev/shm` by
//! default) as `shoal-<worker name>-<pid>`, so that the files of a worker killed without
//! cleaning up are recognised and deleted by the next worker on the machine; removed when
//! the worker stops. Not here: what goes in it (store.rs, python/shoal/_objects.py).

use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// Below this much free space in the base the worker warns: results that do not fit go
/// back to travelling as bytes.
const LOW_SPACE: u64 = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum SharedDirError {
    #[error(
        "cannot make the shared-memory directory {path}: {source}; give the worker a \
         writable tmpfs (a memory-backed emptyDir at /dev/shm on Kubernetes) or pass \
         --shared-memory-dir DIR (none: values through pipes, without this warning)"
    )]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Makes this worker's directory under `base`, after deleting the directories of workers
/// whose process is gone. Logs the space free in `base`.
pub fn prepare(base: &Path, name: &str) -> Result<PathBuf, SharedDirError> {
    sweep(base);
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = base.join(format!("shoal-{safe}-{}", std::process::id()));
    // Only this user may read the values (/dev/shm is open to every user of the machine).
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&path)
        .map_err(|source| SharedDirError::Create {
            path: path.clone(),
            source,
        })?;
    match rustix::fs::statvfs(base) {
        Ok(fs) => {
            let free = fs.f_bavail * fs.f_frsize;
            if free < LOW_SPACE {
                tracing::warn!(
                    dir = %path.display(),
                    free_mib = free >> 20,
                    "little shared memory: results that do not fit travel as bytes (slower); \
                     on Kubernetes mount a memory-backed emptyDir at /dev/shm"
                );
            } else {
                tracing::info!(dir = %path.display(), free_mib = free >> 20, "shared-memory store");
            }
        }
        Err(e) => tracing::warn!(dir = %path.display(), error = %e, "cannot read the free space"),
    }
    Ok(path)
}

/// Deletes `shoal-*-<pid>` directories in `base` whose process no longer runs.
fn sweep(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.starts_with("shoal-"))
            .and_then(|n| n.rsplit('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            tracing::info!(dir = %entry.path().display(), "deleting a dead worker's shared memory");
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A dead worker's directory is deleted, a live one's kept, and the new one is named
    /// after the worker and this process.
    #[test]
    fn prepares_and_sweeps() {
        let base = tempfile::tempdir().expect("tempdir");
        let dead = base.path().join("shoal-w-4294967294");
        let live = base
            .path()
            .join(format!("shoal-other-{}", std::process::id()));
        let unrelated = base.path().join("shoal-notapid");
        for dir in [&dead, &live, &unrelated] {
            std::fs::create_dir_all(dir).expect("mkdir");
        }
        let made = prepare(base.path(), "pod/1").expect("prepare");
        assert_eq!(
            made.file_name().and_then(|n| n.to_str()),
            Some(format!("shoal-pod_1-{}", std::process::id()).as_str())
        );
        assert!(!dead.exists() && live.exists() && unrelated.exists() && made.exists());
        let mode = std::fs::metadata(&made).expect("made").permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "other users cannot read the values");
    }
}
