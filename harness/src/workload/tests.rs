//! Workload specs: good files parse with their defaults and survive a round trip; bad ones
//! are refused naming the file, the line and the field; every shipped workload parses.

use super::*;

const GOOD: &str = r#"
description = "kill the leader"
duration = "20s"

[cluster]
brokers = 3
session_timeout_ms = 1500
broker_configs = { "replica.lag.time.max.ms" = "1000" }

[topic]
name = "t"
partitions = 3
replication_factor = 3
configs = { "min.insync.replicas" = "2" }

[clients]
producers = 2
consumers = 1
rate = 100

[nemesis]
kind = "scripted"
steps = [
  { at = "3s", fault = "kill", target = "leader", partition = 1, heal_after = "2s", label = "old" },
  { at = "9s", fault = "pause", target = "label:old" },
]

[expect]
lost = "none"
"#;

#[test]
fn a_good_file_parses_with_defaults() {
    let spec = WorkloadSpec::parse(GOOD, Path::new("good.toml")).expect("parses");
    assert_eq!(spec.duration, Duration::from_secs(20));
    assert_eq!(spec.clients.acks, "all");
    assert_eq!(spec.expect.duplicates, Strictness::Allowed);
    let NemesisSpec::Scripted { steps } = &spec.nemesis else {
        panic!("scripted: {:?}", spec.nemesis)
    };
    assert_eq!(steps[0].heal_after, Some(Duration::from_secs(2)));
    assert_eq!(steps[1].target, "label:old");
}

#[test]
fn a_spec_survives_a_round_trip_through_toml() {
    let spec = WorkloadSpec::parse(GOOD, Path::new("good.toml")).expect("parses");
    let text = spec.to_toml().expect("serialises");
    let again = WorkloadSpec::parse(&text, Path::new("again.toml")).expect("re-parses");
    assert_eq!(spec, again);
}

#[test]
fn an_unknown_field_names_the_file_the_line_and_the_field() {
    let bad = GOOD.replace("rate = 100", "rate = 100\nspeed = 3");
    let error = WorkloadSpec::parse(&bad, Path::new("workloads/bad.toml"))
        .expect_err("unknown field")
        .to_string();
    assert!(error.contains("workloads/bad.toml"), "{error}");
    assert!(error.contains("speed"), "{error}");
    let line = bad
        .lines()
        .position(|line| line.starts_with("speed"))
        .expect("line")
        + 1;
    assert!(error.contains(&format!("line {line}")), "{error}");
}

#[test]
fn a_bad_duration_is_named() {
    let bad = GOOD.replace("duration = \"20s\"", "duration = \"soon\"");
    let error = WorkloadSpec::parse(&bad, Path::new("w.toml"))
        .expect_err("bad duration")
        .to_string();
    assert!(error.contains("soon"), "{error}");
}

#[test]
fn a_replication_factor_above_the_broker_count_is_refused() {
    let bad = GOOD.replace("replication_factor = 3", "replication_factor = 4");
    let error = WorkloadSpec::parse(&bad, Path::new("w.toml"))
        .expect_err("rf 4 of 3")
        .to_string();
    assert!(error.contains("topic.replication_factor"), "{error}");
    let line = bad
        .lines()
        .position(|line| line.starts_with("replication_factor"))
        .expect("line")
        + 1;
    assert!(error.contains(&format!("line {line}")), "{error}");
}

#[test]
fn a_label_must_be_defined_by_an_earlier_step() {
    let bad = GOOD.replace("label:old", "label:new");
    let error = WorkloadSpec::parse(&bad, Path::new("w.toml"))
        .expect_err("unknown label")
        .to_string();
    assert!(error.contains("nemesis.steps[1].target"), "{error}");
    let line = bad
        .lines()
        .position(|line| line.contains("label:new"))
        .expect("line")
        + 1;
    assert!(error.contains(&format!("line {line}")), "{error}");
}

