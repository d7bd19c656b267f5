//! ZooKeeper's client protocol as typed values: op codes, error codes, the `Stat` record, the
//! connect handshake, requests decoded from a frame and replies encoded into one. Field order
//! follows `zookeeper.jute`; everything here is pure encode/decode over [`super::jute`].

use super::jute::{DecodeError, Reader, Writer};
use super::write_op::WriteOp;

/// Op codes of `ZooDefs.OpCode`.
pub mod op {
    pub const NOTIFICATION: i32 = 0;
    pub const CREATE: i32 = 1;
    pub const DELETE: i32 = 2;
    pub const EXISTS: i32 = 3;
    pub const GET_DATA: i32 = 4;
    pub const SET_DATA: i32 = 5;
    pub const GET_ACL: i32 = 6;
    pub const SET_ACL: i32 = 7;
    pub const GET_CHILDREN: i32 = 8;
    pub const SYNC: i32 = 9;
    pub const PING: i32 = 11;
    pub const GET_CHILDREN2: i32 = 12;
    pub const CHECK: i32 = 13;
    pub const MULTI: i32 = 14;
    pub const CHECK_WATCHES: i32 = 17;
    pub const CREATE2: i32 = 15;
    pub const REMOVE_WATCHES: i32 = 18;
    pub const MULTI_READ: i32 = 22;
    pub const GET_EPHEMERALS: i32 = 103;
    pub const GET_ALL_CHILDREN_NUMBER: i32 = 104;
    pub const AUTH: i32 = 100;
    pub const SET_WATCHES: i32 = 101;
    pub const SET_WATCHES2: i32 = 105;
    pub const ADD_WATCH: i32 = 106;
    pub const CLOSE_SESSION: i32 = -11;
    pub const ERROR: i32 = -1;
}

/// Special xids.
pub mod xid {
    pub const NOTIFICATION: i32 = -1;
    pub const PING: i32 = -2;
}

/// `KeeperException.Code`: the errors a reply can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    Ok = 0,
    RuntimeInconsistency = -2,
    MarshallingError = -5,
    Unimplemented = -6,
    BadArguments = -8,
    NoNode = -101,
    BadVersion = -103,
    NoChildrenForEphemerals = -108,
    NodeExists = -110,
    NotEmpty = -111,
    SessionExpired = -112,
    InvalidAcl = -114,
    NoWatcher = -121,
}

impl ErrorCode {
    /// The code on the wire.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// ZooKeeper's name for it (`KeeperErrorCode = NoNode`).
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::Ok => "OK",
            ErrorCode::RuntimeInconsistency => "RuntimeInconsistency",
            ErrorCode::MarshallingError => "MarshallingError",
            ErrorCode::Unimplemented => "Unimplemented",
            ErrorCode::BadArguments => "BadArguments",
            ErrorCode::NoNode => "NoNode",
            ErrorCode::BadVersion => "BadVersion",
            ErrorCode::NoChildrenForEphemerals => "NoChildrenForEphemerals",
            ErrorCode::NodeExists => "NodeExists",
            ErrorCode::NotEmpty => "NotEmpty",
            ErrorCode::SessionExpired => "SessionExpired",
            ErrorCode::InvalidAcl => "InvalidACL",
            ErrorCode::NoWatcher => "NoWatcher",
        }
    }
}

/// `Watcher.Event.EventType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    NodeCreated = 1,
    NodeDeleted = 2,
    NodeDataChanged = 3,
    NodeChildrenChanged = 4,
}

/// `KeeperState.SyncConnected`: the state every watch event carries.
const STATE_SYNC_CONNECTED: i32 = 3;

/// The `Stat` record of a znode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stat {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub data_length: i32,
    pub num_children: i32,
    pub pzxid: i64,
}

impl Stat {
    pub fn encode(&self, writer: &mut Writer) {
        writer
            .i64(self.czxid)
            .i64(self.mzxid)
            .i64(self.ctime)
            .i64(self.mtime)
            .i32(self.version)
            .i32(self.cversion)
            .i32(self.aversion)
            .i64(self.ephemeral_owner)
            .i32(self.data_length)
            .i32(self.num_children)
            .i64(self.pzxid);
    }

