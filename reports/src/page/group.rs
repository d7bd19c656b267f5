//! The consumer group section, for runs whose consumers were members of a group: how many
//! members, rebalances and commits, and every assignment as each member saw it — when, which
//! partitions, the committed offsets it started from, and the fault it came after — so that a
//! reader can follow a `nonmonotonic-commit` or an `unconsumed` value to the rebalance around
//! it. Absent for runs without a group.

use std::fmt::Write;

use crate::escape::escape;
use crate::faults::Faults;
use crate::plot::format_time_ns;
use crate::run_dir::RunData;

use super::anomalies::fault_context;

pub(super) fn group_section(page: &mut String, run: &RunData, faults: &Faults) {
    let groups = &run.history.groups;
    if groups.members == 0 {
        return;
    }
    let [ok, fail, info] = groups.commits;
    let _ = write!(
        page,
        r#"<section id="group"><h2>Consumer group</h2><p id="group-summary">{} member{} subscribed; {} assignment{} and {} revocation{} by rebalances; commits: {ok} ok, {fail} failed, {info} indeterminate.</p>"#,
        groups.members,
        if groups.members == 1 { "" } else { "s" },
        groups.assigns_total,
        if groups.assigns_total == 1 { "" } else { "s" },
        groups.revokes,
        if groups.revokes == 1 { "" } else { "s" },
    );
    if !groups.assigns.is_empty() {
        page.push_str(r#"<table id="group-assignments"><thead><tr><th class="num">at</th><th class="num">consumer</th><th>group</th><th>partitions</th><th>started at (committed offsets)</th><th>fault</th></tr></thead><tbody>"#);
        for assign in &groups.assigns {
            let partitions: Vec<String> = assign.partitions.iter().map(i32::to_string).collect();
            let started = match &assign.committed {
                Some(committed) => {
                    let offsets: Vec<String> = assign
                        .partitions
                        .iter()
                        .map(
                            |partition| match committed.iter().find(|(p, _)| p == partition) {
                                Some((_, offset)) => format!("{partition}: {offset}"),
                                None => format!("{partition}: log start"),
                            },
                        )
                        .collect();
                    offsets.join(", ")
                }
                None => "not fetched".to_string(),
            };
            let _ = write!(
                page,
                r#"<tr><td class="num">{}</td><td class="num">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                format_time_ns(assign.time_ns),
                assign.process,
                escape(&assign.group),
                escape(&partitions.join(", ")),
                escape(&started),
                escape(&fault_context(faults, assign.time_ns)),
            );
        }
        page.push_str("</tbody></table>");
        if groups.assigns_total > groups.assigns.len() as u64 {
            let _ = write!(
                page,
                r#"<p class="note">The first {} of {} assignments.</p>"#,
                groups.assigns.len(),
                groups.assigns_total
            );
        }
    }
    page.push_str("</section>");
}
