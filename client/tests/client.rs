//! The client against a real server: every operation, watches, sessions, errors.
//! Each test runs twice: against paddock-server and against Apache ZooKeeper 3.8.

mod common;

use std::time::Duration;

use common::{Env, Proxy, eventually, wait_state, within};
use paddock_client::{
    AddWatchMode, Client, CreateMode, CreateOptions, Error, ErrorCode, EventType, Op, OpResult,
    ReadOp, ReadResult, SessionState, WatchedEvent, WatcherType, acl,
};

const WAIT: Duration = Duration::from_secs(10);

fn code(result: Result<impl std::fmt::Debug, Error>) -> ErrorCode {
    match result {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.code(),
    }
}

async fn next_event(stream: &mut paddock_client::WatchStream) -> WatchedEvent {
    within(WAIT, "watch event", stream.next())
        .await
        .expect("watch stream ended without an event")
}

// ---- data operations -------------------------------------------------------------------

async fn create_get_set_delete(env: Env) {
    let c = env.client().await;
    let (path, stat) = c
        .create("/a", b"one", CreateMode::Persistent)
        .await
        .unwrap();
    assert_eq!(path, "/a");
    assert_eq!(stat.version, 0);
    assert_eq!(stat.data_length, 3);
    assert!(stat.czxid > 0 && stat.czxid == stat.mzxid);

    let (data, read) = c.get_data("/a").await.unwrap();
    assert_eq!(data, b"one");
    assert_eq!(read, stat);

    let set = c.set_data("/a", b"two", Some(0)).await.unwrap();
    assert_eq!(set.version, 1);
    assert!(set.mzxid > stat.mzxid);
    assert!(c.last_zxid_seen() >= set.mzxid);

    let err = c.set_data("/a", b"three", Some(0)).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::BadVersion);
    assert_eq!(err.to_string(), "BadVersion: /a");

    assert_eq!(c.exists("/a").await.unwrap().map(|s| s.version), Some(1));
    assert_eq!(c.exists("/nope").await.unwrap(), None);

    let err = c.get_data("/nope/deeper").await.unwrap_err();
    assert_eq!(err.to_string(), "NoNode: /nope/deeper");
    assert_eq!(
        code(c.create("/a", b"", CreateMode::Persistent).await),
        ErrorCode::NodeExists
    );
    assert_eq!(
        code(c.create("/x/y", b"", CreateMode::Persistent).await),
        ErrorCode::NoNode
    );

    c.create("/a/child", b"", CreateMode::Persistent)
        .await
        .unwrap();
    assert_eq!(code(c.delete("/a", None).await), ErrorCode::NotEmpty);
    assert_eq!(
        code(c.delete("/a/child", Some(5)).await),
        ErrorCode::BadVersion
    );
    c.delete("/a/child", Some(0)).await.unwrap();
    c.delete("/a", None).await.unwrap();
    assert_eq!(code(c.delete("/a", None).await), ErrorCode::NoNode);

    // Empty and binary data round-trip.
    c.create("/bin", &[0, 159, 255], CreateMode::Persistent)
        .await
        .unwrap();
    assert_eq!(c.get_data("/bin").await.unwrap().0, vec![0, 159, 255]);
    c.create("/empty", b"", CreateMode::Persistent)
        .await
        .unwrap();
    assert_eq!(c.get_data("/empty").await.unwrap().0, Vec::<u8>::new());
}

async fn children_and_counts(env: Env) {
    let c = env.client().await;
    c.create("/p", b"", CreateMode::Persistent).await.unwrap();
    for name in ["c", "a", "b"] {
        c.create(&format!("/p/{name}"), b"", CreateMode::Persistent)
            .await
            .unwrap();
    }
    c.create("/p/a/x", b"", CreateMode::Persistent)
        .await
        .unwrap();
    let mut children = c.get_children("/p").await.unwrap();
    children.sort();
    assert_eq!(children, ["a", "b", "c"]);
    let (children, stat) = c.get_children_stat("/p").await.unwrap();
    assert_eq!(children.len(), 3);
    assert_eq!(stat.num_children, 3);
    assert_eq!(c.get_all_children_number("/p").await.unwrap(), 4);
    assert_eq!(
        c.descendants("/p").await.unwrap(),
        ["/p/a", "/p/b", "/p/c", "/p/a/x"]
    );
    c.ensure_path("/deep/er/still", CreateMode::Persistent)
        .await
        .unwrap();
    c.ensure_path("/deep/er/still", CreateMode::Persistent)
        .await
        .unwrap();
    assert!(c.exists("/deep/er/still").await.unwrap().is_some());
    c.delete_all("/p").await.unwrap();
    assert_eq!(c.exists("/p").await.unwrap(), None);
    assert_eq!(code(c.get_children("/p").await), ErrorCode::NoNode);
}

