//! What the network tests share: real listener processes started inside node namespaces (the
//! test binary itself, re-executed as a helper), TCP probes from any namespace, checks of every
//! ordered pair against a grudge, and listings of what exists on the machine.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use netfault::{Grudge, Network, NodeNetwork};

/// Set in a re-executed test binary: which helper it is to be.
pub const HELPER_ENV: &str = "NETFAULT_TEST_HELPER";
/// The port every listener helper serves.
pub const PORT: u16 = 7000;
/// How long a connection that must succeed may take (generous: the machine is shared).
pub const REACHABLE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long we wait before calling a connection blocked. A dropped SYN never succeeds, so this
/// bounds only the test's duration, not its correctness.
pub const BLOCKED_TIMEOUT: Duration = Duration::from_millis(1500);

/// A child process that is killed (with its group) and reaped when dropped, and killed by the
/// kernel if this test process dies.
pub struct Helper {
    pub child: Child,
    pub stdout: BufReader<ChildStdout>,
}

impl Helper {
    /// Re-executes this test binary as helper `role` (running only the test `helper_test`),
    /// inside `node`'s namespace if given.
    pub fn spawn(
        helper_test: &str,
        role: &str,
        node: Option<&NodeNetwork>,
        configure: impl FnOnce(&mut Command),
    ) -> Helper {
        let executable = std::env::current_exe().expect("the test binary's path");
        Self::spawn_copy(&executable, helper_test, role, node, configure)
    }

    /// [`Helper::spawn`] of `executable`, a copy of this test binary.
    pub fn spawn_copy(
        executable: &std::path::Path,
        helper_test: &str,
        role: &str,
        node: Option<&NodeNetwork>,
        configure: impl FnOnce(&mut Command),
    ) -> Helper {
        let mut command = Command::new(executable);
        command
            .args([helper_test, "--exact", "--nocapture", "--test-threads=1"])
            .env(HELPER_ENV, role)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0);
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: only async-signal-safe calls between fork and exec, as harness::process does.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        if let Some(node) = node {
            node.enter_on_spawn(&mut command);
        }
        configure(&mut command);
        // A fresh copy of the binary can be "busy" (ETXTBSY) while a child forked by another
        // thread still holds the copy's write descriptor, until that child execs.
        let mut attempts = 0;
        let mut child = loop {
            match command.spawn() {
                Err(error) if error.raw_os_error() == Some(libc::ETXTBSY) && attempts < 100 => {
                    attempts += 1;
                    std::thread::sleep(Duration::from_millis(10));
                }
                outcome => break outcome.expect("spawn the helper"),
            }
        };
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        Helper { child, stdout }
    }

    /// What follows `prefix` on the first line the helper prints that holds it (libtest may
    /// print "test helper ... " before it on the same line).
    pub fn line_starting(&mut self, prefix: &str) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            let read = self
                .stdout
                .read_line(&mut line)
                .expect("read helper output");
            assert!(read > 0, "the helper ended before printing {prefix:?}");
            if let Some(start) = line.find(prefix) {
                return line[start + prefix.len()..].trim_end().to_string();
            }
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.pid()),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.child.wait();
    }
}

/// The body of the helper test of every test binary: does nothing in a normal test run; in a
/// re-executed helper, plays its role and never returns.
pub fn helper_main() {
    let Ok(role) = std::env::var(HELPER_ENV) else {
        return;
    };
    match role.as_str() {
        "listen" => listen(),
        "own-network" => own_network(),
        "create-network" => create_network(),
        other => panic!("unknown helper role {other:?}"),
    }
}

/// Serves `PORT` on every address: each connection gets "hello\n" and is closed.
fn listen() -> ! {
    let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, PORT)).expect("bind the listener");
    println!("LISTENING");
    for mut stream in listener.incoming().flatten() {
        let _ = stream.write_all(b"hello\n");
    }
    std::process::exit(0)
}

/// Builds a 3-node network with a listener in each node, prints its tag and the listeners'
/// pids, and waits (bounded) to be killed.
fn own_network() -> ! {
    let network = Network::create("killed-owner", &["n1", "n2", "n3"]).expect("create");
    let listeners: Vec<Helper> = network
        .nodes()
        .iter()
        .map(|node| {
            let mut helper = Helper::spawn("helper", "listen", Some(node), |_| {});
            helper.line_starting("LISTENING");
            helper
        })
        .collect();
    let pids: Vec<String> = listeners
        .iter()
        .map(|helper| helper.pid().to_string())
        .collect();
    println!("READY {} {}", network.tag(), pids.join(" "));
    std::thread::sleep(Duration::from_secs(120));
    std::process::exit(1)
}

