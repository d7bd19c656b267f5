//! Run directories for the tests: a hand-written history builder, the real checker to make
//! results.json, and a seeded synthetic run (faults, latency spikes, timeouts, loss, leadership
//! samples) big enough to look like a nightly run.

#![allow(clippy::unwrap_used, dead_code)]

use std::path::{Path, PathBuf};

use checker::{Expectations, LostExpectation, Results, check_history_file};
use serde_json::{Value, json};

/// Appends history lines with consecutive indexes.
#[derive(Default)]
pub struct History {
    lines: Vec<String>,
}

impl History {
    pub fn op(&mut self, time_ns: u64, process: Value, op_type: &str, f: &str, value: Value) {
        let line = json!({
            "index": self.lines.len(),
            "time_ns": time_ns,
            "process": process,
            "type": op_type,
            "f": f,
            "value": value,
        });
        self.lines.push(line.to_string());
    }

    pub fn invoke_send(&mut self, time_ns: u64, process: u64, value: &str) {
        self.op(
            time_ns,
            json!(process),
            "invoke",
            "send",
            json!({"key": "k", "value": value}),
        );
    }

    pub fn ok_send(
        &mut self,
        time_ns: u64,
        process: u64,
        value: &str,
        partition: i32,
        offset: i64,
    ) {
        self.op(
            time_ns,
            json!(process),
            "ok",
            "send",
            json!({"key": "k", "value": value, "partition": partition, "offset": offset}),
        );
    }

    pub fn failed_send(
        &mut self,
        time_ns: u64,
        process: u64,
        value: &str,
        op_type: &str,
        error: &str,
    ) {
        self.op(
            time_ns,
            json!(process),
            op_type,
            "send",
            json!({"key": "k", "value": value, "error": error}),
        );
    }

    pub fn nemesis(&mut self, time_ns: u64, op_type: &str, f: &str, node: &str, why: &str) {
        self.op(
            time_ns,
            json!("nemesis"),
            op_type,
            f,
            json!({"node": node, "why": why}),
        );
    }

    pub fn final_read(
        &mut self,
        time_ns: u64,
        process: u64,
        partition: i32,
        records: &[(i64, String)],
    ) {
        self.op(
            time_ns,
            json!(process),
            "invoke",
            "final-read",
            json!({"partition": partition}),
        );
        let records: Vec<Value> = records
            .iter()
            .map(|(offset, value)| json!([partition, offset, value]))
            .collect();
        let high_watermark = records.len();
        self.op(
            time_ns + 1_000_000,
            json!(process),
            "ok",
            "final-read",
            json!({
                "partition": partition,
                "log_start_offset": 0,
                "high_watermark": high_watermark,
                "records": records,
                "complete": true,
            }),
        );
    }

    pub fn write(&self, path: &Path) {
        let mut text = self.lines.join("\n");
        text.push('\n');
        std::fs::write(path, text).unwrap();
    }
}

