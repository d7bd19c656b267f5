//! The console of `kchaos cluster up`: the commands that steer single nodes (`kill 2`,
//! `stop broker-2`, `start coordinator`, `pause N`, `resume N`, `status`, `down`), parsed and
//! carried out on the [`Lab`]. They come from stdin or, from another shell, through the control
//! socket; the answer goes back where the command came from. A line that fails says so with an
//! `error: ` prefix (the control client exits 1 on it); it never stops the cluster.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use harness::cluster::{COORDINATOR, Cluster, NodeStatus};

use super::registration::{Registry, now_ms};

/// How long a node may take to stop after SIGTERM before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(15);

/// `kchaos cluster up --help`, after the flags.
pub const UP_HELP: &str = "\
Console: while it runs, `cluster up` reads commands on stdin, one per line. NODE is a broker id
(2), a broker's name (broker-2) or `coordinator`.
  kill NODE     SIGKILL: the node crashes
  stop NODE     SIGTERM: a controlled shutdown (SIGKILL after 15 s)
  start NODE    start a node that is down, with its config and data
  pause NODE    SIGSTOP: the node freezes with its sockets open
  resume NODE   SIGCONT
  status        every node (status, pid, address, registration) and the controller
  down          stop the cluster, as Ctrl-C does

From another shell (or when stdin is closed: `cluster up &`, nohup, a service), the same commands:
  kchaos cluster status|down [--dir DIR]
  kchaos cluster kill|stop|start|pause|resume NODE [--dir DIR]

In DIR: server-N.properties (broker N's config), broker-N/data (its log.dirs), broker-N.log,
coordinator/zoo.cfg and coordinator/data, coordinator.log, pids.log (`NAME PID` of every
process started, one per line, appended) and cluster-up.sock (the control socket).

The lab and its scenarios (leader skew, preferred and unclean election): docs/lab.md.";

/// What the console steers: the cluster, when each node was last started (to tell its own
/// registration from a leftover one) and a client of the coordinator.
pub struct Lab {
    pub cluster: Cluster,
    pub dir: PathBuf,
    /// Wall-clock milliseconds of each node's last start.
    pub started_ms: BTreeMap<String, i64>,
    pub registry: Registry,
}

impl Lab {
    /// Starts `name` if it is down, remembering when. Returns whether it started.
    pub fn start(&mut self, name: &str) -> anyhow::Result<bool> {
        let started_ms = now_ms();
        let started = self.cluster.start(name)?;
        if started {
            self.started_ms.insert(name.to_string(), started_ms);
        }
        Ok(started)
    }

    /// When each running or paused broker was started, by broker id.
    pub fn brokers_started_ms(&mut self) -> anyhow::Result<BTreeMap<i32, i64>> {
        let mut started = BTreeMap::new();
        for id in self.cluster.broker_ids() {
            let name = harness::cluster::broker_name(id);
            if self.cluster.status(&name)? != NodeStatus::Down
                && let Some(ms) = self.started_ms.get(&name)
            {
                started.insert(id, *ms);
            }
        }
        Ok(started)
    }
}

/// What a line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    Kill(String),
    Stop(String),
    Start(String),
    Pause(String),
    Resume(String),
    Status,
    Down,
}

/// Whether the cluster goes on after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// `down`: stop the cluster.
    Down,
}

/// `kill 2`, `stop broker-2`, `start coordinator`, `status`, `down`; `None` for a blank line.
pub fn parse_control(line: &str) -> Result<Option<Control>, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let node = |word: &str| {
        if word == COORDINATOR || word.starts_with("broker-") {
            word.to_string()
        } else {
            format!("broker-{word}")
        }
    };
    Ok(Some(match words.as_slice() {
        [] => return Ok(None),
        ["status"] => Control::Status,
        ["down"] => Control::Down,
        ["kill", name] => Control::Kill(node(name)),
        ["stop", name] => Control::Stop(node(name)),
        ["start", name] => Control::Start(node(name)),
        ["pause", name] => Control::Pause(node(name)),
        ["resume", name] => Control::Resume(node(name)),
        _ => {
            return Err(format!(
                "unknown command `{}`: kill N, stop N, start N, pause N, resume N, status, down",
                line.trim()
            ));
        }
    }))
}

