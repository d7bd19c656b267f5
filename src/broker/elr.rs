//! KIP-966's eligible leader replicas (ELR), the part a ZooKeeper-mode controller can keep, as
//! pure functions of a partition's state. With `eligible.leader.replicas.enable`:
//! - the high watermark advances only while the ISR has `min.insync.replicas` members (Kafka
//!   4's "strict min ISR", in `partition/followers.rs`), so a replica that leaves the ISR while
//!   it is below that size holds every committed record: it joins the ELR and stays eligible
//!   for leadership. The ELR is cleared once the ISR is back to `min.insync.replicas` (the high
//!   watermark moves on without its members), and a replica leaves it when it rejoins the ISR;
//! - an election takes a live ISR member first, else a live ELR member (which leads alone in
//!   the ISR), else — unclean election allowed — any live replica, else nobody;
//! - a broker back from an unclean shutdown may have lost what it never fsync'd (KIP-966's
//!   "last replica standing": it would be elected as the last ISR member and its followers would
//!   cut their logs to match). It leaves every ELR, and leaves the ISR too while some other
//!   replica is eligible (another ISR member, or an ELR member); otherwise it stays, the last
//!   known leader, elected as Kafka did before KIP-966 when every replica was lost.
//!
//! The broker announces an unclean shutdown with a persistent `/brokers/unclean_shutdowns/<id>`
//! created before it registers (it finds no `.kafka_cleanshutdown` file in its log directory,
//! which a clean shutdown leaves); the controller applies it to every partition and deletes it.

/// The ELR after an ISR change from `old_isr` to `new_isr`: replicas that rejoined leave it,
/// replicas that left join it when the new ISR is below `min_isr`, and it is cleared when the
/// new ISR has `min_isr` members.
pub fn after_isr_change(old_isr: &[i32], new_isr: &[i32], elr: &[i32], min_isr: i32) -> Vec<i32> {
    if new_isr.len() as i32 >= min_isr {
        return Vec::new();
    }
    let mut after: Vec<i32> = elr
        .iter()
        .copied()
        .filter(|replica| !new_isr.contains(replica))
        .collect();
    for replica in old_isr {
        if !new_isr.contains(replica) && !after.contains(replica) {
            after.push(*replica);
        }
    }
    after
}

/// The ISR and ELR once `broker`, back from an unclean shutdown, is no longer eligible: out of
/// the ELR, and out of the ISR unless it is the only eligible replica left. `None` when neither
/// changes.
pub fn without_unclean(isr: &[i32], elr: &[i32], broker: i32) -> Option<(Vec<i32>, Vec<i32>)> {
    let new_elr: Vec<i32> = elr.iter().copied().filter(|r| *r != broker).collect();
    let others_in_isr = isr.iter().any(|r| *r != broker);
    let new_isr: Vec<i32> = if isr.contains(&broker) && (others_in_isr || !new_elr.is_empty()) {
        isr.iter().copied().filter(|r| *r != broker).collect()
    } else {
        isr.to_vec()
    };
    (new_isr.len() != isr.len() || new_elr.len() != elr.len()).then_some((new_isr, new_elr))
}

/// The ELR-aware election (a live ISR member, else a live ELR member), in assignment order:
/// the leader, the ISR and the ELR; `None` when no ISR or ELR member is alive.
pub fn elect(
    replicas: &[i32],
    isr: &[i32],
    elr: &[i32],
    live: &[i32],
    min_isr: i32,
) -> Option<(i32, Vec<i32>, Vec<i32>)> {
    let live_isr: Vec<i32> = isr.iter().copied().filter(|r| live.contains(r)).collect();
    if let Some(leader) = replicas.iter().copied().find(|r| live_isr.contains(r)) {
        let new_elr = after_isr_change(isr, &live_isr, elr, min_isr);
        return Some((leader, live_isr, new_elr));
    }
    let leader = replicas
        .iter()
        .copied()
        .find(|r| elr.contains(r) && live.contains(r))?;
    let new_isr = vec![leader];
    let new_elr = after_isr_change(isr, &new_isr, elr, min_isr);
    Some((leader, new_isr, new_elr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_leaving_an_isr_below_min_isr_join_the_elr_until_it_recovers() {
        // min ISR 2: {1,2,3} -> {1,3} is fine; -> {1} puts 3 in the ELR.
        assert_eq!(
            after_isr_change(&[1, 2, 3], &[1, 3], &[], 2),
            Vec::<i32>::new()
        );
        assert_eq!(after_isr_change(&[1, 3], &[1], &[], 2), vec![3]);
        assert_eq!(after_isr_change(&[1, 2, 3], &[1], &[], 2), vec![2, 3]);
        // 3 rejoins: out of the ELR; the ISR has 2 members again: the ELR is cleared.
        assert_eq!(
            after_isr_change(&[1], &[1, 3], &[2, 3], 2),
            Vec::<i32>::new()
        );
        assert_eq!(after_isr_change(&[1], &[1, 3], &[2, 3], 3), vec![2]);
        // min ISR 1: never below it, never an ELR.
        assert_eq!(
            after_isr_change(&[1, 2, 3], &[1], &[], 1),
            Vec::<i32>::new()
        );
    }

    #[test]
    fn an_unclean_broker_leaves_the_isr_only_while_another_replica_is_eligible() {
        // The last replica standing, with others in the ELR: out.
        assert_eq!(
            without_unclean(&[1], &[2, 3], 1),
            Some((vec![], vec![2, 3]))
        );
        // The last replica standing with nobody else eligible: it stays, the last known leader.
        assert_eq!(without_unclean(&[1], &[], 1), None);
        // An ELR member back from an unclean shutdown leaves the ELR.
        assert_eq!(without_unclean(&[1], &[2, 3], 2), Some((vec![1], vec![3])));
        // An ISR member with others in the ISR: out.
        assert_eq!(without_unclean(&[1, 2], &[], 2), Some((vec![1], vec![])));
        assert_eq!(without_unclean(&[1, 2], &[], 3), None);
    }

    #[test]
    fn elections_take_the_isr_then_the_elr() {
        // A live ISR member leads; the dead ones join the ELR (ISR below min ISR 2).
        assert_eq!(
            elect(&[1, 2, 3], &[1, 2], &[], &[2, 3], 2),
            Some((2, vec![2], vec![1]))
        );
        // No ISR member alive: the first live ELR member leads alone.
        assert_eq!(
            elect(&[1, 2, 3], &[], &[2, 3], &[1, 3], 2),
            Some((3, vec![3], vec![2]))
        );
        // Nobody eligible alive.
        assert_eq!(elect(&[1, 2, 3], &[], &[2, 3], &[1], 2), None);
    }
}
