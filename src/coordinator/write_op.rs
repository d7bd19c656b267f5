//! One write of the coordinator: create, delete, setData or check — the single type of a write
//! from the wire to the tree. It is generic over what a create carries: a request's
//! [`protocol::Create`](super::protocol::Create) as decoded (flags and ACL still to be judged:
//! [`protocol::MultiOp`](super::protocol::MultiOp)), or the tree's [`NodeCreate`] with every
//! choice made (owner, sequential: [`tree::TreeOp`](super::tree::TreeOp)). Delete, setData and
//! check are the same at both ends, so they are written once.

/// A write; `C` is the create's form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp<C> {
    Create(C),
    Delete {
        path: String,
        version: i32,
    },
    SetData {
        path: String,
        data: Vec<u8>,
        version: i32,
    },
    Check {
        path: String,
        version: i32,
    },
}

/// A create with every choice made: the session owning an ephemeral (0: persistent) and
/// whether a sequence number is appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCreate {
    pub path: String,
    pub data: Vec<u8>,
    pub ephemeral_owner: i64,
    pub sequential: bool,
}

impl<C> WriteOp<C> {
    /// The same write with its create turned into another form by `decide` (which may refuse
    /// it); the other writes are carried over unchanged.
    pub fn try_map_create<D, E>(
        &self,
        decide: impl FnOnce(&C) -> Result<D, E>,
    ) -> Result<WriteOp<D>, E> {
        Ok(match self {
            WriteOp::Create(create) => WriteOp::Create(decide(create)?),
            WriteOp::Delete { path, version } => WriteOp::Delete {
                path: path.clone(),
                version: *version,
            },
            WriteOp::SetData {
                path,
                data,
                version,
            } => WriteOp::SetData {
                path: path.clone(),
                data: data.clone(),
                version: *version,
            },
            WriteOp::Check { path, version } => WriteOp::Check {
                path: path.clone(),
                version: *version,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_create_changes_form() {
        let set: WriteOp<&str> = WriteOp::SetData {
            path: "/a".into(),
            data: b"x".to_vec(),
            version: 3,
        };
        let mapped = set.try_map_create(|_| Err::<u8, ()>(()));
        assert_eq!(
            mapped,
            Ok(WriteOp::SetData {
                path: "/a".into(),
                data: b"x".to_vec(),
                version: 3
            })
        );
        let create: WriteOp<&str> = WriteOp::Create("/b");
        assert_eq!(
            create.try_map_create(|_| Err::<u8, _>("refused")),
            Err("refused")
        );
        assert_eq!(
            create.try_map_create(|path| Ok::<_, ()>(path.len())),
            Ok(WriteOp::Create(2))
        );
    }
}
