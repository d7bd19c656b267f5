//! Unit tests of [`super`] (protocol.rs).

use super::*;

fn request_bytes(xid: i32, op_code: i32, body: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut writer = Writer::new();
    writer.i32(xid).i32(op_code);
    body(&mut writer);
    writer.into_bytes()
}

#[test]
fn create2_with_acl_and_ephemeral_sequential_flags() {
    let bytes = request_bytes(7, op::CREATE2, |w| {
        w.string("/a")
            .buffer(b"x")
            .i32(1)
            .i32(31)
            .string("world")
            .string("anyone")
            .i32(3);
    });
    let (xid, request) = Request::decode(&bytes).expect("decodes");
    assert_eq!(xid, 7);
    assert_eq!(
        request,
        Request::Create(Create {
            path: "/a".into(),
            data: b"x".to_vec(),
            flags: Some(CreateFlags {
                ephemeral: true,
                sequential: true
            }),
            has_acl: true,
            with_stat: true,
        })
    );
}

#[test]
fn multi_decodes_until_done() {
    let bytes = request_bytes(1, op::MULTI, |w| {
        w.i32(op::CHECK).bool(false).i32(-1).string("/c").i32(3);
        w.i32(op::SET_DATA)
            .bool(false)
            .i32(-1)
            .string("/c")
            .buffer(b"7")
            .i32(-1);
        w.i32(-1).bool(true).i32(-1);
    });
    let (_, request) = Request::decode(&bytes).expect("decodes");
    assert_eq!(
        request,
        Request::Multi(vec![
            MultiOp::Check {
                path: "/c".into(),
                version: 3
            },
            MultiOp::SetData {
                path: "/c".into(),
                data: b"7".to_vec(),
                version: -1
            },
        ])
    );
}

#[test]
fn multi_read_decodes_reads_and_encodes_results() {
    let bytes = request_bytes(2, op::MULTI_READ, |w| {
        w.i32(op::GET_DATA)
            .bool(false)
            .i32(-1)
            .string("/a")
            .bool(false);
        w.i32(op::GET_CHILDREN)
            .bool(false)
            .i32(-1)
            .string("/")
            .bool(true);
        w.i32(-1).bool(true).i32(-1);
    });
    let (_, request) = Request::decode(&bytes).expect("decodes");
    assert_eq!(
        request,
        Request::MultiRead(vec![
            ReadOp::GetData {
                path: "/a".into(),
                watch: false
            },
            ReadOp::GetChildren {
                path: "/".into(),
                watch: true
            },
        ])
    );
    let mut writer = Writer::new();
    encode_read_results(&mut writer, &[ReadResult::Error(ErrorCode::NoNode)]);
    let bytes = writer.into_bytes();
    let mut reader = Reader::new(&bytes);
    assert_eq!(reader.i32(), Ok(op::ERROR));
    assert_eq!(reader.bool(), Ok(false));
    assert_eq!(reader.i32(), Ok(-101));
    assert_eq!(reader.i32(), Ok(-101));
    assert_eq!(reader.i32(), Ok(-1));
    assert_eq!(reader.bool(), Ok(true));
}

#[test]
fn unknown_op_is_unimplemented_not_an_error() {
    let bytes = request_bytes(3, 999, |_| {});
    assert_eq!(
        Request::decode(&bytes),
        Ok((3, Request::Unimplemented { op_code: 999 }))
    );
}

#[test]
fn truncated_body_is_an_error() {
    let bytes = request_bytes(3, op::GET_DATA, |w| {
        w.i32(10);
    });
    assert!(Request::decode(&bytes).is_err());
}

#[test]
fn stat_round_trips() {
    let stat = Stat {
        czxid: 1,
        mzxid: 2,
        ctime: 3,
        mtime: 4,
        version: 5,
        cversion: 6,
        aversion: 7,
        ephemeral_owner: 8,
        data_length: 9,
        num_children: 10,
        pzxid: 11,
    };
    let mut writer = Writer::new();
    stat.encode(&mut writer);
    let bytes = writer.into_bytes();
    assert_eq!(bytes.len(), 68);
    assert_eq!(Stat::decode(&mut Reader::new(&bytes)), Ok(stat));
}
