//! Starting client workers for a run: which command (the workload's `[clients] library` or
//! `command`, or `--client-command`), process numbers, their logs under `clients/` in the run
//! directory, their pids in `pids.log`, and their crashes in the history.
//!
//! A crash is an event of process `"harness"`:
//! `{"process":"harness","type":"info","f":"client-crash","value":{"process":4,"pid":812,"cause":"signal 11 (SIGSEGV)","in_flight":3}}`,
//! recorded before the crashed worker's in-flight operations complete as `info`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use history::{OpType, Process};
use serde_json::json;

use super::protocol::{Hello, Role};
use super::session::{Launcher, Session};
use super::worker::{Crash, CrashHook, Worker, WorkerCommand};
use crate::lock::lock;
use crate::recorder::Recorder;
use crate::workload::{ClientLibrary, ClientsSpec};

/// The Python worker (confluent-kafka), written into each run directory that uses it.
pub const PYTHON_WORKER: &str = include_str!("../../../clients/python/kchaos_worker.py");
/// Its file name.
pub const PYTHON_WORKER_FILE: &str = "kchaos_worker.py";

/// How worker commands are made, as the command line gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTemplates {
    /// The rdkafka worker, e.g. `[exe, "client"]`.
    pub rdkafka: Vec<String>,
    /// `--client-command`: a worker for any library, overriding the workload's choice.
    pub command: Option<Vec<String>>,
}

/// Why the workers' command could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("the client worker command is empty")]
    EmptyCommand,
    #[error(
        "unknown placeholder `{{{0}}}` in the client worker command (known: {{process}}, {{role}})"
    )]
    UnknownPlaceholder(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The command template for a run's workers: `--client-command`, else the workload's
/// `command`, else its `library`'s worker (the Python one is written to `clients_dir` first).
pub fn worker_template(
    clients: &ClientsSpec,
    templates: &ClientTemplates,
    clients_dir: &Path,
) -> Result<Vec<String>, LaunchError> {
    let words = |command: &str| command.split_whitespace().map(String::from).collect();
    let template: Vec<String> = if let Some(command) = &templates.command {
        command.clone()
    } else if let Some(command) = &clients.command {
        words(command)
    } else {
        match clients.library {
            ClientLibrary::Rdkafka => templates.rdkafka.clone(),
            ClientLibrary::ConfluentKafkaPython => {
                let path = clients_dir.join(PYTHON_WORKER_FILE);
                std::fs::write(&path, PYTHON_WORKER).map_err(|source| LaunchError::Write {
                    path: path.clone(),
                    source,
                })?;
                vec!["python3".into(), "-u".into(), path.display().to_string()]
            }
        }
    };
    if template.is_empty() {
        return Err(LaunchError::EmptyCommand);
    }
    for word in &template {
        for placeholder in placeholders(word) {
            if !["process", "role"].contains(&placeholder) {
                return Err(LaunchError::UnknownPlaceholder(placeholder.to_string()));
            }
        }
    }
    Ok(template)
}

/// The `{name}` placeholders of a word.
fn placeholders(word: &str) -> impl Iterator<Item = &str> {
    word.split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
}

/// Starts the workers of one run.
pub struct WorkerLauncher {
    template: Vec<String>,
    clients_dir: PathBuf,
    pid_log: PathBuf,
    recorder: Recorder,
    next_process: AtomicU64,
    hello: Mutex<Option<Hello>>,
}

impl WorkerLauncher {
    /// Workers from `template`, logging to `clients_dir` (created), pids in `pid_log`, crashes
    /// recorded by `recorder`; fresh process numbers from `first_fresh_process` on.
    pub fn new(
        template: Vec<String>,
        clients_dir: &Path,
        pid_log: &Path,
        recorder: Recorder,
        first_fresh_process: u64,
    ) -> Result<Self, LaunchError> {
        std::fs::create_dir_all(clients_dir).map_err(|source| LaunchError::Write {
            path: clients_dir.to_path_buf(),
            source,
        })?;
        Ok(WorkerLauncher {
            template,
            clients_dir: clients_dir.to_path_buf(),
            pid_log: pid_log.to_path_buf(),
            recorder,
            next_process: AtomicU64::new(first_fresh_process),
            hello: Mutex::new(None),
        })
    }

    /// The worker command of `process`, placeholders filled.
    fn command(&self, process: u64, role: Role) -> WorkerCommand {
        let fill = |word: &String| {
            word.replace("{process}", &process.to_string())
                .replace("{role}", role.name())
        };
        let mut words = self.template.iter().map(fill);
        let program = PathBuf::from(words.next().unwrap_or_default());
        WorkerCommand {
            program,
            args: words.collect(),
            envs: vec![("NO_COLOR".into(), "1".into())],
            log_path: self.clients_dir.join(format!("client-{process}.log")),
        }
    }

    async fn start_worker(
        &self,
        process: u64,
        role: Role,
        config: BTreeMap<String, String>,
    ) -> Result<Arc<dyn Session>, String> {
        let recorder = self.recorder.clone();
        let on_crash: CrashHook = Arc::new(move |crash: &Crash| record_crash(&recorder, crash));
        let name = format!("client-{process}");
        let command = self.command(process, role);
        let pid_log = self.pid_log.clone();
        let on_spawn = move |pid: u32| append_pid(&pid_log, &format!("client-{process}"), pid);
        let worker = Worker::start(&name, &command, process, role, config, on_crash, on_spawn)
            .await
            .map_err(|error| error.to_string())?;
        let mut hello = lock(&self.hello);
        if hello.is_none() {
            tracing::info!(
                "clients: {} ({})",
                worker.hello().describe(),
                worker.hello().worker.as_deref().unwrap_or("a worker")
            );
            *hello = Some(worker.hello().clone());
        }
        Ok(Arc::new(worker))
    }
}

impl Launcher for WorkerLauncher {
    fn start(
        &self,
        process: u64,
        role: Role,
        config: BTreeMap<String, String>,
    ) -> BoxFuture<'_, Result<Arc<dyn Session>, String>> {
        Box::pin(self.start_worker(process, role, config))
    }

    fn next_process(&self) -> u64 {
        self.next_process.fetch_add(1, Ordering::Relaxed)
    }

    fn start_failed(&self, process: u64, error: &str) {
        record_crash(
            &self.recorder,
            &Crash {
                process,
                pid: 0,
                cause: format!("did not start: {error}"),
                in_flight: 0,
            },
        );
    }

    fn hello(&self) -> Option<Hello> {
        lock(&self.hello).clone()
    }
}

