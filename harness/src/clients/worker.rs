//! One client worker process and the harness's end of its pipes (docs/client-protocol.md): it
//! starts the worker as a [`NodeProcess`] (own process group, killed if we die), checks its
//! hello, opens its producer or consumer, and then carries pipelined requests and their replies.
//!
//! A worker dies when its stdout ends (it exited, was killed by a signal, closed it), when its
//! stdin breaks, when it says something that is not the protocol, or when a request goes
//! unanswered past its patience (then we kill it). Whichever comes first names the cause
//! ("signal 11 (SIGSEGV)", "exit status 3", "no reply to send 812 within 15000 ms"); the crash
//! hook hears of it first (the run records a `client-crash`), then every request still in
//! flight, and any made later, is answered `info` with error `client crashed: <cause>`. A
//! worker that exits with status 0 after `close` has not crashed.

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::{mpsc, oneshot, watch};

use super::protocol::{Hello, Operation, Outcome, PROTOCOL_VERSION, Reply, Request, Role};
use crate::cluster::process::{NodeProcess, ProcessError};
use crate::lock::lock;

/// How long a worker may take to say hello (a Python interpreter importing its library).
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `open` may take.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a worker whose stdout ended may take to be reaped before we kill it.
const EXIT_WAIT: Duration = Duration::from_secs(2);
/// How often unanswered requests are looked at.
const WATCHDOG_INTERVAL: Duration = Duration::from_millis(200);
/// Requests queued for the worker's stdin, at most (callers bound what they have in flight).
const REQUEST_QUEUE_MAX: usize = 4096;
/// The longest line a worker may write (a final read of a large partition is one line).
const LINE_BYTES_MAX: usize = 1 << 30;
/// Lines of a worker's log quoted in an error.
const LOG_TAIL_LINES: usize = 10;

/// Why a worker could not be started.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("{name} has no {which} pipe")]
    Pipe { name: String, which: &'static str },
    #[error("{name}: {what}; the end of {log}:\n  {tail}")]
    Handshake {
        name: String,
        what: String,
        log: PathBuf,
        tail: String,
    },
    #[error("{name} refused to open its {role}: {error}")]
    Open {
        name: String,
        role: &'static str,
        error: String,
    },
}

/// How to start one worker.
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    /// The program and its arguments, placeholders filled.
    pub program: PathBuf,
    pub args: Vec<String>,
    pub envs: Vec<(String, String)>,
    /// Where its stderr goes.
    pub log_path: PathBuf,
}

/// A worker that died: its process number and pid, why, and how many requests it left
/// unanswered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crash {
    pub process: u64,
    pub pid: u32,
    pub cause: String,
    pub in_flight: usize,
}

/// What the nemesis can do to a client process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessFault {
    /// SIGKILL.
    Kill,
    /// SIGSTOP.
    Pause,
    /// SIGCONT.
    Resume,
}

/// Told of every crash, before the requests in flight are answered.
pub type CrashHook = Arc<dyn Fn(&Crash) + Send + Sync>;

/// A request waiting for its reply.
struct Pending {
    reply: oneshot::Sender<Reply>,
    deadline: Instant,
    patience: Duration,
    op: &'static str,
}

/// What the reader, writer, watchdog and callers share.
struct State {
    pending: HashMap<u64, Pending>,
    /// The cause, once dead: from then on every request is answered at once.
    dead: Option<String>,
}

struct Shared {
    name: String,
    process: u64,
    pid: u32,
    child: Mutex<NodeProcess>,
    state: Mutex<State>,
    next_id: AtomicU64,
    /// The first explanation of a death that the exit status would not give (silence, broken
    /// pipe, protocol error).
    cause_hint: Mutex<Option<String>>,
    /// `close` was asked: an exit with status 0 is then no crash.
    closing: AtomicBool,
    /// The harness killed it on purpose (a failed start, the end of the run): no crash.
    abandoned: AtomicBool,
    /// Since when the nemesis has held it stopped (SIGSTOP): its silence then is no death.
    paused_since: Mutex<Option<Instant>>,
    death: watch::Sender<Option<String>>,
    on_crash: CrashHook,
}

/// A running worker. Dropping it kills the process.
pub struct Worker {
    shared: Arc<Shared>,
    hello: Hello,
    requests: mpsc::Sender<Vec<u8>>,
}