async fn create_modes(env: Env) {
    let c = env.client().await;
    let observer = env.client().await;
    c.create("/seq", b"", CreateMode::Persistent).await.unwrap();
    let (first, _) = c
        .create("/seq/n-", b"", CreateMode::PersistentSequential)
        .await
        .unwrap();
    let (second, _) = c
        .create("/seq/n-", b"", CreateMode::EphemeralSequential)
        .await
        .unwrap();
    assert_eq!(first, "/seq/n-0000000000");
    assert_eq!(second, "/seq/n-0000000001");
    // A sequential create may end in '/': the name is the number alone.
    let (bare, _) = c
        .create("/seq/", b"", CreateMode::PersistentSequential)
        .await
        .unwrap();
    assert_eq!(bare, "/seq/0000000002");

    let (_, stat) = c.create("/eph", b"", CreateMode::Ephemeral).await.unwrap();
    assert_eq!(stat.ephemeral_owner, c.session().id);
    assert_eq!(
        code(c.create("/eph/child", b"", CreateMode::Persistent).await),
        ErrorCode::NoChildrenForEphemerals
    );
    assert_eq!(
        c.get_ephemerals("/").await.unwrap(),
        ["/eph", "/seq/n-0000000001"]
    );
    assert_eq!(
        c.get_ephemerals("/seq").await.unwrap(),
        ["/seq/n-0000000001"]
    );
    let (_, mut gone) = observer.exists_watch("/eph").await.unwrap();
    c.close().await;
    assert_eq!(
        next_event(&mut gone).await.event_type,
        EventType::NodeDeleted
    );
    assert_eq!(observer.exists("/seq/n-0000000001").await.unwrap(), None);

    // Containers vanish once their last child goes.
    let c = observer;
    c.create("/box", b"", CreateMode::Container).await.unwrap();
    c.create("/box/item", b"", CreateMode::Persistent)
        .await
        .unwrap();
    c.delete("/box/item", None).await.unwrap();
    eventually(Duration::from_secs(20), "container reaped", || async {
        c.exists("/box").await.unwrap().is_none()
    })
    .await;

    // TTL nodes vanish once unmodified and childless for their TTL.
    let ttl = CreateOptions::new(CreateMode::PersistentWithTtl).ttl(Duration::from_millis(200));
    c.create("/ttl", b"", ttl).await.unwrap();
    eventually(Duration::from_secs(20), "ttl node reaped", || async {
        c.exists("/ttl").await.unwrap().is_none()
    })
    .await;

    // Client-side argument checks.
    assert!(matches!(
        c.create("/t", b"", CreateMode::PersistentWithTtl).await,
        Err(Error::BadArguments(_))
    ));
    let no_ttl_mode = CreateOptions::new(CreateMode::Persistent).ttl(Duration::from_secs(1));
    assert!(matches!(
        c.create("/t", b"", no_ttl_mode).await,
        Err(Error::BadArguments(_))
    ));
}

async fn acls_and_auth(env: Env) {
    let owner = env.client().await;
    owner.add_auth("digest", b"alice:pw").await.unwrap();
    let who = owner.who_am_i().await.unwrap();
    assert!(
        who.iter()
            .any(|i| i.auth_scheme == "digest" && i.user == "alice"),
        "{who:?}"
    );

    let private = CreateOptions::new(CreateMode::Persistent).acl(acl::creator_all());
    owner.create("/secret", b"s", private).await.unwrap();
    let (list, _) = owner.get_acl("/secret").await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id, acl::digest_id("alice", "pw"));
    assert_eq!(list[0].perms, acl::perms::ALL);

    let stranger = env.client().await;
    let err = stranger.get_data("/secret").await.unwrap_err();
    assert_eq!(err.to_string(), "NoAuth: /secret");
    stranger.add_auth("digest", b"alice:pw").await.unwrap();
    assert_eq!(stranger.get_data("/secret").await.unwrap().0, b"s");

    // setACL with a version check, then read access for everyone.
    let mut open_read = acl::read_unsafe();
    open_read.push(list[0].clone());
    assert_eq!(
        code(owner.set_acl("/secret", &open_read, Some(3)).await),
        ErrorCode::BadVersion
    );
    let stat = owner.set_acl("/secret", &open_read, Some(0)).await.unwrap();
    assert_eq!(stat.aversion, 1);
    let reader = env.client().await;
    assert_eq!(reader.get_data("/secret").await.unwrap().0, b"s");
    assert_eq!(
        code(reader.set_data("/secret", b"x", None).await),
        ErrorCode::NoAuth
    );

    // Credentials given up front are presented before the first request.
    let preauth = env.client_with(|b| b.auth("digest", "alice:pw")).await;
    preauth.set_data("/secret", b"t", None).await.unwrap();
    assert_eq!(
        code(owner.set_acl("/secret", &[], None).await),
        ErrorCode::InvalidAcl
    );
}

