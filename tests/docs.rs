//! The documentation points at things that exist: every relative link in a Markdown file (and its
//! `#anchor`), every repository path written in backquotes (`src/...`, `docs/...`, `.ci/...`), and
//! every `docs/*.md` named in the code. A file moved or a heading renamed fails here, not in a
//! reader's browser.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Top-level entries a backquoted path may start with to count as a repository path.
const TOP_LEVEL: [&str; 9] = [
    "src/",
    "harness/",
    "reports/",
    "workloads/",
    "tests/",
    "docs/",
    ".ci/",
    ".github/",
    "README.md",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every file under `dir` with one of `extensions`, leaving out build output and runs.
fn files(dir: &Path, extensions: &[&str], found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if !["target", ".git", "store", "node_modules"].contains(&name.as_str()) {
                files(&path, extensions, found);
            }
        } else if extensions
            .iter()
            .any(|extension| name.ends_with(&format!(".{extension}")))
        {
            found.push(path);
        }
    }
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown file's headings.
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut in_code = false;
    let mut anchors = BTreeSet::new();
    for line in markdown.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            anchors.insert(anchor(
                line.trim_start_matches('#').replace('`', "").as_str(),
            ));
        }
    }
    anchors
}

/// `](target)` links of a Markdown text.
fn links(markdown: &str) -> Vec<String> {
    markdown
        .split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .map(|target| target.split_whitespace().next().unwrap_or("").to_string())
        .collect()
}

/// Backquoted words that look like repository paths.
fn quoted_paths(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|word| TOP_LEVEL.iter().any(|top| word.starts_with(top)))
        .filter(|word| !word.contains([' ', '<', '*', '{', '$']))
        .map(|word| word.trim_end_matches([',', '.', ':']).to_string())
        .collect()
}

#[test]
fn every_documented_link_and_path_exists() {
    let root = root();
    let mut markdown = Vec::new();
    files(&root, &["md"], &mut markdown);
    assert!(markdown.len() >= 7, "{markdown:?}");
    let mut broken = Vec::new();
    for file in &markdown {
        let text = std::fs::read_to_string(file).unwrap();
        let shown = file.strip_prefix(&root).unwrap().display().to_string();
        for link in links(&text) {
            if link.is_empty() || link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            let (path, fragment) = link.split_once('#').unwrap_or((&link, ""));
            let target = if path.is_empty() {
                file.clone()
            } else {
                file.parent().unwrap().join(path)
            };
            if !target.exists() {
                broken.push(format!("{shown}: link {link}: no {}", target.display()));
            } else if !fragment.is_empty() && target.extension().is_some_and(|e| e == "md") {
                let headings = anchors(&std::fs::read_to_string(&target).unwrap());
                if !headings.contains(fragment) {
                    broken.push(format!("{shown}: link {link}: no heading #{fragment}"));
                }
            }
        }
        for path in quoted_paths(&text) {
            if !root.join(&path).exists() && !file.parent().unwrap().join(&path).exists() {
                broken.push(format!("{shown}: `{path}` does not exist"));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "broken references:\n{}",
        broken.join("\n")
    );
}

#[test]
fn every_docs_page_the_code_names_exists() {
    let root = root();
    let mut sources = Vec::new();
    for dir in ["src", "harness", "reports", "workloads", ".ci", ".github"] {
        files(
            &root.join(dir),
            &["rs", "toml", "yml", "py", "sh"],
            &mut sources,
        );
    }
    let mut broken = Vec::new();
    for file in &sources {
        let text = std::fs::read_to_string(file).unwrap();
        for (index, _) in text.match_indices("docs/") {
            let name: String = text[index..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || "/-_.".contains(*c))
                .collect();
            let name = name.trim_end_matches('.');
            if name.ends_with(".md") && !root.join(name).is_file() {
                broken.push(format!(
                    "{}: {name}",
                    file.strip_prefix(&root).unwrap().display()
                ));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "the code names missing pages:\n{}",
        broken.join("\n")
    );
}

#[test]
fn anchors_are_githubs() {
    assert_eq!(anchor(" The pass rule"), "the-pass-rule");
    assert_eq!(anchor("results.json"), "resultsjson");
    assert_eq!(
        anchor("--broker-command and --coordinator-command"),
        "--broker-command-and---coordinator-command"
    );
    assert_eq!(
        anchor("Admin tools: topics, configs, elect"),
        "admin-tools-topics-configs-elect"
    );
}