#[test]
fn aimed_steps_and_an_availability_bound_parse() {
    let aimed = GOOD
        .replace(
            r#"{ at = "9s", fault = "pause", target = "label:old" },"#,
            r#"{ at = "9s", fault = "kill", target = "coordinator", when = "isr-shrunk", within = "5s" },
  { at = "10s", fault = "kill", target = "except:old" },"#,
        )
        .replace(r#"lost = "none""#, "lost = \"none\"\nunavailable_max = \"8s\"");
    let spec = WorkloadSpec::parse(&aimed, Path::new("aimed.toml")).expect("parses");
    let NemesisSpec::Scripted { steps } = &spec.nemesis else {
        panic!("scripted")
    };
    assert_eq!(steps[1].when, Some(Condition::IsrShrunk));
    assert_eq!(steps[1].within, Some(Duration::from_secs(5)));
    assert_eq!(spec.expect.unavailable_max, Some(Duration::from_secs(8)));
    let again = WorkloadSpec::parse(&spec.to_toml().expect("toml"), Path::new("again.toml"))
        .expect("round trip");
    assert_eq!(spec, again);
    let unbounded_wait = aimed.replace(r#"when = "isr-shrunk", "#, "");
    let error = WorkloadSpec::parse(&unbounded_wait, Path::new("w.toml"))
        .expect_err("within without when")
        .to_string();
    assert!(error.contains("nemesis.steps[1].within"), "{error}");
    let unknown_label = aimed.replace("except:old", "except:new");
    let error = WorkloadSpec::parse(&unknown_label, Path::new("w.toml"))
        .expect_err("unknown label")
        .to_string();
    assert!(error.contains("no earlier step has label `new`"), "{error}");
    let second_unknown = aimed.replace("except:old", "except:old+new");
    let error = WorkloadSpec::parse(&second_unknown, Path::new("w.toml"))
        .expect_err("unknown second label")
        .to_string();
    assert!(error.contains("no earlier step has label `new`"), "{error}");
    let empty = aimed.replace("except:old", "except:old+");
    let error = WorkloadSpec::parse(&empty, Path::new("w.toml"))
        .expect_err("empty label")
        .to_string();
    assert!(error.contains("names an empty label"), "{error}");
}

#[test]
fn producer_config_passes_through_but_not_over_the_harness_keys() {
    let extra = GOOD.replace(
        "[clients]\n",
        "[clients]\nproducer_config = { \"topic.metadata.refresh.interval.ms\" = \"10000\" }\n",
    );
    let spec = WorkloadSpec::parse(&extra, Path::new("w.toml")).expect("parses");
    assert_eq!(
        spec.clients.producer_config["topic.metadata.refresh.interval.ms"],
        "10000"
    );
    let over = GOOD.replace(
        "[clients]\n",
        "[clients]\nproducer_config = { \"acks\" = \"1\" }\n",
    );
    let error = WorkloadSpec::parse(&over, Path::new("w.toml"))
        .expect_err("acks is the harness's")
        .to_string();
    assert!(error.contains("clients.producer_config.acks"), "{error}");
    assert!(error.contains("is set by the harness"), "{error}");
}

#[test]
fn a_broker_target_must_exist() {
    let bad = GOOD.replace("target = \"leader\"", "target = \"broker-7\"");
    let error = WorkloadSpec::parse(&bad, Path::new("w.toml"))
        .expect_err("no broker 7")
        .to_string();
    assert!(error.contains("broker-7"), "{error}");
}

#[test]
fn every_shipped_workload_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../workloads");
    let workloads = list(&dir).expect("workloads dir");
    assert!(workloads.len() >= 9, "{} workloads", workloads.len());
    for (name, spec) in workloads {
        spec.unwrap_or_else(|error| panic!("{name}: {error}"));
    }
}

#[test]
fn an_unknown_name_lists_the_known_ones() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../workloads");
    let error = resolve("no-such-workload", &dir)
        .expect_err("unknown")
        .to_string();
    assert!(error.contains("no-such-workload"), "{error}");
    assert!(error.contains("single-broker-smoke"), "{error}");
}

/// `GOOD` with a consumer group and group targets.
fn with_group(extra: &str) -> String {
    GOOD.replace(
        "rate = 100\n",
        &format!("rate = 100\n\n[clients.group]\nid = \"g\"\nsession_timeout_ms = 2000\nheartbeat_interval_ms = 400\nmax_poll_interval_ms = 3000\n{extra}"),
    )
    .replace("target = \"leader\"", "target = \"group-coordinator\"")
    .replace("target = \"label:old\"", "target = \"consumer\"")
}

#[test]
fn a_consumer_group_parses_survives_a_round_trip_and_is_checked() {
    let spec = WorkloadSpec::parse(&with_group(""), Path::new("g.toml")).expect("parses");
    let group = spec.clients.group.clone().expect("a group");
    assert_eq!(group.id, "g");
    assert_eq!(group.max_poll_interval_ms, 3000);
    assert_eq!(group.catch_up_timeout_ms, 30_000);
    let again = WorkloadSpec::parse(&spec.to_toml().expect("toml"), Path::new("again.toml"))
        .expect("re-parses");
    assert_eq!(spec, again);

    let short_poll =
        with_group("").replace("max_poll_interval_ms = 3000", "max_poll_interval_ms = 1000");
    let error = WorkloadSpec::parse(&short_poll, Path::new("g.toml"))
        .expect_err("poll interval below the session")
        .to_string();
    assert!(
        error.contains("clients.group.max_poll_interval_ms"),
        "{error}"
    );
    let slow_heartbeat = with_group("").replace(
        "heartbeat_interval_ms = 400",
        "heartbeat_interval_ms = 2000",
    );
    let error = WorkloadSpec::parse(&slow_heartbeat, Path::new("g.toml"))
        .expect_err("heartbeat not below the session")
        .to_string();
    assert!(
        error.contains("clients.group.heartbeat_interval_ms"),
        "{error}"
    );
    let lonely = with_group("").replace("consumers = 1", "consumers = 0");
    let error = WorkloadSpec::parse(&lonely, Path::new("g.toml"))
        .expect_err("a group without consumers")
        .to_string();
    assert!(error.contains("clients.consumers"), "{error}");
}

