//! Shared pieces of the coordinator tests: start `kchaos coordinator` (or Apache ZooKeeper) on a
//! free port in a temporary directory as a `NodeProcess`, connect `zookeeper-client` sessions,
//! run python kazoo scripts as child processes, and read logs.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use harness::cluster::process::NodeProcess;
use harness::wait::wait_for;
use zookeeper_client as zk;

/// Tick used by the tests: a 1 s session is then allowed (min 2 ticks, max 20 ticks).
pub const TICK_MS: u64 = 100;

/// The session timeout tests ask for. The coordinator grants at most 20 ticks (2 s); asking for
/// more only gives `zookeeper-client` a longer deadline for its first connect on a busy machine.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `kchaos coordinator` with its data directory.
pub struct Coordinator {
    pub process: NodeProcess,
    pub port: u16,
    pub data_dir: PathBuf,
    pub log_dir: PathBuf,
    extra_args: Vec<String>,
}

impl Coordinator {
    /// Starts a coordinator with `data` and `logs` under `dir`.
    pub fn start(dir: &Path, extra_args: &[&str]) -> Coordinator {
        let port = harness::cluster::ports::free_loopback_port().unwrap();
        let extra_args: Vec<String> = extra_args.iter().map(|arg| arg.to_string()).collect();
        let data_dir = dir.join("data");
        let log_dir = dir.to_path_buf();
        let process = spawn_coordinator(port, &data_dir, &log_dir, &extra_args);
        Coordinator {
            process,
            port,
            data_dir,
            log_dir,
            extra_args,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGKILL, then start again on the same port and data directory.
    pub fn kill_and_restart(&mut self) {
        self.process.kill().unwrap();
        self.restart();
    }

    /// Starts again (after a kill) on the same port and data directory.
    pub fn restart(&mut self) {
        self.process =
            spawn_coordinator(self.port, &self.data_dir, &self.log_dir, &self.extra_args);
    }

    /// Everything the coordinator (all its runs) logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.process.log_path()).unwrap_or_default()
    }
}

fn spawn_coordinator(port: u16, data_dir: &Path, log_dir: &Path, extra: &[String]) -> NodeProcess {
    let mut args: Vec<String> = vec![
        "coordinator".into(),
        "--port".into(),
        port.to_string(),
        "--data-dir".into(),
        data_dir.display().to_string(),
        "--tick-time-ms".into(),
        TICK_MS.to_string(),
    ];
    args.extend(extra.iter().cloned());
    let process = NodeProcess::spawn(
        "coordinator",
        Path::new(env!("CARGO_BIN_EXE_kchaos")),
        &args,
        &[("RUST_LOG".into(), "info".into())],
        &log_dir.join("coordinator.log"),
    )
    .unwrap();
    wait_for_port(port);
    process
}

/// Waits until something accepts connections on `port`.
pub fn wait_for_port(port: u16) {
    wait_for(
        &format!("port {port} to accept connections"),
        Duration::from_secs(60),
        Duration::from_millis(20),
        || TcpStream::connect(("127.0.0.1", port)).ok(),
    )
    .unwrap();
}

/// Fails the test, saying what to install, when `program` is not on this machine.
pub fn require(program: &str, check: &[&str]) {
    let ok = std::process::Command::new(program)
        .args(check)
        .output()
        .map(|output| output.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "`{program} {}` failed: this compatibility test needs it; install with `bash .ci/setup`",
        check.join(" ")
    );
}

/// Fails the test unless python3 with kazoo is installed.
pub fn require_kazoo() {
    require("python3", &["-c", "import kazoo"]);
}

pub const ZK_CLI: &str = "/usr/share/zookeeper/bin/zkCli.sh";

/// A standalone Apache ZooKeeper 3.8 (Debian's `zookeeper` package) on a free port.
pub struct ApacheZooKeeper {
    pub process: NodeProcess,
    pub port: u16,
}

impl ApacheZooKeeper {
    pub fn start(dir: &Path) -> ApacheZooKeeper {
        require("java", &["-version"]);
        assert!(
            Path::new("/usr/share/java/zookeeper.jar").exists(),
            "Apache ZooKeeper is missing (/usr/share/java/zookeeper.jar); install with `bash .ci/setup`"
        );
        let port = harness::cluster::ports::free_loopback_port().unwrap();
        let data_dir = dir.join("apache-zookeeper");
        std::fs::create_dir_all(&data_dir).unwrap();
        let args = vec![
            // No admin web server: it would want port 8080, which parallel runs share.
            "-Dzookeeper.admin.enableServer=false".to_string(),
            "-cp".to_string(),
            "/usr/share/java/*:/etc/zookeeper/conf".to_string(),
            "org.apache.zookeeper.server.ZooKeeperServerMain".to_string(),
            port.to_string(),
            data_dir.display().to_string(),
        ];
        let process = NodeProcess::spawn(
            "apache-zookeeper",
            Path::new("java"),
            &args,
            &[],
            &dir.join("apache-zookeeper.log"),
        )
        .unwrap();
        wait_for_port(port);
        ApacheZooKeeper { process, port }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// A `zookeeper-client` session with the given timeout.
pub async fn connect(address: &str, session_timeout: Duration) -> zk::Client {
    let connecting = zk::Client::connector()
        .with_session_timeout(session_timeout)
        .with_connection_timeout(Duration::from_secs(5))
        .connect(address);
    tokio::time::timeout(Duration::from_secs(60), connecting)
        .await
        .expect("connect timed out")
        .expect("connect")
}

/// Closes a session and waits until the server confirmed it.
pub async fn close(client: zk::Client) {
    kchaos::coordinator::shell::close(client).await;
}

pub fn persistent() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

pub fn ephemeral() -> zk::CreateOptions<'static> {
    zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all())
}

/// Runs a python script as a child process (its output in `dir/NAME.log`).
pub fn python(dir: &Path, name: &str, script: &str, args: &[&str]) -> NodeProcess {
    let mut all_args = vec!["-u".to_string(), "-c".to_string(), script.to_string()];
    all_args.extend(args.iter().map(|arg| arg.to_string()));
    NodeProcess::spawn(
        name,
        Path::new("python3"),
        &all_args,
        &[],
        &dir.join(format!("{name}.log")),
    )
    .unwrap()
}

/// Waits until a process's log contains `text`; returns the log.
pub fn wait_for_log(process: &NodeProcess, text: &str, timeout: Duration) -> String {
    wait_for(
        &format!("{} to log {text:?}", process.name()),
        timeout,
        Duration::from_millis(20),
        || {
            std::fs::read_to_string(process.log_path())
                .ok()
                .filter(|log| log.contains(text))
        },
    )
    .unwrap_or_else(|error| {
        let log = std::fs::read_to_string(process.log_path()).unwrap_or_default();
        panic!("{error}; log of {}:\n{log}", process.name())
    })
}

/// A kazoo script that creates an ephemeral node, says `ready`, and lives until killed.
pub const KAZOO_EPHEMERAL_OWNER: &str = r#"
import sys, time
from kazoo.client import KazooClient
zk = KazooClient(hosts=sys.argv[1], timeout=float(sys.argv[3]))
zk.add_listener(lambda state: print('state', state, flush=True))
zk.start(timeout=30)
zk.ensure_path(sys.argv[2].rsplit('/', 1)[0] or '/')
zk.create(sys.argv[2], b'owner', ephemeral=True)
print('ready', flush=True)
while True:
    time.sleep(1)
"#;