/// `store/<workload>/<run>/`, created.
pub fn run_dir(store: &Path, workload: &str, run: &str) -> PathBuf {
    let dir = store.join(workload).join(run);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the real checker on the run's history and writes results.json.
pub fn check(dir: &Path, lost: LostExpectation) -> Results {
    let expectations = Expectations {
        lost,
        ..Expectations::default()
    };
    let results = check_history_file(&dir.join("history.jsonl"), &expectations);
    results.write_json(&dir.join("results.json")).unwrap();
    results
}

pub const WORKLOAD_TOML: &str = r#"description = "RF3, min.insync.replicas=2: SIGKILL the leader every 6 s & restart it <3 s later"
duration = "30s"
seed = 42

[cluster]
brokers = 3
session_timeout_ms = 1500
broker_configs = { "replica.lag.time.max.ms" = "1500", "auto.leader.rebalance.enable" = "false" }

[topic]
name = "t"
partitions = 3
replication_factor = 3
configs = { "min.insync.replicas" = "2", "unclean.leader.election.enable" = "false" }

[clients]
producers = 3
consumers = 1
acks = "all"
rate = 100

[nemesis]
kind = "random"
interval = "6s"
faults = ["kill", "pause"]
targets = ["leader"]

[expect]
lost = "none"
"#;

/// The hand-written fixture: two partitions, four acknowledged sends per partition, one lost
/// from each (`1-3` at partition 0 offset 2 acknowledged at 40 ms, and the script value at
/// partition 1 offset 1 acknowledged at 31 ms), one failed and one indeterminate send, a kill
/// and a restart of broker-2.
pub const SCRIPT_VALUE: &str = "<script>alert('x')</script>&co";

pub fn fixture(dir: &Path) {
    let ms = 1_000_000u64;
    let mut history = History::default();
    let partition0 = [("1-1", 0i64), ("1-2", 1), ("1-3", 2), ("1-4", 3)];
    let partition1 = [("2-1", 0i64), (SCRIPT_VALUE, 1), ("2-3", 2), ("2-4", 3)];
    for (step, ((value0, offset0), (value1, offset1))) in
        partition0.iter().zip(partition1.iter()).enumerate()
    {
        let at = 10 * ms * step as u64 + 10 * ms;
        history.invoke_send(at, 1, value0);
        history.invoke_send(at + ms, 2, value1);
        history.ok_send(at + 10 * ms, 1, value0, 0, *offset0);
        history.ok_send(at + 3 * ms, 2, value1, 1, *offset1);
        if step == 1 {
            history.nemesis(at + 4 * ms, "invoke", "kill", "broker-2", "leader of t-1");
            history.nemesis(at + 5 * ms, "info", "kill", "broker-2", "leader of t-1");
        }
    }
    history.invoke_send(60 * ms, 3, "3-1");
    history.failed_send(62 * ms, 3, "3-1", "fail", "NOT_ENOUGH_REPLICAS");
    history.invoke_send(61 * ms, 4, "4-1");
    history.failed_send(90 * ms, 4, "4-1", "info", "REQUEST_TIMED_OUT");
    history.nemesis(
        95 * ms,
        "invoke",
        "restart",
        "broker-2",
        "heal <now> & then",
    );
    history.nemesis(99 * ms, "info", "restart", "broker-2", "heal <now> & then");
    let read = |values: &[(&str, i64)], skip: &str| -> Vec<(i64, String)> {
        values
            .iter()
            .filter(|(value, _)| *value != skip)
            .map(|(value, offset)| (*offset, value.to_string()))
            .collect()
    };
    history.final_read(100 * ms, 9, 0, &read(&partition0, "1-3"));
    history.final_read(102 * ms, 9, 1, &read(&partition1, SCRIPT_VALUE));
    history.write(&dir.join("history.jsonl"));
    std::fs::write(dir.join("workload.toml"), WORKLOAD_TOML).unwrap();
    std::fs::write(dir.join("broker-2.log"), "broker 2 log\n").unwrap();
}

/// A xorshift generator: the synthetic run is the same every time.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Log-uniform-ish latency around `median_us`.
    fn latency_us(&mut self, median_us: f64) -> u64 {
        let spread = (self.unit() + self.unit() + self.unit() - 1.5) * 1.6;
        (median_us * spread.exp()).max(50.0) as u64
    }
}

