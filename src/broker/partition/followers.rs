//! The leader's view of its followers: each follower's log end and when it last caught up
//! (Kafka's `Replica` state on the leader), the high watermark they move (the smallest log end
//! offset in the ISR), and the ISR changes the leader asks for (lagging followers leave,
//! caught-up ones join).

use std::time::{Duration, Instant};

use super::{Inner, IsrChange, Partition};
#[cfg(feature = "planted-bugs")]
use crate::planted::{self, PlantedBug};

/// What the leader knows of one follower (Kafka's `Replica` state on the leader).
#[derive(Debug, Clone, Copy)]
pub(super) struct FollowerState {
    /// -1 until the follower's first fetch in this leader epoch.
    pub(super) log_end_offset: i64,
    last_caught_up: Instant,
    /// The leader's log end and the time at the follower's previous fetch.
    last_fetch_leader_end: i64,
    last_fetch: Instant,
}

impl FollowerState {
    pub(super) fn unknown(now: Instant) -> Self {
        FollowerState {
            log_end_offset: -1,
            last_caught_up: now,
            last_fetch_leader_end: -1,
            last_fetch: now,
        }
    }
}

impl Partition {
    /// A follower fetched at `fetch_offset` (its log end offset): may move the high watermark.
    pub fn record_follower_fetch(&self, replica_id: i32, fetch_offset: i64) {
        let mut inner = self.lock();
        self.record_follower_fetch_locked(&mut inner, replica_id, fetch_offset);
    }

    /// Kafka's catch-up rule: a fetch at or past the leader's current end means caught up now;
    /// one at or past the leader's end at the previous fetch means caught up at that fetch.
    pub(super) fn record_follower_fetch_locked(
        &self,
        inner: &mut Inner,
        replica_id: i32,
        fetch_offset: i64,
    ) {
        let Some(log) = inner.log.as_ref() else {
            return;
        };
        if !inner.state.replicas.contains(&replica_id) {
            return;
        }
        let leader_end = log.log_end_offset();
        if fetch_offset > leader_end {
            // Not a log end this leader can vouch for (the read path refuses it first).
            return;
        }
        let now = Instant::now();
        let follower = inner
            .followers
            .entry(replica_id)
            .or_insert_with(|| FollowerState::unknown(now));
        follower.log_end_offset = fetch_offset;
        if fetch_offset >= leader_end {
            follower.last_caught_up = now;
        } else if fetch_offset >= follower.last_fetch_leader_end {
            follower.last_caught_up = follower.last_caught_up.max(follower.last_fetch);
        }
        follower.last_fetch_leader_end = leader_end;
        follower.last_fetch = now;
        let rejoin =
            !inner.state.isr.contains(&replica_id) && self.can_join_isr(inner, fetch_offset);
        if self.advance_high_watermark(inner) || rejoin {
            self.publish(inner);
        }
        if rejoin {
            self.isr_wakeup.notify_one();
        }
    }

    /// A follower may join the ISR when its log end has reached the high watermark and the
    /// start of the leader's current epoch.
    fn can_join_isr(&self, inner: &Inner, follower_end: i64) -> bool {
        let Some(log) = inner.log.as_ref() else {
            return false;
        };
        let epoch_start = current_epoch_start(inner).unwrap_or(log.log_end_offset());
        follower_end >= inner.high_watermark && follower_end >= epoch_start
    }

    /// Whether this leader's high watermark is still below the start of its own epoch: just
    /// elected, it holds records the previous leader committed that it cannot count as
    /// committed until its followers fetch from it. Kafka (KIP-207) then answers a client's
    /// ListOffsets OFFSET_NOT_AVAILABLE, so that nobody takes this lower high watermark for the
    /// end of what was committed.
    pub fn high_watermark_behind_epoch_start(&self) -> bool {
        let inner = self.lock();
        inner.state.leader == self.broker_id
            && current_epoch_start(&inner).is_some_and(|start| inner.high_watermark < start)
    }

