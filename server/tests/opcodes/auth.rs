//! ACLs, digest and unknown auth schemes, whoAmI, the super digest.

use super::*;

/// ACLs with the digest and ip schemes, digest auth and whoAmI, on one server.
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
        let secret = digest_auth_whoami_and_creator_all(&alice, &other, r).await;
        only_the_digest_identity_passes_acl_checks(&alice, &other, &secret).await;
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
        set_acl_versions_and_redacted_digests(&alice, &other, &secret).await;
        ip_scheme_allows_loopback_only(&other, r).await;
    });
}

/// creator_all needs an identity; alice authenticates (whoAmI says so) and creates `{r}/secret`.
async fn digest_auth_whoami_and_creator_all(alice: &Client, other: &Client, r: &str) -> String {
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
    secret
}

/// On alice's creator_all node, `other` is refused every ACL-checked operation and alice is not.
async fn only_the_digest_identity_passes_acl_checks(alice: &Client, other: &Client, secret: &str) {
    // Another session without the credentials is refused every ACL-checked operation.
    assert_eq!(t("get", other.get_data(secret)).await, Err(Error::NoAuth));
    assert_eq!(
        t("set", other.set_data(secret, b"x", None)).await,
        Err(Error::NoAuth)
    );
    assert_eq!(t("acl", other.get_acl(secret)).await, Err(Error::NoAuth));
    assert_eq!(
        t("children", other.get_children(secret)).await,
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
        t("set_acl", other.set_acl(secret, &Acls::anyone_all(), None)).await,
        Err(Error::NoAuth)
    );
    // exists is not ACL-checked.
    assert!(
        t("exists", other.check_stat(secret))
            .await
            .unwrap()
            .is_some()
    );
    // Alice can do it all.
    t("alice set", alice.set_data(secret, b"s2", None))
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
}

/// setACL checks versions, getACL redacts digests without ADMIN, and losing ADMIN locks alice out.
async fn set_acl_versions_and_redacted_digests(alice: &Client, other: &Client, secret: &str) {
    // setACL with versions: everyone may read, only alice may do the rest.
    let alice_id = AuthId::new("digest", "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=");
    let shared = [
        Acl::new(Permission::READ, AuthId::anyone()),
        Acl::new(Permission::ALL, alice_id.clone()),
    ];
    let s = t("set_acl", alice.set_acl(secret, &shared, Some(0)))
        .await
        .unwrap();
    assert_eq!(s.aversion, 1);
    assert_eq!(s.version, 1, "data version untouched by setACL");
    assert_eq!(
        t("stale set_acl", alice.set_acl(secret, &shared, Some(0))).await,
        Err(Error::BadVersion)
    );
    assert_eq!(
        t("other get", other.get_data(secret)).await.unwrap().0,
        b"s2"
    );
    assert_eq!(
        t("other set", other.set_data(secret, b"", None)).await,
        Err(Error::NoAuth)
    );
    t("alice set", alice.set_data(secret, b"s3", None))
        .await
        .unwrap();
    // getACL needs READ or ADMIN: READ suffices now, but without ADMIN the digest
    // hashes are redacted to `user:x`, as ZooKeeper does.
    let (acl, stat) = t("get_acl", other.get_acl(secret)).await.unwrap();
    assert_eq!(
        acl,
        vec![
            Acl::new(Permission::READ, AuthId::anyone()),
            Acl::new(Permission::ALL, AuthId::new("digest", "alice:x")),
        ]
    );
    assert_eq!(stat.aversion, 1);
    let (acl, _) = t("get_acl", alice.get_acl(secret)).await.unwrap();
    assert_eq!(acl, shared.to_vec(), "ADMIN sees the digests");
    // Without ADMIN the ACL check comes before the version check.
    let read_only = [Acl::new(Permission::READ, AuthId::anyone())];
    t("set_acl", alice.set_acl(secret, &read_only, Some(1)))
        .await
        .unwrap();
    assert_eq!(
        t("no admin", alice.set_acl(secret, &read_only, Some(0))).await,
        Err(Error::NoAuth)
    );
    assert_eq!(
        t("alice set", alice.set_data(secret, b"", None)).await,
        Err(Error::NoAuth)
    );
}

/// The ip scheme: a loopback range lets a loopback client in, another address does not.
async fn ip_scheme_allows_loopback_only(other: &Client, r: &str) {
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
