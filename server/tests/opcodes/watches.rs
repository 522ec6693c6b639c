//! One-shot, persistent and persistent-recursive watches; removeWatches.

use super::*;

#[test]
fn oneshot_watches_fire_once_with_the_right_event() {
    let tg = target("oneshot", Server::builder());
    run(async {
        let zk = zk(&tg.connect).await;
        let writer = common::zk(&tg.connect).await;
        let r = tg.root.as_str();
        t("root", zk.create(r, b"", &persistent())).await.unwrap();
        let d = format!("{r}/d");
        t("d", zk.create(&d, b"", &persistent())).await.unwrap();

        // data watch: data change
        let (_, _, w) = t("watch data", zk.get_and_watch_data(&d)).await.unwrap();
        let stat = t("set", writer.set_data(&d, b"1", None)).await.unwrap();
        let e = t("data event", w.changed()).await;
        assert_eq!(
            (e.event_type, e.path.as_str()),
            (EventType::NodeDataChanged, d.as_str())
        );
        assert_eq!(e.session_state, SessionState::SyncConnected);
        // ZooKeeper 3.9 sends the zxid that fired the event, 3.8 sends -1.
        assert!(
            e.zxid == WatchedEvent::NO_ZXID || e.zxid == stat.mzxid,
            "{e:?} {stat:?}"
        );

        // child watch: child created, then child deleted
        let (_, _, w) = t("watch children", zk.get_and_watch_children(r))
            .await
            .unwrap();
        t(
            "create child",
            writer.create(&format!("{r}/c"), b"", &persistent()),
        )
        .await
        .unwrap();
        let e = t("child event", w.changed()).await;
        assert_eq!(
            (e.event_type, e.path.as_str()),
            (EventType::NodeChildrenChanged, r)
        );
        let (_, w) = t("list and watch", zk.list_and_watch_children(r))
            .await
            .unwrap();
        t("delete child", writer.delete(&format!("{r}/c"), None))
            .await
            .unwrap();
        let e = t("child event", w.changed()).await;
        assert_eq!(
            (e.event_type, e.path.as_str()),
            (EventType::NodeChildrenChanged, r)
        );

        // exists watch on a missing node: created
        let n = format!("{r}/new");
        let (stat, w) = t("watch exists", zk.check_and_watch_stat(&n))
            .await
            .unwrap();
        assert_eq!(stat, None);
        t("create new", writer.create(&n, b"", &persistent()))
            .await
            .unwrap();
        let e = t("created event", w.changed()).await;
        assert_eq!(
            (e.event_type, e.path.as_str()),
            (EventType::NodeCreated, n.as_str())
        );

        // exists watch on an existing node: data change
        let (stat, w) = t("watch exists", zk.check_and_watch_stat(&n))
            .await
            .unwrap();
        assert!(stat.is_some());
        t("set new", writer.set_data(&n, b"x", None)).await.unwrap();
        let e = t("changed event", w.changed()).await;
        assert_eq!(
            (e.event_type, e.path.as_str()),
            (EventType::NodeDataChanged, n.as_str())
        );

        // data and child watches on a node that is deleted
        let (_, _, wd) = t("watch data", zk.get_and_watch_data(&n)).await.unwrap();
        let (_, _, wc) = t("watch children", zk.get_and_watch_children(&n))
            .await
            .unwrap();
        t("delete new", writer.delete(&n, None)).await.unwrap();
        let e = t("deleted event", wd.changed()).await;
        assert_eq!(
            (e.event_type, e.path.as_str()),
            (EventType::NodeDeleted, n.as_str())
        );
        let e = t("deleted event", wc.changed()).await;
        assert_eq!(
            (e.event_type, e.path.as_str()),
            (EventType::NodeDeleted, n.as_str())
        );
    });

    // On the wire: one watch, two changes, exactly one notification.
    run(async {
        let mut raw = RawConn::session(tg.addr).await;
        let writer = common::zk(&tg.connect).await;
        let d = format!("{}/d", tg.root);
        let reply = raw
            .call(
                1,
                &Request::GetData(GetDataRequest {
                    path: d.clone(),
                    watch: true,
                }),
            )
            .await;
        assert_eq!(reply.err(), 0);
        // a second watch on the same path and kind is the same watch
        let reply = raw
            .call(
                2,
                &Request::Exists(ExistsRequest {
                    path: d.clone(),
                    watch: true,
                }),
            )
            .await;
        assert_eq!(reply.err(), 0);
        t("set", writer.set_data(&d, b"a", None)).await.unwrap();
        t("set", writer.set_data(&d, b"b", None)).await.unwrap();
        raw.send(3, &barrier()).await;
        let mut events = Vec::new();
        let reply = raw.read_reply_collecting(&mut events).await.unwrap();
        assert_eq!(reply.header.xid, 3);
        assert_eq!(events.len(), 1, "one-shot: {events:?}");
        assert_eq!(events[0].kind, 3, "NodeDataChanged");
        assert_eq!(events[0].state, 3, "SyncConnected");
        assert_eq!(events[0].path, d);
    });
}