impl Worker {
    /// Starts the worker (telling `on_spawn` its pid at once), reads its hello and opens its
    /// `role` with `config`. Any failure is an error naming the worker and quoting the end of its
    /// log; the process is gone then.
    pub async fn start(
        name: &str,
        command: &WorkerCommand,
        process: u64,
        role: Role,
        config: std::collections::BTreeMap<String, String>,
        on_crash: CrashHook,
        on_spawn: impl FnOnce(u32),
    ) -> Result<Worker, WorkerError> {
        let mut child = {
            let (owned_name, owned) = (name.to_string(), command.clone());
            tokio::task::spawn_blocking(move || {
                NodeProcess::spawn_piped(
                    &owned_name,
                    &owned.program,
                    &owned.args,
                    &owned.envs,
                    &owned.log_path,
                )
            })
            .await
            .map_err(|error| WorkerError::Handshake {
                name: name.to_string(),
                what: format!("the spawning task failed: {error}"),
                log: command.log_path.clone(),
                tail: String::new(),
            })??
        };
        on_spawn(child.pid());
        let pipe = |which| WorkerError::Pipe {
            name: name.to_string(),
            which,
        };
        let stdin = child.take_stdin().ok_or_else(|| pipe("stdin"))?;
        let stdout = child.take_stdout().ok_or_else(|| pipe("stdout"))?;
        let stdin = tokio::process::ChildStdin::from_std(stdin).map_err(|_| pipe("stdin"))?;
        let stdout = tokio::process::ChildStdout::from_std(stdout).map_err(|_| pipe("stdout"))?;
        let mut reader = BufReader::with_capacity(256 * 1024, stdout);
        let handshake_error = |what: String| WorkerError::Handshake {
            name: name.to_string(),
            what,
            log: command.log_path.clone(),
            tail: log_tail(&command.log_path),
        };
        let hello = match read_hello(&mut reader).await {
            Ok(hello) => hello,
            Err(what) => {
                let _ = child.kill();
                return Err(handshake_error(what));
            }
        };
        let pid = child.pid();
        let (death, _) = watch::channel(None);
        let shared = Arc::new(Shared {
            name: name.to_string(),
            process,
            pid,
            child: Mutex::new(child),
            state: Mutex::new(State {
                pending: HashMap::new(),
                dead: None,
            }),
            next_id: AtomicU64::new(1),
            cause_hint: Mutex::new(None),
            closing: AtomicBool::new(false),
            abandoned: AtomicBool::new(false),
            paused_since: Mutex::new(None),
            death,
            on_crash,
        });
        let (requests, queued) = mpsc::channel(REQUEST_QUEUE_MAX);
        tokio::spawn(write_requests(Arc::clone(&shared), stdin, queued));
        tokio::spawn(read_replies(Arc::clone(&shared), reader));
        tokio::spawn(watchdog(Arc::clone(&shared)));
        let worker = Worker {
            shared,
            hello,
            requests,
        };
        let opened = worker
            .submit(
                Operation::Open {
                    process,
                    role,
                    config,
                },
                OPEN_TIMEOUT,
            )
            .await
            .await;
        match opened {
            Ok(reply) if reply.outcome == Outcome::Ok => Ok(worker),
            Ok(reply) => {
                worker.kill_quietly();
                Err(WorkerError::Open {
                    name: name.to_string(),
                    role: role.name(),
                    error: reply.error.unwrap_or_else(|| "no reason given".into()),
                })
            }
            Err(_) => {
                worker.kill_quietly();
                Err(handshake_error("no reply to open".into()))
            }
        }
    }

    /// The history's process number of this worker.
    pub fn process(&self) -> u64 {
        self.shared.process
    }

    /// Its OS process id.
    pub fn pid(&self) -> u32 {
        self.shared.pid
    }

    /// What it said in its hello.
    pub fn hello(&self) -> &Hello {
        &self.hello
    }

    /// The cause of its death, once it died (or `closed` after a clean close).
    pub fn death(&self) -> watch::Receiver<Option<String>> {
        self.shared.death.subscribe()
    }

