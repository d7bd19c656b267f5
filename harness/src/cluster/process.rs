//! One child process that can never outlive us.
//!
//! Every node of a cluster (and every process a test starts) is a [`NodeProcess`]:
//! - it runs in its own process group, so a signal reaches the node and anything it started, and
//!   the terminal's Ctrl-C reaches only us, who then stop it;
//! - it gets `PR_SET_PDEATHSIG = SIGKILL`, so that if we die (even by SIGKILL) the kernel kills it.
//!   The kernel sends that signal when the *thread* that forked the child exits, so all children
//!   are forked from one spawner thread that lives as long as the process;
//! - dropping it kills the group and reaps the child.
//!
//! Its stdout and stderr are appended to a log file, which is what the run directory keeps; a
//! program steered by typed lines (a client worker) gets pipes to its stdin and stdout instead,
//! and only its stderr goes to the log.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// What can go wrong with a child process.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot open log file {path}: {source}")]
    LogFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start {name} ({program}): {source}")]
    Spawn {
        name: String,
        program: PathBuf,
        source: std::io::Error,
    },
    #[error("the process spawner thread is gone")]
    SpawnerGone,
    #[error("cannot send {signal} to {name} (pid {pid}): {source}")]
    Signal {
        name: String,
        pid: i32,
        signal: Signal,
        source: nix::Error,
    },
    #[error("cannot wait for {name} (pid {pid}): {source}")]
    Wait {
        name: String,
        pid: i32,
        source: std::io::Error,
    },
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// The one thread that forks every child, so that PDEATHSIG fires only when this process dies.
fn spawner() -> &'static mpsc::SyncSender<SpawnRequest> {
    static SPAWNER: OnceLock<mpsc::SyncSender<SpawnRequest>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (requests, inbox) = mpsc::sync_channel::<SpawnRequest>(16);
        std::thread::Builder::new()
            .name("process-spawner".into())
            .spawn(move || {
                for (mut command, reply) in inbox {
                    // The caller may have given up waiting; nothing to do then.
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("the process spawner thread starts once per process");
        requests
    })
}

/// Which of a child's standard streams are pipes to us (the others: stdin from /dev/null, stdout
/// to the log).
#[derive(Debug, Clone, Copy, Default)]
struct Pipes {
    stdin: bool,
    stdout: bool,
}

/// A started child process in its own process group, with its output in a log file.
#[derive(Debug)]
pub struct NodeProcess {
    name: String,
    child: Child,
    log_path: PathBuf,
    /// How it ended, once reaped.
    exit_status: Option<ExitStatus>,
}