#[test]
fn persistent_watch_fires_until_removed() {
    let tg = target("persistent", Server::builder());
    run(async {
        let zk = zk(&tg.connect).await;
        let writer = common::zk(&tg.connect).await;
        let r = tg.root.as_str();
        let p = format!("{r}/p");
        t("root", zk.create(r, b"", &persistent())).await.unwrap();

        // Watching a path that does not exist yet.
        let mut w = t("watch", zk.watch(&p, AddWatchMode::Persistent))
            .await
            .unwrap();
        t("create p", writer.create(&p, b"", &persistent()))
            .await
            .unwrap();
        let e = t("created", w.changed()).await;
        assert_eq!(
            (e.event_type, e.path.as_str()),
            (EventType::NodeCreated, p.as_str())
        );
        for i in 0..3 {
            let stat = t("set", writer.set_data(&p, format!("{i}").as_bytes(), None))
                .await
                .unwrap();
            let e = t("changed", w.changed()).await;
            assert_eq!(
                (e.event_type, e.path.as_str()),
                (EventType::NodeDataChanged, p.as_str())
            );
            assert!(
                e.zxid == WatchedEvent::NO_ZXID || e.zxid == stat.mzxid,
                "{e:?}"
            );
        }
        let c = format!("{p}/c");
        t("create c", writer.create(&c, b"", &persistent()))
            .await
            .unwrap();
        let e = t("children", w.changed()).await;
        assert_eq!(
            (e.event_type, e.path.as_str()),
            (EventType::NodeChildrenChanged, p.as_str())
        );
        // Not recursive: grandchildren and the child's data do not fire.
        t(
            "create c/g",
            writer.create(&format!("{c}/g"), b"", &persistent()),
        )
        .await
        .unwrap();
        t("set c", writer.set_data(&c, b"x", None)).await.unwrap();
        t("delete c/g", writer.delete(&format!("{c}/g"), None))
            .await
            .unwrap();
        t("delete c", writer.delete(&c, None)).await.unwrap();
        let e = t("children", w.changed()).await;
        assert_eq!(
            (e.event_type, e.path.as_str()),
            (EventType::NodeChildrenChanged, p.as_str())
        );
        t("delete p", writer.delete(&p, None)).await.unwrap();
        let e = t("deleted", w.changed()).await;
        assert_eq!(
            (e.event_type, e.path.as_str()),
            (EventType::NodeDeleted, p.as_str())
        );
        // Still there after the delete.
        t("create p again", writer.create(&p, b"", &persistent()))
            .await
            .unwrap();
        let e = t("created", w.changed()).await;
        assert_eq!(
            (e.event_type, e.path.as_str()),
            (EventType::NodeCreated, p.as_str())
        );
    });
}

