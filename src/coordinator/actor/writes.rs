//! The write requests of the actor: create, delete, setData and multi become mutations of the
//! database; a refused one answers ZooKeeper's error, a multi answers per op.

use super::Actor;
use crate::coordinator::database::{Applied, Refused};
use crate::coordinator::jute::Writer;
use crate::coordinator::protocol::{self, Create, ErrorCode, MultiOp, MultiResult};
use crate::coordinator::session::ConnectionId;
use crate::coordinator::tree::{NodeCreate, Outcome, TreeOp};
use crate::coordinator::txn::Mutation;

impl Actor {
    pub(super) fn delete(
        &mut self,
        connection: ConnectionId,
        xid: i32,
        path: String,
        version: i32,
    ) {
        let result = self.execute(Mutation::Tree(TreeOp::Delete { path, version }));
        self.reply_single(connection, xid, result, |_, _| {});
    }

    pub(super) fn set_data(
        &mut self,
        connection: ConnectionId,
        xid: i32,
        path: String,
        data: Vec<u8>,
        version: i32,
    ) {
        let mutation = Mutation::Tree(TreeOp::SetData {
            path,
            data,
            version,
        });
        let result = self.execute(mutation);
        self.reply_single(connection, xid, result, |outcome, writer| {
            if let Outcome::DataSet { stat } = outcome {
                stat.encode(writer);
            }
        });
    }

    pub(super) fn reply_single(
        &mut self,
        connection: ConnectionId,
        xid: i32,
        result: Result<Applied, Refused>,
        body: impl FnOnce(&Outcome, &mut Writer),
    ) {
        match result {
            Ok(Applied::Single(outcome)) => self.reply(connection, xid, ErrorCode::Ok, |writer| {
                body(&outcome, writer)
            }),
            Ok(_) => self.reply(connection, xid, ErrorCode::Ok, |_| {}),
            Err(Refused::Single(error) | Refused::Multi(_, error)) => {
                self.reply(connection, xid, error, |_| {})
            }
        }
    }

    fn create_op(session_id: i64, create: &Create) -> Result<NodeCreate, ErrorCode> {
        let flags = create.flags.ok_or(ErrorCode::BadArguments)?;
        if !create.has_acl {
            return Err(ErrorCode::InvalidAcl);
        }
        Ok(NodeCreate {
            path: create.path.clone(),
            data: create.data.clone(),
            ephemeral_owner: if flags.ephemeral { session_id } else { 0 },
            sequential: flags.sequential,
        })
    }

    pub(super) fn create(
        &mut self,
        connection: ConnectionId,
        session_id: i64,
        xid: i32,
        create: Create,
    ) {
        let result = match Self::create_op(session_id, &create) {
            Ok(create) => self.execute(Mutation::Tree(TreeOp::Create(create))),
            Err(error) => Err(Refused::Single(error)),
        };
        self.reply_single(connection, xid, result, |outcome, writer| {
            if let Outcome::Created { path, stat } = outcome {
                writer.string(path);
                if create.with_stat {
                    stat.encode(writer);
                }
            }
        });
    }

    pub(super) fn multi(
        &mut self,
        connection: ConnectionId,
        session_id: i64,
        xid: i32,
        ops: Vec<MultiOp>,
    ) {
        let mut tree_ops = Vec::with_capacity(ops.len());
        let mut refused = None;
        for (index, op) in ops.iter().enumerate() {
            let tree_op = op.try_map_create(|create| Self::create_op(session_id, create));
            match tree_op {
                Ok(tree_op) => tree_ops.push(tree_op),
                Err(error) => {
                    refused = Some(Refused::Multi(index, error));
                    break;
                }
            }
        }
        let result = match refused {
            Some(refused) => Err(refused),
            None if tree_ops.is_empty() => Ok(Applied::Multi(Vec::new())),
            None => self.execute(Mutation::Multi(tree_ops)),
        };
        let results: Vec<MultiResult> = match result {
            Ok(Applied::Multi(outcomes)) => outcomes
                .into_iter()
                .zip(&ops)
                .map(|(outcome, op)| match outcome {
                    Outcome::Created { path, stat } => MultiResult::Create {
                        path,
                        stat: matches!(op, MultiOp::Create(create) if create.with_stat)
                            .then_some(stat),
                    },
                    Outcome::Deleted => MultiResult::Delete,
                    Outcome::DataSet { stat } => MultiResult::SetData { stat },
                    Outcome::Checked => MultiResult::Check,
                })
                .collect(),
            Ok(_) => Vec::new(),
            Err(refused) => {
                let (failed, error) = match refused {
                    Refused::Multi(failed, error) => (failed, error),
                    Refused::Single(error) => (0, error),
                };
                (0..ops.len())
                    .map(|index| {
                        MultiResult::Error(match index.cmp(&failed) {
                            std::cmp::Ordering::Less => ErrorCode::Ok,
                            std::cmp::Ordering::Equal => error,
                            std::cmp::Ordering::Greater => ErrorCode::RuntimeInconsistency,
                        })
                    })
                    .collect()
            }
        };
        self.reply(connection, xid, ErrorCode::Ok, |writer| {
            protocol::encode_multi_results(writer, &results)
        });
    }
}
