//! Every operation the `zookeeper-client` crate offers, against the real server binary,
//! with ZooKeeper's error codes and Stat fields.
//!
//! Set `PADDOCK_IT_EXTERNAL=host:port` to run these against another server instead (e.g.
//! Apache ZooKeeper started with `extendedTypesEnabled=true`,
//! `DigestAuthenticationProvider.superDigest=super:xQJmxLMiHGwaqBvst5y6rkB6HQs=` and
//! `-Dznode.container.checkIntervalMs=200`), to check that the expectations here are
//! ZooKeeper's own. Tests that need a server restart or a special config are skipped then.

mod common;

use std::time::Duration;

use common::{RawConn, Server, ServerBuilder, eventually, run, within, zk, zk_with};
use paddock_proto::{
    CheckVersionRequest, CreateRequest, ExistsRequest, GetDataRequest, Id, OpCode,
    RemoveWatchesRequest, Request, Response, SetDataRequest, perms,
};
use zookeeper_client::{
    Acl, Acls, AddWatchMode, AuthId, AuthUser, Client, CreateMode, CreateOptions, EnsembleUpdate,
    Error, EventType, LockOptions, LockPrefix, MultiReadResult, MultiWriteError, MultiWriteResult,
    Permission, SessionState, Stat, WatchedEvent,
};

const T: Duration = Duration::from_secs(10);

/// The server a test talks to: its own paddock-server, or an external one.
struct Target {
    _server: Option<Server>,
    connect: String,
    addr: std::net::SocketAddr,
    root: String,
}

fn target(name: &str, builder: ServerBuilder) -> Target {
    match std::env::var("PADDOCK_IT_EXTERNAL") {
        Ok(connect) => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            Target {
                addr: connect.parse().expect("PADDOCK_IT_EXTERNAL=ip:port"),
                connect,
                _server: None,
                root: format!("/{name}-{}-{nanos}", std::process::id()),
            }
        }
        Err(_) => {
            let server = builder.start();
            Target {
                connect: server.connect_string(),
                addr: server.addr(),
                _server: Some(server),
                root: format!("/{name}"),
            }
        }
    }
}

fn persistent() -> CreateOptions<'static> {
    CreateMode::Persistent.with_acls(Acls::anyone_all())
}

fn ephemeral() -> CreateOptions<'static> {
    CreateMode::Ephemeral.with_acls(Acls::anyone_all())
}

async fn t<F: std::future::Future>(what: &str, f: F) -> F::Output {
    within(T, what, f).await
}

/// Stat of a node that was just created by a single create with `len` bytes of data.
fn assert_fresh(stat: &Stat, len: i32, owner: i64) {
    assert!(stat.czxid > 0, "{stat:?}");
    assert_eq!(stat.mzxid, stat.czxid, "mzxid == czxid on create: {stat:?}");
    assert_eq!(stat.pzxid, stat.czxid, "pzxid == czxid on create: {stat:?}");
    assert!(stat.ctime > 0, "{stat:?}");
    assert_eq!(stat.mtime, stat.ctime, "{stat:?}");
    assert_eq!(stat.version, 0, "{stat:?}");
    assert_eq!(stat.cversion, 0, "{stat:?}");
    assert_eq!(stat.aversion, 0, "{stat:?}");
    assert_eq!(stat.ephemeral_owner, owner, "{stat:?}");
    assert_eq!(stat.data_length, len, "{stat:?}");
    assert_eq!(stat.num_children, 0, "{stat:?}");
}