#[test]
fn persistent_recursive_watch_sees_the_subtree() {
    let tg = target("recursive", Server::builder());
    run(async {
        let zk = zk(&tg.connect).await;
        let writer = common::zk(&tg.connect).await;
        let r = tg.root.as_str();
        t("root", zk.create(r, b"", &persistent())).await.unwrap();
        let mut w = t("watch", zk.watch(r, AddWatchMode::PersistentRecursive))
            .await
            .unwrap();

        let a = format!("{r}/a");
        let b = format!("{a}/b");
        t("create a", writer.create(&a, b"", &persistent()))
            .await
            .unwrap();
        t("create b", writer.create(&b, b"", &persistent()))
            .await
            .unwrap();
        t("set b", writer.set_data(&b, b"1", None)).await.unwrap();
        t("set root", writer.set_data(r, b"1", None)).await.unwrap();
        t("delete b", writer.delete(&b, None)).await.unwrap();
        // Events outside the subtree do not fire.
        t(
            "outside",
            writer.create(&format!("{r}x"), b"", &persistent()),
        )
        .await
        .unwrap();
        t("delete a", writer.delete(&a, None)).await.unwrap();
        // No NodeChildrenChanged in recursive mode.
        let expected = [
            (EventType::NodeCreated, a.clone()),
            (EventType::NodeCreated, b.clone()),
            (EventType::NodeDataChanged, b.clone()),
            (EventType::NodeDataChanged, r.to_string()),
            (EventType::NodeDeleted, b.clone()),
            (EventType::NodeDeleted, a.clone()),
        ];
        for (kind, path) in expected {
            let e = t("recursive event", w.changed()).await;
            assert_eq!((e.event_type, e.path), (kind, path));
        }
        let _ = writer.delete(&format!("{r}x"), None).await;
    });
}

#[test]
#[allow(deprecated)]
fn remove_watches() {
    let tg = target("removewatch", Server::builder());
    run(async {
        let zk = zk(&tg.connect).await;
        let r = tg.root.as_str();
        t("root", zk.create(r, b"", &persistent())).await.unwrap();
        let (_, _, w) = t("watch", zk.get_and_watch_data(r)).await.unwrap();
        t("remove", w.remove()).await.unwrap();
        let (_, w) = t("watch", zk.list_and_watch_children(r)).await.unwrap();
        t("remove", w.remove()).await.unwrap();
        let w = t("persistent", zk.watch(r, AddWatchMode::Persistent))
            .await
            .unwrap();
        t("remove persistent", w.remove()).await.unwrap();
        // The session still works and new watches still fire.
        let (_, _, w) = t("watch", zk.get_and_watch_data(r)).await.unwrap();
        t("set", zk.set_data(r, b"x", None)).await.unwrap();
        assert_eq!(
            t("event", w.changed()).await.event_type,
            EventType::NodeDataChanged
        );
    });

    // On the wire: a removed watch no longer fires; removing a missing one is NoWatcher.
    run(async {
        let mut raw = RawConn::session(tg.addr).await;
        let writer = common::zk(&tg.connect).await;
        let p = tg.root.clone();
        let reply = raw
            .call(
                1,
                &Request::GetData(GetDataRequest {
                    path: p.clone(),
                    watch: true,
                }),
            )
            .await;
        assert_eq!(reply.err(), 0);
        let remove = |kind| {
            Request::RemoveWatches(RemoveWatchesRequest {
                path: p.clone(),
                kind,
            })
        };
        // Child watches: none set.
        assert_eq!(raw.call(2, &remove(1)).await.err(), -121, "NoWatcher");
        assert_eq!(raw.call(3, &remove(2)).await.err(), 0, "data watch removed");
        assert_eq!(raw.call(4, &remove(2)).await.err(), -121, "already removed");
        t("set", writer.set_data(&p, b"y", None)).await.unwrap();
        raw.send(5, &barrier()).await;
        let mut events = Vec::new();
        let reply = raw.read_reply_collecting(&mut events).await.unwrap();
        assert_eq!(reply.header.xid, 5);
        assert!(events.is_empty(), "removed watch fired: {events:?}");
    });
}
