//! Creates in every mode, versions, error codes, TTL and container nodes.

use super::*;

#[test]
fn create_in_every_mode_with_stat_fields() {
    let tg = target("modes", Server::builder());
    run(async {
        let zk = zk(&tg.connect).await;
        let session = zk.session_id().0;
        let base = tg.root.as_str();

        let (stat, seq) = t("create base", zk.create(base, b"hello", &persistent()))
            .await
            .unwrap();
        assert_fresh(&stat, 5, 0);
        assert_eq!(seq.into_i64(), -1, "no sequence for a plain node");
        let (data, got) = t("get", zk.get_data(base)).await.unwrap();
        assert_eq!(data, b"hello");
        assert_eq!(got, stat, "get_data returns the stat create returned");
        assert_eq!(t("exists", zk.check_stat(base)).await.unwrap(), Some(stat));

        // persistent child: the parent's cversion, numChildren and pzxid move; its
        // version and mzxid do not.
        let p = format!("{base}/p");
        let (pstat, _) = t("create p", zk.create(&p, b"", &persistent()))
            .await
            .unwrap();
        assert_fresh(&pstat, 0, 0);
        assert!(pstat.czxid > stat.czxid);
        let parent = t("exists", zk.check_stat(base)).await.unwrap().unwrap();
        assert_eq!(parent.num_children, 1);
        assert_eq!(parent.cversion, 1);
        assert_eq!(parent.pzxid, pstat.czxid);
        assert_eq!(parent.version, 0);
        assert_eq!(parent.mzxid, stat.mzxid);
        assert_eq!(parent.czxid, stat.czxid);

        // ephemeral: owned by this session.
        let e = format!("{base}/e");
        let (estat, _) = t("create e", zk.create(&e, b"eph", &ephemeral()))
            .await
            .unwrap();
        assert_fresh(&estat, 3, session);

        // sequential: the suffix is the parent's cversion, ten digits.
        let s_prefix = format!("{base}/s-");
        let seq_opts = CreateMode::PersistentSequential.with_acls(Acls::anyone_all());
        let (sstat, seq) = t("create s", zk.create(&s_prefix, b"", &seq_opts))
            .await
            .unwrap();
        assert_eq!(seq.into_i64(), 2);
        assert_eq!(seq.to_string(), "0000000002");
        assert_fresh(&sstat, 0, 0);
        let s_path = format!("{s_prefix}0000000002");
        assert_eq!(
            t("exists", zk.check_stat(&s_path)).await.unwrap(),
            Some(sstat)
        );

        // ephemeral sequential
        let es_prefix = format!("{base}/es-");
        let es_opts = CreateMode::EphemeralSequential.with_acls(Acls::anyone_all());
        let (esstat, seq) = t("create es", zk.create(&es_prefix, b"x", &es_opts))
            .await
            .unwrap();
        assert_eq!(seq.into_i64(), 3);
        assert_fresh(&esstat, 1, session);

        // container: reported with ephemeralOwner 0, as ZooKeeper does.
        let c = format!("{base}/c");
        let c_opts = CreateMode::Container.with_acls(Acls::anyone_all());
        let (cstat, _) = t("create c", zk.create(&c, b"", &c_opts)).await.unwrap();
        assert_fresh(&cstat, 0, 0);

        // the children, with stat
        let (children, parent) = t("get_children", zk.get_children(base)).await.unwrap();
        assert_eq!(
            sorted(children),
            vec!["c", "e", "es-0000000003", "p", "s-0000000002"]
        );
        assert_eq!(parent.num_children, 5);
        assert_eq!(parent.cversion, 5);
        assert_eq!(parent.pzxid, cstat.czxid);
        assert_eq!(parent.data_length, 5);
        let listed = t("list_children", zk.list_children(base)).await.unwrap();
        assert_eq!(listed.len(), 5);

        // delete a child: cversion counts it, pzxid moves, mzxid stays.
        t("delete p", zk.delete(&p, None)).await.unwrap();
        let after = t("exists", zk.check_stat(base)).await.unwrap().unwrap();
        assert_eq!(after.num_children, 4);
        assert_eq!(after.cversion, 6);
        assert!(after.pzxid > parent.pzxid);
        assert_eq!(after.mzxid, stat.mzxid);
        assert_eq!(t("exists p", zk.check_stat(&p)).await.unwrap(), None);

        // The sequence number counts child creations: the delete did not advance it,
        // though the reported cversion counts deletions too (ZooKeeper's DataNode.copyStat).
        let (_, seq) = t("create s", zk.create(&s_prefix, b"", &seq_opts))
            .await
            .unwrap();
        assert_eq!(seq.into_i64(), 5);

        // getAllChildrenNumber: all descendants
        t(
            "create c/x",
            zk.create(&format!("{c}/x"), b"", &persistent()),
        )
        .await
        .unwrap();
        t(
            "create c/x/y",
            zk.create(&format!("{c}/x/y"), b"", &persistent()),
        )
        .await
        .unwrap();
        assert_eq!(
            t("count", zk.count_descendants_number(base)).await.unwrap(),
            7
        );
        assert_eq!(
            t("count", zk.count_descendants_number(&c)).await.unwrap(),
            2
        );
        assert_eq!(
            t("count", zk.count_descendants_number(&e)).await.unwrap(),
            0
        );
        assert_eq!(
            t(
                "count",
                zk.count_descendants_number(&format!("{base}/none"))
            )
            .await,
            Err(Error::NoNode)
        );

        // mkdir -p (creates the missing ancestors)
        let deep = format!("{base}/m/n/o");
        t("mkdir", zk.mkdir(&deep, &persistent())).await.unwrap();
        assert!(t("exists", zk.check_stat(&deep)).await.unwrap().is_some());
    });
}

