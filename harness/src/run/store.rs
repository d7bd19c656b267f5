//! The store (Jepsen's `store/`): one directory per run, `store/<workload>/<timestamp>/`, holding
//! the history, the results, the workload as run (with its seed), node configs and logs; and a
//! `store/latest` symlink to the newest run.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// What can go wrong with the store.
#[derive(Debug, thiserror::Error)]
#[error("store {path}: {source}")]
pub struct StoreError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// Creates `store/<workload>/<timestamp>/` (a fresh directory even if two runs start in the same
/// millisecond) and points `store/latest` at it.
pub fn create_run_dir(store: &Path, workload: &str) -> Result<PathBuf, StoreError> {
    let workload_dir = store.join(workload);
    std::fs::create_dir_all(&workload_dir).map_err(|source| StoreError {
        path: workload_dir.clone(),
        source,
    })?;
    let stamp = timestamp(SystemTime::now());
    let mut attempt = 0u32;
    let run_dir = loop {
        let name = if attempt == 0 {
            stamp.clone()
        } else {
            format!("{stamp}-{attempt}")
        };
        let candidate = workload_dir.join(name);
        match std::fs::create_dir(&candidate) {
            Ok(()) => break candidate,
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => {
                attempt += 1;
            }
            Err(source) => {
                return Err(StoreError {
                    path: candidate,
                    source,
                });
            }
        }
    };
    update_latest(store, &run_dir)?;
    Ok(run_dir)
}

/// Points `store/latest` at `run_dir` (relative, so the store can move).
fn update_latest(store: &Path, run_dir: &Path) -> Result<(), StoreError> {
    let latest = store.join("latest");
    let target = run_dir.strip_prefix(store).unwrap_or(run_dir);
    let temporary = store.join(format!(".latest-{}", std::process::id()));
    let error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError { path, source }
    };
    let _ = std::fs::remove_file(&temporary);
    std::os::unix::fs::symlink(target, &temporary).map_err(error(&temporary))?;
    // rename replaces an existing link atomically.
    std::fs::rename(&temporary, &latest).map_err(error(&latest))
}

/// `20261125T154021.123Z`: sortable, no colons.
pub fn timestamp(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time)
        .to_string()
        .replace(['-', ':'], "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_get_their_own_directories_and_latest_follows() {
        let store = tempfile::tempdir().expect("tempdir");
        let first = create_run_dir(store.path(), "smoke").expect("first");
        let second = create_run_dir(store.path(), "smoke").expect("second");
        assert_ne!(first, second);
        assert!(first.starts_with(store.path().join("smoke")));
        let latest = std::fs::canonicalize(store.path().join("latest")).expect("latest");
        assert_eq!(latest, std::fs::canonicalize(&second).expect("second"));
    }

    #[test]
    fn timestamps_sort_and_have_no_colons() {
        let stamp = timestamp(SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_500));
        assert_eq!(stamp, "19700101T000001.500Z");
    }
}