/// A 40-second run of three producers at 100 sends/s each on three partitions, with a kill of
/// broker-2 (the leader of partition 1, losing what only it had), a pause of broker-1, a kill
/// of broker-3 healed at the end, timeouts and refusals during the faults, and leadership
/// samples every 250 ms. `rate_per_producer` scales it.
pub fn synthetic(dir: &Path, rate_per_producer: u64, seconds: u64) {
    let ms = 1_000_000u64;
    let second = 1_000 * ms;
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let mut history = History::default();
    let mut logs: [Vec<(i64, String)>; 3] = Default::default();
    // Acknowledged but lost since the new leader's log overwrote them, per partition.
    let mut overwritten = [0i64; 3];
    // Windows (ns): broker 2 down 8..13 s, broker 1 paused 18..21 s, broker 3 down 28..end-3 s.
    let kill2 = (8 * second, 13 * second);
    let pause1 = (18 * second, 21 * second);
    let kill3 = (28 * second, (seconds - 3) * second);
    let down = |broker: i32, time_ns: u64| match broker {
        2 => time_ns >= kill2.0 + 1_500 * ms && time_ns < kill2.1,
        1 => time_ns >= pause1.0 + 1_500 * ms && time_ns < pause1.1,
        3 => time_ns >= kill3.0 + 1_500 * ms && time_ns < kill3.1,
        _ => false,
    };
    let leader_of = |partition: usize, time_ns: u64| -> i32 {
        let mut leader = [1, 2, 3][partition];
        for _ in 0..3 {
            if !down(leader, time_ns) {
                return leader;
            }
            leader = leader % 3 + 1;
        }
        -1
    };
    let mut events: Vec<(u64, u64, String, i32)> = Vec::new();
    let interval_ns = second / rate_per_producer.max(1);
    for producer in 1..=3u64 {
        let mut sequence = 0u64;
        let mut time_ns = producer * 3 * ms;
        while time_ns < (seconds - 2) * second {
            sequence += 1;
            let partition = (random.next() % 3) as usize;
            events.push((
                time_ns,
                producer,
                format!("{producer}-{sequence}"),
                partition as i32,
            ));
            time_ns += interval_ns / 2 + random.next() % interval_ns;
        }
    }
    events.sort();
    // (completion time, line) pairs, written in time order with the invocations.
    let mut lines: Vec<(u64, u8, Value, &'static str, Value)> = Vec::new();
    for (invoke_ns, producer, value, partition) in &events {
        let partition = *partition as usize;
        let leader = leader_of(partition, *invoke_ns);
        let in_window = |window: (u64, u64), broker: i32| {
            leader == broker && *invoke_ns >= window.0 && *invoke_ns < window.0 + 1_600 * ms
        };
        let disturbed = in_window(kill2, 2) || in_window(pause1, 1) || in_window(kill3, 3);
        let invoke = json!({"key": format!("k{}", random.next() % 16), "value": value});
        lines.push((*invoke_ns, 0, json!(producer), "invoke", invoke.clone()));
        let mut completion = invoke;
        let (op_type, latency_us) = if disturbed {
            match random.next() % 10 {
                0..=3 => ("info", 3_000_000 + random.next() % 200_000),
                4..=5 => ("fail", random.latency_us(900_000.0)),
                _ => ("ok", random.latency_us(1_200_000.0)),
            }
        } else if leader < 0 {
            ("fail", random.latency_us(2_000.0))
        } else {
            ("ok", random.latency_us(2_500.0))
        };
        let done_ns = invoke_ns + latency_us * 1_000;
        match op_type {
            "ok" => {
                // Acknowledged by broker 2 alone just before it died: lost.
                let lost = leader == 2 && *invoke_ns + 120 * ms >= kill2.0 && *invoke_ns < kill2.0;
                let offset;
                if lost {
                    offset = logs[partition].len() as i64 + overwritten[partition];
                    overwritten[partition] += 1;
                } else {
                    offset = logs[partition].len() as i64;
                    overwritten[partition] = 0;
                    logs[partition].push((offset, value.clone()));
                }
                completion["partition"] = json!(partition);
                completion["offset"] = json!(offset);
            }
            "fail" => completion["error"] = json!("NOT_ENOUGH_REPLICAS"),
            _ => completion["error"] = json!("Local: Message timed out"),
        }
        lines.push((done_ns, 1, json!(producer), op_type, completion));
    }
    let nemesis = [
        (kill2.0, "kill", "broker-2", "leader of t-1"),
        (kill2.1, "start", "broker-2", "heal after 5s"),
        (pause1.0, "pause", "broker-1", "leader of t-0"),
        (pause1.1, "resume", "broker-1", "heal after 3s"),
        (kill3.0, "kill", "broker-3", "leader of t-2"),
        (kill3.1, "heal", "all", "end of the fault phase"),
    ];
    for (at, f, node, why) in nemesis {
        lines.push((
            at,
            0,
            json!("nemesis"),
            "invoke",
            json!({"node": node, "why": why}),
        ));
        let took = if f == "start" || f == "heal" {
            600 * ms
        } else {
            2 * ms
        };
        lines.push((
            at + took,
            1,
            json!("nemesis"),
            "info",
            json!({"node": node, "why": why}),
        ));
    }
    lines.sort_by_key(|(time_ns, order, ..)| (*time_ns, *order));
    let nemesis_f = |value: &Value| {
        nemesis
            .iter()
            .find(|(_, _, node, why)| value["node"] == *node && value["why"] == *why)
            .map_or("send", |(_, f, ..)| *f)
    };
    for (time_ns, _, process, op_type, value) in lines {
        let f = if process == json!("nemesis") {
            nemesis_f(&value)
        } else {
            "send"
        };
        history.op(time_ns, process, op_type, f, value);
    }
    let end = seconds * second;
    for (partition, log) in logs.iter().enumerate() {
        history.final_read(end + partition as u64 * 10 * ms, 99, partition as i32, log);
    }
    history.write(&dir.join("history.jsonl"));
    let mut leadership = String::new();
    let mut time_ns = 0;
    while time_ns < end {
        for partition in 0..3 {
            let leader = leader_of(partition, time_ns);
            let isr: Vec<i32> = (1..=3).filter(|broker| !down(*broker, time_ns)).collect();
            leadership.push_str(
                &json!({"time_ns": time_ns, "topic": "t", "partition": partition, "leader": leader, "isr": isr})
                    .to_string(),
            );
            leadership.push('\n');
        }
        time_ns += 250 * ms;
    }
    std::fs::write(dir.join("leadership.jsonl"), leadership).unwrap();
    std::fs::write(dir.join("workload.toml"), WORKLOAD_TOML).unwrap();
    for node in ["coordinator", "broker-1", "broker-2", "broker-3"] {
        std::fs::write(dir.join(format!("{node}.log")), format!("{node} started\n")).unwrap();
    }
}
