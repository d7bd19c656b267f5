//! The control socket of `kchaos cluster up`, `DIR/cluster-up.sock`: how a second shell steers
//! the running cluster (`kchaos cluster status|down|kill N|...`). A client connects, writes one
//! console line, and reads the answer until the socket closes; lines starting with `error: `
//! make it exit 1. One `cluster up` per directory: a live socket means another one runs there.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncReadExt};
use tokio::sync::{Semaphore, mpsc};

/// The socket's file name in the cluster's directory.
pub const SOCKET_FILE: &str = "cluster-up.sock";
/// The longest request line read.
const REQUEST_BYTES_MAX: u64 = 1024;
/// How long a client may take to send its line, and a write of the answer may block.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the client waits between two lines of the answer (a stop waits up to its grace).
const ANSWER_GAP_MAX: Duration = Duration::from_secs(60);
/// Connections served at once.
const CONNECTIONS_MAX: usize = 8;

/// One command from a second shell, and the connection its answer goes back on.
pub struct Request {
    pub line: String,
    pub reply: UnixStream,
}

/// The socket path of a cluster directory.
pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join(SOCKET_FILE)
}

/// Binds `DIR/cluster-up.sock`. Fails if another `cluster up` answers there; a socket file
/// left by a killed one is replaced. The file is removed when the returned guard drops.
pub fn claim(dir: &Path) -> anyhow::Result<SocketGuard> {
    let path = socket_path(dir);
    if path.exists() {
        match UnixStream::connect(&path) {
            Ok(_) => anyhow::bail!(
                "another `kchaos cluster up` is running in {} (see `kchaos cluster status --dir {}`)",
                dir.display(),
                dir.display()
            ),
            Err(_) => std::fs::remove_file(&path)
                .with_context(|| format!("removing the stale {}", path.display()))?,
        }
    }
    let listener = std::os::unix::net::UnixListener::bind(&path).with_context(|| {
        format!(
            "listening on {} (a Unix socket path is limited to 107 bytes: choose a shorter --dir)",
            path.display()
        )
    })?;
    listener
        .set_nonblocking(true)
        .context("making the control socket non-blocking")?;
    Ok(SocketGuard {
        path,
        listener: Some(listener),
    })
}

/// The bound socket; removes its file when dropped.
pub struct SocketGuard {
    path: PathBuf,
    listener: Option<std::os::unix::net::UnixListener>,
}

impl SocketGuard {
    /// Serves the socket on the current tokio runtime: every request goes to the returned
    /// channel. Call once.
    pub fn serve(&mut self) -> anyhow::Result<mpsc::Receiver<Request>> {
        let listener = self
            .listener
            .take()
            .context("the control socket is already served")?;
        let listener =
            tokio::net::UnixListener::from_std(listener).context("serving the control socket")?;
        let (requests, receiver) = mpsc::channel(CONNECTIONS_MAX);
        let permits = Arc::new(Semaphore::new(CONNECTIONS_MAX));
        tokio::spawn(async move {
            loop {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let requests = requests.clone();
                tokio::spawn(async move {
                    if let Some(request) = read_request(stream).await {
                        let _ = requests.send(request).await;
                    }
                    drop(permit);
                });
            }
        });
        Ok(receiver)
    }
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Reads one line (bounded in size and time) and hands the connection over for the answer.
async fn read_request(stream: tokio::net::UnixStream) -> Option<Request> {
    let mut reader = tokio::io::BufReader::new(stream.take(REQUEST_BYTES_MAX));
    let mut line = String::new();
    tokio::time::timeout(IO_TIMEOUT, reader.read_line(&mut line))
        .await
        .ok()?
        .ok()?;
    let reply = reader.into_inner().into_inner().into_std().ok()?;
    reply.set_nonblocking(false).ok()?;
    reply.set_write_timeout(Some(IO_TIMEOUT)).ok()?;
    Some(Request {
        line: line.trim().to_string(),
        reply,
    })
}

/// A second shell's command: sends `line` to the `cluster up` running in `dir` and prints its
/// answer. Exit 0, or 1 when the answer has an error or no `cluster up` runs there.
pub fn ask(dir: &Path, line: &str) -> anyhow::Result<ExitCode> {
    let path = socket_path(dir);
    let mut stream = match UnixStream::connect(&path) {
        Ok(stream) => stream,
        Err(error) => {
            let nothing = if line == "down" {
                "nothing to stop: "
            } else {
                ""
            };
            eprintln!(
                "{nothing}no `kchaos cluster up` is running in {} ({}: {error})",
                dir.display(),
                path.display()
            );
            return Ok(ExitCode::from(1));
        }
    };
    stream
        .set_write_timeout(Some(IO_TIMEOUT))
        .context("setting a timeout")?;
    stream
        .set_read_timeout(Some(ANSWER_GAP_MAX))
        .context("setting a timeout")?;
    writeln!(stream, "{line}").with_context(|| format!("writing to {}", path.display()))?;
    stream
        .shutdown(std::net::Shutdown::Write)
        .with_context(|| format!("writing to {}", path.display()))?;
    let mut failed = false;
    for answer in BufReader::new(stream).lines() {
        let answer = match answer {
            Ok(answer) => answer,
            Err(error)
                if error.kind() == std::io::ErrorKind::WouldBlock
                    || error.kind() == std::io::ErrorKind::TimedOut =>
            {
                eprintln!(
                    "error: `cluster up` did not answer for {} s (is it paused?)",
                    ANSWER_GAP_MAX.as_secs()
                );
                return Ok(ExitCode::from(1));
            }
            Err(error) => {
                eprintln!("error: reading the answer: {error}");
                return Ok(ExitCode::from(1));
            }
        };
        if answer.starts_with("error: ") {
            failed = true;
            eprintln!("{answer}");
        } else {
            println!("{answer}");
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
