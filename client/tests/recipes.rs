//! Recipes against a real server, with several clients contending while sessions are
//! cut mid-flight (sockets closed, connections blackholed, sessions left to expire):
//! mutual exclusion always holds, there is at most one leader at a time, and fencing
//! tokens strictly increase. Each test runs against paddock-server and against Apache
//! ZooKeeper 3.8.
//!
//! Each contender talks to the server through its own [`Proxy`], so the test can break
//! exactly one contender's connection.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::proxy::Mode;
use common::{Env, Proxy, eventually, wait_state, within};
use paddock_client::recipe::{
    CacheState, ConfigCache, ConfigEvent, Election, Group, Hold, Lock, MemberState, Role, ViewState,
};
use paddock_client::{Client, CreateMode, SessionState};
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(15);

/// One contender's way to the server: its own proxy, and clients made through it.
struct Contender {
    env: Env,
    proxy: Proxy,
}

impl Contender {
    async fn new(env: &Env) -> Contender {
        Contender {
            env: env.clone(),
            proxy: Proxy::start(env.addr).await,
        }
    }

    /// A fresh session through the proxy, with the shortest timeout the server grants.
    async fn client(&self) -> Client {
        Client::builder(format!("{}{}", self.proxy.addr(), self.env.ns))
            .session_timeout(self.env.short_session())
            .connect_timeout(WAIT * 2)
            .request_timeout(WAIT)
            .connect()
            .await
            .expect("contender connects")
    }
}

/// How a session gets cut.
#[derive(Debug, Clone, Copy)]
enum Cut {
    /// Close the socket and let the client straight back in: the session survives.
    Brief,
    /// Close the socket and keep the client out until the server expires the session.
    Expire,
    /// Forward nothing (the client notices only by its read timeout) until the server
    /// expires the session.
    Blackhole,
}

const CUTS: [Cut; 3] = [Cut::Expire, Cut::Brief, Cut::Blackhole];

/// Cuts a contender's connection and, for the expiring kinds, waits until `gone`
/// (the server deleted the contender's ephemeral node) before letting it back in.
async fn cut(env: &Env, proxy: &Proxy, kind: Cut, observer: &Client, node: &str) {
    match kind {
        Cut::Brief => proxy.cut(),
        Cut::Expire => {
            proxy.set_mode(Mode::Refuse);
            proxy.cut();
        }
        Cut::Blackhole => proxy.set_mode(Mode::Blackhole),
    }
    if !matches!(kind, Cut::Brief) {
        let bound = env.expiry_bound(env.short_session());
        eventually(bound, "the server expires the cut session", || async {
            observer.exists(node).await.unwrap().is_none()
        })
        .await;
        proxy.set_mode(Mode::Refuse);
        proxy.cut();
    }
    proxy.set_mode(Mode::Pass);
}

// ---- lock ----------------------------------------------------------------------------------

#[derive(Default)]
struct CriticalSection {
    /// Who is inside, and with which node.
    holder: Option<(usize, String)>,
    /// Every grant used, in order: (contender, token).
    grants: Vec<(usize, i64)>,
    /// The holder about to be cut: it keeps acting as holder for as long as its guard
    /// says the lock holds.
    target: Option<usize>,
}

