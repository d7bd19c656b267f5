//! Transactions: the mutations that change the coordinator's durable state (tree and session
//! table), each with its zxid and time, and their binary encoding as write-ahead-log payloads.
//! Only mutations that succeeded become transactions, so replaying them cannot fail.

use super::jute::{DecodeError, Reader, Writer};
use super::tree::{NodeCreate, TreeOp};

/// Length of a session password.
pub const PASSWORD_BYTES: usize = 16;

/// A change to the durable state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    CreateSession {
        session_id: i64,
        timeout_ms: i32,
        password: [u8; PASSWORD_BYTES],
    },
    /// Close or expiry: the session and its ephemeral nodes go.
    CloseSession {
        session_id: i64,
    },
    Tree(TreeOp),
    Multi(Vec<TreeOp>),
}

/// A mutation with the zxid it was given and the wall-clock time (ms) it happened at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txn {
    pub zxid: i64,
    pub time_ms: i64,
    pub mutation: Mutation,
}

const CREATE_SESSION: i32 = 1;
const CLOSE_SESSION: i32 = 2;
const TREE: i32 = 3;
const MULTI: i32 = 4;

const OP_CREATE: i32 = 1;
const OP_DELETE: i32 = 2;
const OP_SET_DATA: i32 = 3;
const OP_CHECK: i32 = 4;

/// A payload that does not decode as a transaction.
#[derive(Debug, thiserror::Error)]
pub enum TxnDecodeError {
    #[error(transparent)]
    Jute(#[from] DecodeError),
    #[error("unknown {what} tag {tag}")]
    UnknownTag { what: &'static str, tag: i32 },
    #[error("session password has {0} bytes, expected 16")]
    PasswordLength(usize),
    #[error("{0} trailing bytes after the transaction")]
    Trailing(usize),
}

impl Txn {
    pub fn encode(&self) -> Vec<u8> {
        let mut writer = Writer::new();
        writer.i64(self.zxid).i64(self.time_ms);
        match &self.mutation {
            Mutation::CreateSession {
                session_id,
                timeout_ms,
                password,
            } => {
                writer
                    .i32(CREATE_SESSION)
                    .i64(*session_id)
                    .i32(*timeout_ms)
                    .buffer(password);
            }
            Mutation::CloseSession { session_id } => {
                writer.i32(CLOSE_SESSION).i64(*session_id);
            }
            Mutation::Tree(op) => {
                writer.i32(TREE);
                encode_op(&mut writer, op);
            }
            Mutation::Multi(ops) => {
                writer.i32(MULTI).i32(ops.len() as i32);
                for op in ops {
                    encode_op(&mut writer, op);
                }
            }
        }
        writer.into_bytes()
    }

    pub fn decode(payload: &[u8]) -> Result<Txn, TxnDecodeError> {
        let mut reader = Reader::new(payload);
        let zxid = reader.i64()?;
        let time_ms = reader.i64()?;
        let mutation = match reader.i32()? {
            CREATE_SESSION => {
                let session_id = reader.i64()?;
                let timeout_ms = reader.i32()?;
                let bytes = reader.buffer()?;
                let password: [u8; PASSWORD_BYTES] = bytes
                    .try_into()
                    .map_err(|_| TxnDecodeError::PasswordLength(bytes.len()))?;
                Mutation::CreateSession {
                    session_id,
                    timeout_ms,
                    password,
                }
            }
            CLOSE_SESSION => Mutation::CloseSession {
                session_id: reader.i64()?,
            },
            TREE => Mutation::Tree(decode_op(&mut reader)?),
            MULTI => {
                let count = reader.count(8)?;
                let ops = (0..count)
                    .map(|_| decode_op(&mut reader))
                    .collect::<Result<_, _>>()?;
                Mutation::Multi(ops)
            }
            tag => {
                return Err(TxnDecodeError::UnknownTag {
                    what: "transaction",
                    tag,
                });
            }
        };
        if reader.remaining() != 0 {
            return Err(TxnDecodeError::Trailing(reader.remaining()));
        }
        Ok(Txn {
            zxid,
            time_ms,
            mutation,
        })
    }
}

fn encode_op(writer: &mut Writer, op: &TreeOp) {
    match op {
        TreeOp::Create(NodeCreate {
            path,
            data,
            ephemeral_owner,
            sequential,
        }) => {
            writer
                .i32(OP_CREATE)
                .string(path)
                .buffer(data)
                .i64(*ephemeral_owner)
                .bool(*sequential);
        }
        TreeOp::Delete { path, version } => {
            writer.i32(OP_DELETE).string(path).i32(*version);
        }
        TreeOp::SetData {
            path,
            data,
            version,
        } => {
            writer
                .i32(OP_SET_DATA)
                .string(path)
                .buffer(data)
                .i32(*version);
        }
        TreeOp::Check { path, version } => {
            writer.i32(OP_CHECK).string(path).i32(*version);
        }
    }
}

fn decode_op(reader: &mut Reader<'_>) -> Result<TreeOp, TxnDecodeError> {
    Ok(match reader.i32()? {
        OP_CREATE => TreeOp::Create(NodeCreate {
            path: reader.string()?.to_string(),
            data: reader.buffer()?.to_vec(),
            ephemeral_owner: reader.i64()?,
            sequential: reader.bool()?,
        }),
        OP_DELETE => TreeOp::Delete {
            path: reader.string()?.to_string(),
            version: reader.i32()?,
        },
        OP_SET_DATA => TreeOp::SetData {
            path: reader.string()?.to_string(),
            data: reader.buffer()?.to_vec(),
            version: reader.i32()?,
        },
        OP_CHECK => TreeOp::Check {
            path: reader.string()?.to_string(),
            version: reader.i32()?,
        },
        tag => return Err(TxnDecodeError::UnknownTag { what: "op", tag }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mutation_round_trips() {
        let mutations = vec![
            Mutation::CreateSession {
                session_id: 0x1234,
                timeout_ms: 6000,
                password: [7; PASSWORD_BYTES],
            },
            Mutation::CloseSession { session_id: 0x1234 },
            Mutation::Tree(TreeOp::SetData {
                path: "/a".into(),
                data: b"x".to_vec(),
                version: 3,
            }),
            Mutation::Multi(vec![
                TreeOp::Check {
                    path: "/c".into(),
                    version: 1,
                },
                TreeOp::Create(NodeCreate {
                    path: "/d".into(),
                    data: vec![],
                    ephemeral_owner: 5,
                    sequential: true,
                }),
                TreeOp::Delete {
                    path: "/e".into(),
                    version: -1,
                },
            ]),
        ];
        for (index, mutation) in mutations.into_iter().enumerate() {
            let txn = Txn {
                zxid: index as i64 + 1,
                time_ms: 99,
                mutation,
            };
            assert_eq!(Txn::decode(&txn.encode()).expect("decodes"), txn);
        }
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(Txn::decode(&[1, 2, 3]).is_err());
        let mut bytes = Txn {
            zxid: 1,
            time_ms: 1,
            mutation: Mutation::CloseSession { session_id: 1 },
        }
        .encode();
        bytes.push(0);
        assert!(matches!(
            Txn::decode(&bytes),
            Err(TxnDecodeError::Trailing(1))
        ));
    }
}
