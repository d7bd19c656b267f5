//! Fault targets, the words a workload uses to say *whom* to hit (`leader`, `controller`,
//! `followers`, `successor`, `random`, `broker-2`, `coordinator`, `majority`, `except:LABEL`,
//! `group-coordinator`, `consumer`, ...): their grammar, checked when a workload is loaded. The
//! nemesis resolves them to node names at fault time (`nemesis::target`).

/// Who a fault hits, before resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The leader of a partition (the step's partition).
    Leader,
    /// Every follower of a partition.
    Followers,
    /// The follower a clean election would pick if the leader died now: the first replica, in
    /// the metadata's replica order (the assignment order), that is in the ISR and is not the
    /// leader — Kafka's rule.
    Successor,
    /// The controller broker.
    Controller,
    /// One broker chosen at random.
    Random,
    /// A broker by id (`broker-2` or `2`).
    Broker(i32),
    /// The coordinator.
    Coordinator,
    /// A random majority of the brokers.
    Majority,
    /// A random minority (at least one) of the brokers.
    Minority,
    /// Every broker.
    AllBrokers,
    /// The nodes an earlier step labelled.
    Label(String),
    /// Every running broker except those earlier steps labelled (`except:old`, or several
    /// labels joined by `+`: `except:old+m`).
    Except(Vec<String>),
    /// The broker coordinating the workload's consumer group (FindCoordinator, at fault time).
    GroupCoordinator,
    /// One running member of the workload's consumer group, chosen at random.
    Consumer,
}

impl Target {
    /// Parses a target word; the error says what is accepted.
    pub fn parse(text: &str) -> Result<Self, String> {
        let target = match text {
            "leader" => Target::Leader,
            "followers" => Target::Followers,
            "successor" => Target::Successor,
            "controller" => Target::Controller,
            "random" => Target::Random,
            "coordinator" => Target::Coordinator,
            "majority" => Target::Majority,
            "minority" => Target::Minority,
            "all-brokers" => Target::AllBrokers,
            "group-coordinator" => Target::GroupCoordinator,
            "consumer" => Target::Consumer,
            other => {
                if let Some(label) = other.strip_prefix("label:") {
                    Target::Label(label.to_string())
                } else if let Some(labels) = other.strip_prefix("except:") {
                    let labels: Vec<String> = labels.split('+').map(str::to_string).collect();
                    if labels.iter().any(String::is_empty) {
                        return Err(format!(
                            "`{other}` names an empty label (except:NAME or except:NAME+NAME)"
                        ));
                    }
                    Target::Except(labels)
                } else if let Ok(id) = other
                    .strip_prefix("broker-")
                    .unwrap_or(other)
                    .parse::<i32>()
                {
                    Target::Broker(id)
                } else {
                    return Err(format!(
                        "`{other}` is not a target (leader, followers, successor, controller, \
                         random, coordinator, majority, minority, all-brokers, broker-N, N, \
                         label:NAME, except:NAME[+NAME], group-coordinator, consumer)"
                    ));
                }
            }
        };
        Ok(target)
    }

    /// The labels earlier steps must have set for this target (`label:NAME`, `except:NAME+...`).
    pub fn labels(&self) -> Vec<&str> {
        match self {
            Target::Label(label) => vec![label.as_str()],
            Target::Except(labels) => labels.iter().map(String::as_str).collect(),
            _ => Vec::new(),
        }
    }

    /// Whether resolving this target needs live metadata.
    pub fn needs_metadata(&self) -> bool {
        matches!(
            self,
            Target::Leader | Target::Followers | Target::Successor | Target::Controller
        )
    }

    /// Whether this target only means something with a consumer group (`[clients.group]`).
    pub fn needs_group(&self) -> bool {
        matches!(self, Target::GroupCoordinator | Target::Consumer)
    }

    /// Whether it names nodes by their role in one topic partition (`leader`, `followers`,
    /// `successor`), so that a fault at it is about that partition.
    pub fn is_per_partition(&self) -> bool {
        matches!(self, Target::Leader | Target::Followers | Target::Successor)
    }

    /// Refuses broker ids outside `1..=brokers`.
    pub fn check_against(&self, brokers: u32) -> Result<(), String> {
        match self {
            Target::Broker(id) if *id < 1 || *id as u32 > brokers => Err(format!(
                "broker-{id} does not exist (brokers are broker-1..broker-{brokers})"
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonsense_is_refused_naming_it() {
        let error = Target::parse("the-boss").expect_err("nonsense");
        assert!(error.contains("the-boss"), "{error}");
        assert!(Target::Broker(4).check_against(3).is_err());
    }

    #[test]
    fn group_targets_need_a_group() {
        assert_eq!(
            Target::parse("group-coordinator"),
            Ok(Target::GroupCoordinator)
        );
        assert_eq!(Target::parse("consumer"), Ok(Target::Consumer));
        assert!(Target::Consumer.needs_group());
        assert!(!Target::Leader.needs_group());
    }
}