async fn lock_mutual_exclusion_under_cuts(env: Env) {
    const CONTENDERS: usize = 4;
    let shared = Arc::new(Mutex::new(CriticalSection::default()));
    let (progress_tx, progress) = watch::channel(0usize);
    let progress_tx = Arc::new(progress_tx);
    let (stop_tx, stop) = watch::channel(false);
    let mut contenders = Vec::new();
    for _ in 0..CONTENDERS {
        contenders.push(Arc::new(Contender::new(&env).await));
    }
    let mut workers = Vec::new();
    for (me, contender) in contenders.iter().cloned().enumerate() {
        let shared = shared.clone();
        let progress_tx = progress_tx.clone();
        let mut stop = stop.clone();
        workers.push(tokio::spawn(async move {
            let mut client = contender.client().await;
            while !*stop.borrow() {
                if client.state().is_terminal() {
                    client = contender.client().await;
                }
                let lock = Lock::new(&client, "/lock")
                    .unwrap()
                    .with_data(format!("worker-{me}"));
                let mut guard = tokio::select! {
                    r = lock.acquire() => match r {
                        Ok(guard) => guard,
                        Err(e) => {
                            assert!(e.is_session_over() || e.is_connection_loss(), "acquire: {e}");
                            continue;
                        }
                    },
                    _ = stop.changed() => break,
                };
                if !guard.is_held() {
                    continue; // granted while suspended: never act on it
                }
                let token = guard.token();
                {
                    let mut cs = shared.lock().unwrap();
                    assert!(
                        cs.holder.is_none(),
                        "mutual exclusion: {me} entered while {:?} holds",
                        cs.holder
                    );
                    if let Some((_, last)) = cs.grants.last() {
                        assert!(token > *last, "fencing token {token} after {last}");
                    }
                    cs.holder = Some((me, guard.node().to_string()));
                    cs.grants.push((me, token));
                }
                progress_tx.send_modify(|n| *n += 1);
                // Work until the lock can no longer be relied on, or for 30 ms unless
                // we are the chaos target (then until the guard says the lock is gone).
                loop {
                    let lost = tokio::select! {
                        _ = guard.interrupted() => true,
                        _ = tokio::time::sleep(Duration::from_millis(30)) => false,
                    };
                    let mut cs = shared.lock().unwrap();
                    if lost || cs.target != Some(me) {
                        cs.holder = None;
                        if cs.target == Some(me) {
                            cs.target = None;
                        }
                        break;
                    }
                }
                let _ = guard.release().await;
            }
        }));
    }

    // Chaos: each cut hits whoever holds the lock at that moment, mid-critical-section.
    let observer = env.client().await;
    let mut progress = progress;
    for kind in CUTS {
        let target = within(WAIT, "someone holds the lock", async {
            loop {
                {
                    let mut cs = shared.lock().unwrap();
                    if let Some(holder) = cs.holder.clone() {
                        cs.target = Some(holder.0);
                        return holder;
                    }
                }
                progress.changed().await.unwrap();
            }
        })
        .await;
        let before = *progress.borrow();
        cut(
            &env,
            &contenders[target.0].proxy,
            kind,
            &observer,
            &target.1,
        )
        .await;
        // The others carry on.
        within(
            WAIT,
            "grants continue after a cut",
            progress.wait_for(|n| *n >= before + 3),
        )
        .await
        .unwrap();
    }
    stop_tx.send_replace(true);
    for w in workers {
        within(WAIT, "worker stops", w).await.unwrap();
    }
    let cs = shared.lock().unwrap();
    let tokens: Vec<i64> = cs.grants.iter().map(|g| g.1).collect();
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "tokens strictly increase: {tokens:?}"
    );
    let winners: BTreeSet<usize> = cs.grants.iter().map(|g| g.0).collect();
    assert!(
        cs.grants.len() >= 9 && winners.len() >= 2,
        "grants: {:?}",
        cs.grants
    );
}