#[test]
fn set_data_and_delete_honour_versions() {
    let tg = target("versions", Server::builder());
    run(async {
        let zk = zk(&tg.connect).await;
        let p = tg.root.as_str();
        let (created, _) = t("create", zk.create(p, b"v0", &persistent()))
            .await
            .unwrap();

        let s1 = t("set v0", zk.set_data(p, b"value-1", Some(0)))
            .await
            .unwrap();
        assert_eq!(s1.version, 1);
        assert_eq!(s1.data_length, 7);
        assert_eq!(s1.czxid, created.czxid);
        assert!(s1.mzxid > created.mzxid);
        assert_eq!(s1.pzxid, created.pzxid, "setData does not move pzxid");
        assert_eq!(s1.ctime, created.ctime);
        assert!(s1.mtime >= created.mtime);
        assert_eq!(s1.cversion, 0);
        assert_eq!(s1.aversion, 0);

        assert_eq!(
            t("stale set", zk.set_data(p, b"x", Some(0))).await,
            Err(Error::BadVersion)
        );
        let s2 = t("set v1", zk.set_data(p, b"", Some(1))).await.unwrap();
        assert_eq!(s2.version, 2);
        assert_eq!(s2.data_length, 0);
        let s3 = t("set any", zk.set_data(p, b"last", None)).await.unwrap();
        assert_eq!(s3.version, 3);
        let (data, stat) = t("get", zk.get_data(p)).await.unwrap();
        assert_eq!(data, b"last");
        assert_eq!(stat, s3);

        assert_eq!(
            t("stale delete", zk.delete(p, Some(2))).await,
            Err(Error::BadVersion)
        );
        assert!(t("exists", zk.check_stat(p)).await.unwrap().is_some());
        t("delete v3", zk.delete(p, Some(3))).await.unwrap();
        assert_eq!(t("exists", zk.check_stat(p)).await.unwrap(), None);
        assert_eq!(
            t("delete again", zk.delete(p, None)).await,
            Err(Error::NoNode)
        );
    });
}