async fn auth_failure_ends_the_session(env: Env) {
    let c = env.client().await;
    let mut states = c.state_changes();
    let err = c.add_auth("no-such-scheme", b"x").await.unwrap_err();
    assert!(matches!(err, Error::AuthFailed { .. }), "{err}");
    assert_eq!(
        within(WAIT, "AuthFailed state", states.next()).await,
        Some(SessionState::AuthFailed)
    );
    assert_eq!(c.state(), SessionState::AuthFailed);
    assert_eq!(code(c.exists("/").await), ErrorCode::AuthFailed);
}

async fn multi_is_atomic(env: Env) {
    let c = env.client().await;
    c.create("/m", b"0", CreateMode::Persistent).await.unwrap();
    let results = c
        .multi(&[
            Op::create("/m/a", b"a".to_vec(), CreateMode::Persistent),
            Op::set_data("/m", b"1".to_vec(), Some(0)),
            Op::check("/m", 1),
            Op::create("/m/s-", b"".to_vec(), CreateMode::PersistentSequential),
        ])
        .await
        .unwrap();
    // ZooKeeper answers a create inside a multi with the path alone.
    assert!(
        matches!(&results[0], OpResult::Create { path, .. } if path == "/m/a"),
        "{results:?}"
    );
    assert!(matches!(&results[1], OpResult::SetData { stat } if stat.version == 1));
    assert_eq!(results[2], OpResult::Check);
    assert!(matches!(&results[3], OpResult::Create { path, .. } if path == "/m/s-0000000001"));

    let err = c
        .multi(&[
            Op::create("/m/b", b"".to_vec(), CreateMode::Persistent),
            Op::delete("/m/a", Some(7)),
            Op::set_data("/m", b"2".to_vec(), None),
        ])
        .await
        .unwrap_err();
    let Error::MultiFailed {
        code: failed,
        path,
        index,
        results,
    } = &err
    else {
        panic!("expected MultiFailed, got {err:?}");
    };
    assert_eq!(
        (*failed, path.as_deref(), *index),
        (ErrorCode::BadVersion, Some("/m/a"), 1)
    );
    assert_eq!(results.len(), 3);
    assert_eq!(
        err.to_string(),
        "BadVersion: /m/a (operation 1 of the multi)"
    );
    assert_eq!(
        c.exists("/m/b").await.unwrap(),
        None,
        "nothing of a failed multi applies"
    );
    assert_eq!(c.get_data("/m").await.unwrap().0, b"1");
    c.multi(&[Op::check("/m", 1)]).await.unwrap();
    assert_eq!(
        code(c.multi(&[Op::check("/m", 0)]).await),
        ErrorCode::BadVersion
    );

    let reads = c
        .multi_read(&[
            ReadOp::GetData("/m".into()),
            ReadOp::GetChildren("/m".into()),
            ReadOp::GetData("/m/none".into()),
        ])
        .await
        .unwrap();
    assert!(
        matches!(&reads[0], ReadResult::Data { data, .. } if data.as_deref() == Some(&b"1"[..]))
    );
    assert!(matches!(&reads[1], ReadResult::Children { children } if children.len() == 2));
    assert!(matches!(&reads[2], ReadResult::Error(e) if e.to_string() == "NoNode: /m/none"));
}