/// Writes one line of an answer. The asker may be gone (a closed socket): that is not the
/// cluster's problem.
pub fn say(out: &mut dyn Write, line: &str) {
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Carries out one line, answering on `out`. A mistyped line or an unknown node is answered with
/// `error: ...`, not fatal; only a failure of the cluster itself (a node that cannot be
/// signalled) is an error.
pub async fn obey(lab: &mut Lab, line: &str, out: &mut dyn Write) -> anyhow::Result<Flow> {
    let control = match parse_control(line) {
        Ok(Some(control)) => control,
        Ok(None) => return Ok(Flow::Continue),
        Err(message) => {
            say(out, &format!("error: {message}"));
            return Ok(Flow::Continue);
        }
    };
    let name = match &control {
        Control::Status | Control::Down => None,
        Control::Kill(name)
        | Control::Stop(name)
        | Control::Start(name)
        | Control::Pause(name)
        | Control::Resume(name) => Some(name.clone()),
    };
    if let Some(name) = &name
        && !lab.cluster.node_names().contains(name)
    {
        let known = lab.cluster.node_names().join(", ");
        say(
            out,
            &format!("error: no node named {name} (nodes: {known})"),
        );
        return Ok(Flow::Continue);
    }
    match control {
        Control::Status => {}
        Control::Down => return Ok(Flow::Down),
        Control::Kill(name) => {
            lab.cluster.kill(&name)?;
            say(out, &format!("{name} killed (SIGKILL)"));
        }
        Control::Stop(name) => {
            let clean = lab.cluster.stop(&name, STOP_GRACE)?;
            let how = if clean {
                "stopped"
            } else {
                "killed after the grace period"
            };
            say(out, &format!("{name} {how}"));
        }
        Control::Start(name) => {
            if lab.start(&name)? {
                say(out, &format!("{name} started"));
            } else {
                say(out, &format!("{name} is already running"));
            }
        }
        Control::Pause(name) => {
            lab.cluster.pause(&name)?;
            say(out, &format!("{name} paused (SIGSTOP)"));
        }
        Control::Resume(name) => {
            lab.cluster.resume(&name)?;
            say(out, &format!("{name} resumed (SIGCONT)"));
        }
    }
    for line in status_lines(lab).await? {
        say(out, &line);
    }
    Ok(Flow::Continue)
}

/// One line per node (`status: broker-2 running (pid 4242) 127.0.0.1:9093 registered`), then
/// the controller.
pub async fn status_lines(lab: &mut Lab) -> anyhow::Result<Vec<String>> {
    let started = lab.brokers_started_ms()?;
    let registrations = lab.registry.read(&started).await;
    let addresses: BTreeMap<i32, String> = lab
        .cluster
        .broker_ids()
        .into_iter()
        .zip(lab.cluster.broker_addresses())
        .collect();
    let mut lines = Vec::new();
    for name in lab.cluster.node_names() {
        let status = lab.cluster.status(&name)?;
        let mut line = format!("status: {name} {}", status_word(status));
        if let Some(pid) = lab.cluster.pid(&name)? {
            line.push_str(&format!(" (pid {pid})"));
        }
        let id = name
            .strip_prefix("broker-")
            .and_then(|id| id.parse::<i32>().ok());
        match id {
            None => line.push_str(&format!(" {}", lab.cluster.coordinator_address())),
            Some(id) => {
                if let Some(address) = addresses.get(&id) {
                    line.push_str(&format!(" {address}"));
                }
                if let Ok(registrations) = &registrations {
                    if registrations.fresh.contains(&id) {
                        line.push_str(" registered");
                    } else if registrations.leftover.contains(&id) {
                        line.push_str(" (an earlier process's registration is still there)");
                    } else if status != NodeStatus::Down {
                        line.push_str(" not registered");
                    }
                }
            }
        }
        lines.push(line);
    }
    lines.push(match &registrations {
        Ok(registrations) => match registrations.controller {
            Some(id) => format!("controller: broker {id}"),
            None => "controller: none".to_string(),
        },
        Err(error) => format!("registrations unknown: {error}"),
    });
    Ok(lines)
}

fn status_word(status: NodeStatus) -> &'static str {
    match status {
        NodeStatus::Running => "running",
        NodeStatus::Paused => "paused",
        NodeStatus::Down => "down",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_lines_name_nodes_by_id_or_name() {
        assert_eq!(
            parse_control("kill 2"),
            Ok(Some(Control::Kill("broker-2".into())))
        );
        assert_eq!(
            parse_control(" start  broker-3 "),
            Ok(Some(Control::Start("broker-3".into())))
        );
        assert_eq!(
            parse_control("stop coordinator"),
            Ok(Some(Control::Stop("coordinator".into())))
        );
        assert_eq!(parse_control("status"), Ok(Some(Control::Status)));
        assert_eq!(parse_control("down"), Ok(Some(Control::Down)));
        assert_eq!(parse_control("  "), Ok(None));
        assert!(parse_control("explode 2").is_err());
        assert!(parse_control("kill").is_err());
    }
}
