//! `kchaos coord SERVER [command]`: a zookeeper-shell for any ZooKeeper-protocol server, built on
//! the `zookeeper-client` crate, with zkCli's commands and flags: `ls [-s] [-R]`, `get [-s]`,
//! `stat`, `create [-e] [-s]`, `set [-s] [-v VERSION]`, `delete [-v VERSION]`, `deleteall`; with
//! no command it reads commands from stdin, one per line. A flag a command does not know is a
//! usage error (exit 2, before connecting), never ignored. Server errors print ZooKeeper's
//! messages (`Node does not exist: /x`) and exit 1.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context;
use zookeeper_client as zk;

/// Arguments of `kchaos coord`.
#[derive(Debug, clap::Args)]
#[command(after_help = HELP_COMMANDS)]
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

const HELP_COMMANDS: &str = "Commands (as zookeeper-shell's):
  ls [-s] [-R] PATH                 children of PATH; -s: and its stat; -R: every path below, depth first
  get [-s] PATH                     data of PATH; -s: and its stat
  stat PATH                         the stat of PATH
  create [-e] [-s] PATH [DATA]      -e: ephemeral (lives as long as this shell), -s: sequential
  set [-s] [-v VERSION] PATH DATA   -v: only if the version matches; -s: print the new stat
  delete [-v VERSION] PATH          a node without children
  deleteall PATH                    PATH and everything below it
  quit                              leave the interactive shell
Flags may come before or after the path; `--` ends them. Exit codes: 0 done, 1 the server refused
(its message is printed), 2 bad usage (an unknown command or flag).";

/// A command that failed in a way the user should read: bad usage (exit 2) or a server's
/// refusal (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error("{0}")]
    Usage(String),
    #[error("{message}")]
    Server { message: String },
}

impl ShellError {
    /// The exit code of a one-shot command that failed this way.
    pub fn exit_code(&self) -> u8 {
        match self {
            ShellError::Usage(_) => 2,
            ShellError::Server { .. } => 1,
        }
    }
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

const USAGE: &str = "commands: ls [-s] [-R] PATH | get [-s] PATH | stat PATH | \
create [-e] [-s] PATH [DATA] | set [-s] [-v VERSION] PATH DATA | delete [-v VERSION] PATH | \
deleteall PATH | quit";

/// At most this many paths are visited by `ls -R` and `deleteall`.
const SUBTREE_PATHS_MAX: usize = 1_000_000;

/// One parsed shell command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellCommand {
    Ls {
        path: String,
        stat: bool,
        recursive: bool,
    },
    Get {
        path: String,
        stat: bool,
    },
    Stat {
        path: String,
    },
    Create {
        path: String,
        data: String,
        ephemeral: bool,
        sequential: bool,
    },
    Set {
        path: String,
        data: String,
        version: Option<i32>,
        stat: bool,
    },
    Delete {
        path: String,
        version: Option<i32>,
    },
    DeleteAll {
        path: String,
    },
    Help,
}

/// What one command accepts: its flags without a value, its flags with one, how many
/// positional arguments, and the usage line that says so.
struct Syntax {
    usage: &'static str,
    flags: &'static [char],
    value_flags: &'static [char],
    positional_min: usize,
    positional_max: usize,
}

/// A command's words, split by its [`Syntax`].
struct Parsed {
    flags: Vec<char>,
    values: Vec<(char, String)>,
    positional: Vec<String>,
}

impl Parsed {
    fn has(&self, flag: char) -> bool {
        self.flags.contains(&flag)
    }

    fn version(&self, usage: &str) -> Result<Option<i32>, ShellError> {
        self.values
            .iter()
            .rev()
            .find(|(flag, _)| *flag == 'v')
            .map(|(_, value)| {
                value.parse().map_err(|_| {
                    ShellError::Usage(format!("version is not a number: {value}; usage: {usage}"))
                })
            })
            .transpose()
    }
}

