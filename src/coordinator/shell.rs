//! `kchaos coord SERVER [command]`: a zookeeper-shell for any ZooKeeper-protocol server, built on
//! the `zookeeper-client` crate. `ls`, `get`, `stat`, `create [-e] [-s]`, `set [-v]`,
//! `delete [-v]`; with no command it reads commands from stdin, one per line. Errors print
//! ZooKeeper's messages (`Node does not exist: /x`) and exit 1.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context;
use zookeeper_client as zk;

/// Arguments of `kchaos coord`.
#[derive(Debug, clap::Args)]
pub struct ShellArgs {
    /// host:port of the server, e.g. 127.0.0.1:2181.
    pub server: String,
    /// Session timeout requested, as zkCli's `-timeout`.
    #[arg(long, default_value_t = 30_000)]
    pub timeout_ms: u64,
    /// The command and its arguments; none means read commands from stdin.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// A command that failed in a way the user should read (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error("{0}")]
    Usage(String),
    #[error("{message}")]
    Server { message: String },
}

/// ZooKeeper's zkCli wording for an error on `path`.
fn describe(error: &zk::Error, path: &str) -> String {
    match error {
        zk::Error::NoNode => format!("Node does not exist: {path}"),
        zk::Error::NodeExists => format!("Node already exists: {path}"),
        zk::Error::BadVersion => format!("version No is not valid : {path}"),
        zk::Error::NotEmpty => format!("Node not empty: {path}"),
        zk::Error::NoChildrenForEphemerals => format!("Ephemerals cannot have children: {path}"),
        zk::Error::SessionExpired => "Session expired".to_string(),
        other => format!("{other}: {path}"),
    }
}

fn server_error(path: &str) -> impl Fn(zk::Error) -> ShellError + '_ {
    move |error| ShellError::Server {
        message: describe(&error, path),
    }
}

const USAGE: &str = "commands: ls PATH | get PATH | stat PATH | create [-e] [-s] PATH [DATA] | \
set PATH DATA [-v VERSION] | delete [-v VERSION] PATH | quit";

/// Runs one command or the interactive prompt.
pub fn run(args: ShellArgs) -> anyhow::Result<ExitCode> {
    // A shell's output is for people: the client library's connection chatter stays out of it
    // unless RUST_LOG asks for it. The runtime below runs on this thread, so this applies to it.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let quiet = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .finish();
    let _quiet = tracing::subscriber::set_default(quiet);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async move {
        let client = connect(&args.server, Duration::from_millis(args.timeout_ms)).await?;
        let outcome = if args.command.is_empty() {
            interactive(&client, &args.server).await
        } else {
            let mut stdout = std::io::stdout();
            Ok(match execute(&client, &args.command, &mut stdout).await {
                Ok(_) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("{error}");
                    ExitCode::from(1)
                }
            })
        };
        close(client).await;
        outcome
    })
}

/// Closes the session and waits (briefly) until the server has confirmed, so that our
/// ephemeral nodes are gone when we exit rather than when the session times out.
pub async fn close(client: zk::Client) {
    let mut state = client.state_watcher();
    drop(client);
    let closed = async {
        while !state.peek_state().is_terminated() {
            state.changed().await;
        }
    };
    // If the server is gone there is nothing to wait for.
    let _ = tokio::time::timeout(Duration::from_secs(2), closed).await;
}

async fn connect(server: &str, session_timeout: Duration) -> anyhow::Result<zk::Client> {
    let connecting = zk::Client::connector()
        .with_session_timeout(session_timeout)
        .with_connection_timeout(Duration::from_secs(5))
        .with_fail_eagerly()
        .connect(server);
    tokio::time::timeout(Duration::from_secs(15), connecting)
        .await
        .with_context(|| format!("connecting to {server}: timed out"))?
        .with_context(|| format!("connecting to {server}"))
}

/// Reads commands from stdin until `quit` or end of input. Ephemeral nodes live as long as
/// this process does.
async fn interactive(client: &zk::Client, server: &str) -> anyhow::Result<ExitCode> {
    let (lines_sender, mut lines) = tokio::sync::mpsc::channel::<String>(16);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if lines_sender.blocking_send(line).is_err() {
                break;
            }
        }
    });
    let mut stdout = std::io::stdout();
    let mut count = 0;
    loop {
        write!(stdout, "[zk: {server}(CONNECTED) {count}] ")?;
        stdout.flush()?;
        let Some(line) = lines.recv().await else {
            break;
        };
        count += 1;
        let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        match words.first().map(String::as_str) {
            None => continue,
            Some("quit" | "exit") => break,
            Some(_) => {
                if let Err(error) = execute(client, &words, &mut stdout).await {
                    writeln!(stdout, "{error}")?;
                }
            }
        }
    }
    writeln!(stdout)?;
    Ok(ExitCode::SUCCESS)
}

/// Splits `-e`, `-s` and `-v VERSION` flags from positional words.
struct Words {
    flags: Vec<String>,
    version: Option<i32>,
    positional: Vec<String>,
}