/// The `client-crash` event.
pub fn record_crash(recorder: &Recorder, crash: &Crash) {
    tracing::warn!(
        "client {} (pid {}) crashed: {}; {} operation(s) in flight become info",
        crash.process,
        crash.pid,
        crash.cause,
        crash.in_flight
    );
    recorder.record(
        Process::Harness,
        OpType::Info,
        "client-crash",
        json!({
            "process": crash.process,
            "pid": crash.pid,
            "cause": crash.cause,
            "in_flight": crash.in_flight,
        }),
    );
}

/// Appends `name pid` to `pids.log`, as the cluster does for its nodes.
fn append_pid(pid_log: &Path, name: &str, pid: u32) {
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(pid_log)
        .and_then(|mut file| writeln!(file, "{name} {pid}"));
    if let Err(error) = appended {
        tracing::warn!("cannot append to {}: {error}", pid_log.display());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn clients(library: ClientLibrary, command: Option<&str>) -> ClientsSpec {
        let mut spec: ClientsSpec =
            toml::from_str("producers = 1\nconsumers = 0").expect("a minimal [clients]");
        spec.library = library;
        spec.command = command.map(String::from);
        spec
    }

    #[test]
    fn the_command_comes_from_the_flag_then_the_workload_then_the_library() {
        let dir = tempfile::tempdir().unwrap();
        let templates = ClientTemplates {
            rdkafka: vec!["/bin/kchaos".into(), "client".into()],
            command: None,
        };
        let rdkafka = worker_template(
            &clients(ClientLibrary::Rdkafka, None),
            &templates,
            dir.path(),
        )
        .unwrap();
        assert_eq!(rdkafka, ["/bin/kchaos", "client"]);
        let python = worker_template(
            &clients(ClientLibrary::ConfluentKafkaPython, None),
            &templates,
            dir.path(),
        )
        .unwrap();
        assert_eq!(python[0], "python3");
        let script = std::fs::read_to_string(dir.path().join(PYTHON_WORKER_FILE)).unwrap();
        assert!(script.contains("confluent_kafka"));
        let own = worker_template(
            &clients(
                ClientLibrary::Rdkafka,
                Some("java -jar w.jar --id {process}"),
            ),
            &templates,
            dir.path(),
        )
        .unwrap();
        assert_eq!(own, ["java", "-jar", "w.jar", "--id", "{process}"]);
        let flag = ClientTemplates {
            command: Some(vec!["my-worker".into(), "{role}".into()]),
            ..templates.clone()
        };
        let overridden = worker_template(
            &clients(ClientLibrary::ConfluentKafkaPython, Some("other")),
            &flag,
            dir.path(),
        )
        .unwrap();
        assert_eq!(overridden, ["my-worker", "{role}"]);
        let unknown = worker_template(
            &clients(ClientLibrary::Rdkafka, Some("w {port}")),
            &templates,
            dir.path(),
        )
        .unwrap_err();
        assert!(unknown.to_string().contains("`{port}`"), "{unknown}");
    }
}