async fn lock_timeout_holder_and_release(env: Env) {
    let a = env.client().await;
    let b = env.client().await;
    let lock_a = Lock::new(&a, "/l").unwrap().with_data("a");
    let lock_b = Lock::new(&b, "/l").unwrap().with_data("b");
    let guard = lock_a.acquire().await.unwrap();
    assert!(guard.is_held());
    let holder = lock_b.holder().await.unwrap().unwrap();
    assert_eq!(
        (holder.data.as_slice(), holder.token),
        (b"a".as_slice(), guard.token())
    );
    assert_eq!(
        holder.token,
        a.exists(guard.node()).await.unwrap().unwrap().czxid
    );

    assert!(
        lock_b
            .try_acquire(Duration::from_millis(300))
            .await
            .unwrap()
            .is_none()
    );
    // A zero wait on a held lock answers at once, without a grant.
    assert!(lock_b.try_acquire(Duration::ZERO).await.unwrap().is_none());
    // The timed-out waiter's node is gone; only the holder's remains.
    eventually(WAIT, "timed-out node removed", || async {
        a.get_children("/l").await.unwrap().len() == 1
    })
    .await;

    let waiter = tokio::spawn(async move { lock_b.acquire().await.map(|g| (g.token(), g)) });
    eventually(WAIT, "waiter queued", || async {
        a.get_children("/l").await.unwrap().len() == 2
    })
    .await;
    let first = guard.token();
    guard.release().await.unwrap();
    let (second, guard_b) = within(WAIT, "waiter granted", waiter)
        .await
        .unwrap()
        .unwrap();
    assert!(second > first);
    // Cancelling an acquire leaves nothing behind.
    let lock_a = Lock::new(&a, "/l").unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(200), lock_a.acquire())
            .await
            .is_err()
    );
    eventually(WAIT, "cancelled waiter's node removed", || async {
        a.get_children("/l").await.unwrap().len() == 1
    })
    .await;
    // Dropping a guard releases.
    drop(guard_b);
    eventually(WAIT, "dropped guard released", || async {
        a.get_children("/l")
            .await
            .map(|c| c.is_empty())
            .unwrap_or(true)
    })
    .await;
    // A zero wait on a free lock takes it ("take it if free", not "never").
    let free = Lock::new(&a, "/l").unwrap();
    let guard = free.try_acquire(Duration::ZERO).await.unwrap();
    assert!(guard.is_some_and(|g| g.is_held()));
}

async fn lock_waiters_watch_only_their_predecessor(env: Env) {
    let mut clients = Vec::new();
    let mut waits = Vec::new();
    let holder = env.client().await;
    let guard = Lock::new(&holder, "/herd")
        .unwrap()
        .acquire()
        .await
        .unwrap();
    for i in 0..4 {
        let c = env.client().await;
        let lock = Lock::new(&c, "/herd").unwrap();
        waits.push(tokio::spawn(async move {
            lock.acquire().await.map(|g| g.token())
        }));
        clients.push(c);
        eventually(WAIT, "waiter queued", || async {
            holder.get_children("/herd").await.unwrap().len() == i + 2
        })
        .await;
    }
    let mut queue = holder.get_children("/herd").await.unwrap();
    queue.sort_by_key(|n| n[n.len() - 10..].to_string());
    // Which session owns which node.
    let mut owner = BTreeMap::new();
    for name in &queue {
        let stat = holder
            .exists(&format!("/herd/{name}"))
            .await
            .unwrap()
            .unwrap();
        owner.insert(stat.ephemeral_owner, format!("{}/herd/{name}", env.ns));
    }
    let expected: BTreeMap<String, BTreeSet<String>> = clients
        .iter()
        .map(|c| {
            let mine = &owner[&c.session().id];
            let pos = queue
                .iter()
                .position(|n| mine.ends_with(n.as_str()))
                .unwrap();
            let predecessor = format!("{}/herd/{}", env.ns, queue[pos - 1]);
            (
                format!("{:#x}", c.session().id),
                BTreeSet::from([predecessor]),
            )
        })
        .collect();
    eventually(
        WAIT,
        "each waiter watches exactly its predecessor",
        || async {
            let by_session = parse_wchc(&env.four_letter_word("wchc").await);
            expected
                .iter()
                .all(|(sid, paths)| by_session.get(sid) == Some(paths))
        },
    )
    .await;
    guard.release().await.unwrap();
    // Releases cascade down the queue in order.
    let mut tokens = Vec::new();
    for w in waits {
        tokens.push(within(WAIT, "granted in turn", w).await.unwrap().unwrap());
    }
    tokens.sort();
    assert_eq!(tokens.len(), 4);
}