/// Splits `words` (after the command's name) into flags and positional arguments, as zkCli's
/// option parser does: flags anywhere, bundled (`-es`), `--` ends them. An unknown flag, a flag
/// without its value or a wrong number of arguments is a usage error naming the command.
fn parse_words(name: &str, syntax: &Syntax, words: &[String]) -> Result<Parsed, ShellError> {
    let usage_error =
        |message: String| ShellError::Usage(format!("{message}; usage: {}", syntax.usage));
    let mut parsed = Parsed {
        flags: Vec::new(),
        values: Vec::new(),
        positional: Vec::new(),
    };
    let mut words = words.iter();
    let mut options_ended = false;
    while let Some(word) = words.next() {
        if options_ended || word.len() < 2 || !word.starts_with('-') {
            parsed.positional.push(word.clone());
            continue;
        }
        if word == "--" {
            options_ended = true;
            continue;
        }
        let letters: Vec<char> = word[1..].chars().collect();
        for (index, &letter) in letters.iter().enumerate() {
            if syntax.flags.contains(&letter) {
                parsed.flags.push(letter);
            } else if syntax.value_flags.contains(&letter) {
                let attached: String = letters[index + 1..].iter().collect();
                let value = if attached.is_empty() {
                    words
                        .next()
                        .cloned()
                        .ok_or_else(|| usage_error(format!("{name}: -{letter} needs a value")))?
                } else {
                    attached
                };
                parsed.values.push((letter, value));
                break;
            } else if letter == 'w' {
                return Err(usage_error(format!(
                    "{name}: -w (watch) is not supported by kchaos coord"
                )));
            } else {
                return Err(usage_error(format!("{name}: unknown option -{letter}")));
            }
        }
    }
    let count = parsed.positional.len();
    if count < syntax.positional_min || count > syntax.positional_max {
        return Err(usage_error(format!(
            "{name}: {} argument{} given",
            count,
            if count == 1 { "" } else { "s" }
        )));
    }
    Ok(parsed)
}

