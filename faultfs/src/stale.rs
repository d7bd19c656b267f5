//! Mounts a killed orchestrator left behind: found in /proc/mounts by their source
//! (`kchaos-faultfs:<tag>`) and detached.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::FaultFsError;

/// Every mount's source starts with this, followed by its tag.
pub const FS_NAME_PREFIX: &str = "kchaos-faultfs:";

/// The FUSE subtype (/proc/mounts shows the type `fuse.faultfs` when fusermount3 mounted it,
/// `fuse` when mounted directly as root).
pub const FS_SUBTYPE: &str = "faultfs";

/// A fault filesystem mount listed in /proc/mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultMount {
    pub tag: String,
    pub mount_point: PathBuf,
}

/// Every fault filesystem mount whose tag starts with `tag_prefix` (all of them for ""),
/// live or left behind: pass a prefix that only the runs to clean up have.
pub fn find_stale_mounts(tag_prefix: &str) -> Result<Vec<FaultMount>, FaultFsError> {
    let table = std::fs::read_to_string("/proc/mounts").map_err(FaultFsError::ProcMounts)?;
    Ok(parse_mounts(&table, tag_prefix))
}

/// Detaches every mount [`find_stale_mounts`] finds and returns them. A mount whose
/// filesystem process died is detached at once; one still in use goes when released.
pub fn remove_stale_mounts(tag_prefix: &str) -> Result<Vec<FaultMount>, FaultFsError> {
    let mounts = find_stale_mounts(tag_prefix)?;
    for mount in &mounts {
        detach(&mount.mount_point).map_err(|source| FaultFsError::Unmount {
            mount_point: mount.mount_point.clone(),
            source,
        })?;
        tracing::info!(
            "removed stale faultfs mount {} at {}",
            mount.tag,
            mount.mount_point.display()
        );
    }
    Ok(mounts)
}

fn parse_mounts(table: &str, tag_prefix: &str) -> Vec<FaultMount> {
    table
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let source = fields.next()?;
            let mount_point = fields.next()?;
            let fs_type = fields.next()?;
            let tag = source.strip_prefix(FS_NAME_PREFIX)?;
            // `fuse` when mounted directly (the kernel ignores the subtype), `fuse.faultfs` by
            // fusermount3.
            let fuse = fs_type == "fuse" || fs_type == format!("fuse.{FS_SUBTYPE}");
            (fuse && tag.starts_with(tag_prefix)).then(|| FaultMount {
                tag: tag.to_string(),
                mount_point: PathBuf::from(unescape(mount_point)),
            })
        })
        .collect()
}

/// /proc/mounts writes space, tab, newline and backslash as `\ooo` octal escapes.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'\\'
            && index + 3 < bytes.len()
            && bytes[index + 1..index + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let value = bytes[index + 1..index + 4]
                .iter()
                .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            out.push(value as u8);
            index += 4;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Lazily unmounts: `umount2(MNT_DETACH)` as root, `fusermount3 -u -z` otherwise.
pub(crate) fn detach(mount_point: &Path) -> io::Result<()> {
    match nix::mount::umount2(mount_point, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EINVAL) => Ok(()), // not mounted (any more)
        Err(nix::errno::Errno::EPERM) if crate::mount::fusermount3_available() => {
            let output = Command::new("fusermount3")
                .arg("-u")
                .arg("-z")
                .arg("--")
                .arg(mount_point)
                .output()?;
            if output.status.success() {
                Ok(())
            } else {
                Err(io::Error::other(format!(
                    "fusermount3 -u -z: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                )))
            }
        }
        Err(errno) => Err(errno.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_fault_mounts_with_the_prefix_are_found() {
        let table = "\
proc /proc proc rw 0 0
kchaos-faultfs:run-7-broker-1 /tmp/run\\0407/data fuse rw,nosuid 0 0
kchaos-faultfs:run-8-broker-1 /tmp/run8/data fuse.faultfs rw 0 0
kchaos-faultfs:run-7-fake /tmp/other fuse.sshfs rw 0 0
lazyfs /tmp/lazy fuse.lazyfs rw 0 0
";
        assert_eq!(
            parse_mounts(table, "run-7"),
            vec![FaultMount {
                tag: "run-7-broker-1".into(),
                mount_point: PathBuf::from("/tmp/run 7/data"),
            }]
        );
        assert_eq!(parse_mounts(table, "").len(), 2);
    }
}