    /// HW = the smallest log end offset among the ISR (the leader's own included). Returns
    /// whether it moved. It never moves back; only the leader moves it this way.
    pub(super) fn advance_high_watermark(&self, inner: &mut Inner) -> bool {
        let Some(log) = inner.log.as_ref() else {
            return false;
        };
        if inner.state.leader != self.broker_id {
            return false;
        }
        if let Some(min_isr) = inner.high_watermark_min_isr
            && (inner.state.isr.len() as i32) < min_isr
        {
            return false;
        }
        let mut candidate = log.log_end_offset();
        for replica in &inner.state.isr {
            if *replica == self.broker_id {
                continue;
            }
            #[cfg(feature = "planted-bugs")] // planted bug: high-watermark-from-leader-alone
            if planted::is_active(PlantedBug::HighWatermarkFromLeaderAlone) {
                continue;
            }
            let follower_end = inner
                .followers
                .get(replica)
                .map_or(-1, |f| f.log_end_offset);
            candidate = candidate.min(follower_end);
        }
        #[cfg(feature = "planted-bugs")] // planted bug: high-watermark-from-one-follower
        if planted::is_active(PlantedBug::HighWatermarkFromOneFollower) {
            let most_caught_up = (inner.state.isr.iter())
                .filter(|replica| **replica != self.broker_id)
                .filter_map(|replica| inner.followers.get(replica))
                .map(|follower| follower.log_end_offset)
                .max();
            candidate = most_caught_up.map_or(candidate, |end| end.min(log.log_end_offset()));
        }
        if candidate > inner.high_watermark {
            debug_assert!(
                candidate <= log.log_end_offset(),
                "{}-{}: high watermark {candidate} past the leader's log end {}",
                self.topic,
                self.index,
                log.log_end_offset()
            );
            inner.high_watermark = candidate;
            return true;
        }
        false
    }

    /// As leader: the ISR this partition should have now (followers that have not caught up
    /// within `lag_max` leave; replicas of `live` brokers that caught up join), if it differs
    /// from the current. A broker that is not registered (dead, or in a controlled shutdown
    /// whose fetchers still run) does not join: the controller has just taken it out.
    pub fn isr_change(&self, lag_max: Duration, live: &[i32]) -> Option<IsrChange> {
        let inner = self.lock();
        if inner.state.leader != self.broker_id || inner.log.is_none() {
            return None;
        }
        let now = Instant::now();
        let mut new_isr: Vec<i32> = inner
            .state
            .isr
            .iter()
            .copied()
            .filter(|replica| {
                *replica == self.broker_id
                    || inner
                        .followers
                        .get(replica)
                        .is_some_and(|f| now.duration_since(f.last_caught_up) <= lag_max)
            })
            .collect();
        for replica in &inner.state.replicas {
            if new_isr.contains(replica) || !live.contains(replica) {
                continue;
            }
            let caught_up = inner.followers.get(replica).is_some_and(|f| {
                now.duration_since(f.last_caught_up) <= lag_max
                    && self.can_join_isr(&inner, f.log_end_offset)
            });
            if caught_up {
                new_isr.push(*replica);
            }
        }
        if !new_isr.contains(&self.broker_id) {
            new_isr.insert(0, self.broker_id);
        }
        debug_assert!(
            new_isr
                .iter()
                .all(|replica| inner.state.replicas.contains(replica)),
            "{}-{}: proposed ISR {new_isr:?} is not a subset of the replicas {:?}",
            self.topic,
            self.index,
            inner.state.replicas
        );
        (new_isr != inner.state.isr).then(|| IsrChange {
            state: inner.state.clone(),
            new_isr,
        })
    }

    /// The leader's own ISR change was written (znode version `zk_version`): take it, unless
    /// leadership moved meanwhile.
    pub fn isr_written(&self, change: &IsrChange, zk_version: i32) -> bool {
        let mut inner = self.lock();
        if inner.state.leader_epoch != change.state.leader_epoch
            || inner.state.zk_version != change.state.zk_version
        {
            return false;
        }
        inner.state.isr = change.new_isr.clone();
        inner.state.zk_version = zk_version;
        self.advance_high_watermark(&mut inner);
        let offsets = self.current_offsets(&inner);
        // Waiters re-check the ISR size even when the high watermark did not move.
        self.offsets.send_replace(offsets);
        true
    }
}

/// Where the current leader epoch starts in this replica's log; None without a log or before
/// the epoch has an entry.
fn current_epoch_start(inner: &Inner) -> Option<i64> {
    inner
        .log
        .as_ref()?
        .leader_epochs()
        .entries()
        .iter()
        .rev()
        .find(|entry| entry.epoch == inner.state.leader_epoch)
        .map(|entry| entry.start_offset)
}
