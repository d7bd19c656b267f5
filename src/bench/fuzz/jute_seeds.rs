//! Valid ZooKeeper client frames to mutate: the connect handshake and a request of every op
//! the coordinator serves (plus ops it does not), each framed with its 4-byte length prefix and
//! encoded with the coordinator's own jute writer.

use crate::coordinator::jute::Writer;
use crate::coordinator::protocol::op;

/// Writes a request body.
type BodyWriter = Box<dyn Fn(&mut Writer)>;

/// One framed jute input; `connect` frames are decoded as a handshake, the others as requests.
#[derive(Debug, Clone)]
pub struct JuteSeed {
    pub connect: bool,
    pub frame: Vec<u8>,
}

/// Seeds for the handshake and every op.
pub fn all() -> Vec<JuteSeed> {
    let mut seeds = vec![
        JuteSeed {
            connect: true,
            frame: connect_frame(0, 0),
        },
        JuteSeed {
            connect: true,
            frame: connect_frame(0x1234_5678, 4000),
        },
    ];
    let path = "/fuzz/node";
    let mut requests: Vec<(i32, BodyWriter)> = vec![
        (op::CREATE, Box::new(move |w| create_body(w, path, 0))),
        (op::CREATE, Box::new(move |w| create_body(w, path, 1))),
        (
            op::CREATE2,
            Box::new(move |w| create_body(w, "/fuzz/seq-", 2)),
        ),
        (
            op::DELETE,
            Box::new(move |w| {
                w.string(path).i32(-1);
            }),
        ),
        (
            op::EXISTS,
            Box::new(move |w| {
                w.string(path).bool(true);
            }),
        ),
        (
            op::GET_DATA,
            Box::new(move |w| {
                w.string(path).bool(false);
            }),
        ),
        (
            op::SET_DATA,
            Box::new(move |w| {
                w.string(path).buffer(b"data").i32(-1);
            }),
        ),
        (
            op::GET_CHILDREN,
            Box::new(|w| {
                w.string("/fuzz").bool(true);
            }),
        ),
        (
            op::GET_CHILDREN2,
            Box::new(|w| {
                w.string("/").bool(false);
            }),
        ),
        (
            op::GET_ACL,
            Box::new(move |w| {
                w.string(path);
            }),
        ),
        (
            op::SYNC,
            Box::new(|w| {
                w.string("/");
            }),
        ),
        (
            op::GET_ALL_CHILDREN_NUMBER,
            Box::new(|w| {
                w.string("/fuzz");
            }),
        ),
        (
            op::GET_EPHEMERALS,
            Box::new(|w| {
                w.string("/");
            }),
        ),
        (
            op::CHECK_WATCHES,
            Box::new(move |w| {
                w.string(path).i32(1);
            }),
        ),
        (
            op::REMOVE_WATCHES,
            Box::new(move |w| {
                w.string(path).i32(3);
            }),
        ),
        (
            op::ADD_WATCH,
            Box::new(|w| {
                w.string("/fuzz").i32(1);
            }),
        ),
        (
            op::SET_WATCHES,
            Box::new(move |w| {
                w.i64(0)
                    .strings(&[path])
                    .strings(&["/fuzz"])
                    .strings(&["/"]);
            }),
        ),
        (
            op::SET_WATCHES2,
            Box::new(move |w| {
                w.i64(0)
                    .strings(&[path])
                    .strings(&["/fuzz"])
                    .strings(&["/"])
                    .strings(&["/fuzz"])
                    .strings::<&str>(&[]);
            }),
        ),
        (
            op::MULTI,
            Box::new(move |w| {
                w.i32(op::CREATE).bool(false).i32(-1);
                create_body(w, "/fuzz/multi", 0);
                w.i32(op::SET_DATA).bool(false).i32(-1);
                w.string("/fuzz/multi").buffer(b"x").i32(-1);
                w.i32(op::CHECK).bool(false).i32(-1);
                w.string("/fuzz/multi").i32(1);
                w.i32(op::DELETE).bool(false).i32(-1);
                w.string("/fuzz/multi").i32(-1);
                w.i32(-1).bool(true).i32(-1);
            }),
        ),
        (
            op::MULTI_READ,
            Box::new(move |w| {
                w.i32(op::GET_DATA).bool(false).i32(-1);
                w.string(path).bool(false);
                w.i32(op::GET_CHILDREN).bool(false).i32(-1);
                w.string("/fuzz").bool(true);
                w.i32(-1).bool(true).i32(-1);
            }),
        ),
        (op::PING, Box::new(|_| {})),
        (
            op::AUTH,
            Box::new(|w| {
                w.i32(0).string("digest").buffer(b"user:password");
            }),
        ),
        (
            op::SET_ACL,
            Box::new(move |w| {
                w.string(path)
                    .i32(1)
                    .string("world")
                    .string("anyone")
                    .i32(-1);
            }),
        ),
    ];
    for (index, (op_code, body)) in requests.drain(..).enumerate() {
        let mut writer = Writer::framed();
        writer.i32(index as i32 + 1).i32(op_code);
        body(&mut writer);
        seeds.push(JuteSeed {
            connect: false,
            frame: writer.into_frame(),
        });
    }
    seeds
}

/// The parent of every seed path; the fuzz target creates it.
pub const SEED_PARENT: &str = "/fuzz";

/// A create body: path, data, the open ACL (world:anyone, all permissions), flags.
fn create_body(writer: &mut Writer, path: &str, flags: i32) {
    writer
        .string(path)
        .buffer(b"seed")
        .i32(1)
        .i32(31)
        .string("world")
        .string("anyone")
        .i32(flags);
}

/// A framed ConnectRequest (with the trailing readOnly flag newer clients send).
pub fn connect_frame(session_id: i64, timeout_ms: i32) -> Vec<u8> {
    let mut writer = Writer::framed();
    writer
        .i32(0)
        .i64(0)
        .i32(timeout_ms)
        .i64(session_id)
        .buffer(&[0; 16])
        .bool(false);
    writer.into_frame()
}