async fn null_data_is_not_empty_data(env: Env) {
    let c = env.client().await;
    let (_, stat) = c
        .create_nullable("/n", None, CreateMode::Persistent)
        .await
        .unwrap();
    assert_eq!(stat.data_length, 0);
    c.create("/e", b"", CreateMode::Persistent).await.unwrap();
    assert_eq!(c.get_data_nullable("/n").await.unwrap().0, None);
    assert_eq!(c.get_data_nullable("/e").await.unwrap().0, Some(vec![]));
    // The plain API reads null as empty, as it always did.
    assert_eq!(c.get_data("/n").await.unwrap().0, b"");

    // setData with null, and back to bytes; a watch sees both as data changes.
    let (data, _, mut watch) = c.get_data_watch_nullable("/e").await.unwrap();
    assert_eq!(data, Some(vec![]));
    let stat = c.set_data_nullable("/e", None, Some(0)).await.unwrap();
    assert_eq!((stat.version, stat.data_length), (1, 0));
    assert_eq!(
        next_event(&mut watch).await.event_type,
        EventType::NodeDataChanged
    );
    assert_eq!(c.get_data_nullable("/e").await.unwrap().0, None);
    c.set_data_nullable("/n", Some(b"x"), None).await.unwrap();
    assert_eq!(
        c.get_data_nullable("/n").await.unwrap().0,
        Some(b"x".to_vec())
    );

    // In a multi, and read back by multiRead.
    c.multi(&[
        Op::create_nullable("/m", None, CreateMode::Persistent),
        Op::set_data_nullable("/n", None, None),
    ])
    .await
    .unwrap();
    let reads = c
        .multi_read(&[
            ReadOp::GetData("/m".into()),
            ReadOp::GetData("/n".into()),
            ReadOp::GetData("/e".into()),
            ReadOp::GetData("/".into()),
        ])
        .await
        .unwrap();
    let data: Vec<Option<Vec<u8>>> = reads
        .into_iter()
        .map(|r| match r {
            ReadResult::Data { data, .. } => data,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(data, [None, None, None, Some(vec![])]);
}

async fn sync_and_config(env: Env) {
    let c = env.client().await;
    c.create("/s", b"", CreateMode::Persistent).await.unwrap();
    c.sync("/s").await.unwrap();
    // /zookeeper/config exists on a standalone server too; the chroot does not apply.
    let (_, stat) = c.get_config().await.unwrap();
    assert!(stat.czxid >= 0);
    let err = c
        .reconfig(Some("server.9=127.0.0.9:2888:3888"), None, None, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.code(),
            ErrorCode::Unimplemented | ErrorCode::ReconfigDisabled | ErrorCode::NoAuth
        ),
        "standalone reconfig: {err}"
    );
}

// ---- watches -----------------------------------------------------------------------------

async fn one_shot_watches(env: Env) {
    let c = env.client().await;
    let writer = env.client().await;

    // exists on a missing node: NodeCreated, once.
    let (stat, mut created) = c.exists_watch("/w").await.unwrap();
    assert_eq!(stat, None);
    writer
        .create("/w", b"0", CreateMode::Persistent)
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut created).await,
        WatchedEvent {
            event_type: EventType::NodeCreated,
            path: "/w".into()
        }
    );
    assert_eq!(within(WAIT, "one-shot ends", created.next()).await, None);

    // getData: NodeDataChanged, and the change is readable afterwards.
    let (_, _, mut data) = c.get_data_watch("/w").await.unwrap();
    let (_, _, mut data2) = c.get_data_watch("/w").await.unwrap();
    writer.set_data("/w", b"1", None).await.unwrap();
    assert_eq!(
        next_event(&mut data).await.event_type,
        EventType::NodeDataChanged
    );
    assert_eq!(
        next_event(&mut data2).await.event_type,
        EventType::NodeDataChanged
    );
    assert_eq!(c.get_data("/w").await.unwrap().0, b"1");

    // getChildren: NodeChildrenChanged; then NodeDeleted for a child watch on a deleted node.
    let (_, _, mut kids) = c.get_children_watch("/w").await.unwrap();
    writer
        .create("/w/k", b"", CreateMode::Persistent)
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut kids).await.event_type,
        EventType::NodeChildrenChanged
    );
    let (_, _, mut kids) = c.get_children_watch("/w/k").await.unwrap();
    let (_, _, mut data) = c.get_data_watch("/w/k").await.unwrap();
    writer.delete("/w/k", None).await.unwrap();
    assert_eq!(
        next_event(&mut kids).await.event_type,
        EventType::NodeDeleted
    );
    assert_eq!(
        next_event(&mut data).await.event_type,
        EventType::NodeDeleted
    );

    // A read that fails registers nothing: its stream just ends.
    let err = c.get_data_watch("/missing").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::NoNode);

    // removeWatches ends the stream; checkWatches reports whether one is set.
    let (_, _, mut removed) = c.get_data_watch("/w").await.unwrap();
    c.check_watches("/w", WatcherType::Data).await.unwrap();
    c.remove_watches("/w", WatcherType::Data).await.unwrap();
    assert_eq!(
        within(WAIT, "removed watch ends", removed.next()).await,
        None
    );
    assert_eq!(
        code(c.check_watches("/w", WatcherType::Data).await),
        ErrorCode::NoWatcher
    );
    assert_eq!(
        code(c.remove_watches("/w", WatcherType::Data).await),
        ErrorCode::NoWatcher
    );
}

