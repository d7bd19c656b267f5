//! Running `ip` and `nft`, and checking that they (and root) are there.
//!
//! Both read a whole script on stdin (`ip -batch -`, `nft -f -`), so building a 4-node network
//! takes a handful of processes, not dozens, and `nft -f` applies its script as one kernel
//! transaction. A script meant for a node's namespace runs in a process that enters it before
//! exec ([`crate::namespace::enter_on_spawn`]), as a node itself does. Scripts of different
//! namespaces run concurrently ([`run_all`]).

use std::ffi::OsStr;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::error::{NetFaultError, Unavailable};
use crate::namespace::{NamespaceFd, enter_on_spawn};

/// The commands this crate drives, with the Debian package that ships each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tool {
    Ip,
    Nft,
}

impl Tool {
    const ALL: [Tool; 2] = [Tool::Ip, Tool::Nft];

    fn name(self) -> &'static str {
        match self {
            Tool::Ip => "ip",
            Tool::Nft => "nft",
        }
    }

    fn package(self) -> &'static str {
        match self {
            Tool::Ip => "iproute2",
            Tool::Nft => "nftables",
        }
    }
}

/// Checks that this process can build node networks: it runs as root, the kernel has network
/// namespaces, and `ip` (iproute2) and `nft` (nftables) are on PATH. The error names the first
/// thing missing.
pub fn check_prerequisites() -> Result<(), Unavailable> {
    check(
        nix::unistd::geteuid().as_raw(),
        std::env::var_os("PATH").as_deref(),
        std::path::Path::new("/proc/self/ns/net").exists(),
    )
}

fn check(euid: u32, path: Option<&OsStr>, has_network_namespaces: bool) -> Result<(), Unavailable> {
    if euid != 0 {
        return Err(Unavailable::NotRoot { uid: euid });
    }
    if !has_network_namespaces {
        return Err(Unavailable::NoNetworkNamespaces);
    }
    for tool in Tool::ALL {
        if find_on_path(tool.name(), path).is_none() {
            return Err(Unavailable::MissingTool {
                tool: tool.name(),
                package: tool.package(),
            });
        }
    }
    Ok(())
}

fn find_on_path(program: &str, path: Option<&OsStr>) -> Option<PathBuf> {
    std::env::split_paths(path?)
        .map(|directory| directory.join(program))
        .find(|candidate| candidate.is_file())
}

/// One script for one tool, in the root namespace or in a node's.
pub(crate) struct Script<'a> {
    pub(crate) tool: Tool,
    pub(crate) namespace: Option<(&'a str, &'a NamespaceFd)>,
    pub(crate) text: String,
    /// Run every line even after one fails (`ip -force`): for removal, where some of what is
    /// named may already be gone.
    pub(crate) keep_going: bool,
}

impl Script<'_> {
    fn describe(&self) -> String {
        let mut words = vec![self.tool.name()];
        words.extend(self.arguments());
        let mut description = words.join(" ");
        if let Some((name, _)) = self.namespace {
            description.push_str(&format!(" (in network namespace {name})"));
        }
        description
    }

    fn arguments(&self) -> Vec<&'static str> {
        match (self.tool, self.keep_going) {
            (Tool::Ip, false) => vec!["-batch", "-"],
            (Tool::Ip, true) => vec!["-force", "-batch", "-"],
            (Tool::Nft, _) => vec!["-f", "-"],
        }
    }

    fn spawn(&self) -> Result<Child, NetFaultError> {
        let mut command = Command::new(self.tool.name());
        command
            .args(self.arguments())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some((_, fd)) = self.namespace {
            enter_on_spawn(fd, &mut command);
        }
        let mut child = command.spawn().map_err(|source| NetFaultError::Spawn {
            command: self.describe(),
            source,
        })?;
        // Scripts are a few kilobytes at most: the pipe takes them whole.
        if let Some(mut stdin) = child.stdin.take() {
            // A tool that exits early closes its stdin; its exit status tells why.
            let _ = stdin.write_all(self.text.as_bytes());
        }
        Ok(child)
    }

    fn finish(&self, child: Child) -> Result<(), NetFaultError> {
        let output = child
            .wait_with_output()
            .map_err(|source| NetFaultError::Spawn {
                command: self.describe(),
                source,
            })?;
        if output.status.success() {
            return Ok(());
        }
        Err(NetFaultError::Command {
            command: self.describe(),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            input: self.text.clone(),
        })
    }
}

/// Runs one script and waits for it.
pub(crate) fn run(script: &Script<'_>) -> Result<(), NetFaultError> {
    tracing::debug!("{}:\n{}", script.describe(), script.text);
    let child = script.spawn()?;
    script.finish(child)
}

/// Starts every script, then waits for all of them; the first failure is returned (after all
/// have ended).
pub(crate) fn run_all(scripts: &[Script<'_>]) -> Result<(), NetFaultError> {
    let mut children = Vec::with_capacity(scripts.len());
    let mut first_error = None;
    for script in scripts {
        tracing::debug!("{}:\n{}", script.describe(), script.text);
        match script.spawn() {
            Ok(child) => children.push((script, child)),
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    for (script, child) in children {
        if let Err(error) = script.finish(child) {
            first_error.get_or_insert(error);
        }
    }
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_checked_first() {
        assert_eq!(
            check(1000, Some(OsStr::new("/usr/sbin:/usr/bin")), true),
            Err(Unavailable::NotRoot { uid: 1000 })
        );
    }

    #[test]
    fn a_missing_tool_is_named_with_its_package() {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = directory.path().as_os_str();
        let error = check(0, Some(path), true).expect_err("no tools there");
        assert_eq!(
            error,
            Unavailable::MissingTool {
                tool: "ip",
                package: "iproute2"
            }
        );
        assert!(error.to_string().contains("iproute2"), "{error}");

        std::fs::write(directory.path().join("ip"), "").expect("a fake ip");
        assert_eq!(
            check(0, Some(path), true),
            Err(Unavailable::MissingTool {
                tool: "nft",
                package: "nftables"
            })
        );
        std::fs::write(directory.path().join("nft"), "").expect("a fake nft");
        assert_eq!(check(0, Some(path), true), Ok(()));
        assert!(check(0, None, true).is_err(), "no PATH at all");
    }

    #[test]
    fn a_kernel_without_namespaces_is_named() {
        assert_eq!(
            check(0, Some(OsStr::new("/usr/sbin")), false),
            Err(Unavailable::NoNetworkNamespaces)
        );
    }
}