    pub fn decode(reader: &mut Reader<'_>) -> Result<Stat, DecodeError> {
        Ok(Stat {
            czxid: reader.i64()?,
            mzxid: reader.i64()?,
            ctime: reader.i64()?,
            mtime: reader.i64()?,
            version: reader.i32()?,
            cversion: reader.i32()?,
            aversion: reader.i32()?,
            ephemeral_owner: reader.i64()?,
            data_length: reader.i32()?,
            num_children: reader.i32()?,
            pzxid: reader.i64()?,
        })
    }
}

/// The first frame of a connection. Newer clients append `readOnly`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    pub protocol_version: i32,
    pub last_zxid_seen: i64,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub password: Vec<u8>,
}

impl ConnectRequest {
    pub fn decode(payload: &[u8]) -> Result<ConnectRequest, DecodeError> {
        let mut reader = Reader::new(payload);
        let request = ConnectRequest {
            protocol_version: reader.i32()?,
            last_zxid_seen: reader.i64()?,
            timeout_ms: reader.i32()?,
            session_id: reader.i64()?,
            password: reader.buffer()?.to_vec(),
        };
        // The trailing readOnly flag is optional; we never run read-only.
        Ok(request)
    }
}

/// The answer to a connect: a zero timeout and session id mean "your session is gone".
pub fn connect_response_frame(timeout_ms: i32, session_id: i64, password: &[u8]) -> Vec<u8> {
    let mut writer = Writer::framed();
    writer
        .i32(0)
        .i32(timeout_ms)
        .i64(session_id)
        .buffer(password)
        .bool(false);
    writer.into_frame()
}

/// `CreateMode` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreateFlags {
    pub ephemeral: bool,
    pub sequential: bool,
}

impl CreateFlags {
    fn from_wire(flags: i32) -> Option<CreateFlags> {
        match flags {
            0 => Some(CreateFlags {
                ephemeral: false,
                sequential: false,
            }),
            1 => Some(CreateFlags {
                ephemeral: true,
                sequential: false,
            }),
            2 => Some(CreateFlags {
                ephemeral: false,
                sequential: true,
            }),
            3 => Some(CreateFlags {
                ephemeral: true,
                sequential: true,
            }),
            _ => None,
        }
    }
}

/// A create: `with_stat` for create2 (the reply carries the new node's stat).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Create {
    pub path: String,
    pub data: Vec<u8>,
    /// None when the flags name a mode we do not offer (container, TTL).
    pub flags: Option<CreateFlags>,
    pub has_acl: bool,
    pub with_stat: bool,
}

/// One write inside a multi, its create as the request gave it.
pub type MultiOp = WriteOp<Create>;

/// One read inside a multiRead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOp {
    GetData { path: String, watch: bool },
    GetChildren { path: String, watch: bool },
}

/// Watches a reconnecting client asks us to restore (setWatches, setWatches2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetWatches {
    pub relative_zxid: i64,
    pub data: Vec<String>,
    pub exist: Vec<String>,
    pub child: Vec<String>,
    pub persistent: Vec<String>,
    pub persistent_recursive: Vec<String>,
}

/// A decoded request (after the `RequestHeader`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Create(Create),
    Delete {
        path: String,
        version: i32,
    },
    Exists {
        path: String,
        watch: bool,
    },
    GetData {
        path: String,
        watch: bool,
    },
    SetData {
        path: String,
        data: Vec<u8>,
        version: i32,
    },
    GetChildren {
        path: String,
        watch: bool,
        with_stat: bool,
    },
    GetAcl {
        path: String,
    },
    Sync {
        path: String,
    },
    GetAllChildrenNumber {
        path: String,
    },
    /// The caller's own ephemeral nodes under a path prefix.
    GetEphemerals {
        prefix: String,
    },
    Multi(Vec<MultiOp>),
    RemoveWatches {
        path: String,
        kind: i32,
    },
    /// Whether the caller holds a watch of ZooKeeper's `WatcherType` `kind` at `path`.
    CheckWatches {
        path: String,
        kind: i32,
    },
    MultiRead(Vec<ReadOp>),
    /// A persistent watch: mode 0 on the path, mode 1 on the path and below.
    AddWatch {
        path: String,
        mode: i32,
    },
    SetWatches(SetWatches),
    Ping,
    Auth,
    CloseSession,
    /// An op code we do not serve: answered with `Unimplemented`.
    Unimplemented {
        op_code: i32,
    },
}

impl Request {
    /// Decodes `RequestHeader` and body: returns the xid and the request.
    pub fn decode(payload: &[u8]) -> Result<(i32, Request), DecodeError> {
        let mut reader = Reader::new(payload);
        let xid = reader.i32()?;
        let op_code = reader.i32()?;
        let request = Request::decode_body(op_code, &mut reader)?;
        Ok((xid, request))
    }