fn parse_wchc(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut session = String::new();
    for line in text.lines() {
        if let Some(path) = line.strip_prefix('\t') {
            out.entry(session.clone())
                .or_default()
                .insert(path.to_string());
        } else if !line.trim().is_empty() {
            session = line.trim().to_string();
        }
    }
    out
}

/// A create whose reply is lost (the server applied it) is recovered, not repeated:
/// for the lock, the election and group membership.
async fn lost_create_replies_are_recovered(env: Env) {
    #[derive(Clone, Copy, Debug)]
    enum Recipe {
        Lock,
        Election,
        Group,
    }
    let observer = env.client().await;
    for (dir, recipe) in [
        ("/lost-lock", Recipe::Lock),
        ("/lost-election", Recipe::Election),
        ("/lost-group", Recipe::Group),
    ] {
        observer
            .create(dir, b"", CreateMode::Persistent)
            .await
            .unwrap();
        let contender = Contender::new(&env).await;
        let client = contender.client().await;
        contender.proxy.set_mode(Mode::MuteReplies);
        let task = {
            let client = client.clone();
            tokio::spawn(async move {
                // (node, fencing token if any, what keeps the node alive)
                let held: (String, Option<i64>, Box<dyn std::any::Any + Send>) = match recipe {
                    Recipe::Lock => {
                        let guard = Lock::new(&client, dir).unwrap().acquire().await.unwrap();
                        (
                            guard.node().to_string(),
                            Some(guard.token()),
                            Box::new(guard),
                        )
                    }
                    Recipe::Election => {
                        let mut candidacy = Election::new(&client, dir)
                            .unwrap()
                            .campaign(b"me")
                            .await
                            .unwrap();
                        let token = within(WAIT, "leads", candidacy.leadership()).await.unwrap();
                        (candidacy.node(), Some(token), Box::new(candidacy))
                    }
                    Recipe::Group => {
                        let member = Group::new(&client, dir)
                            .unwrap()
                            .join("me", b"")
                            .await
                            .unwrap();
                        (member.node().to_string(), None, Box::new(member))
                    }
                };
                held
            })
        };
        // Once the server has created the node (its reply swallowed), cut the connection.
        eventually(WAIT, "create applied", || async {
            observer
                .get_children(dir)
                .await
                .map(|c| c.len() == 1)
                .unwrap_or(false)
        })
        .await;
        let created = observer.get_children(dir).await.unwrap().remove(0);
        contender.proxy.set_mode(Mode::Pass);
        contender.proxy.cut();
        let (node, token, _keep) = within(WAIT * 2, "recovered", task).await.unwrap();
        assert!(
            node.ends_with(&created),
            "{recipe:?}: recovered {created}, not a new {node}"
        );
        let children = observer.get_children(dir).await.unwrap();
        assert_eq!(children, [created], "{recipe:?}: no second node");
        let stat = observer.exists(&node).await.unwrap().unwrap();
        assert_eq!(stat.ephemeral_owner, client.session().id);
        if let Some(token) = token {
            assert_eq!(token, stat.czxid);
        }
    }
}

// ---- election ------------------------------------------------------------------------------

#[derive(Default)]
struct Leadership {
    /// Who leads now, with which token.
    leader: Option<(usize, i64)>,
    /// Every term, in order: (candidate, token).
    terms: Vec<(usize, i64)>,
    node_of: BTreeMap<usize, String>,
}