/// A read whose reply tells that everything queued for the connection before it arrived.
fn barrier() -> Request {
    Request::Exists(ExistsRequest {
        path: "/".into(),
        watch: false,
    })
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

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

#[test]
fn acls_digest_auth_and_whoami() {
    let tg = target("acl", Server::builder());
    run(async {
        let alice = zk(&tg.connect).await;
        let other = zk(&tg.connect).await;
        let r = tg.root.as_str();
        t("create root", alice.create(r, b"", &persistent()))
            .await
            .unwrap();

        // creator_all without any authenticated identity is an invalid ACL.
        let creator = CreateMode::Persistent.with_acls(Acls::creator_all());
        assert_eq!(
            t(
                "creator_all unauthenticated",
                alice.create(&format!("{r}/x"), b"", &creator)
            )
            .await,
            Err(Error::InvalidAcl)
        );

        t("auth", alice.auth("digest", b"alice:secret"))
            .await
            .unwrap();
        let users = t("whoami", alice.list_auth_users()).await.unwrap();
        assert!(
            users.contains(&AuthUser::new("digest", "alice")),
            "{users:?}"
        );
        let anon_users = t("whoami", other.list_auth_users()).await.unwrap();
        assert!(
            !anon_users.iter().any(|u| u.scheme() == "digest"),
            "{anon_users:?}"
        );

        let secret = format!("{r}/secret");
        t("create secret", alice.create(&secret, b"s", &creator))
            .await
            .unwrap();
        let (acl, stat) = t("get_acl", alice.get_acl(&secret)).await.unwrap();
        assert_eq!(
            acl,
            vec![Acl::new(
                Permission::ALL,
                AuthId::new("digest", "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=")
            )]
        );
        assert_eq!(stat.aversion, 0);

        // Another session without the credentials is refused every ACL-checked operation.
        assert_eq!(t("get", other.get_data(&secret)).await, Err(Error::NoAuth));
        assert_eq!(
            t("set", other.set_data(&secret, b"x", None)).await,
            Err(Error::NoAuth)
        );
        assert_eq!(t("acl", other.get_acl(&secret)).await, Err(Error::NoAuth));
        assert_eq!(
            t("children", other.get_children(&secret)).await,
            Err(Error::NoAuth)
        );
        assert_eq!(
            t(
                "create child",
                other.create(&format!("{secret}/c"), b"", &persistent())
            )
            .await,
            Err(Error::NoAuth)
        );
        assert_eq!(
            t("set_acl", other.set_acl(&secret, &Acls::anyone_all(), None)).await,
            Err(Error::NoAuth)
        );
        // exists is not ACL-checked.
        assert!(
            t("exists", other.check_stat(&secret))
                .await
                .unwrap()
                .is_some()
        );
        // Alice can do it all.
        t("alice set", alice.set_data(&secret, b"s2", None))
            .await
            .unwrap();
        t(
            "alice child",
            alice.create(&format!("{secret}/c"), b"", &persistent()),
        )
        .await
        .unwrap();
        assert_eq!(
            t(
                "other delete child",
                other.delete(&format!("{secret}/c"), None)
            )
            .await,
            Err(Error::NoAuth)
        );
        t(
            "alice delete child",
            alice.delete(&format!("{secret}/c"), None),
        )
        .await
        .unwrap();

        // A second session with the same credentials has the same rights.
        let alice2 = zk_with(
            Client::connector()
                .with_session_timeout(Duration::from_secs(10))
                .with_auth("digest", b"alice:secret"),
            &tg.connect,
        )
        .await;
        assert_eq!(
            t("alice2 get", alice2.get_data(&secret)).await.unwrap().0,
            b"s2"
        );

        // setACL with versions: everyone may read, only alice may do the rest.
        let alice_id = AuthId::new("digest", "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=");
        let shared = [
            Acl::new(Permission::READ, AuthId::anyone()),
            Acl::new(Permission::ALL, alice_id.clone()),
        ];
        let s = t("set_acl", alice.set_acl(&secret, &shared, Some(0)))
            .await
            .unwrap();
        assert_eq!(s.aversion, 1);
        assert_eq!(s.version, 1, "data version untouched by setACL");
        assert_eq!(
            t("stale set_acl", alice.set_acl(&secret, &shared, Some(0))).await,
            Err(Error::BadVersion)
        );
        assert_eq!(
            t("other get", other.get_data(&secret)).await.unwrap().0,
            b"s2"
        );
        assert_eq!(
            t("other set", other.set_data(&secret, b"", None)).await,
            Err(Error::NoAuth)
        );
        t("alice set", alice.set_data(&secret, b"s3", None))
            .await
            .unwrap();
        // getACL needs READ or ADMIN: READ suffices now, but without ADMIN the digest
        // hashes are redacted to `user:x`, as ZooKeeper does.
        let (acl, stat) = t("get_acl", other.get_acl(&secret)).await.unwrap();
        assert_eq!(
            acl,
            vec![
                Acl::new(Permission::READ, AuthId::anyone()),
                Acl::new(Permission::ALL, AuthId::new("digest", "alice:x")),
            ]
        );
        assert_eq!(stat.aversion, 1);
        let (acl, _) = t("get_acl", alice.get_acl(&secret)).await.unwrap();
        assert_eq!(acl, shared.to_vec(), "ADMIN sees the digests");
        // Without ADMIN the ACL check comes before the version check.
        let read_only = [Acl::new(Permission::READ, AuthId::anyone())];
        t("set_acl", alice.set_acl(&secret, &read_only, Some(1)))
            .await
            .unwrap();
        assert_eq!(
            t("no admin", alice.set_acl(&secret, &read_only, Some(0))).await,
            Err(Error::NoAuth)
        );
        assert_eq!(
            t("alice set", alice.set_data(&secret, b"", None)).await,
            Err(Error::NoAuth)
        );

        // ip scheme: loopback is allowed.
        let ip_node = format!("{r}/ip");
        let ip_acl = [Acl::new(Permission::ALL, AuthId::new("ip", "127.0.0.0/8"))];
        t(
            "create ip",
            other.create(
                &ip_node,
                b"ip",
                &CreateMode::Persistent.with_acls(Acls::new(&ip_acl)),
            ),
        )
        .await
        .unwrap();
        assert_eq!(
            t("get ip", other.get_data(&ip_node)).await.unwrap().0,
            b"ip"
        );
        let far_acl = [Acl::new(Permission::ALL, AuthId::new("ip", "10.1.2.3"))];
        let far = format!("{r}/far");
        t(
            "create far",
            other.create(
                &far,
                b"",
                &CreateMode::Persistent.with_acls(Acls::new(&far_acl)),
            ),
        )
        .await
        .unwrap();
        assert_eq!(t("get far", other.get_data(&far)).await, Err(Error::NoAuth));
    });
}

#[test]
fn unknown_auth_scheme_fails_the_session() {
    let tg = target("authfail", Server::builder());
    run(async {
        let zk = zk(&tg.connect).await;
        assert_eq!(
            t("auth", zk.auth("no-such-scheme", b"x")).await,
            Err(Error::AuthFailed)
        );
        let mut states = zk.state_watcher();
        let ok = eventually(T, || {
            let s = states.peek_state();
            async move { s == SessionState::AuthFailed }
        })
        .await;
        assert!(ok, "session state is AuthFailed, got {:?}", states.state());
        // Others are unaffected.
        let fine = common::zk(&tg.connect).await;
        assert!(t("exists", fine.check_stat("/")).await.unwrap().is_some());
    });
}

/// ZooKeeper answers addauth with the xid the request carried (the Java client uses
/// -4, zookeeper-client a normal one), and an unknown scheme with AuthFailed and a close.
#[test]
fn auth_reply_echoes_the_request_xid() {
    let tg = target("authxid", Server::builder());
    run(async {
        let mut c = RawConn::session(tg.addr).await;
        let auth = |scheme: &str| {
            Request::Auth(paddock_proto::AuthPacket {
                kind: 0,
                scheme: scheme.into(),
                auth: b"bob:pw".to_vec().into(),
            })
        };
        let reply = c.call(7, &auth("digest")).await;
        assert_eq!((reply.header.xid, reply.err()), (7, 0));
        let reply = c.call(-4, &auth("digest")).await;
        assert_eq!((reply.header.xid, reply.err()), (-4, 0));
        let reply = c.call(8, &barrier()).await;
        assert_eq!(reply.err(), 0);
        let reply = c.call(9, &auth("nosuch")).await;
        assert_eq!((reply.header.xid, reply.err()), (9, -115), "AuthFailed");
        assert!(c.closed_within(T).await, "closed after AuthFailed");
    });
}

#[test]
fn super_digest_bypasses_acls() {
    // super:admin
    let tg = target(
        "super",
        Server::builder().cfg("superDigest=super:xQJmxLMiHGwaqBvst5y6rkB6HQs="),
    );
    run(async {
        let alice = zk_with(
            Client::connector()
                .with_session_timeout(Duration::from_secs(10))
                .with_auth("digest", b"alice:secret"),
            &tg.connect,
        )
        .await;
        let su = zk_with(
            Client::connector()
                .with_session_timeout(Duration::from_secs(10))
                .with_auth("digest", b"super:admin"),
            &tg.connect,
        )
        .await;
        let wrong = zk_with(
            Client::connector()
                .with_session_timeout(Duration::from_secs(10))
                .with_auth("digest", b"super:wrong"),
            &tg.connect,
        )
        .await;
        let r = tg.root.as_str();
        t("create", alice.create(r, b"", &persistent()))
            .await
            .unwrap();
        let p = format!("{r}/locked");
        let nobody = [Acl::new(
            Permission::ALL,
            AuthId::new("digest", "nobody:AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        )];
        t(
            "create locked",
            alice.create(
                &p,
                b"locked",
                &CreateMode::Persistent.with_acls(Acls::new(&nobody)),
            ),
        )
        .await
        .unwrap();
        assert_eq!(t("alice get", alice.get_data(&p)).await, Err(Error::NoAuth));
        assert_eq!(t("wrong get", wrong.get_data(&p)).await, Err(Error::NoAuth));

        assert_eq!(t("super get", su.get_data(&p)).await.unwrap().0, b"locked");
        let s = t("super set", su.set_data(&p, b"opened", None))
            .await
            .unwrap();
        assert_eq!(s.version, 1);
        t(
            "super child",
            su.create(&format!("{p}/kid"), b"", &persistent()),
        )
        .await
        .unwrap();
        assert_eq!(
            t("super acl", su.get_acl(&p)).await.unwrap().0,
            nobody.to_vec()
        );
        t("super set_acl", su.set_acl(&p, &Acls::anyone_all(), None))
            .await
            .unwrap();
        assert_eq!(
            t("alice get now", alice.get_data(&p)).await.unwrap().0,
            b"opened"
        );
        t("super delete kid", su.delete(&format!("{p}/kid"), None))
            .await
            .unwrap();
    });
}

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
