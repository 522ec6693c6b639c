//! Session close, expiry and resumption; the lock recipe, getConfig and reconfig.

use super::*;

#[test]
fn session_close_and_expiry_remove_ephemerals() {
    if std::env::var("PADDOCK_IT_EXTERNAL").is_ok() {
        return;
    }
    let server = Server::builder().cfg("tickTime=200").start();
    let connect = server.connect_string();
    run(async {
        let observer = zk(&connect).await;
        t("root", observer.create("/s", b"", &persistent()))
            .await
            .unwrap();

        // Closed session: its ephemerals go at once, with the watch firing.
        let closer = zk(&connect).await;
        t("eph", closer.create("/s/closed", b"", &ephemeral()))
            .await
            .unwrap();
        let (stat, w) = t("watch", observer.check_and_watch_stat("/s/closed"))
            .await
            .unwrap();
        assert_eq!(stat.unwrap().ephemeral_owner, closer.session_id().0);
        drop(closer);
        let e = t("deleted on close", w.changed()).await;
        assert_eq!(
            (e.event_type, e.path.as_str()),
            (EventType::NodeDeleted, "/s/closed")
        );

        // Expired session: the client goes away without closing; after the timeout the
        // server expires the session and removes its ephemerals.
        let leaver = zk_with(
            Client::connector()
                .with_session_timeout(Duration::from_millis(1000))
                .with_detached(),
            &connect,
        )
        .await;
        assert_eq!(leaver.session_timeout(), Duration::from_millis(1000));
        let session = leaver.session().clone();
        t("eph", leaver.create("/s/expiring", b"", &ephemeral()))
            .await
            .unwrap();
        t("eph2", leaver.create("/s/expiring2", b"", &ephemeral()))
            .await
            .unwrap();
        let (_, w) = t("watch", observer.check_and_watch_stat("/s/expiring"))
            .await
            .unwrap();
        let (_, w2) = t("watch", observer.check_and_watch_stat("/s/expiring2"))
            .await
            .unwrap();
        drop(leaver);
        let e = within(Duration::from_secs(20), "expiry", w.changed()).await;
        assert_eq!(
            (e.event_type, e.path.as_str()),
            (EventType::NodeDeleted, "/s/expiring")
        );
        let e = within(Duration::from_secs(20), "expiry", w2.changed()).await;
        assert_eq!(
            (e.event_type, e.path.as_str()),
            (EventType::NodeDeleted, "/s/expiring2")
        );
        // The session cannot be resumed.
        let resumed = within(
            Duration::from_secs(20),
            "resume",
            Client::connector()
                .with_session(session)
                .with_session_timeout(Duration::from_millis(1000))
                .with_fail_eagerly()
                .connect(&connect),
        )
        .await;
        assert!(matches!(resumed, Err(Error::SessionExpired)), "{resumed:?}");
        assert_eq!(
            t("ls", observer.list_children("/s")).await.unwrap(),
            Vec::<String>::new()
        );
    });
}

#[test]
fn session_resumes_on_a_new_connection() {
    if std::env::var("PADDOCK_IT_EXTERNAL").is_ok() {
        return;
    }
    let server = Server::start();
    let connect = server.connect_string();
    run(async {
        let first = zk_with(
            Client::connector()
                .with_session_timeout(Duration::from_secs(10))
                .with_detached(),
            &connect,
        )
        .await;
        t("eph", first.create("/kept", b"", &ephemeral()))
            .await
            .unwrap();
        let session = first.session().clone();
        let id = first.session_id();
        drop(first);
        let second = zk_with(Client::connector().with_session(session), &connect).await;
        assert_eq!(second.session_id(), id);
        let stat = t("exists", second.check_stat("/kept"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stat.ephemeral_owner, id.0);
        assert_eq!(
            t("ephemerals", second.list_ephemerals("/")).await.unwrap(),
            vec!["/kept"]
        );
    });
}

/// The crate's lock recipe (ephemeral sequential nodes, watch on the predecessor),
/// getConfig and reconfig (refused: reconfigEnabled is false by default).
#[test]
fn lock_recipe_config_and_reconfig() {
    let tg = target("lock", Server::builder());
    run(async {
        let a = zk(&tg.connect).await;
        let b = zk(&tg.connect).await;
        let dir = format!("{}/locks", tg.root);
        let opts = LockOptions::new(Acls::anyone_all())
            .with_ancestor_options(persistent())
            .unwrap();

        let a_lock = t(
            "a locks",
            a.lock(
                LockPrefix::new_curator(&dir, "lock-").unwrap(),
                b"a",
                opts.clone(),
            ),
        )
        .await
        .unwrap();
        let a_path = a_lock.lock_path().to_string();
        let a_stat = t("a node", a.check_stat(&a_path)).await.unwrap().unwrap();
        assert_eq!(a_stat.ephemeral_owner, a.session_id().0);

        let b_lock = b.lock(
            LockPrefix::new_curator(&dir, "lock-").unwrap(),
            b"b",
            opts.clone(),
        );
        tokio::pin!(b_lock);
        // B queues up behind A: its node appears, and it does not get the lock.
        let queued = tokio::select! {
            _ = &mut b_lock => panic!("B got the lock while A holds it"),
            queued = eventually(T, || async {
                a.list_children(&dir).await.map(|c| c.len() == 2).unwrap_or(false)
            }) => queued,
        };
        assert!(queued, "B's contender node appears");
        drop(a_lock);
        let b_lock = t("b locks after a released", b_lock).await.unwrap();
        let b_stat = t("b node", b.check_stat(b_lock.lock_path()))
            .await
            .unwrap()
            .unwrap();
        assert!(
            b_stat.czxid > a_stat.czxid,
            "the later grant has the larger czxid"
        );
        assert_eq!(t("a node gone", a.check_stat(&a_path)).await, Ok(None));
        drop(b_lock);

        // /zookeeper/config exists; reconfig is disabled.
        let (_, stat) = t("get_config", a.get_config()).await.unwrap();
        assert_eq!(stat.ephemeral_owner, 0);
        let joining = ["server.9=127.0.0.9:2888:3888;2181"];
        let update = EnsembleUpdate::Incremental {
            joinings: joining.iter().copied(),
            leavings: [].iter().copied(),
        };
        assert_eq!(
            t("reconfig", a.update_ensemble(update, None)).await,
            Err(Error::ReconfigDisabled)
        );
    });
}