    /// Queues `operation` (requests reach the worker in the order they are submitted) and
    /// returns where its reply will come. If no reply comes within `patience`, the worker is
    /// killed as silent. A dead worker answers at once: `info`, `client crashed: <cause>`.
    pub async fn submit(
        &self,
        operation: Operation,
        patience: Duration,
    ) -> oneshot::Receiver<Reply> {
        let (reply, receiver) = oneshot::channel();
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let op = operation.name();
        let mut line = match serde_json::to_vec(&Request { id, operation }) {
            Ok(line) => line,
            Err(error) => {
                let _ = reply.send(Reply::error(
                    id,
                    Outcome::Fail,
                    format!("cannot encode the request: {error}"),
                ));
                return receiver;
            }
        };
        line.push(b'\n');
        {
            let mut state = lock(&self.shared.state);
            if let Some(cause) = &state.dead {
                let _ = reply.send(crashed_reply(id, cause));
                return receiver;
            }
            state.pending.insert(
                id,
                Pending {
                    reply,
                    deadline: Instant::now() + patience,
                    patience,
                    op,
                },
            );
        }
        if self.requests.send(line).await.is_err() {
            // The writer is gone: the worker is dying, and its death answers this request.
            self.shared.hint("its stdin closed");
        }
        receiver
    }

    /// Asks the worker to finish (`close`) and waits for it to exit; a worker that does not
    /// exit within `timeout` and a margin is killed (a crash, recorded as such).
    pub async fn close(&self, timeout: Duration) {
        self.shared.closing.store(true, Ordering::Relaxed);
        let margin = Duration::from_secs(5);
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let reply = self
            .submit(Operation::Close { timeout_ms }, timeout + margin)
            .await;
        let _ = reply.await;
        let mut death = self.death();
        if tokio::time::timeout(margin, death.wait_for(Option::is_some))
            .await
            .is_err()
        {
            self.shared.hint(&format!(
                "did not exit within {} ms of close",
                margin.as_millis()
            ));
            self.shared.kill();
        }
    }

    /// The nemesis's faults of a client process (a consumer group member's): SIGKILL — a crash,
    /// recorded as such, its cause saying who did it — and SIGSTOP and SIGCONT. While stopped,
    /// unanswered requests do not count against its patience; on SIGCONT their deadlines move
    /// by the time it was stopped.
    pub fn fault(&self, fault: ProcessFault) -> Result<(), String> {
        let failed = |error: ProcessError| error.to_string();
        match fault {
            ProcessFault::Kill => {
                self.shared.hint("SIGKILL by the nemesis");
                lock(&self.shared.child).kill().map_err(failed)
            }
            ProcessFault::Pause => {
                let mut paused = lock(&self.shared.paused_since);
                lock(&self.shared.child).pause().map_err(failed)?;
                paused.get_or_insert_with(Instant::now);
                Ok(())
            }
            ProcessFault::Resume => {
                let mut paused = lock(&self.shared.paused_since);
                lock(&self.shared.child).resume().map_err(failed)?;
                if let Some(since) = paused.take() {
                    let stopped_for = since.elapsed();
                    for pending in lock(&self.shared.state).pending.values_mut() {
                        pending.deadline += stopped_for;
                    }
                }
                Ok(())
            }
        }
    }

    /// Kills it on purpose: no crash is recorded.
    fn kill_quietly(&self) {
        self.shared.abandoned.store(true, Ordering::Relaxed);
        self.shared.hint("killed by the harness");
        self.shared.kill();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill_quietly();
    }
}

impl Shared {
    /// Keeps the first explanation of a death.
    fn hint(&self, cause: &str) {
        let mut hint = lock(&self.cause_hint);
        if hint.is_none() {
            *hint = Some(cause.to_string());
        }
    }

    fn kill(&self) {
        if let Err(error) = lock(&self.child).kill() {
            tracing::warn!("killing {}: {error}", self.name);
        }
    }

    /// The worker's stdout ended: reap it (killing it if it lingers), name the cause, tell the
    /// crash hook, then answer everything in flight.
    async fn die(&self) {
        let status = self.reap().await;
        let hint = lock(&self.cause_hint).take();
        let clean_close = self.closing.load(Ordering::Relaxed)
            && hint.is_none()
            && status.is_some_and(|status| status.success());
        // A worker that ended by itself is described by its exit status (a broken pipe on our
        // side is only a consequence); one we killed, by why we killed it.
        let killed_by_us =
            status.is_some_and(|status| status.signal() == Some(libc::SIGKILL)) && hint.is_some();
        let cause = if clean_close {
            "closed".to_string()
        } else if killed_by_us || status.is_none() {
            hint.unwrap_or_else(|| describe_exit(status))
        } else {
            describe_exit(status)
        };
        let pending: Vec<(u64, Pending)> = {
            let mut state = lock(&self.state);
            state.dead = Some(cause.clone());
            state.pending.drain().collect()
        };
        if !clean_close && !self.abandoned.load(Ordering::Relaxed) {
            (self.on_crash)(&Crash {
                process: self.process,
                pid: self.pid,
                cause: cause.clone(),
                in_flight: pending.len(),
            });
        }
        let mut pending = pending;
        pending.sort_by_key(|(id, _)| *id);
        for (id, waiting) in pending {
            let _ = waiting.reply.send(crashed_reply(id, &cause));
        }
        self.death.send_replace(Some(cause));
    }