async fn election_one_leader_at_a_time_under_cuts(env: Env) {
    const CANDIDATES: usize = 3;
    let shared = Arc::new(Mutex::new(Leadership::default()));
    // Bumped on every change of who leads (new terms and resumed ones alike).
    let (changes_tx, changes) = watch::channel(0usize);
    let changes_tx = Arc::new(changes_tx);
    let (stop_tx, stop) = watch::channel(false);
    let mut contenders = Vec::new();
    for _ in 0..CANDIDATES {
        contenders.push(Arc::new(Contender::new(&env).await));
    }
    let mut tasks = Vec::new();
    for (me, contender) in contenders.iter().cloned().enumerate() {
        let shared = shared.clone();
        let changes_tx = changes_tx.clone();
        let mut stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            'session: while !*stop.borrow() {
                let client = contender.client().await;
                let election = Election::new(&client, "/election").unwrap();
                let mut candidacy = match election
                    .campaign(format!("candidate-{me}").as_bytes())
                    .await
                {
                    Ok(c) => c,
                    Err(e) => {
                        assert!(
                            e.is_session_over() || e.is_connection_loss(),
                            "campaign: {e}"
                        );
                        continue;
                    }
                };
                shared.lock().unwrap().node_of.insert(me, candidacy.node());
                let mut role = candidacy.role();
                loop {
                    {
                        let mut l = shared.lock().unwrap();
                        match role {
                            Role::Leader { token } => {
                                match l.leader {
                                    Some((who, t)) if who == me && t == token => {}
                                    Some(other) => {
                                        panic!("{me} leads (token {token}) while {other:?} leads")
                                    }
                                    None => {
                                        // A new term, or our own term resumed after a suspension.
                                        match l.terms.last() {
                                            Some(&(who, t)) if who == me && t == token => {}
                                            Some(&(_, t)) => {
                                                assert!(token > t, "token {token} after {t}")
                                            }
                                            None => {}
                                        }
                                        if l.terms.last() != Some(&(me, token)) {
                                            l.terms.push((me, token));
                                        }
                                        l.leader = Some((me, token));
                                        changes_tx.send_modify(|n| *n += 1);
                                    }
                                }
                            }
                            _ => {
                                if l.leader.is_some_and(|(who, _)| who == me) {
                                    l.leader = None;
                                    changes_tx.send_modify(|n| *n += 1);
                                }
                            }
                        }
                    }
                    if role.is_terminal() {
                        continue 'session;
                    }
                    role = tokio::select! {
                        r = candidacy.changed() => r,
                        _ = stop.changed() => break 'session,
                    };
                }
            }
        }));
    }

    let observer = env.client().await;
    let mut changes = changes;
    for kind in CUTS {
        let (leader, before) = within(WAIT, "a leader", async {
            loop {
                {
                    let l = shared.lock().unwrap();
                    if let Some((who, _)) = l.leader {
                        return (who, l.terms.len());
                    }
                }
                changes.changed().await.unwrap();
            }
        })
        .await;
        let node = shared.lock().unwrap().node_of[&leader].clone();
        cut(&env, &contenders[leader].proxy, kind, &observer, &node).await;
        if !matches!(kind, Cut::Brief) {
            // Someone else took over.
            within(WAIT, "a new term", async {
                while shared.lock().unwrap().terms.len() <= before {
                    changes.changed().await.unwrap();
                }
            })
            .await;
        }
    }
    stop_tx.send_replace(true);
    for t in tasks {
        within(WAIT, "candidate stops", t).await.unwrap();
    }
    let l = shared.lock().unwrap();
    let tokens: Vec<i64> = l.terms.iter().map(|t| t.1).collect();
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "tokens strictly increase: {tokens:?}"
    );
    assert!(l.terms.len() >= 3, "terms: {:?}", l.terms);
}