    fn decode_body(op_code: i32, reader: &mut Reader<'_>) -> Result<Request, DecodeError> {
        let path = |reader: &mut Reader<'_>| reader.string().map(str::to_string);
        Ok(match op_code {
            op::CREATE | op::CREATE2 => Request::Create(decode_create(reader, op_code)?),
            op::DELETE => Request::Delete {
                path: path(reader)?,
                version: reader.i32()?,
            },
            op::EXISTS => Request::Exists {
                path: path(reader)?,
                watch: reader.bool()?,
            },
            op::GET_DATA => Request::GetData {
                path: path(reader)?,
                watch: reader.bool()?,
            },
            op::SET_DATA => Request::SetData {
                path: path(reader)?,
                data: reader.buffer()?.to_vec(),
                version: reader.i32()?,
            },
            op::GET_CHILDREN | op::GET_CHILDREN2 => Request::GetChildren {
                path: path(reader)?,
                watch: reader.bool()?,
                with_stat: op_code == op::GET_CHILDREN2,
            },
            op::GET_ACL => Request::GetAcl {
                path: path(reader)?,
            },
            op::SYNC => Request::Sync {
                path: path(reader)?,
            },
            op::GET_ALL_CHILDREN_NUMBER => Request::GetAllChildrenNumber {
                path: path(reader)?,
            },
            op::GET_EPHEMERALS => Request::GetEphemerals {
                prefix: path(reader)?,
            },
            op::MULTI => match decode_multi(reader)? {
                Some(ops) => Request::Multi(ops),
                None => Request::Unimplemented { op_code },
            },
            op::REMOVE_WATCHES => Request::RemoveWatches {
                path: path(reader)?,
                kind: reader.i32()?,
            },
            op::SET_WATCHES | op::SET_WATCHES2 => {
                let mut watches = SetWatches {
                    relative_zxid: reader.i64()?,
                    data: reader.strings()?,
                    exist: reader.strings()?,
                    child: reader.strings()?,
                    ..SetWatches::default()
                };
                if op_code == op::SET_WATCHES2 {
                    watches.persistent = reader.strings()?;
                    watches.persistent_recursive = reader.strings()?;
                }
                Request::SetWatches(watches)
            }
            op::CHECK_WATCHES => Request::CheckWatches {
                path: path(reader)?,
                kind: reader.i32()?,
            },
            op::MULTI_READ => match decode_multi_read(reader)? {
                Some(ops) => Request::MultiRead(ops),
                None => Request::Unimplemented { op_code },
            },
            op::ADD_WATCH => Request::AddWatch {
                path: path(reader)?,
                mode: reader.i32()?,
            },
            op::PING => Request::Ping,
            op::AUTH => Request::Auth,
            op::CLOSE_SESSION => Request::CloseSession,
            _ => Request::Unimplemented { op_code },
        })
    }
}

fn decode_create(reader: &mut Reader<'_>, op_code: i32) -> Result<Create, DecodeError> {
    let path = reader.string()?.to_string();
    let data = reader.buffer()?.to_vec();
    let acl_count = reader.count(12)?;
    for _ in 0..acl_count {
        let _perms = reader.i32()?;
        let _scheme = reader.string()?;
        let _id = reader.string()?;
    }
    let flags = CreateFlags::from_wire(reader.i32()?);
    Ok(Create {
        path,
        data,
        flags,
        has_acl: acl_count > 0,
        with_stat: op_code == op::CREATE2,
    })
}

/// The ops of a multi, or None if one of them is of a kind we do not offer.
fn decode_multi(reader: &mut Reader<'_>) -> Result<Option<Vec<MultiOp>>, DecodeError> {
    let mut ops = Vec::new();
    loop {
        let op_code = reader.i32()?;
        let done = reader.bool()?;
        let _err = reader.i32()?;
        if done {
            return Ok(Some(ops));
        }
        let op = match op_code {
            op::CREATE | op::CREATE2 => MultiOp::Create(decode_create(reader, op_code)?),
            op::DELETE => MultiOp::Delete {
                path: reader.string()?.to_string(),
                version: reader.i32()?,
            },
            op::SET_DATA => MultiOp::SetData {
                path: reader.string()?.to_string(),
                data: reader.buffer()?.to_vec(),
                version: reader.i32()?,
            },
            op::CHECK => MultiOp::Check {
                path: reader.string()?.to_string(),
                version: reader.i32()?,
            },
            _ => return Ok(None),
        };
        ops.push(op);
        // Every op takes at least its header; the frame cap bounds the loop.
    }
}