    /// Waits (off the async threads) for the process to exit, killing it after [`EXIT_WAIT`].
    async fn reap(&self) -> Option<ExitStatus> {
        let deadline = Instant::now() + EXIT_WAIT;
        loop {
            match lock(&self.child).exit_status() {
                Ok(Some(status)) => return Some(status),
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!("{}: {error}", self.name);
                    return None;
                }
            }
            if Instant::now() >= deadline {
                self.hint("closed its stdout but did not exit");
                self.kill();
                return lock(&self.child).exit_status().ok().flatten();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// The reply given for a request a dead worker never answered.
fn crashed_reply(id: u64, cause: &str) -> Reply {
    Reply::error(id, Outcome::Info, format!("client crashed: {cause}"))
}

/// `signal 11 (SIGSEGV)`, `exit status 3`.
pub fn describe_exit(status: Option<ExitStatus>) -> String {
    match status {
        None => "it vanished (no exit status)".to_string(),
        Some(status) => match (status.signal(), status.code()) {
            (Some(signal), _) => match nix::sys::signal::Signal::try_from(signal) {
                Ok(name) => format!("signal {signal} ({name})"),
                Err(_) => format!("signal {signal}"),
            },
            (None, Some(code)) => format!("exit status {code}"),
            (None, None) => status.to_string(),
        },
    }
}

/// The first line: a hello in a protocol version we speak.
async fn read_hello(reader: &mut BufReader<tokio::process::ChildStdout>) -> Result<Hello, String> {
    let mut line = Vec::new();
    match tokio::time::timeout(HELLO_TIMEOUT, reader.read_until(b'\n', &mut line)).await {
        Err(_) => {
            return Err(format!("no hello within {} ms", HELLO_TIMEOUT.as_millis()));
        }
        Ok(Err(error)) => return Err(format!("cannot read its stdout: {error}")),
        Ok(Ok(0)) => return Err("it exited before saying hello".into()),
        Ok(Ok(_)) => {}
    }
    let text = String::from_utf8_lossy(&line);
    let hello: Hello = serde_json::from_slice(&line)
        .map_err(|error| format!("its first line is not a hello ({error}): {}", text.trim()))?;
    if hello.kind != "hello" {
        return Err(format!("its first line is not a hello: {}", text.trim()));
    }
    if hello.protocol != PROTOCOL_VERSION {
        return Err(format!(
            "it speaks protocol version {}, the harness speaks {PROTOCOL_VERSION}",
            hello.protocol
        ));
    }
    Ok(hello)
}

/// Writes queued requests to the worker's stdin, flushing when the queue is empty.
async fn write_requests(
    shared: Arc<Shared>,
    stdin: tokio::process::ChildStdin,
    mut queued: mpsc::Receiver<Vec<u8>>,
) {
    let mut writer = BufWriter::with_capacity(64 * 1024, stdin);
    while let Some(line) = queued.recv().await {
        let mut result = writer.write_all(&line).await;
        while result.is_ok()
            && let Ok(line) = queued.try_recv()
        {
            result = writer.write_all(&line).await;
        }
        if result.is_ok() {
            result = writer.flush().await;
        }
        if let Err(error) = result {
            shared.hint(&format!("its stdin broke ({error})"));
            shared.kill();
            return;
        }
    }
}

/// Reads replies and hands each to whoever waits for it; at the end of stdout, the death.
async fn read_replies(shared: Arc<Shared>, mut reader: BufReader<tokio::process::ChildStdout>) {
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(error) => {
                shared.hint(&format!("its stdout broke ({error})"));
                shared.kill();
                break;
            }
        }
        if line.len() > LINE_BYTES_MAX {
            shared.hint(&format!("it wrote a line of {} bytes", line.len()));
            shared.kill();
            break;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let reply: Reply = match serde_json::from_slice(&line) {
            Ok(reply) => reply,
            Err(error) => {
                let text = String::from_utf8_lossy(&line[..line.len().min(200)]).into_owned();
                shared.hint(&format!("protocol error: {error} in {:?}", text.trim()));
                shared.kill();
                break;
            }
        };
        let waiting = lock(&shared.state).pending.remove(&reply.id);
        match waiting {
            Some(waiting) => {
                let _ = waiting.reply.send(reply);
            }
            None => tracing::warn!("{}: a reply to no request: id {}", shared.name, reply.id),
        }
    }
    shared.die().await;
}

/// Kills the worker when a request goes unanswered past its patience.
async fn watchdog(shared: Arc<Shared>) {
    let mut death = shared.death.subscribe();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(WATCHDOG_INTERVAL) => {}
            _ = death.wait_for(Option::is_some) => return,
        }
        if lock(&shared.paused_since).is_some() {
            continue;
        }
        let now = Instant::now();
        let overdue = lock(&shared.state)
            .pending
            .iter()
            .filter(|(_, pending)| pending.deadline <= now)
            .min_by_key(|(id, _)| **id)
            .map(|(id, pending)| (*id, pending.op, pending.patience));
        if let Some((id, op, patience)) = overdue {
            shared.hint(&format!(
                "no reply to {op} {id} within {} ms",
                patience.as_millis()
            ));
            shared.kill();
            return;
        }
    }
}