fn split_words(words: &[String]) -> Result<Words, ShellError> {
    let mut parsed = Words {
        flags: Vec::new(),
        version: None,
        positional: Vec::new(),
    };
    let mut iter = words.iter();
    while let Some(word) = iter.next() {
        match word.as_str() {
            "-v" => {
                let value = iter
                    .next()
                    .ok_or_else(|| ShellError::Usage("-v needs a version".into()))?;
                let version = value
                    .parse()
                    .map_err(|_| ShellError::Usage(format!("version is not a number: {value}")))?;
                parsed.version = Some(version);
            }
            flag if flag.starts_with('-') && flag.len() == 2 && parsed.positional.is_empty() => {
                parsed.flags.push(flag.to_string())
            }
            _ => parsed.positional.push(word.clone()),
        }
    }
    Ok(parsed)
}

fn path_argument(words: &Words, command: &str) -> Result<String, ShellError> {
    words
        .positional
        .first()
        .cloned()
        .ok_or_else(|| ShellError::Usage(format!("{command} needs a path; {USAGE}")))
}

/// Runs one command, writing its output.
pub async fn execute(
    client: &zk::Client,
    command: &[String],
    out: &mut impl Write,
) -> Result<(), ShellError> {
    let Some((name, rest)) = command.split_first() else {
        return Err(ShellError::Usage(USAGE.into()));
    };
    let words = split_words(rest)?;
    let write_failed =
        |error: std::io::Error| ShellError::Usage(format!("writing output: {error}"));
    match name.as_str() {
        "ls" => {
            let path = path_argument(&words, "ls")?;
            let mut children = client
                .list_children(&path)
                .await
                .map_err(server_error(&path))?;
            children.sort();
            writeln!(out, "[{}]", children.join(", ")).map_err(write_failed)?;
        }
        "get" => {
            let path = path_argument(&words, "get")?;
            let (data, _) = client.get_data(&path).await.map_err(server_error(&path))?;
            writeln!(out, "{}", String::from_utf8_lossy(&data)).map_err(write_failed)?;
        }
        "stat" => {
            let path = path_argument(&words, "stat")?;
            let stat = client
                .check_stat(&path)
                .await
                .map_err(server_error(&path))?
                .ok_or_else(|| server_error(&path)(zk::Error::NoNode))?;
            write!(out, "{}", format_stat(&stat)).map_err(write_failed)?;
        }
        "create" => {
            let path = path_argument(&words, "create")?;
            let data = words.positional.get(1).cloned().unwrap_or_default();
            let ephemeral = words.flags.iter().any(|flag| flag == "-e");
            let sequential = words.flags.iter().any(|flag| flag == "-s");
            let mode = match (ephemeral, sequential) {
                (false, false) => zk::CreateMode::Persistent,
                (false, true) => zk::CreateMode::PersistentSequential,
                (true, false) => zk::CreateMode::Ephemeral,
                (true, true) => zk::CreateMode::EphemeralSequential,
            };
            let options = mode.with_acls(zk::Acls::anyone_all());
            let (_, sequence) = client
                .create(&path, data.as_bytes(), &options)
                .await
                .map_err(server_error(&path))?;
            let created = if sequential {
                format!("{path}{sequence}")
            } else {
                path
            };
            writeln!(out, "Created {created}").map_err(write_failed)?;
        }
        "set" => {
            let path = path_argument(&words, "set")?;
            let data = words
                .positional
                .get(1)
                .ok_or_else(|| ShellError::Usage(format!("set needs data; {USAGE}")))?;
            client
                .set_data(&path, data.as_bytes(), words.version)
                .await
                .map_err(server_error(&path))?;
        }
        "delete" => {
            let path = path_argument(&words, "delete")?;
            client
                .delete(&path, words.version)
                .await
                .map_err(server_error(&path))?;
        }
        "help" => writeln!(out, "{USAGE}").map_err(write_failed)?,
        other => {
            return Err(ShellError::Usage(format!(
                "unknown command {other}; {USAGE}"
            )));
        }
    }
    Ok(())
}

fn format_time(epoch_ms: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(epoch_ms.max(0) as u64);
    humantime::format_rfc3339_millis(time).to_string()
}

/// The stat block zkCli prints.
pub fn format_stat(stat: &zk::Stat) -> String {
    format!(
        "cZxid = {:#x}\nctime = {}\nmZxid = {:#x}\nmtime = {}\npZxid = {:#x}\ncversion = {}\n\
dataVersion = {}\naclVersion = {}\nephemeralOwner = {:#x}\ndataLength = {}\nnumChildren = {}\n",
        stat.czxid,
        format_time(stat.ctime),
        stat.mzxid,
        format_time(stat.mtime),
        stat.pzxid,
        stat.cversion,
        stat.version,
        stat.aversion,
        stat.ephemeral_owner,
        stat.data_length,
        stat.num_children
    )
}
