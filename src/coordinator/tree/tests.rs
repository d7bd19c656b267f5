//! Unit tests of [`super`] (tree.rs).

use super::*;

fn create(tree: &mut Tree, zxid: i64, path: &str, owner: i64) -> Result<Outcome, ErrorCode> {
    tree.apply(
        zxid,
        1000 + zxid,
        &TreeOp::Create(NodeCreate {
            path: path.into(),
            data: b"d".to_vec(),
            ephemeral_owner: owner,
            sequential: false,
        }),
        &mut Vec::new(),
    )
}

#[test]
fn create_sets_stat_and_parent_and_fires_triggers() {
    let mut tree = Tree::new();
    let mut triggers = Vec::new();
    let outcome = tree
        .apply(
            5,
            77,
            &TreeOp::Create(NodeCreate {
                path: "/a".into(),
                data: b"hello".to_vec(),
                ephemeral_owner: 0,
                sequential: false,
            }),
            &mut triggers,
        )
        .expect("created");
    let Outcome::Created { path, stat } = outcome else {
        panic!("not a create: {outcome:?}")
    };
    assert_eq!(path, "/a");
    assert_eq!((stat.czxid, stat.mzxid, stat.pzxid), (5, 5, 5));
    assert_eq!((stat.ctime, stat.data_length, stat.version), (77, 5, 0));
    let root = tree.get("/").expect("root").stat();
    assert_eq!((root.cversion, root.pzxid, root.num_children), (1, 5, 1));
    assert_eq!(
        triggers,
        vec![
            Trigger {
                path: "/a".into(),
                event: EventType::NodeCreated
            },
            Trigger {
                path: "/".into(),
                event: EventType::NodeChildrenChanged
            },
        ]
    );
}

#[test]
fn zookeeper_error_cases() {
    let mut tree = Tree::new();
    create(&mut tree, 1, "/a", 0).expect("a");
    create(&mut tree, 2, "/e", 9).expect("ephemeral");
    assert_eq!(create(&mut tree, 3, "/a", 0), Err(ErrorCode::NodeExists));
    assert_eq!(create(&mut tree, 3, "/x/y", 0), Err(ErrorCode::NoNode));
    assert_eq!(
        create(&mut tree, 3, "/e/child", 0),
        Err(ErrorCode::NoChildrenForEphemerals)
    );
    assert_eq!(
        create(&mut tree, 3, "/bad/", 0),
        Err(ErrorCode::BadArguments)
    );
    create(&mut tree, 3, "/a/b", 0).expect("a/b");
    let mut triggers = Vec::new();
    let delete_a = TreeOp::Delete {
        path: "/a".into(),
        version: -1,
    };
    assert_eq!(
        tree.apply(4, 0, &delete_a, &mut triggers),
        Err(ErrorCode::NotEmpty)
    );
    let stale_set = TreeOp::SetData {
        path: "/a".into(),
        data: vec![],
        version: 3,
    };
    assert_eq!(
        tree.apply(4, 0, &stale_set, &mut triggers),
        Err(ErrorCode::BadVersion)
    );
    assert!(triggers.is_empty());
}

#[test]
fn sequential_names_use_the_parent_cversion() {
    let mut tree = Tree::new();
    create(&mut tree, 1, "/q", 0).expect("q");
    create(&mut tree, 2, "/q/other", 0).expect("other");
    let op = TreeOp::Create(NodeCreate {
        path: "/q/item-".into(),
        data: vec![],
        ephemeral_owner: 0,
        sequential: true,
    });
    let outcome = tree.apply(3, 0, &op, &mut Vec::new()).expect("seq");
    assert!(matches!(outcome, Outcome::Created { ref path, .. } if path == "/q/item-0000000001"));
}