#[test]
fn error_codes_match_zookeeper() {
    let tg = target("errors", Server::builder());
    run(async {
        let zk = zk(&tg.connect).await;
        let r = tg.root.as_str();
        t("create", zk.create(r, b"", &persistent())).await.unwrap();
        let child = format!("{r}/child");
        t("create", zk.create(&child, b"", &persistent()))
            .await
            .unwrap();

        assert_eq!(
            t("dup", zk.create(r, b"", &persistent())).await,
            Err(Error::NodeExists)
        );
        assert_eq!(
            t(
                "orphan",
                zk.create(&format!("{r}/no/such"), b"", &persistent())
            )
            .await,
            Err(Error::NoNode)
        );
        assert_eq!(
            t("get", zk.get_data(&format!("{r}/none"))).await,
            Err(Error::NoNode)
        );
        assert_eq!(
            t("set", zk.set_data(&format!("{r}/none"), b"", None)).await,
            Err(Error::NoNode)
        );
        assert_eq!(
            t("children", zk.get_children(&format!("{r}/none"))).await,
            Err(Error::NoNode)
        );
        assert_eq!(
            t("acl", zk.get_acl(&format!("{r}/none"))).await,
            Err(Error::NoNode)
        );
        assert_eq!(
            t("exists", zk.check_stat(&format!("{r}/none"))).await,
            Ok(None)
        );
        assert_eq!(
            t("not empty", zk.delete(r, None)).await,
            Err(Error::NotEmpty)
        );
        assert_eq!(
            t("bad version", zk.set_data(&child, b"", Some(7))).await,
            Err(Error::BadVersion)
        );
        assert_eq!(
            t(
                "acl version",
                zk.set_acl(&child, &Acls::anyone_all(), Some(3))
            )
            .await,
            Err(Error::BadVersion)
        );

        let eph = format!("{r}/eph");
        t("create eph", zk.create(&eph, b"", &ephemeral()))
            .await
            .unwrap();
        assert_eq!(
            t(
                "child of ephemeral",
                zk.create(&format!("{eph}/c"), b"", &persistent())
            )
            .await,
            Err(Error::NoChildrenForEphemerals)
        );
        let seq = CreateMode::EphemeralSequential.with_acls(Acls::anyone_all());
        assert_eq!(
            t(
                "seq child of ephemeral",
                zk.create(&format!("{eph}/c-"), b"", &seq)
            )
            .await,
            Err(Error::NoChildrenForEphemerals)
        );
        // The system nodes cannot be deleted or replaced.
        assert!(
            t("zookeeper", zk.check_stat("/zookeeper"))
                .await
                .unwrap()
                .is_some()
        );
        // Nothing above changed the tree.
        let (children, stat) = t("children", zk.get_children(r)).await.unwrap();
        assert_eq!(sorted(children), vec!["child", "eph"]);
        assert_eq!(stat.num_children, 2);
    });
}

