//! sync, multi and multiRead, failed multis on the wire, getEphemerals.

use super::*;

#[test]
fn sync_multi_and_multi_read() {
    let tg = target("multi", Server::builder());
    run(async {
        let zk = zk(&tg.connect).await;
        let r = tg.root.as_str();
        t("create", zk.create(r, b"root", &persistent()))
            .await
            .unwrap();
        t("sync", zk.sync(r)).await.unwrap();
        t("sync /", zk.sync("/")).await.unwrap();
        let old = format!("{r}/old");
        t("old", zk.create(&old, b"", &persistent())).await.unwrap();

        let a = format!("{r}/a");
        let mut w = zk.new_multi_writer();
        w.add_create(&a, b"A", &persistent()).unwrap();
        w.add_set_data(r, b"root2", Some(0)).unwrap();
        w.add_check_version(r, 1).unwrap();
        w.add_delete(&old, Some(0)).unwrap();
        w.add_create(
            &format!("{r}/s-"),
            b"",
            &CreateMode::PersistentSequential.with_acls(Acls::anyone_all()),
        )
        .unwrap();
        let results = t("multi", w.commit()).await.unwrap();
        assert_eq!(results.len(), 5);
        let MultiWriteResult::Create { path, stat } = &results[0] else {
            panic!("create result: {results:?}")
        };
        assert_eq!(path, &a);
        let MultiWriteResult::SetData { stat: set_stat } = &results[1] else {
            panic!("setData result: {results:?}")
        };
        assert_eq!(set_stat.version, 1);
        // ZooKeeper 3.8 answers a create2 inside a multi with a plain CreateResult, no
        // stat (ZOOKEEPER-4026), and so does Paddock; the crate reports it as invalid.
        if !stat.is_invalid() {
            assert_fresh(stat, 1, 0);
            assert_eq!(set_stat.mzxid, stat.czxid, "one txn: one zxid for all ops");
        }
        assert_eq!(results[2], MultiWriteResult::Check);
        assert_eq!(results[3], MultiWriteResult::Delete);
        let MultiWriteResult::Create { path: seq_path, .. } = &results[4] else {
            panic!("create result: {results:?}")
        };
        // Creations before it: old and a, so the sequence is 2 (deletions do not count).
        assert_eq!(seq_path, &format!("{r}/s-0000000002"));
        assert_eq!(t("old gone", zk.check_stat(&old)).await, Ok(None));
        assert_eq!(t("root data", zk.get_data(r)).await.unwrap().0, b"root2");

        // A failing op rolls the whole multi back and names the failing index.
        let b = format!("{r}/b");
        let mut w = zk.new_multi_writer();
        w.add_create(&b, b"", &persistent()).unwrap();
        w.add_set_data(&a, b"changed", None).unwrap();
        w.add_check_version(r, 99).unwrap();
        w.add_delete(&a, None).unwrap();
        let err = t("failing multi", w.commit()).await.unwrap_err();
        assert_eq!(
            err,
            MultiWriteError::OperationFailed {
                index: 2,
                source: Error::BadVersion
            }
        );
        assert_eq!(t("b absent", zk.check_stat(&b)).await, Ok(None));
        assert_eq!(t("a unchanged", zk.get_data(&a)).await.unwrap().0, b"A");

        let mut w = zk.new_multi_writer();
        w.add_create(&b, b"", &persistent()).unwrap();
        w.add_create(&b, b"", &persistent()).unwrap();
        let err = t("duplicate multi", w.commit()).await.unwrap_err();
        assert_eq!(
            err,
            MultiWriteError::OperationFailed {
                index: 1,
                source: Error::NodeExists
            }
        );
        assert_eq!(t("b absent", zk.check_stat(&b)).await, Ok(None));

        // CheckWriter: a failed leading check.
        let mut cw = zk.new_check_writer(&a, Some(5)).unwrap();
        cw.add_set_data(&a, b"no", None).unwrap();
        let err = t("check writer", cw.commit()).await.unwrap_err();
        assert!(
            matches!(
                err,
                zookeeper_client::CheckWriteError::CheckFailed {
                    source: Error::BadVersion
                }
            ),
            "{err:?}"
        );

        // multiRead: independent reads, per-op errors.
        let mut rd = zk.new_multi_reader();
        rd.add_get_data(&a).unwrap();
        rd.add_get_children(r).unwrap();
        rd.add_get_data(&format!("{r}/none")).unwrap();
        rd.add_get_children(&format!("{r}/none")).unwrap();
        let results = t("multi read", rd.commit()).await.unwrap();
        assert_eq!(results.len(), 4);
        match &results[0] {
            MultiReadResult::Data { data, stat } => {
                assert_eq!(data, b"A");
                assert_eq!(stat.data_length, 1);
            }
            other => panic!("{other:?}"),
        }
        match &results[1] {
            MultiReadResult::Children { children } => {
                assert_eq!(sorted(children.clone()), vec!["a", "s-0000000002"])
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(&results[2], MultiReadResult::Error { err: Error::NoNode }),
            "{:?}",
            results[2]
        );
        assert!(
            matches!(&results[3], MultiReadResult::Error { err: Error::NoNode }),
            "{:?}",
            results[3]
        );
    });
}

/// The per-op results of a failed multi, on the wire: OK before the failing op, its
/// error, RuntimeInconsistency after it (ZooKeeper's ErrorResult list).
#[test]
fn failed_multi_per_op_results_on_the_wire() {
    let tg = target("rawmulti", Server::builder());
    run(async {
        let mut c = RawConn::session(tg.addr).await;
        let r = tg.root.clone();
        let open = vec![paddock_proto::Acl {
            perms: perms::ALL,
            id: Id {
                scheme: "world".into(),
                id: "anyone".into(),
            },
        }];
        let create = |path: String| {
            Request::Create(CreateRequest {
                path,
                data: vec![].into(),
                acl: open.clone(),
                flags: 0,
            })
        };
        let reply = c.call(1, &create(r.clone())).await;
        assert_eq!(reply.err(), 0);

        let multi = Request::Multi(vec![
            create(format!("{r}/x")),
            Request::Check(CheckVersionRequest {
                path: r.clone(),
                version: 42,
            }),
            create(format!("{r}/y")),
        ]);
        let reply = c.call(2, &multi).await;
        assert_eq!(
            reply.err(),
            0,
            "a failed multi is answered with err 0 and per-op results"
        );
        let Response::Multi(results) = reply.decode(OpCode::Multi.code()) else {
            panic!()
        };
        let codes: Vec<Option<i32>> = results
            .iter()
            .map(|r| match r {
                paddock_proto::MultiResult::Error(code) => Some(*code),
                _ => None,
            })
            .collect();
        assert_eq!(codes, vec![Some(0), Some(-103), Some(-2)]);
        // nothing was created
        let reply = c
            .call(
                3,
                &Request::Exists(ExistsRequest {
                    path: format!("{r}/x"),
                    watch: false,
                }),
            )
            .await;
        assert_eq!(reply.err(), -101);

        // a successful multi answers per op, in order
        let multi = Request::Multi(vec![
            create(format!("{r}/x")),
            Request::Check(CheckVersionRequest {
                path: r.clone(),
                version: 0,
            }),
            Request::SetData(SetDataRequest {
                path: format!("{r}/x"),
                data: b"d".to_vec().into(),
                version: 0,
            }),
        ]);
        let reply = c.call(4, &multi).await;
        assert_eq!(reply.err(), 0);
        let Response::Multi(results) = reply.decode(OpCode::Multi.code()) else {
            panic!()
        };
        assert_eq!(results.len(), 3);
        assert_eq!(
            results[0],
            paddock_proto::MultiResult::Create(format!("{r}/x"))
        );
        assert_eq!(results[1], paddock_proto::MultiResult::Check);
        let paddock_proto::MultiResult::SetData(stat) = &results[2] else {
            panic!("{results:?}")
        };
        assert_eq!(stat.version, 1);
        assert_eq!(stat.data_length, 1);
        assert_eq!(stat.mzxid, reply.header.zxid);
    });
}

#[test]
fn get_ephemerals_lists_this_sessions_ephemerals() {
    let tg = target("ephemerals", Server::builder());
    run(async {
        let zk = zk(&tg.connect).await;
        let other = common::zk(&tg.connect).await;
        let r = tg.root.as_str();
        t("root", zk.create(r, b"", &persistent())).await.unwrap();
        for d in ["a", "b"] {
            t("dir", zk.create(&format!("{r}/{d}"), b"", &persistent()))
                .await
                .unwrap();
        }
        for p in ["a/1", "a/2", "b/1"] {
            t("eph", zk.create(&format!("{r}/{p}"), b"", &ephemeral()))
                .await
                .unwrap();
        }
        t(
            "other eph",
            other.create(&format!("{r}/a/3"), b"", &ephemeral()),
        )
        .await
        .unwrap();
        t(
            "persistent",
            zk.create(&format!("{r}/a/p"), b"", &persistent()),
        )
        .await
        .unwrap();

        let mine = sorted(
            t("list", zk.list_ephemerals(&format!("{r}/a")))
                .await
                .unwrap(),
        );
        assert_eq!(mine, vec![format!("{r}/a/1"), format!("{r}/a/2")]);
        let all = sorted(t("list", zk.list_ephemerals(r)).await.unwrap());
        assert_eq!(
            all,
            vec![format!("{r}/a/1"), format!("{r}/a/2"), format!("{r}/b/1")]
        );
        let theirs = t("list", other.list_ephemerals(r)).await.unwrap();
        assert_eq!(theirs, vec![format!("{r}/a/3")]);
        assert_eq!(
            t("list none", zk.list_ephemerals(&format!("{r}/none"))).await,
            Ok(vec![])
        );
    });
}