async fn election_resign_and_leader_lookup(env: Env) {
    let clients = [env.client().await, env.client().await, env.client().await];
    let election = Election::new(&clients[0], "/e").unwrap();
    // An observer (no candidacy) follows who leads; no one yet.
    let observer = env.client().await;
    let mut leaders = Election::new(&observer, "/e")
        .unwrap()
        .watch_leader()
        .await
        .unwrap();
    assert_eq!(leaders.current().leader, None);
    let mut a = election.campaign(b"a").await.unwrap();
    let token_a = within(WAIT, "a leads", a.leadership()).await.unwrap();
    let mut b = Election::new(&clients[1], "/e")
        .unwrap()
        .campaign(b"b")
        .await
        .unwrap();
    let c = Election::new(&clients[2], "/e")
        .unwrap()
        .campaign(b"c")
        .await
        .unwrap();
    eventually(WAIT, "b follows", || async { b.role() == Role::Follower }).await;
    let leader = election.leader().await.unwrap().unwrap();
    assert_eq!(
        (leader.data.as_slice(), leader.token),
        (b"a".as_slice(), token_a)
    );
    let candidates = election.candidates().await.unwrap();
    assert_eq!(candidates, [a.node(), b.node(), c.node()]);

    a.resign().await.unwrap();
    let token_b = within(WAIT, "b leads after a resigns", b.leadership())
        .await
        .unwrap();
    assert!(token_b > token_a);
    assert_eq!(election.leader().await.unwrap().unwrap().data, b"b");
    within(WAIT, "the observer sees b lead", async {
        while leaders.current().leader.map(|l| l.token) != Some(token_b) {
            leaders.changed().await;
        }
    })
    .await;
    assert_eq!(leaders.current().leader.unwrap().data, b"b");
    // Dropping a candidacy resigns too.
    let c_node = c.node();
    drop(c);
    eventually(WAIT, "dropped candidacy's node removed", || async {
        clients[0].exists(&c_node).await.unwrap().is_none()
    })
    .await;
    // Deleting the leader's node by hand: it runs again, behind nobody, with a new token.
    clients[0].delete(&b.node(), None).await.unwrap();
    let token = within(WAIT, "b leads again", async {
        loop {
            if let Role::Leader { token } = b.changed().await
                && token != token_b
            {
                return token;
            }
        }
    })
    .await;
    assert!(token > token_b);
    // A closed session ends the candidacy.
    clients[1].close().await;
    within(WAIT, "candidacy lost", async {
        while !b.changed().await.is_terminal() {}
    })
    .await;
    assert_eq!(b.role(), Role::Lost);
}

// ---- group ---------------------------------------------------------------------------------

async fn group_membership_follows_sessions(env: Env) {
    let watcher_client = env.client().await;
    let group = Group::new(&watcher_client, "/g").unwrap();
    let mut view = group.watch().await.unwrap();
    assert!(view.current().members.is_empty());

    let flaky = Contender::new(&env).await;
    let flaky_client = flaky.client().await;
    let steady = env.client().await;
    let m1 = Group::new(&flaky_client, "/g")
        .unwrap()
        .join("m1", b"one")
        .await
        .unwrap();
    let m2 = Group::new(&steady, "/g")
        .unwrap()
        .join("m2", b"two")
        .await
        .unwrap();
    let ids = |v: &paddock_client::recipe::GroupView| {
        v.members.iter().map(|m| m.id.clone()).collect::<Vec<_>>()
    };
    within(WAIT, "both members listed", async {
        while ids(&view.current()) != ["m1", "m2"] {
            view.changed().await;
        }
    })
    .await;
    assert_eq!(view.current().members[0].data, b"one");
    assert_eq!(group.members().await.unwrap().len(), 2);

    // Joining again under the same session adopts the node (a lost create reply looks
    // just like this). Dropping that second membership deletes the node; the first
    // one, whose session lives, puts it back.
    let again = Group::new(&steady, "/g")
        .unwrap()
        .join("m2", b"two")
        .await
        .unwrap();
    assert_eq!(again.node(), m2.node());
    drop(again);
    eventually(WAIT, "m2 re-created after the drop", || async {
        steady.exists("/g/m2").await.unwrap().is_some() && m2.state() == MemberState::Joined
    })
    .await;

    // m1's session is cut: Suspended at once; gone from the group once expired.
    let mut states = m1.states();
    flaky.proxy.set_mode(Mode::Refuse);
    flaky.proxy.cut();
    within(
        WAIT,
        "member suspended",
        states.wait_for(|s| *s == MemberState::Suspended),
    )
    .await
    .unwrap();
    // A new incarnation of m1 waits for the old session's node to go, then joins.
    let reborn_client = env.client().await;
    let reborn = within(
        env.expiry_bound(env.short_session()) + WAIT,
        "m1 rejoins once the old session expired",
        Group::new(&reborn_client, "/g")
            .unwrap()
            .join("m1", b"one again"),
    )
    .await
    .unwrap();
    flaky.proxy.set_mode(Mode::Pass);
    within(
        WAIT,
        "old membership lost",
        states.wait_for(|s| *s == MemberState::Lost),
    )
    .await
    .unwrap();
    within(WAIT, "watcher sees the new m1", async {
        loop {
            let v = view.current();
            if ids(&v) == ["m1", "m2"] && v.members[0].data == b"one again" {
                return;
            }
            view.changed().await;
        }
    })
    .await;
    // A member node deleted by hand comes back while its session lives.
    steady.delete("/g/m2", None).await.unwrap();
    eventually(WAIT, "m2 re-created", || async {
        steady.exists("/g/m2").await.unwrap().is_some()
    })
    .await;
    assert_eq!(m2.state(), MemberState::Joined);
    m2.leave().await.unwrap();
    reborn.leave().await.unwrap();
    within(WAIT, "group empty", async {
        while !view.current().members.is_empty() {
            view.changed().await;
        }
    })
    .await;
    drop(m1);
    // The watcher's own session going away marks the view lost.
    watcher_client.close().await;
    within(WAIT, "view lost", async {
        while view.current().state != ViewState::Lost {
            view.changed().await;
        }
    })
    .await;
}