/// The last lines of a log file, for errors.
fn log_tail(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n  ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use super::*;

    /// A worker in a few lines of Python that speaks the protocol and misbehaves as told:
    /// `segv` dies of SIGSEGV on the send of value "crash" and never answers "hold";
    /// `silent` answers no send; `garbage` answers sends with a line that is not JSON; `exit`
    /// exits with status 3 on a send; `old` says hello in protocol 9; `ok` behaves.
    const SCRIPT: &str = r#"
import json, os, signal, sys
mode = sys.argv[1]
print(json.dumps({"type": "hello", "protocol": 9 if mode == "old" else 1,
                  "library": "script", "library_version": "0"}), flush=True)
for line in sys.stdin:
    request = json.loads(line)
    op = request["op"]
    if op in ("open", "close"):
        print(json.dumps({"id": request["id"], "type": "ok"}), flush=True)
        if op == "close":
            sys.exit(0)
        continue
    if mode == "segv" and request["value"] == "crash":
        signal.signal(signal.SIGSEGV, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGSEGV)
    if mode == "silent" or (mode == "segv" and request["value"] == "hold"):
        continue
    if mode == "garbage":
        print("not json", flush=True)
        continue
    if mode == "exit":
        sys.exit(3)
    print(json.dumps({"id": request["id"], "type": "ok", "partition": 0, "offset": 7}), flush=True)
"#;

    struct Started {
        worker: Worker,
        crashes: Arc<Mutex<Vec<Crash>>>,
        _dir: tempfile::TempDir,
    }

    async fn start(mode: &str) -> Result<Started, WorkerError> {
        let dir = tempfile::tempdir().unwrap();
        let command = WorkerCommand {
            program: "python3".into(),
            args: vec!["-c".into(), SCRIPT.into(), mode.into()],
            envs: Vec::new(),
            log_path: dir.path().join("client-1.log"),
        };
        let crashes: Arc<Mutex<Vec<Crash>>> = Arc::default();
        let heard = Arc::clone(&crashes);
        let hook: CrashHook = Arc::new(move |crash: &Crash| lock(&heard).push(crash.clone()));
        let worker = Worker::start(
            "client-1",
            &command,
            1,
            Role::Producer,
            BTreeMap::new(),
            hook,
            |_pid| {},
        )
        .await?;
        Ok(Started {
            worker,
            crashes,
            _dir: dir,
        })
    }

    fn send(value: &str) -> Operation {
        Operation::Send {
            topic: "t".into(),
            key: None,
            value: value.into(),
            partition: None,
        }
    }

    /// The reply to one send to a worker started in `mode`, and the worker.
    async fn reply_to_a_send(mode: &str, patience: Duration) -> (Reply, Started) {
        let started = start(mode).await.unwrap();
        let reply = started
            .worker
            .submit(send("x"), patience)
            .await
            .await
            .unwrap();
        (reply, started)
    }

    async fn wait_for_death(worker: &Worker) -> String {
        let mut death = worker.death();
        tokio::time::timeout(Duration::from_secs(10), death.wait_for(Option::is_some))
            .await
            .expect("the worker died in time")
            .expect("the death watch is alive")
            .clone()
            .expect("a cause")
    }

    #[tokio::test]
    async fn a_crash_answers_every_request_in_flight_as_info_with_its_cause() {
        let started = start("segv").await.unwrap();
        let worker = &started.worker;
        let patience = Duration::from_secs(30);
        let answered = worker.submit(send("fine"), patience).await.await.unwrap();
        assert_eq!((answered.outcome, answered.offset), (Outcome::Ok, Some(7)));
        let held = worker.submit(send("hold"), patience).await;
        let crashing = worker.submit(send("crash"), patience).await;
        for reply in [held.await.unwrap(), crashing.await.unwrap()] {
            assert_eq!(reply.outcome, Outcome::Info);
            assert_eq!(
                reply.error.as_deref(),
                Some("client crashed: signal 11 (SIGSEGV)")
            );
        }
        assert_eq!(wait_for_death(worker).await, "signal 11 (SIGSEGV)");
        let crashes = lock(&started.crashes).clone();
        assert_eq!(crashes.len(), 1, "{crashes:?}");
        assert_eq!(crashes[0].in_flight, 2);
        assert_eq!(crashes[0].process, 1);
        // A dead worker answers at once.
        let late = worker.submit(send("late"), patience).await.await.unwrap();
        assert_eq!(late.outcome, Outcome::Info);
    }

    #[tokio::test]
    async fn silence_past_the_patience_kills_the_worker() {
        let (reply, started) = reply_to_a_send("silent", Duration::from_millis(300)).await;
        assert_eq!(reply.outcome, Outcome::Info);
        let cause = wait_for_death(&started.worker).await;
        assert!(cause.starts_with("no reply to send"), "{cause}");
        assert!(cause.contains("within 300 ms"), "{cause}");
        assert_eq!(lock(&started.crashes).len(), 1);
    }

    #[tokio::test]
    async fn a_line_that_is_not_the_protocol_kills_the_worker() {
        let (reply, started) = reply_to_a_send("garbage", Duration::from_secs(30)).await;
        assert_eq!(reply.outcome, Outcome::Info);
        let cause = wait_for_death(&started.worker).await;
        assert!(cause.starts_with("protocol error"), "{cause}");
        assert!(cause.contains("not json"), "{cause}");
    }

    #[tokio::test]
    async fn an_exit_is_a_crash_with_its_status() {
        let (reply, _started) = reply_to_a_send("exit", Duration::from_secs(30)).await;
        assert_eq!(
            reply.error.as_deref(),
            Some("client crashed: exit status 3")
        );
    }

    #[tokio::test]
    async fn a_stopped_worker_is_not_silent_and_a_nemesis_kill_is_a_crash_saying_so() {
        let started = start("ok").await.unwrap();
        let worker = &started.worker;
        worker.fault(ProcessFault::Pause).unwrap();
        let patience = Duration::from_secs(1);
        let reply = worker.submit(send("x"), patience).await;
        // Past its patience while stopped: still alive, and it answers once continued.
        tokio::time::sleep(patience + Duration::from_millis(500)).await;
        assert!(worker.death().borrow().is_none());
        worker.fault(ProcessFault::Resume).unwrap();
        assert_eq!(reply.await.unwrap().outcome, Outcome::Ok);
        worker.fault(ProcessFault::Kill).unwrap();
        assert_eq!(wait_for_death(worker).await, "SIGKILL by the nemesis");
        let crashes = lock(&started.crashes).clone();
        assert_eq!(crashes.len(), 1, "{crashes:?}");
        assert_eq!(crashes[0].cause, "SIGKILL by the nemesis");
    }

    #[tokio::test]
    async fn a_clean_close_is_no_crash() {
        let started = start("ok").await.unwrap();
        started.worker.close(Duration::from_secs(5)).await;
        assert_eq!(wait_for_death(&started.worker).await, "closed");
        assert!(lock(&started.crashes).is_empty());
    }

    #[tokio::test]
    async fn another_protocol_version_is_refused_at_start() {
        let error = start("old").await.err().expect("refused");
        let text = error.to_string();
        assert!(text.contains("protocol version 9"), "{text}");
        assert!(text.contains("client-1"), "{text}");
    }

    #[test]
    fn exits_are_described_by_signal_or_status() {
        assert_eq!(
            describe_exit(Some(ExitStatus::from_raw(11))),
            "signal 11 (SIGSEGV)"
        );
        assert_eq!(
            describe_exit(Some(ExitStatus::from_raw(3 << 8))),
            "exit status 3"
        );
        assert!(describe_exit(None).contains("no exit status"));
    }
}
