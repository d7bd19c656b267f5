//! Turns a kchaos run directory (history.jsonl, results.json, workload config) into one
//! self-contained HTML report. It reads files only; it never talks to a cluster.
