//! Per-partition availability, for the `unavailable` anomaly: the stretches during which a
//! partition acknowledged no send while sends to it were being made. Between two `ok` sends of
//! a partition the producers never stopped (they send at a steady rate over keys that cover
//! every partition), so the gap is a stretch; after a partition's last `ok` send (or from the
//! first send of the run, if it never had one), the stretch runs to the last send completion of
//! the run and counts only if a send to that partition completed without an acknowledgement in
//! it (an `info` or `fail` naming the partition) — proof that it was tried. Fed in history
//! order; memory is a few numbers per partition.

use std::collections::BTreeMap;

/// One stretch without an acknowledged send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stretch {
    pub partition: i32,
    pub start_ns: u64,
    pub end_ns: u64,
}

impl Stretch {
    pub fn length_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct PartitionState {
    last_ok_ns: Option<u64>,
    /// A send to it completed without an acknowledgement since the last `ok` one.
    tried_since_ok: bool,
}

/// Stretches longer than a bound, found as the history is fed.
#[derive(Debug, Default)]
pub struct Availability {
    bound_ns: Option<u64>,
    partitions: BTreeMap<i32, PartitionState>,
    first_send_ns: Option<u64>,
    last_send_ns: u64,
    found: Vec<Stretch>,
}

impl Availability {
    /// Looks for stretches longer than `bound_ns`; `None`: looks for nothing.
    pub fn new(bound_ns: Option<u64>) -> Self {
        Self {
            bound_ns,
            ..Self::default()
        }
    }

    /// Any send operation (invoke or completion).
    pub fn send_seen(&mut self, time_ns: u64) {
        self.first_send_ns.get_or_insert(time_ns);
        self.last_send_ns = self.last_send_ns.max(time_ns);
    }

    /// A send completion that names its partition.
    pub fn send_completed(&mut self, partition: i32, time_ns: u64, acknowledged: bool) {
        let Some(bound_ns) = self.bound_ns else {
            return;
        };
        let state = self.partitions.entry(partition).or_default();
        if !acknowledged {
            state.tried_since_ok = true;
            return;
        }
        if let Some(last_ok_ns) = state.last_ok_ns
            && time_ns.saturating_sub(last_ok_ns) > bound_ns
        {
            self.found.push(Stretch {
                partition,
                start_ns: last_ok_ns,
                end_ns: time_ns,
            });
        } else if state.last_ok_ns.is_none() && state.tried_since_ok {
            let start_ns = self.first_send_ns.unwrap_or(time_ns);
            if time_ns.saturating_sub(start_ns) > bound_ns {
                self.found.push(Stretch {
                    partition,
                    start_ns,
                    end_ns: time_ns,
                });
            }
        }
        state.last_ok_ns = Some(time_ns.max(state.last_ok_ns.unwrap_or(0)));
        state.tried_since_ok = false;
    }

    /// The stretches longer than the bound, with the trailing ones, in order of their start.
    pub fn finish(mut self) -> Vec<Stretch> {
        let Some(bound_ns) = self.bound_ns else {
            return Vec::new();
        };
        let end_ns = self.last_send_ns;
        for (partition, state) in &self.partitions {
            if !state.tried_since_ok {
                continue;
            }
            let start_ns = state
                .last_ok_ns
                .unwrap_or_else(|| self.first_send_ns.unwrap_or(end_ns));
            if end_ns.saturating_sub(start_ns) > bound_ns {
                self.found.push(Stretch {
                    partition: *partition,
                    start_ns,
                    end_ns,
                });
            }
        }
        self.found
            .sort_by_key(|stretch| (stretch.start_ns, stretch.partition));
        self.found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn gaps_between_acknowledgements_longer_than_the_bound_are_stretches() {
        let mut availability = Availability::new(Some(5 * SECOND));
        availability.send_seen(0);
        availability.send_completed(0, SECOND, true);
        availability.send_completed(1, SECOND, true);
        availability.send_completed(0, 3 * SECOND, true);
        availability.send_completed(1, 9 * SECOND, true);
        availability.send_seen(10 * SECOND);
        assert_eq!(
            availability.finish(),
            vec![Stretch {
                partition: 1,
                start_ns: SECOND,
                end_ns: 9 * SECOND
            }]
        );
    }

    #[test]
    fn a_partition_that_never_comes_back_counts_only_if_it_was_tried() {
        let mut availability = Availability::new(Some(5 * SECOND));
        availability.send_seen(0);
        availability.send_completed(0, SECOND, true);
        availability.send_completed(1, SECOND, true);
        availability.send_completed(1, 12 * SECOND, false);
        availability.send_seen(20 * SECOND);
        // Partition 0 was not tried after its last ok (its producers stopped with the run).
        assert_eq!(
            availability.finish(),
            vec![Stretch {
                partition: 1,
                start_ns: SECOND,
                end_ns: 20 * SECOND
            }]
        );
    }

    #[test]
    fn without_a_bound_nothing_is_looked_for() {
        let mut availability = Availability::new(None);
        availability.send_seen(0);
        availability.send_completed(0, 100 * SECOND, false);
        availability.send_seen(200 * SECOND);
        assert!(availability.finish().is_empty());
    }
}