#[test]
fn ttl_nodes_expire_when_extended_types_are_enabled() {
    let tg = target(
        "ttl",
        Server::builder()
            .cfg("extendedTypesEnabled=true")
            .cfg("znode.container.checkIntervalMs=200"),
    );
    run(async {
        let zk = zk(&tg.connect).await;
        let r = tg.root.as_str();
        t("create", zk.create(r, b"", &persistent())).await.unwrap();
        let ttl_opts = CreateMode::Persistent
            .with_acls(Acls::anyone_all())
            .with_ttl(Duration::from_millis(300));
        let short = format!("{r}/short");
        let (stat, _) = t("create ttl", zk.create(&short, b"t", &ttl_opts))
            .await
            .unwrap();
        // ZooKeeper reports ephemeralOwner 0 for TTL nodes (their marker stays internal).
        assert_fresh(&stat, 1, 0);
        let seq_ttl = CreateMode::PersistentSequential
            .with_acls(Acls::anyone_all())
            .with_ttl(Duration::from_millis(300));
        let (_, seq) = t(
            "create seq ttl",
            zk.create(&format!("{r}/seq-"), b"", &seq_ttl),
        )
        .await
        .unwrap();
        assert_eq!(seq.into_i64(), 1);
        let long_opts = CreateMode::Persistent
            .with_acls(Acls::anyone_all())
            .with_ttl(Duration::from_secs(3600));
        let long = format!("{r}/long");
        t("create long ttl", zk.create(&long, b"", &long_opts))
            .await
            .unwrap();
        // A TTL node with a child is not removed, even when its TTL passed.
        let parent = format!("{r}/parent");
        t("create parent ttl", zk.create(&parent, b"", &ttl_opts))
            .await
            .unwrap();
        t(
            "child",
            zk.create(&format!("{parent}/kid"), b"", &persistent()),
        )
        .await
        .unwrap();

        let gone = eventually(Duration::from_secs(15), || async {
            zk.check_stat(&short).await.unwrap().is_none()
                && zk
                    .check_stat(&format!("{r}/seq-0000000001"))
                    .await
                    .unwrap()
                    .is_none()
        })
        .await;
        assert!(gone, "TTL nodes expire");
        assert!(t("long", zk.check_stat(&long)).await.unwrap().is_some());
        assert!(t("parent", zk.check_stat(&parent)).await.unwrap().is_some());
        // Once childless, the TTL parent goes too.
        t("delete kid", zk.delete(&format!("{parent}/kid"), None))
            .await
            .unwrap();
        let gone = eventually(Duration::from_secs(15), || async {
            zk.check_stat(&parent).await.unwrap().is_none()
        })
        .await;
        assert!(gone, "childless expired TTL node is removed");
        assert!(t("long", zk.check_stat(&long)).await.unwrap().is_some());
    });
}

#[test]
fn ttl_needs_extended_types() {
    if std::env::var("PADDOCK_IT_EXTERNAL").is_ok() {
        return;
    }
    let server = Server::start();
    run(async {
        let zk = zk(&server.connect_string()).await;
        let ttl_opts = CreateMode::Persistent
            .with_acls(Acls::anyone_all())
            .with_ttl(Duration::from_secs(10));
        assert_eq!(
            t("ttl", zk.create("/ttl", b"", &ttl_opts)).await,
            Err(Error::Unimplemented)
        );
        assert_eq!(t("exists", zk.check_stat("/ttl")).await, Ok(None));
    });
}

#[test]
fn container_is_removed_after_its_last_child() {
    let tg = target(
        "container",
        Server::builder().cfg("znode.container.checkIntervalMs=200"),
    );
    run(async {
        let zk = zk(&tg.connect).await;
        let r = tg.root.as_str();
        t("create", zk.create(r, b"", &persistent())).await.unwrap();
        let c_opts = CreateMode::Container.with_acls(Acls::anyone_all());
        let used = format!("{r}/used");
        let never = format!("{r}/never");
        t("create used", zk.create(&used, b"", &c_opts))
            .await
            .unwrap();
        t("create never", zk.create(&never, b"", &c_opts))
            .await
            .unwrap();
        let kid = format!("{used}/kid");
        t("kid", zk.create(&kid, b"", &ephemeral())).await.unwrap();
        // With a child it stays.
        let (_, _, watcher) = t("watch", zk.get_and_watch_data(&used)).await.unwrap();
        t("delete kid", zk.delete(&kid, None)).await.unwrap();
        let event = t("container deleted event", watcher.changed()).await;
        assert_eq!(event.event_type, EventType::NodeDeleted);
        assert_eq!(event.path, used);
        assert_eq!(t("exists", zk.check_stat(&used)).await, Ok(None));
        // A container that never had a child is kept.
        assert!(t("never", zk.check_stat(&never)).await.unwrap().is_some());
    });
}
