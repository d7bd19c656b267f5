//! A run directory, loaded: the workload as run (`workload.toml`), the checker's verdict
//! (`results.json`, optional: without it the run is "not checked"), the history scan, the
//! optional leadership samples and the node logs, by relative name.

use std::path::{Path, PathBuf};

use checker::Results;

use crate::error::ReportError;
use crate::history_scan::{HistoryScan, scan_history_file};
use crate::leadership::{Leadership, read_leadership};

pub const HISTORY_FILE: &str = "history.jsonl";
pub const RESULTS_FILE: &str = "results.json";
pub const WORKLOAD_FILE: &str = "workload.toml";
pub const LEADERSHIP_FILE: &str = "leadership.jsonl";
pub const REPORT_FILE: &str = "report.html";
pub const JUNIT_FILE: &str = "results.xml";
/// Log files listed, at most.
const LOGS_MAX: usize = 200;

/// Everything a report shows.
#[derive(Debug)]
pub struct RunData {
    pub dir: PathBuf,
    /// The workload's name: the run directory's parent (`store/<workload>/<timestamp>/`).
    pub workload_name: String,
    /// The run directory's own name (a timestamp for stored runs).
    pub run_name: String,
    pub workload: Option<toml::Table>,
    pub results: Option<Results>,
    pub history: HistoryScan,
    pub leadership: Option<Leadership>,
    /// Node logs and other `*.log` files, relative to the run directory.
    pub logs: Vec<String>,
}

impl RunData {
    /// The workload's seed, from workload.toml.
    pub fn seed(&self) -> Option<i64> {
        self.workload
            .as_ref()
            .and_then(|workload| workload.get("seed"))
            .and_then(toml::Value::as_integer)
    }

    /// Whether `name` exists in the run directory.
    pub fn has_file(&self, name: &str) -> bool {
        self.dir.join(name).is_file()
    }
}

/// Checks that `dir` is a directory.
pub fn require_dir(dir: &Path) -> Result<(), ReportError> {
    if dir.is_dir() {
        Ok(())
    } else if dir.exists() {
        Err(ReportError::NotADirectory {
            path: dir.to_path_buf(),
        })
    } else {
        Err(ReportError::Missing {
            path: dir.to_path_buf(),
        })
    }
}

/// Loads a run directory. `history.jsonl` must be there; the rest is optional, but any file
/// that is there must parse.
pub fn load_run(dir: &Path) -> Result<RunData, ReportError> {
    require_dir(dir)?;
    let history = scan_history_file(&dir.join(HISTORY_FILE))?;
    Ok(RunData {
        dir: dir.to_path_buf(),
        workload_name: file_name(dir.parent()).unwrap_or_else(|| "run".to_string()),
        run_name: file_name(Some(dir)).unwrap_or_default(),
        workload: read_workload(&dir.join(WORKLOAD_FILE))?,
        results: read_results(&dir.join(RESULTS_FILE))?,
        history,
        leadership: read_leadership(&dir.join(LEADERSHIP_FILE))?,
        logs: list_logs(dir)?,
    })
}

fn file_name(path: Option<&Path>) -> Option<String> {
    let path = path?;
    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    canonical
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
}

fn read_optional(path: &Path) -> Result<Option<String>, ReportError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ReportError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// results.json, `None` when absent.
pub fn read_results(path: &Path) -> Result<Option<Results>, ReportError> {
    let Some(text) = read_optional(path)? else {
        return Ok(None);
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|error| ReportError::Malformed {
            path: path.to_path_buf(),
            reason: error.to_string(),
        })
}

/// workload.toml as a plain table (the report shows whatever it holds), `None` when absent.
pub fn read_workload(path: &Path) -> Result<Option<toml::Table>, ReportError> {
    let Some(text) = read_optional(path)? else {
        return Ok(None);
    };
    text.parse::<toml::Table>()
        .map(Some)
        .map_err(|error| ReportError::Malformed {
            path: path.to_path_buf(),
            reason: error.to_string(),
        })
}

/// `*.log` files in the run directory and one level below, sorted.
fn list_logs(dir: &Path) -> Result<Vec<String>, ReportError> {
    let mut logs = Vec::new();
    let read = |path: &Path| {
        std::fs::read_dir(path).map_err(|source| ReportError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    for entry in read(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if path.is_dir() {
            for inner in read(&path)?.flatten() {
                let inner_name = inner.file_name().to_string_lossy().into_owned();
                if inner_name.ends_with(".log") && inner.path().is_file() {
                    logs.push(format!("{name}/{inner_name}"));
                }
            }
        } else if name.ends_with(".log") {
            logs.push(name);
        }
        if logs.len() >= LOGS_MAX {
            break;
        }
    }
    logs.sort();
    logs.truncate(LOGS_MAX);
    Ok(logs)
}