// ---- config cache --------------------------------------------------------------------------

async fn config_cache_never_misses_an_update(env: Env) {
    const UPDATES: u32 = 60;
    let writer = env.client().await;
    writer
        .create("/cfg", b"0", CreateMode::Persistent)
        .await
        .unwrap();
    let contender = Contender::new(&env).await;
    let client = Client::builder(format!("{}{}", contender.proxy.addr(), env.ns))
        .session_timeout(Duration::from_secs(20))
        .connect()
        .await
        .unwrap();
    let mut cache = ConfigCache::start(&client, "/cfg", false).await.unwrap();
    assert_eq!(cache.get("/cfg").unwrap().data, b"0");
    let mut events = cache.events();

    // The writer counts up while the cache's connection is cut every few updates.
    let writing = {
        let writer = writer.clone();
        let proxy_cuts = Arc::new(contender);
        let cuts = proxy_cuts.clone();
        tokio::spawn(async move {
            for i in 1..=UPDATES {
                writer
                    .set_data("/cfg", i.to_string().as_bytes(), None)
                    .await
                    .unwrap();
                if i % 10 == 0 {
                    cuts.proxy.cut();
                }
            }
            proxy_cuts
        })
    };
    let mut seen = Vec::new();
    within(WAIT * 2, "cache reaches the last value", async {
        loop {
            let view = cache.changed().await;
            if let Some(node) = view.nodes.get("/cfg") {
                let value: u32 = String::from_utf8_lossy(&node.data).parse().unwrap();
                if seen.last() != Some(&value) {
                    seen.push(value);
                }
                if value == UPDATES && view.state == CacheState::Live {
                    return;
                }
            }
        }
    })
    .await;
    let _contender = writing.await.unwrap();
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "values only move forward: {seen:?}"
    );
    assert_eq!(cache.get("/cfg").unwrap().stat.version, UPDATES as i32);
    // The event stream says the same: versions of /cfg only increase, up to the last.
    let mut versions = Vec::new();
    let mut resyncs = 0;
    within(WAIT, "events up to the last update", async {
        while versions.last() != Some(&(UPDATES as i32)) {
            match events.recv().await.unwrap() {
                ConfigEvent::Changed { node, .. } => versions.push(node.stat.version),
                ConfigEvent::Resynced => resyncs += 1,
                _ => {}
            }
        }
    })
    .await;
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    assert!(resyncs >= 1, "reconnects lead to a resync");
}