impl NodeProcess {
    /// Starts `program args...` named `name` (e.g. "broker-2"), appending its stdout and stderr
    /// to `log_path`, with `envs` added to our environment.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        envs: &[(String, String)],
        log_path: &Path,
    ) -> Result<Self, ProcessError> {
        Self::spawn_with_stdin(name, program, args, envs, log_path, false)
    }

    /// [`NodeProcess::spawn`], with a pipe to the child's stdin when `piped_stdin` (take it with
    /// [`NodeProcess::take_stdin`]) instead of /dev/null: for programs steered by typed lines.
    pub fn spawn_with_stdin(
        name: &str,
        program: &Path,
        args: &[String],
        envs: &[(String, String)],
        log_path: &Path,
        piped_stdin: bool,
    ) -> Result<Self, ProcessError> {
        let pipes = Pipes {
            stdin: piped_stdin,
            stdout: false,
        };
        Self::spawn_command(name, program, args, envs, log_path, pipes, None)
    }

    /// [`NodeProcess::spawn`] with pipes to the child's stdin and from its stdout (take them with
    /// [`NodeProcess::take_stdin`] and [`NodeProcess::take_stdout`]); only stderr goes to the log.
    pub fn spawn_piped(
        name: &str,
        program: &Path,
        args: &[String],
        envs: &[(String, String)],
        log_path: &Path,
    ) -> Result<Self, ProcessError> {
        let pipes = Pipes {
            stdin: true,
            stdout: true,
        };
        Self::spawn_command(name, program, args, envs, log_path, pipes, None)
    }

    /// [`NodeProcess::spawn`] inside the network namespace `namespace` (when given): the child
    /// enters it between fork and exec, so it is born there, with everything else as above.
    pub fn spawn_in(
        name: &str,
        program: &Path,
        args: &[String],
        envs: &[(String, String)],
        log_path: &Path,
        namespace: Option<&netfault::NamespaceFd>,
    ) -> Result<Self, ProcessError> {
        let pipes = Pipes::default();
        Self::spawn_command(name, program, args, envs, log_path, pipes, namespace)
    }

    fn spawn_command(
        name: &str,
        program: &Path,
        args: &[String],
        envs: &[(String, String)],
        log_path: &Path,
        pipes: Pipes,
        namespace: Option<&netfault::NamespaceFd>,
    ) -> Result<Self, ProcessError> {
        let log_file = |path: &Path| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| ProcessError::LogFile {
                    path: path.to_path_buf(),
                    source,
                })
        };
        let stdout = if pipes.stdout {
            Stdio::piped()
        } else {
            Stdio::from(log_file(log_path)?)
        };
        let stderr = log_file(log_path)?;
        let mut command = Command::new(program);
        command
            .args(args)
            .envs(envs.iter().map(|(key, value)| (key, value)))
            .stdin(if pipes.stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0);
        let parent_pid = std::process::id() as libc::pid_t;
        // SAFETY: the closure runs between fork and exec and calls only async-signal-safe
        // functions (prctl, getppid, _exit); it allocates nothing.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // We may have died between fork and prctl: then nobody would kill the child.
                if libc::getppid() != parent_pid {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        if let Some(namespace) = namespace {
            netfault::enter_on_spawn(namespace, &mut command);
        }
        let (reply, answer) = mpsc::channel();
        spawner()
            .send((command, reply))
            .map_err(|_| ProcessError::SpawnerGone)?;
        let child = answer
            .recv()
            .map_err(|_| ProcessError::SpawnerGone)?
            .map_err(|source| ProcessError::Spawn {
                name: name.to_string(),
                program: program.to_path_buf(),
                source,
            })?;
        Ok(NodeProcess {
            name: name.to_string(),
            child,
            log_path: log_path.to_path_buf(),
            exit_status: None,
        })
    }

    /// The node's name, e.g. "broker-2".
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The OS process id (also the process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The pipe to the child's stdin, once, if it was spawned with one.
    pub fn take_stdin(&mut self) -> Option<std::process::ChildStdin> {
        self.child.stdin.take()
    }

    /// The pipe from the child's stdout, once, if it was spawned with one.
    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// How the process ended, if it has (reaping it if it just did).
    pub fn exit_status(&mut self) -> Result<Option<ExitStatus>, ProcessError> {
        self.is_running()?;
        Ok(self.exit_status)
    }

    /// Where its stdout and stderr go.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Sends `signal` to the node's process group. A node that has already exited is left alone.
    pub fn signal(&mut self, signal: Signal) -> Result<(), ProcessError> {
        if !self.is_running()? {
            return Ok(());
        }
        let pid = self.child.id() as i32;
        match killpg(Pid::from_raw(pid), signal) {
            Ok(()) | Err(nix::Error::ESRCH) => Ok(()),
            Err(source) => Err(ProcessError::Signal {
                name: self.name.clone(),
                pid,
                signal,
                source,
            }),
        }
    }

    /// Whether the process is still alive (a paused process is alive). Reaps it if it exited.
    pub fn is_running(&mut self) -> Result<bool, ProcessError> {
        if self.exit_status.is_some() {
            return Ok(false);
        }
        match self.child.try_wait() {
            Ok(Some(status)) => {
                self.exit_status = Some(status);
                Ok(false)
            }
            Ok(None) => Ok(true),
            Err(source) => Err(self.wait_error(source)),
        }
    }

    /// Waits up to `timeout` for the process to exit; true if it did.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> Result<bool, ProcessError> {
        let start = Instant::now();
        loop {
            if !self.is_running()? {
                return Ok(true);
            }
            if start.elapsed() >= timeout {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGKILL, then reap: a crash.
    pub fn kill(&mut self) -> Result<(), ProcessError> {
        self.signal(Signal::SIGKILL)?;
        if self.exit_status.is_none() {
            let status = self
                .child
                .wait()
                .map_err(|source| self.wait_error(source))?;
            self.exit_status = Some(status);
        }
        Ok(())
    }

    /// SIGTERM (a clean stop), resuming it first if paused; SIGKILL if it has not exited after
    /// `grace`. Returns true if it stopped by itself within the grace period.
    pub fn terminate(&mut self, grace: Duration) -> Result<bool, ProcessError> {
        self.signal(Signal::SIGTERM)?;
        self.signal(Signal::SIGCONT)?;
        if self.wait_for_exit(grace)? {
            return Ok(true);
        }
        self.kill()?;
        Ok(false)
    }

    /// SIGSTOP: the process freezes, its sockets stay open.
    pub fn pause(&mut self) -> Result<(), ProcessError> {
        self.signal(Signal::SIGSTOP)
    }

    /// SIGCONT: a paused process goes on.
    pub fn resume(&mut self) -> Result<(), ProcessError> {
        self.signal(Signal::SIGCONT)
    }

    fn wait_error(&self, source: std::io::Error) -> ProcessError {
        ProcessError::Wait {
            name: self.name.clone(),
            pid: self.child.id() as i32,
            source,
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if let Err(error) = self.kill() {
            tracing::warn!("stopping {}: {error}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper(log_dir: &Path) -> NodeProcess {
        NodeProcess::spawn(
            "sleeper",
            Path::new("/bin/sh"),
            &["-c".into(), "echo started; exec sleep 30".into()],
            &[],
            &log_dir.join("sleeper.log"),
        )
        .expect("spawn sleeper")
    }

    #[test]
    fn kill_ends_the_process_and_logs_are_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut node = sleeper(dir.path());
        assert!(node.is_running().expect("running"));
        crate::wait::wait_for(
            "log line",
            Duration::from_secs(5),
            Duration::from_millis(5),
            || {
                std::fs::read_to_string(node.log_path())
                    .ok()
                    .filter(|text| text.contains("started"))
            },
        )
        .expect("the child wrote its log");
        node.kill().expect("kill");
        assert!(!node.is_running().expect("not running"));
    }

    #[test]
    fn drop_kills_the_process() {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = sleeper(dir.path());
        let pid = Pid::from_raw(node.pid() as i32);
        drop(node);
        // The child was reaped by drop, so the pid no longer names a process we own.
        assert_eq!(
            nix::sys::signal::kill(pid, None),
            Err(nix::Error::ESRCH),
            "process {pid} still exists after drop"
        );
    }

    #[test]
    fn a_piped_stdin_reaches_the_child() {
        use std::io::Write;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut node = NodeProcess::spawn_with_stdin(
            "reader",
            Path::new("/bin/sh"),
            &["-c".into(), "read line; echo \"got $line\"".into()],
            &[],
            &dir.path().join("reader.log"),
            true,
        )
        .expect("spawn reader");
        let mut stdin = node.take_stdin().expect("a pipe to stdin");
        assert!(node.take_stdin().is_none(), "the pipe is handed out once");
        writeln!(stdin, "hello").expect("write");
        drop(stdin);
        assert!(node.wait_for_exit(Duration::from_secs(5)).expect("wait"));
        let log = std::fs::read_to_string(node.log_path()).expect("log");
        assert!(log.contains("got hello"), "{log}");
    }

    #[test]
    fn pause_and_resume_keep_the_process_alive() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut node = sleeper(dir.path());
        node.pause().expect("pause");
        assert!(node.is_running().expect("alive while paused"));
        node.resume().expect("resume");
        assert!(node.terminate(Duration::from_secs(5)).expect("terminate"));
    }
}