/// Parses one command line (`ls -R /brokers`), without touching a server.
pub fn parse_command(words: &[String]) -> Result<ShellCommand, ShellError> {
    let Some((name, rest)) = words.split_first() else {
        return Err(ShellError::Usage(USAGE.into()));
    };
    let syntax = |usage, flags, value_flags, positional_min, positional_max| Syntax {
        usage,
        flags,
        value_flags,
        positional_min,
        positional_max,
    };
    let path_only = |usage| syntax(usage, &[], &[], 1, 1);
    Ok(match name.as_str() {
        "ls" => {
            let parsed = parse_words(
                name,
                &syntax("ls [-s] [-R] PATH", &['s', 'R'], &[], 1, 1),
                rest,
            )?;
            ShellCommand::Ls {
                stat: parsed.has('s'),
                recursive: parsed.has('R'),
                path: parsed.positional[0].clone(),
            }
        }
        "get" => {
            let parsed = parse_words(name, &syntax("get [-s] PATH", &['s'], &[], 1, 1), rest)?;
            ShellCommand::Get {
                stat: parsed.has('s'),
                path: parsed.positional[0].clone(),
            }
        }
        "stat" => {
            let parsed = parse_words(name, &path_only("stat PATH"), rest)?;
            ShellCommand::Stat {
                path: parsed.positional[0].clone(),
            }
        }
        "create" => {
            let usage = "create [-e] [-s] PATH [DATA]";
            let parsed = parse_words(name, &syntax(usage, &['e', 's'], &[], 1, 2), rest)?;
            ShellCommand::Create {
                ephemeral: parsed.has('e'),
                sequential: parsed.has('s'),
                path: parsed.positional[0].clone(),
                data: parsed.positional.get(1).cloned().unwrap_or_default(),
            }
        }
        "set" => {
            let usage = "set [-s] [-v VERSION] PATH DATA";
            let parsed = parse_words(name, &syntax(usage, &['s'], &['v'], 2, 2), rest)?;
            ShellCommand::Set {
                version: parsed.version(usage)?,
                stat: parsed.has('s'),
                path: parsed.positional[0].clone(),
                data: parsed.positional[1].clone(),
            }
        }
        "delete" => {
            let usage = "delete [-v VERSION] PATH";
            let parsed = parse_words(name, &syntax(usage, &[], &['v'], 1, 1), rest)?;
            ShellCommand::Delete {
                version: parsed.version(usage)?,
                path: parsed.positional[0].clone(),
            }
        }
        "deleteall" | "rmr" => {
            let parsed = parse_words(name, &path_only("deleteall PATH"), rest)?;
            ShellCommand::DeleteAll {
                path: parsed.positional[0].clone(),
            }
        }
        "help" => ShellCommand::Help,
        other => {
            return Err(ShellError::Usage(format!(
                "unknown command {other}; {USAGE}"
            )));
        }
    })
}

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
    // A mistyped command is answered before anything connects.
    let command = if args.command.is_empty() {
        None
    } else {
        match parse_command(&args.command) {
            Ok(command) => Some(command),
            Err(error) => {
                eprintln!("{error}");
                return Ok(ExitCode::from(error.exit_code()));
            }
        }
    };
    runtime.block_on(async move {
        let client = connect(&args.server, Duration::from_millis(args.timeout_ms)).await?;
        let outcome = match command {
            None => interactive(&client, &args.server).await,
            Some(command) => {
                let mut stdout = std::io::stdout();
                Ok(match run_command(&client, &command, &mut stdout).await {
                    Ok(_) => ExitCode::SUCCESS,
                    Err(error) => {
                        eprintln!("{error}");
                        ExitCode::from(error.exit_code())
                    }
                })
            }
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

/// Parses and runs one command, writing its output.
pub async fn execute(
    client: &zk::Client,
    command: &[String],
    out: &mut impl Write,
) -> Result<(), ShellError> {
    run_command(client, &parse_command(command)?, out).await
}

/// Runs one parsed command, writing its output.
pub async fn run_command(
    client: &zk::Client,
    command: &ShellCommand,
    out: &mut impl Write,
) -> Result<(), ShellError> {
    let write_failed =
        |error: std::io::Error| ShellError::Usage(format!("writing output: {error}"));
    match command {
        ShellCommand::Ls {
            path,
            stat,
            recursive: true,
        } => {
            for visited in subtree(client, path).await? {
                writeln!(out, "{visited}").map_err(write_failed)?;
            }
            if *stat {
                let node_stat = existing_stat(client, path).await?;
                write!(out, "{}", format_stat(&node_stat)).map_err(write_failed)?;
            }
        }
        ShellCommand::Ls {
            path,
            stat,
            recursive: false,
        } => {
            let (mut children, node_stat) = client
                .get_children(path)
                .await
                .map_err(server_error(path))?;
            children.sort();
            writeln!(out, "[{}]", children.join(", ")).map_err(write_failed)?;
            if *stat {
                write!(out, "{}", format_stat(&node_stat)).map_err(write_failed)?;
            }
        }
        ShellCommand::Get { path, stat } => {
            let (data, node_stat) = client.get_data(path).await.map_err(server_error(path))?;
            writeln!(out, "{}", String::from_utf8_lossy(&data)).map_err(write_failed)?;
            if *stat {
                write!(out, "{}", format_stat(&node_stat)).map_err(write_failed)?;
            }
        }
        ShellCommand::Stat { path } => {
            let node_stat = existing_stat(client, path).await?;
            write!(out, "{}", format_stat(&node_stat)).map_err(write_failed)?;
        }
        ShellCommand::Create {
            path,
            data,
            ephemeral,
            sequential,
        } => {
            let mode = match (ephemeral, sequential) {
                (false, false) => zk::CreateMode::Persistent,
                (false, true) => zk::CreateMode::PersistentSequential,
                (true, false) => zk::CreateMode::Ephemeral,
                (true, true) => zk::CreateMode::EphemeralSequential,
            };
            let options = mode.with_acls(zk::Acls::anyone_all());
            let (_, sequence) = client
                .create(path, data.as_bytes(), &options)
                .await
                .map_err(server_error(path))?;
            let created = if *sequential {
                format!("{path}{sequence}")
            } else {
                path.clone()
            };
            writeln!(out, "Created {created}").map_err(write_failed)?;
        }
        ShellCommand::Set {
            path,
            data,
            version,
            stat,
        } => {
            let node_stat = client
                .set_data(path, data.as_bytes(), *version)
                .await
                .map_err(server_error(path))?;
            if *stat {
                write!(out, "{}", format_stat(&node_stat)).map_err(write_failed)?;
            }
        }
        ShellCommand::Delete { path, version } => {
            client
                .delete(path, *version)
                .await
                .map_err(server_error(path))?;
        }
        ShellCommand::DeleteAll { path } => {
            // Deepest first: every node is deleted after its children.
            for visited in subtree(client, path).await?.iter().rev() {
                match client.delete(visited, None).await {
                    Ok(()) | Err(zk::Error::NoNode) => {}
                    Err(error) => return Err(server_error(visited)(error)),
                }
            }
        }
        ShellCommand::Help => writeln!(out, "{HELP_COMMANDS}").map_err(write_failed)?,
    }
    Ok(())
}

/// The stat of `path`, or zkCli's "Node does not exist".
async fn existing_stat(client: &zk::Client, path: &str) -> Result<zk::Stat, ShellError> {
    client
        .check_stat(path)
        .await
        .map_err(server_error(path))?
        .ok_or_else(|| server_error(path)(zk::Error::NoNode))
}

/// `path` and every path below it, depth first, each node before its children, children in
/// name order (zkCli's `ls -R`). A node deleted meanwhile is skipped; `path` itself must exist.
async fn subtree(client: &zk::Client, path: &str) -> Result<Vec<String>, ShellError> {
    let mut visited = Vec::new();
    let mut pending = vec![path.to_string()];
    while let Some(node) = pending.pop() {
        let mut children = match client.list_children(&node).await {
            Ok(children) => children,
            Err(zk::Error::NoNode) if node != path => continue,
            Err(error) => return Err(server_error(&node)(error)),
        };
        if visited.len() >= SUBTREE_PATHS_MAX {
            return Err(ShellError::Usage(format!(
                "{path} has more than {SUBTREE_PATHS_MAX} paths below it"
            )));
        }
        children.sort();
        let prefix = if node == "/" { "" } else { node.as_str() };
        pending.extend(
            children
                .iter()
                .rev()
                .map(|child| format!("{prefix}/{child}")),
        );
        visited.push(node);
    }
    Ok(visited)
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

#[cfg(test)]
mod tests;