#[test]
fn group_targets_need_a_group() {
    let without = GOOD.replace("target = \"leader\"", "target = \"group-coordinator\"");
    let error = WorkloadSpec::parse(&without, Path::new("w.toml"))
        .expect_err("group-coordinator without a group")
        .to_string();
    assert!(error.contains("nemesis.steps[0].target"), "{error}");
    assert!(error.contains("[clients.group]"), "{error}");
}

#[test]
fn an_idempotent_producer_needs_acks_all() {
    let idempotent = GOOD.replace("rate = 100", "rate = 100\nidempotence = true");
    assert!(WorkloadSpec::parse(&idempotent, Path::new("w.toml")).is_ok());
    let acks1 = idempotent.replace("rate = 100", "rate = 100\nacks = \"1\"");
    let error = WorkloadSpec::parse(&acks1, Path::new("w.toml"))
        .expect_err("idempotence with acks=1")
        .to_string();
    assert!(error.contains("clients.idempotence"), "{error}");
}

/// GOOD with its steps replaced by `steps`.
fn with_steps(steps: &str) -> String {
    let start = GOOD.find("steps = [").expect("steps");
    let end = GOOD[start..].find("\n]").expect("end of steps") + start + 2;
    format!("{}steps = [\n{steps}\n]{}", &GOOD[..start], &GOOD[end..])
}

#[test]
fn partition_steps_parse_and_need_a_network() {
    let text = with_steps(
        r#"  { at = "3s", fault = "partition", target = "leader", from = "coordinator", heal_after = "5s" },
  { at = "9s", fault = "partition", topology = "ring" },
  { at = "12s", fault = "heal" },"#,
    );
    let spec = WorkloadSpec::parse(&text, Path::new("p.toml")).expect("parses");
    assert!(spec.needs_network());
    assert!(
        !WorkloadSpec::parse(GOOD, Path::new("good.toml"))
            .expect("parses")
            .needs_network()
    );
    let NemesisSpec::Scripted { steps } = &spec.nemesis else {
        panic!("scripted")
    };
    assert_eq!(steps[0].topology, None, "isolate by default");
    assert_eq!(steps[0].from.as_deref(), Some("coordinator"));
    assert_eq!(steps[1].topology, Some(Topology::Ring));
    assert!(steps[2].target.is_empty());
    let again = WorkloadSpec::parse(&spec.to_toml().expect("toml"), Path::new("again.toml"))
        .expect("round trip");
    assert_eq!(spec, again);
}

#[test]
fn a_partition_step_of_the_wrong_shape_is_refused_naming_the_field() {
    let cases = [
        (
            r#"  { at = "3s", fault = "partition", topology = "halves", target = "leader" },"#,
            "nemesis.steps[0].target",
            "chooses its own sides",
        ),
        (
            r#"  { at = "3s", fault = "partition", topology = "isolate" },"#,
            "nemesis.steps[0].target",
            "needs a target",
        ),
        (
            r#"  { at = "3s", fault = "kill", target = "leader", topology = "isolate" },"#,
            "nemesis.steps[0].topology",
            "only a `partition`",
        ),
        (
            r#"  { at = "3s", fault = "partition", topology = "bridge", from = "coordinator" },"#,
            "nemesis.steps[0].from",
            "chooses its own sides",
        ),
        (
            r#"  { at = "3s", fault = "heal", target = "leader" },"#,
            "nemesis.steps[0].target",
            "takes no target",
        ),
        (
            r#"  { at = "3s", fault = "partition", target = "leader", from = "broker-9" },"#,
            "nemesis.steps[0].from",
            "broker-9",
        ),
    ];
    for (step, field, message) in cases {
        let error = WorkloadSpec::parse(&with_steps(step), Path::new("w.toml"))
            .expect_err(step)
            .to_string();
        assert!(error.contains(field), "{step}: {error}");
        assert!(error.contains(message), "{step}: {error}");
    }
    let one_broker = with_steps(r#"  { at = "3s", fault = "partition", topology = "ring" },"#)
        .replace("brokers = 3", "brokers = 1")
        .replace("replication_factor = 3", "replication_factor = 1");
    let error = WorkloadSpec::parse(&one_broker, Path::new("w.toml"))
        .expect_err("a ring of two nodes")
        .to_string();
    assert!(error.contains("needs at least 4 nodes"), "{error}");
}