async fn persistent_watches(env: Env) {
    let c = env.client().await;
    let writer = env.client().await;
    writer
        .create("/p", b"", CreateMode::Persistent)
        .await
        .unwrap();
    let mut node = c.add_watch("/p", AddWatchMode::Persistent).await.unwrap();
    // (On another path: ZooKeeper keeps one watch mode per path and session, so a
    // recursive watch on /p itself would replace the plain persistent one.)
    let mut tree = c
        .add_watch("/", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();

    writer.set_data("/p", b"1", None).await.unwrap();
    writer
        .create("/p/a", b"", CreateMode::Persistent)
        .await
        .unwrap();
    writer
        .create("/p/a/b", b"", CreateMode::Persistent)
        .await
        .unwrap();
    writer.set_data("/p/a/b", b"x", None).await.unwrap();
    writer.set_data("/p", b"2", None).await.unwrap();

    let ev = |t, p: &str| WatchedEvent {
        event_type: t,
        path: p.to_string(),
    };
    assert_eq!(
        next_event(&mut node).await,
        ev(EventType::NodeDataChanged, "/p")
    );
    assert_eq!(
        next_event(&mut node).await,
        ev(EventType::NodeChildrenChanged, "/p")
    );
    assert_eq!(
        next_event(&mut node).await,
        ev(EventType::NodeDataChanged, "/p")
    );
    for expected in [
        ev(EventType::NodeDataChanged, "/p"),
        ev(EventType::NodeCreated, "/p/a"),
        ev(EventType::NodeCreated, "/p/a/b"),
        ev(EventType::NodeDataChanged, "/p/a/b"),
        ev(EventType::NodeDataChanged, "/p"),
    ] {
        assert_eq!(next_event(&mut tree).await, expected);
    }
    // (WatcherType::PersistentRecursive needs ZooKeeper 3.9; Any works from 3.6.)
    c.remove_watches("/", WatcherType::Any).await.unwrap();
    assert_eq!(
        within(WAIT, "recursive watch ends", tree.next()).await,
        None
    );
    writer.set_data("/p", b"3", None).await.unwrap();
    assert_eq!(
        next_event(&mut node).await,
        ev(EventType::NodeDataChanged, "/p")
    );
}

// ---- pipelining, limits, bad input ----------------------------------------------------------

async fn many_requests_in_flight(env: Env) {
    let c = env.client().await;
    c.create("/n", b"", CreateMode::Persistent).await.unwrap();
    let writes = (0..300).map(|i| {
        let c = c.clone();
        async move {
            c.create(
                &format!("/n/{i}"),
                format!("{i}").as_bytes(),
                CreateMode::Persistent,
            )
            .await
        }
    });
    for r in futures_util::future::join_all(writes).await {
        r.unwrap();
    }
    let reads = (0..300).map(|i| {
        let c = c.clone();
        async move { (i, c.get_data(&format!("/n/{i}")).await) }
    });
    for (i, r) in futures_util::future::join_all(reads).await {
        assert_eq!(
            r.unwrap().0,
            format!("{i}").as_bytes(),
            "reply {i} matched to its request"
        );
    }
    assert_eq!(c.get_all_children_number("/n").await.unwrap(), 300);
}

async fn oversized_requests_are_refused_before_sending(env: Env) {
    let c = env.client().await;
    c.create("/big", b"", CreateMode::Persistent).await.unwrap();
    let huge = vec![7u8; 1024 * 1024];
    let err = c.set_data("/big", &huge, None).await.unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err:?}");
    assert!(
        err.to_string().contains("jute.maxbuffer") && err.to_string().contains("/big"),
        "{err}"
    );
    // The session is unharmed; a value just under the limit goes through.
    let fits = vec![7u8; 1000 * 1000];
    c.set_data("/big", &fits, None).await.unwrap();
    assert_eq!(c.get_data("/big").await.unwrap().0.len(), fits.len());
    assert_eq!(c.state(), SessionState::Connected);
}