#[test]
fn cversion_counts_creates_and_deletes_but_sequence_numbers_count_creates() {
    let mut tree = Tree::new();
    create(&mut tree, 1, "/t", 0).expect("t");
    create(&mut tree, 2, "/t/a", 0).expect("a");
    assert_eq!(tree.get("/t").expect("t").stat().cversion, 1);
    let delete = TreeOp::Delete {
        path: "/t/a".into(),
        version: -1,
    };
    tree.apply(3, 0, &delete, &mut Vec::new()).expect("delete");
    assert_eq!(tree.get("/t").expect("t").stat().cversion, 2);
    let op = TreeOp::Create(NodeCreate {
        path: "/t/s-".into(),
        data: vec![],
        ephemeral_owner: 0,
        sequential: true,
    });
    let outcome = tree.apply(4, 0, &op, &mut Vec::new()).expect("seq");
    // Apache ZooKeeper 3.8 names it s-0000000001 and then reports cversion 3.
    assert!(matches!(outcome, Outcome::Created { ref path, .. } if path == "/t/s-0000000001"));
    assert_eq!(tree.get("/t").expect("t").stat().cversion, 3);
}

#[test]
fn failed_multi_changes_nothing() {
    let mut tree = Tree::new();
    create(&mut tree, 1, "/c", 0).expect("c");
    let before = tree.nodes.clone();
    let ops = vec![
        TreeOp::Create(NodeCreate {
            path: "/new".into(),
            data: vec![],
            ephemeral_owner: 4,
            sequential: false,
        }),
        TreeOp::SetData {
            path: "/c".into(),
            data: b"x".to_vec(),
            version: -1,
        },
        TreeOp::Delete {
            path: "/c".into(),
            version: -1,
        },
        TreeOp::Check {
            path: "/c".into(),
            version: 0,
        },
    ];
    let mut triggers = Vec::new();
    assert_eq!(
        tree.apply_multi(2, 0, &ops, &mut triggers),
        Err((3, ErrorCode::NoNode))
    );
    assert_eq!(tree.nodes, before);
    assert!(tree.ephemerals_of(4).is_empty());
    assert!(triggers.is_empty());
}

#[test]
fn successful_multi_applies_all_and_fires_all() {
    let mut tree = Tree::new();
    create(&mut tree, 1, "/c", 0).expect("c");
    let ops = vec![
        TreeOp::Check {
            path: "/c".into(),
            version: 0,
        },
        TreeOp::SetData {
            path: "/c".into(),
            data: b"x".to_vec(),
            version: 0,
        },
    ];
    let mut triggers = Vec::new();
    let outcomes = tree.apply_multi(2, 0, &ops, &mut triggers).expect("ok");
    assert_eq!(outcomes.len(), 2);
    assert_eq!(tree.get("/c").expect("c").stat().version, 1);
    assert_eq!(triggers.len(), 1);
}

#[test]
fn closing_a_session_deletes_its_ephemerals_only() {
    let mut tree = Tree::new();
    create(&mut tree, 1, "/mine", 7).expect("mine");
    create(&mut tree, 2, "/theirs", 8).expect("theirs");
    let mut triggers = Vec::new();
    tree.close_session(3, 7, &mut triggers);
    assert!(tree.get("/mine").is_none());
    assert!(tree.get("/theirs").is_some());
    assert!(triggers.contains(&Trigger {
        path: "/mine".into(),
        event: EventType::NodeDeleted
    }));
    assert!(tree.ephemerals_of(7).is_empty());
}

#[test]
fn path_validation_follows_zookeeper() {
    for good in ["/", "/a", "/a/b-1", "/brokers/ids/3"] {
        assert!(is_valid_path(good), "{good}");
    }
    for bad in ["", "a", "/a/", "//a", "/a//b", "/./a", "/a/..", "/a\u{0}"] {
        assert!(!is_valid_path(bad), "{bad:?}");
    }
    assert_eq!(parent_of("/a"), "/");
    assert_eq!(parent_of("/a/b"), "/a");
}