async fn config_cache_follows_a_subtree(env: Env) {
    let writer = env.client().await;
    let contender = Contender::new(&env).await;
    let client = contender.client().await;
    // The root does not exist yet: it appears once created.
    let mut cache = ConfigCache::start(&client, "/app", true).await.unwrap();
    assert!(cache.view().nodes.is_empty());
    writer
        .create("/app", b"root", CreateMode::Persistent)
        .await
        .unwrap();
    writer
        .create("/app/db", b"postgres://a", CreateMode::Persistent)
        .await
        .unwrap();
    writer
        .create("/app/db/pool", b"10", CreateMode::Persistent)
        .await
        .unwrap();
    let keys = |cache: &ConfigCache| cache.view().nodes.keys().cloned().collect::<Vec<_>>();
    within(WAIT, "subtree cached", async {
        while keys(&cache) != ["/app", "/app/db", "/app/db/pool"] {
            cache.changed().await;
        }
    })
    .await;

    // Changes made while the cache is disconnected arrive with the resync.
    contender.proxy.set_mode(Mode::Refuse);
    contender.proxy.cut();
    within(WAIT, "stale", async {
        while cache.view().state != CacheState::Stale {
            cache.changed().await;
        }
    })
    .await;
    writer.delete("/app/db/pool", None).await.unwrap();
    writer
        .set_data("/app/db", b"postgres://b", None)
        .await
        .unwrap();
    writer
        .create("/app/cache", b"redis", CreateMode::Persistent)
        .await
        .unwrap();
    contender.proxy.set_mode(Mode::Pass);
    within(WAIT, "resynced", async {
        loop {
            let v = cache.view();
            if v.state == CacheState::Live
                && keys(&cache) == ["/app", "/app/cache", "/app/db"]
                && v.nodes["/app/db"].data == b"postgres://b"
            {
                return;
            }
            cache.changed().await;
        }
    })
    .await;
    // Session expiry: the cache says it is lost.
    contender.proxy.set_mode(Mode::Refuse);
    contender.proxy.cut();
    wait_state(&client, SessionState::Suspended, WAIT).await;
    let kill = Client::builder(env.connect_string())
        .resume_session(client.session().id, client.session().password)
        .connect()
        .await
        .unwrap();
    kill.close().await;
    contender.proxy.set_mode(Mode::Pass);
    within(WAIT, "lost", async {
        while cache.view().state != CacheState::Lost {
            cache.changed().await;
        }
    })
    .await;
}

async fn lock_guard_tracks_the_session(env: Env) {
    let contender = Contender::new(&env).await;
    let client = Client::builder(format!("{}{}", contender.proxy.addr(), env.ns))
        .session_timeout(Duration::from_secs(20))
        .connect()
        .await
        .unwrap();
    let mut guard = Lock::new(&client, "/track")
        .unwrap()
        .acquire()
        .await
        .unwrap();
    assert_eq!(guard.state(), Hold::Held);
    contender.proxy.cut();
    // However brief the outage, the guard reports it.
    within(WAIT, "interrupted", guard.interrupted()).await;
    within(WAIT, "held again after the reconnect", async {
        while guard.state() != Hold::Held {
            guard.changed().await;
        }
    })
    .await;
    // Deleting the node by hand loses the lock.
    let other = env.client().await;
    other.delete(guard.node(), None).await.unwrap();
    within(WAIT, "lost", async {
        while guard.state() != Hold::Lost {
            guard.changed().await;
        }
    })
    .await;
}

backend_tests!(
    lock_mutual_exclusion_under_cuts,
    lock_timeout_holder_and_release,
    lock_waiters_watch_only_their_predecessor,
    lock_guard_tracks_the_session,
    lost_create_replies_are_recovered,
    election_one_leader_at_a_time_under_cuts,
    election_resign_and_leader_lookup,
    group_membership_follows_sessions,
    config_cache_never_misses_an_update,
    config_cache_follows_a_subtree,
);