async fn invalid_paths_are_refused(env: Env) {
    let c = env.client().await;
    for bad in [
        "",
        "relative",
        "/trailing/",
        "/double//slash",
        "/dot/./x",
        "/nul\u{0}",
    ] {
        let err = c.get_data(bad).await.unwrap_err();
        assert!(matches!(err, Error::InvalidPath { .. }), "{bad:?}: {err:?}");
        assert_eq!(err.code(), ErrorCode::BadArguments);
    }
    assert_eq!(c.state(), SessionState::Connected);
}

async fn chroot_is_applied_both_ways(env: Env) {
    let root = env.root_client().await;
    let c = env.client().await;
    assert_eq!(c.chroot(), Some(env.ns.as_str()));
    let (path, _) = c
        .create("/q-", b"", CreateMode::PersistentSequential)
        .await
        .unwrap();
    assert_eq!(path, "/q-0000000000");
    assert!(
        root.exists(&format!("{}/q-0000000000", env.ns))
            .await
            .unwrap()
            .is_some()
    );
    let mut tree = c
        .add_watch("/", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    root.set_data(&format!("{}/q-0000000000", env.ns), b"x", None)
        .await
        .unwrap();
    assert_eq!(next_event(&mut tree).await.path, "/q-0000000000");
    root.set_data(&env.ns, b"x", None).await.unwrap();
    assert_eq!(next_event(&mut tree).await.path, "/");
    let mut children = c.get_children("/").await.unwrap();
    children.sort();
    assert_eq!(children, ["q-0000000000"]);
}

async fn bad_connect_strings_and_unreachable_servers(env: Env) {
    for bad in ["", "host:notaport", "a:1,,b:2", "h:1/bad/", "::1:2181"] {
        let err = Client::connect(bad).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::BadArguments, "{bad:?}: {err}");
    }
    // A port nobody listens on: a clear error within the connect timeout.
    let ip = common::binary_ip(9);
    let dead = format!("{ip}:{}", common::free_port(ip));
    let start = std::time::Instant::now();
    let err = Client::builder(&dead)
        .connect_timeout(Duration::from_millis(700))
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::CannotConnect { .. }), "{err:?}");
    assert!(err.to_string().contains(&dead), "{err}");
    assert!(start.elapsed() < Duration::from_secs(5));
    // With one dead host and one live one, the live one is found.
    let c = Client::builder(format!("{dead},{}", env.addr))
        .connect()
        .await
        .unwrap();
    assert_eq!(c.session().server, Some(env.addr));
    // give_up_when_refused: nothing listens, so no retrying for the connect timeout...
    let start = std::time::Instant::now();
    let err = Client::builder(&dead)
        .connect_timeout(Duration::from_secs(20))
        .give_up_when_refused()
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::CannotConnect { .. }), "{err:?}");
    assert!(err.to_string().contains("refused"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "gave up after {:?}",
        start.elapsed()
    );
    // ...but a live host in the same list is still found.
    let c = Client::builder(format!("{dead},{dead},{}", env.addr))
        .keep_host_order()
        .give_up_when_refused()
        .connect()
        .await
        .unwrap();
    assert_eq!(c.session().server, Some(env.addr));
}

// ---- sessions ------------------------------------------------------------------------------

async fn close_ends_the_session(env: Env) {
    let c = env.client().await;
    let other = env.client().await;
    c.create("/mine", b"", CreateMode::Ephemeral).await.unwrap();
    let (_, mut watch) = c.exists_watch("/mine").await.unwrap();
    let mut states = c.state_changes();
    c.close().await;
    assert_eq!(c.state(), SessionState::Closed);
    assert_eq!(
        within(WAIT, "Closed state", states.next()).await,
        Some(SessionState::Closed)
    );
    assert_eq!(within(WAIT, "states end", states.next()).await, None);
    // Our own ephemeral's deletion may be reported before the close completes; either
    // way the stream then ends.
    let mut rest = Vec::new();
    while let Some(ev) = within(WAIT, "watch ends", watch.next()).await {
        rest.push(ev);
    }
    assert!(
        rest.iter().all(|e| e.event_type == EventType::NodeDeleted),
        "{rest:?}"
    );
    assert!(matches!(c.exists("/").await, Err(Error::Closed)));
    // The ephemeral is gone at once, not after a timeout.
    assert_eq!(other.exists("/mine").await.unwrap(), None);
    // Dropping the last handle closes too.
    let dropped = env.client().await;
    dropped
        .create("/dropped", b"", CreateMode::Ephemeral)
        .await
        .unwrap();
    drop(dropped);
    eventually(WAIT, "ephemeral of a dropped client vanishes", || async {
        other.exists("/dropped").await.unwrap().is_none()
    })
    .await;
}