/// Tries to build a network and prints the outcome.
fn create_network() -> ! {
    match Network::create("helper", &["n1"]) {
        Ok(network) => {
            println!("RESULT created {}", network.tag());
            drop(network);
            std::process::exit(0)
        }
        Err(error) => {
            println!("RESULT error {}", error.to_string().replace('\n', " | "));
            std::process::exit(0)
        }
    }
}

/// A listener helper in every node, each ready.
pub fn start_listeners(helper_test: &str, network: &Network) -> Vec<Helper> {
    let mut listeners: Vec<Helper> = network
        .nodes()
        .iter()
        .map(|node| Helper::spawn(helper_test, "listen", Some(node), |_| {}))
        .collect();
    for listener in &mut listeners {
        listener.line_starting("LISTENING");
    }
    listeners
}

/// Connects from `from` (a node, or the root namespace for `None`) to `to`'s listener and reads
/// its greeting, within `timeout`.
pub fn probe(from: Option<&NodeNetwork>, to: Ipv4Addr, timeout: Duration) -> std::io::Result<()> {
    let attempt = move || -> std::io::Result<()> {
        let address = SocketAddr::V4(SocketAddrV4::new(to, PORT));
        let mut stream = TcpStream::connect_timeout(&address, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        let mut greeting = [0u8; 6];
        stream.read_exact(&mut greeting)?;
        if &greeting != b"hello\n" {
            return Err(std::io::Error::other(format!("greeting {greeting:?}")));
        }
        Ok(())
    };
    match from {
        Some(node) => node.run_in(attempt).expect("enter the namespace"),
        None => attempt(),
    }
}

/// Where a connection attempt came from, for messages.
fn origin(from: Option<&NodeNetwork>) -> &str {
    from.map_or("root namespace", NodeNetwork::name)
}

/// Checks every ordered pair of nodes, and the root namespace to every node, against `grudge`
/// (`Grudge::connects`; the root namespace always connects), all at once. A blocked connection
/// must time out (its SYN dropped), not be refused. Returns what each node reached.
pub fn assert_connectivity(network: &Network, grudge: &Grudge) -> Vec<(String, Vec<String>)> {
    let nodes = network.nodes();
    let mut pairs: Vec<(Option<&NodeNetwork>, &NodeNetwork, bool)> = Vec::new();
    for to in nodes {
        pairs.push((None, to, true));
        for from in nodes.iter().filter(|from| from.name() != to.name()) {
            pairs.push((Some(from), to, grudge.connects(from.name(), to.name())));
        }
    }
    let outcomes: Vec<std::io::Result<()>> = std::thread::scope(|scope| {
        let threads: Vec<_> = pairs
            .iter()
            .map(|&(from, to, expected)| {
                let timeout = if expected {
                    REACHABLE_TIMEOUT
                } else {
                    BLOCKED_TIMEOUT
                };
                scope.spawn(move || probe(from, to.address(), timeout))
            })
            .collect();
        threads
            .into_iter()
            .map(|thread| thread.join().expect("probe thread"))
            .collect()
    });
    let mut wrong = Vec::new();
    for (&(from, to, expected), outcome) in pairs.iter().zip(&outcomes) {
        let fine = match (expected, outcome) {
            (true, Ok(())) => true,
            (false, Err(error)) => error.kind() == std::io::ErrorKind::TimedOut,
            _ => false,
        };
        if !fine {
            wrong.push(format!(
                "{} -> {}: expected {}, got {outcome:?}",
                origin(from),
                to.name(),
                if expected {
                    "a connection"
                } else {
                    "a timeout"
                },
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "under grudge {grudge:?}:\n{}",
        wrong.join("\n")
    );
    nodes
        .iter()
        .map(|from| {
            let reached = pairs
                .iter()
                .zip(&outcomes)
                .filter(|((source, _, _), outcome)| {
                    source.is_some_and(|source| source.name() == from.name()) && outcome.is_ok()
                })
                .map(|((_, to, _), _)| to.name().to_string())
                .collect();
            (from.name().to_string(), reached)
        })
        .collect()
}

/// Runs `program args` and returns its stdout (panics on failure).
pub fn output_of(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("{program} {args:?}: {error}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Every line of `ip netns list`, `ip -o link` and `nft list tables` (root namespace) that
/// mentions `tag`.
pub fn traces_of(tag: &str) -> Vec<String> {
    let mut traces = Vec::new();
    for (program, args) in [
        ("ip", &["netns", "list"][..]),
        ("ip", &["-o", "link"][..]),
        ("nft", &["list", "tables"][..]),
    ] {
        traces.extend(
            output_of(program, args)
                .lines()
                .filter(|line| line.contains(tag))
                .map(|line| format!("{program} {}: {line}", args.join(" "))),
        );
    }
    traces
}

/// Waits until `condition` holds, up to `timeout`.
pub fn await_condition(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether process `pid` still exists (a zombie counts as gone).
pub fn process_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}
