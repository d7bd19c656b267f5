//! The coordinator's durable state: the znode tree, the table of live sessions and the last
//! zxid. Live mutations are executed here (a refused one changes nothing and gets no zxid);
//! recovered transactions are replayed through the same code, so both paths agree.

use std::collections::BTreeMap;

use super::protocol::ErrorCode;
use super::tree::{Outcome, Tree, Trigger};
use super::txn::{Mutation, PASSWORD_BYTES, Txn};

/// What the durable state remembers of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionRecord {
    pub timeout_ms: i32,
    pub password: [u8; PASSWORD_BYTES],
}

/// What an executed mutation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Session,
    Single(Outcome),
    Multi(Vec<Outcome>),
}

/// Why a mutation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Single(ErrorCode),
    /// The op at this index of a multi failed.
    Multi(usize, ErrorCode),
}

/// A recovered transaction that does not fit the recovered state: the log is damaged.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("transaction zxid {found:#x} does not follow {last:#x}")]
    Gap { last: i64, found: i64 },
    #[error("transaction zxid {zxid:#x} does not apply: {error:?}")]
    Refused { zxid: i64, error: Refused },
}

#[derive(Debug, Clone, Default)]
pub struct Database {
    pub tree: Tree,
    pub sessions: BTreeMap<i64, SessionRecord>,
    /// The zxid of the last transaction applied.
    pub zxid: i64,
}

impl Database {
    /// Executes a live mutation with the next zxid. On success the state has changed and the
    /// returned transaction must be logged before anyone is told.
    pub fn execute(
        &mut self,
        time_ms: i64,
        mutation: Mutation,
        triggers: &mut Vec<Trigger>,
    ) -> Result<(Applied, Txn), Refused> {
        let txn = Txn {
            zxid: self.zxid + 1,
            time_ms,
            mutation,
        };
        let applied = self.apply(&txn, triggers)?;
        self.zxid = txn.zxid;
        Ok((applied, txn))
    }

    /// Replays a recovered transaction; ones already in the state (zxid <= ours) are skipped.
    pub fn replay(&mut self, txn: &Txn) -> Result<(), ReplayError> {
        if txn.zxid <= self.zxid {
            return Ok(());
        }
        if txn.zxid != self.zxid + 1 {
            return Err(ReplayError::Gap {
                last: self.zxid,
                found: txn.zxid,
            });
        }
        self.apply(txn, &mut Vec::new())
            .map_err(|error| ReplayError::Refused {
                zxid: txn.zxid,
                error,
            })?;
        self.zxid = txn.zxid;
        Ok(())
    }

    fn apply(&mut self, txn: &Txn, triggers: &mut Vec<Trigger>) -> Result<Applied, Refused> {
        match &txn.mutation {
            Mutation::CreateSession {
                session_id,
                timeout_ms,
                password,
            } => {
                self.sessions.insert(
                    *session_id,
                    SessionRecord {
                        timeout_ms: *timeout_ms,
                        password: *password,
                    },
                );
                Ok(Applied::Session)
            }
            Mutation::CloseSession { session_id } => {
                self.tree.close_session(txn.zxid, *session_id, triggers);
                self.sessions.remove(session_id);
                Ok(Applied::Session)
            }
            Mutation::Tree(op) => self
                .tree
                .apply(txn.zxid, txn.time_ms, op, triggers)
                .map(Applied::Single)
                .map_err(Refused::Single),
            Mutation::Multi(ops) => self
                .tree
                .apply_multi(txn.zxid, txn.time_ms, ops, triggers)
                .map(Applied::Multi)
                .map_err(|(index, error)| Refused::Multi(index, error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinator::tree::{NodeCreate, TreeOp};

    #[test]
    fn refused_mutations_take_no_zxid_and_replay_rebuilds_the_state() {
        let mut live = Database::default();
        let mut log = Vec::new();
        let mutations = vec![
            Mutation::CreateSession {
                session_id: 9,
                timeout_ms: 1000,
                password: [1; PASSWORD_BYTES],
            },
            Mutation::Tree(TreeOp::Create(NodeCreate {
                path: "/e".into(),
                data: vec![],
                ephemeral_owner: 9,
                sequential: false,
            })),
            Mutation::Tree(TreeOp::Delete {
                path: "/missing".into(),
                version: -1,
            }),
            Mutation::Tree(TreeOp::Create(NodeCreate {
                path: "/p".into(),
                data: b"1".to_vec(),
                ephemeral_owner: 0,
                sequential: false,
            })),
            Mutation::CloseSession { session_id: 9 },
        ];
        for mutation in mutations {
            if let Ok((_, txn)) = live.execute(5, mutation, &mut Vec::new()) {
                log.push(txn);
            }
        }
        assert_eq!(live.zxid, 4);
        assert!(live.tree.get("/e").is_none());
        let mut recovered = Database::default();
        for txn in &log {
            recovered.replay(txn).expect("replays");
        }
        assert_eq!(recovered.zxid, live.zxid);
        assert_eq!(recovered.tree.get("/p"), live.tree.get("/p"));
        assert!(recovered.sessions.is_empty());
        let gap = Txn {
            zxid: 9,
            ..log[0].clone()
        };
        assert!(matches!(
            recovered.replay(&gap),
            Err(ReplayError::Gap { .. })
        ));
    }
}