async fn resumes_on_another_server_after_a_cut(env: Env) {
    // Two proxies to the same server stand in for two servers of an ensemble.
    let first = Proxy::start(env.addr).await;
    let second = Proxy::start(env.addr).await;
    let cs = format!("{},{}{}", first.addr(), second.addr(), env.ns);
    let c = Client::builder(cs)
        .keep_host_order()
        .session_timeout(Duration::from_secs(20))
        .connect()
        .await
        .unwrap();
    let writer = env.client().await;
    let session = c.session();
    c.create("/eph", b"", CreateMode::Ephemeral).await.unwrap();
    c.create("/data", b"0", CreateMode::Persistent)
        .await
        .unwrap();
    let (_, _, mut data_watch) = c.get_data_watch("/data").await.unwrap();
    let (_, mut created_watch) = c.exists_watch("/later").await.unwrap();
    let mut persistent = c
        .add_watch("/data", AddWatchMode::Persistent)
        .await
        .unwrap();
    let mut states = c.state_changes();

    first.set_mode(common::proxy::Mode::Refuse);
    first.cut();
    assert_eq!(
        within(WAIT, "Suspended", states.next()).await,
        Some(SessionState::Suspended)
    );
    // Changes while we are away are not lost: setWatches2 fires them on reconnect.
    writer.set_data("/data", b"1", None).await.unwrap();
    writer
        .create("/later", b"", CreateMode::Persistent)
        .await
        .unwrap();
    assert_eq!(
        within(WAIT, "Connected again", states.next()).await,
        Some(SessionState::Connected)
    );
    let resumed = c.session();
    assert_eq!(resumed.id, session.id, "same session");
    assert_eq!(resumed.server, Some(second.addr()));
    assert_eq!(
        next_event(&mut data_watch).await.event_type,
        EventType::NodeDataChanged
    );
    assert_eq!(
        next_event(&mut created_watch).await.event_type,
        EventType::NodeCreated
    );
    assert!(
        c.exists("/eph").await.unwrap().is_some(),
        "ephemeral survives a reconnect"
    );
    // The persistent watch was re-registered (events during the outage are not replayed
    // for persistent watches, as in ZooKeeper); it fires for new changes.
    writer.set_data("/data", b"2", None).await.unwrap();
    let ev = next_event(&mut persistent).await;
    assert_eq!(ev.event_type, EventType::NodeDataChanged);
    assert_eq!(c.get_data("/data").await.unwrap().0, b"2");
}

async fn requests_during_a_disconnect_wait_for_the_reconnect(env: Env) {
    let proxy = Proxy::start(env.addr).await;
    let c = Client::builder(format!("{}{}", proxy.addr(), env.ns))
        .session_timeout(Duration::from_secs(20))
        .connect()
        .await
        .unwrap();
    proxy.set_mode(common::proxy::Mode::Refuse);
    proxy.cut();
    wait_state(&c, SessionState::Suspended, WAIT).await;
    let pending = {
        let c = c.clone();
        tokio::spawn(async move { c.create("/queued", b"", CreateMode::Persistent).await })
    };
    let connections = proxy.connections();
    eventually(WAIT, "a reconnect attempt was refused", || async {
        proxy.connections() > connections
    })
    .await;
    proxy.set_mode(common::proxy::Mode::Pass);
    let (path, _) = within(WAIT, "queued create", pending)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(path, "/queued");
}