/// The reads of a multiRead, or None if one of them is of a kind it cannot hold.
fn decode_multi_read(reader: &mut Reader<'_>) -> Result<Option<Vec<ReadOp>>, DecodeError> {
    let mut ops = Vec::new();
    loop {
        let op_code = reader.i32()?;
        let done = reader.bool()?;
        let _err = reader.i32()?;
        if done {
            return Ok(Some(ops));
        }
        let path = reader.string()?.to_string();
        let watch = reader.bool()?;
        ops.push(match op_code {
            op::GET_DATA => ReadOp::GetData { path, watch },
            op::GET_CHILDREN => ReadOp::GetChildren { path, watch },
            _ => return Ok(None),
        });
    }
}

/// The result of one read of a multiRead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadResult {
    Data { data: Vec<u8>, stat: Stat },
    Children(Vec<String>),
    Error(ErrorCode),
}

/// Writes a multiRead response: one `MultiHeader` and body per result, then the done marker.
pub fn encode_read_results(writer: &mut Writer, results: &[ReadResult]) {
    for result in results {
        match result {
            ReadResult::Data { data, stat } => {
                writer.i32(op::GET_DATA).bool(false).i32(0).buffer(data);
                stat.encode(writer);
            }
            ReadResult::Children(children) => {
                writer
                    .i32(op::GET_CHILDREN)
                    .bool(false)
                    .i32(0)
                    .strings(children);
            }
            ReadResult::Error(error) => {
                writer
                    .i32(op::ERROR)
                    .bool(false)
                    .i32(error.code())
                    .i32(error.code());
            }
        }
    }
    writer.i32(-1).bool(true).i32(-1);
}

/// A reply frame: `ReplyHeader` then the body written by `body`.
pub fn reply_frame(
    xid: i32,
    zxid: i64,
    error: ErrorCode,
    body: impl FnOnce(&mut Writer),
) -> Vec<u8> {
    let mut writer = Writer::framed();
    writer.i32(xid).i64(zxid).i32(error.code());
    if error == ErrorCode::Ok {
        body(&mut writer);
    }
    writer.into_frame()
}

/// A reply that carries only an error (or OK with no body).
pub fn error_frame(xid: i32, zxid: i64, error: ErrorCode) -> Vec<u8> {
    reply_frame(xid, zxid, error, |_| {})
}

/// A watch notification (xid -1).
pub fn notification_frame(zxid: i64, event: EventType, path: &str) -> Vec<u8> {
    let mut writer = Writer::framed();
    writer
        .i32(xid::NOTIFICATION)
        .i64(zxid)
        .i32(0)
        .i32(event as i32)
        .i32(STATE_SYNC_CONNECTED)
        .string(path);
    writer.into_frame()
}

/// The result of one op of a multi, as it goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiResult {
    Create { path: String, stat: Option<Stat> },
    Delete,
    SetData { stat: Stat },
    Check,
    Error(ErrorCode),
}

/// Writes a `MultiResponse`: one `MultiHeader` and body per result, then the done marker.
pub fn encode_multi_results(writer: &mut Writer, results: &[MultiResult]) {
    for result in results {
        match result {
            MultiResult::Create { path, stat: None } => {
                writer.i32(op::CREATE).bool(false).i32(0).string(path);
            }
            MultiResult::Create {
                path,
                stat: Some(stat),
            } => {
                writer.i32(op::CREATE2).bool(false).i32(0).string(path);
                stat.encode(writer);
            }
            MultiResult::Delete => {
                writer.i32(op::DELETE).bool(false).i32(0);
            }
            MultiResult::SetData { stat } => {
                writer.i32(op::SET_DATA).bool(false).i32(0);
                stat.encode(writer);
            }
            MultiResult::Check => {
                writer.i32(op::CHECK).bool(false).i32(0);
            }
            MultiResult::Error(error) => {
                writer
                    .i32(op::ERROR)
                    .bool(false)
                    .i32(error.code())
                    .i32(error.code());
            }
        }
    }
    writer.i32(-1).bool(true).i32(-1);
}

#[cfg(test)]
mod tests;