async fn request_timeout_and_lost_replies(env: Env) {
    let proxy = Proxy::start(env.addr).await;
    // Longer than the shortest session: after the client gives the muted connection up
    // (at 2/3 of the timeout), it must reconnect before the server's timer (running since
    // the last ping it heard) ends. A loaded 2-core machine took longer than 1 s for that
    // twice (3 s sessions), so the margin is 2 s.
    let timeout = env.short_session().max(Duration::from_secs(6));
    let c = Client::builder(format!("{}{}", proxy.addr(), env.ns))
        .session_timeout(timeout)
        .request_timeout(Duration::from_millis(300))
        .connect()
        .await
        .unwrap();
    let mut states = c.state_changes();
    // Requests reach the server, replies never come back.
    proxy.set_mode(common::proxy::Mode::MuteReplies);
    let err = c
        .create("/applied", b"", CreateMode::Persistent)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert_eq!(err.code(), ErrorCode::RequestTimeout);
    assert!(err.is_connection_loss());
    // Pings go unanswered too: the connection is given up after 2/3 of the session
    // timeout (the server still hears our pings, so the session lives), then resumed.
    assert_eq!(
        within(timeout * 2, "Suspended", states.next()).await,
        Some(SessionState::Suspended)
    );
    proxy.set_mode(common::proxy::Mode::Pass);
    assert_eq!(
        within(WAIT, "Connected", states.next()).await,
        Some(SessionState::Connected)
    );
    // The create was applied even though its reply was lost.
    assert!(c.exists("/applied").await.unwrap().is_some());
}

async fn session_expiry_is_reported(env: Env) {
    let proxy = Proxy::start(env.addr).await;
    let timeout = env.short_session();
    let c = Client::builder(format!("{}{}", proxy.addr(), env.ns))
        .session_timeout(timeout)
        .connect()
        .await
        .unwrap();
    let observer = env.client().await;
    c.create("/eph", b"", CreateMode::Ephemeral).await.unwrap();
    let (_, mut watch) = c.exists_watch("/eph").await.unwrap();
    let (_, mut gone) = observer.exists_watch("/eph").await.unwrap();
    let mut states = c.state_changes();
    // Cut the connection and keep the client out until the server expires the session.
    proxy.set_mode(common::proxy::Mode::Refuse);
    proxy.cut();
    assert_eq!(
        within(WAIT, "Suspended", states.next()).await,
        Some(SessionState::Suspended)
    );
    within(
        env.expiry_bound(timeout),
        "server deletes the expired session's ephemeral",
        gone.next(),
    )
    .await;
    proxy.set_mode(common::proxy::Mode::Pass);
    assert_eq!(
        within(WAIT, "Expired", states.next()).await,
        Some(SessionState::Expired)
    );
    assert_eq!(within(WAIT, "watch ends", watch.next()).await, None);
    let err = c.exists("/").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::SessionExpired);
    assert!(err.is_session_over());
    // Resuming the dead session by id and password is refused the same way.
    let info = c.session();
    let err = Client::builder(env.connect_string())
        .resume_session(info.id, info.password)
        .connect()
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::SessionExpired);
}

async fn session_resume_by_id_and_password(env: Env) {
    let proxy = Proxy::start(env.addr).await;
    let c = Client::builder(format!("{}{}", proxy.addr(), env.ns))
        .connect()
        .await
        .unwrap();
    c.create("/eph", b"", CreateMode::Ephemeral).await.unwrap();
    let info = c.session();
    // Keep `c` away: a session follows its latest connection, and two clients on one
    // session would keep taking it from each other.
    proxy.set_mode(common::proxy::Mode::Refuse);
    proxy.cut();
    wait_state(&c, SessionState::Suspended, WAIT).await;
    let twin = Client::builder(env.connect_string())
        .resume_session(info.id, info.password.clone())
        .connect()
        .await
        .unwrap();
    assert_eq!(twin.session().id, info.id);
    assert_eq!(twin.get_ephemerals("/").await.unwrap(), ["/eph"]);
    // Closing the twin ends the session (how tests "kill" a session).
    twin.close().await;
    proxy.set_mode(common::proxy::Mode::Pass);
    wait_state(&c, SessionState::Expired, WAIT).await;
}

backend_tests!(
    create_get_set_delete,
    children_and_counts,
    create_modes,
    acls_and_auth,
    auth_failure_ends_the_session,
    multi_is_atomic,
    null_data_is_not_empty_data,
    sync_and_config,
    one_shot_watches,
    persistent_watches,
    many_requests_in_flight,
    oversized_requests_are_refused_before_sending,
    invalid_paths_are_refused,
    chroot_is_applied_both_ways,
    bad_connect_strings_and_unreachable_servers,
    close_ends_the_session,
    resumes_on_another_server_after_a_cut,
    requests_during_a_disconnect_wait_for_the_reconnect,
    request_timeout_and_lost_replies,
    session_expiry_is_reported,
    session_resume_by_id_and_password,
);
