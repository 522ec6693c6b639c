// Black-box compatibility checks with Apache Curator (Debian libcurator-*-java)
// on top of Apache ZooKeeper's Java client. Compiled and run by
// e2e/compat/curator_compat.sh:
//
//   java -cp <curator+zookeeper jars>:. CuratorCompat HOST:PORT
//
// Prints "curator: N passed, M failed" and exits non-zero on any failure.
// Every wait is bounded.

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.api.transaction.CuratorOp;
import org.apache.curator.framework.api.transaction.CuratorTransactionResult;
import org.apache.curator.framework.api.transaction.OperationType;
import org.apache.curator.framework.recipes.cache.ChildData;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.cache.CuratorCacheListener;
import org.apache.curator.framework.recipes.cache.NodeCache;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.data.Stat;

public class CuratorCompat {
    static final long WAIT_S = 15;
    static String connect;
    static String root;
    static int passed = 0;
    static int failed = 0;
    static final List<CuratorFramework> clients = new ArrayList<>();

    interface Check {
        void run() throws Exception;
    }

    static void check(String name, Check c) {
        long t0 = System.nanoTime();
        try {
            c.run();
            passed++;
            System.out.printf("curator: ok   %s (%d ms)%n", name, (System.nanoTime() - t0) / 1_000_000);
        } catch (Throwable e) {
            failed++;
            System.out.printf("curator: FAIL %s: %s%n", name, e);
            e.printStackTrace(System.out);
        }
    }

    static void expect(boolean cond, String what) {
        if (!cond) {
            throw new AssertionError(what);
        }
    }

    static void expectEq(Object want, Object got, String what) {
        if (want == null ? got != null : !want.equals(got)) {
            throw new AssertionError(what + ": expected <" + want + "> got <" + got + ">");
        }
    }

    static byte[] b(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    static String s(byte[] b) {
        return b == null ? null : new String(b, StandardCharsets.UTF_8);
    }

    static CuratorFramework newClient() throws Exception {
        CuratorFramework c = CuratorFrameworkFactory.newClient(
                connect, 10_000, 10_000, new ExponentialBackoffRetry(100, 3));
        c.start();
        if (!c.blockUntilConnected((int) WAIT_S, TimeUnit.SECONDS)) {
            c.close();
            throw new AssertionError("could not connect to " + connect + " within " + WAIT_S + " s");
        }
        synchronized (clients) {
            clients.add(c);
        }
        return c;
    }

    static <T> T poll(BlockingQueue<T> q, String what) throws InterruptedException {
        T v = q.poll(WAIT_S, TimeUnit.SECONDS);
        if (v == null) {
            throw new AssertionError("timed out after " + WAIT_S + " s waiting for " + what);
        }
        return v;
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: CuratorCompat HOST:PORT");
            System.exit(2);
        }
        connect = args[0];
        root = "/curator-compat-" + UUID.randomUUID().toString().substring(0, 8);
        CuratorFramework c1;
        try {
            c1 = newClient();
        } catch (Throwable e) {
            System.out.println("curator: FAIL connect: " + e);
            System.out.println("curator: 0 passed, 1 failed");
            System.exit(1);
            return;
        }

        check("create/get/set/delete with creatingParentsIfNeeded", () -> {
            String p = root + "/crud/a/b/c";
            expectEq(p, c1.create().creatingParentsIfNeeded().forPath(p, b("v0")), "created path");
            expect(c1.checkExists().forPath(root + "/crud/a/b") != null, "parents created");
            Stat st = new Stat();
            expectEq("v0", s(c1.getData().storingStatIn(st).forPath(p)), "data");
            expectEq(0, st.getVersion(), "version");
            Stat st2 = c1.setData().withVersion(0).forPath(p, b("v1"));
            expectEq(1, st2.getVersion(), "version after set");
            expectEq(st.getCzxid(), st2.getCzxid(), "czxid unchanged");
            expect(st2.getMzxid() > st.getMzxid(), "mzxid advanced");
            try {
                c1.setData().withVersion(0).forPath(p, b("stale"));
                throw new AssertionError("stale setData succeeded");
            } catch (KeeperException.BadVersionException expected) {
                // ok
            }
            try {
                c1.create().forPath(p);
                throw new AssertionError("duplicate create succeeded");
            } catch (KeeperException.NodeExistsException expected) {
                // ok
            }
            try {
                c1.delete().forPath(root + "/crud/a");
                throw new AssertionError("deleting a non-empty node succeeded");
            } catch (KeeperException.NotEmptyException expected) {
                // ok
            }
            expectEq(Collections.singletonList("c"), c1.getChildren().forPath(root + "/crud/a/b"), "children");
            c1.delete().withVersion(1).forPath(p);
            expect(c1.checkExists().forPath(p) == null, "deleted");
            c1.delete().deletingChildrenIfNeeded().forPath(root + "/crud");
            expect(c1.checkExists().forPath(root + "/crud") == null, "deleted recursively");
            try {
                c1.getData().forPath(p);
                throw new AssertionError("getData on a deleted node succeeded");
            } catch (KeeperException.NoNodeException expected) {
                // ok
            }
        });

        check("ephemeral-sequential names and owner", () -> {
            String parent = root + "/seq";
            c1.create().creatingParentsIfNeeded().forPath(parent);
            String a = c1.create().withMode(CreateMode.EPHEMERAL_SEQUENTIAL).forPath(parent + "/n-");
            String b2 = c1.create().withMode(CreateMode.PERSISTENT_SEQUENTIAL).forPath(parent + "/n-");
            expectEq(parent + "/n-0000000000", a, "first sequential");
            expectEq(parent + "/n-0000000001", b2, "second sequential");
            Stat st = c1.checkExists().forPath(a);
            expectEq(c1.getZookeeperClient().getZooKeeper().getSessionId(), st.getEphemeralOwner(), "ephemeralOwner");
        });

        check("transaction: results and rollback", () -> {
            String p = root + "/txn";
            List<CuratorTransactionResult> res = c1.transaction().forOperations(
                    c1.transactionOp().create().forPath(p, b("x")),
                    c1.transactionOp().create().forPath(p + "/kid"),
                    c1.transactionOp().setData().forPath(p, b("y")),
                    c1.transactionOp().check().withVersion(1).forPath(p));
            expectEq(4, res.size(), "result count");
            expectEq(OperationType.CREATE, res.get(0).getType(), "op 0 type");
            expectEq(p, res.get(0).getResultPath(), "op 0 path");
            expectEq(1, res.get(2).getResultStat().getVersion(), "setData stat");
            try {
                c1.transaction().forOperations(
                        c1.transactionOp().create().forPath(p + "/new"),
                        c1.transactionOp().create().forPath(p));
                throw new AssertionError("failing transaction succeeded");
            } catch (KeeperException.NodeExistsException expected) {
                // ok: Java client raises the first real error
            }
            expect(c1.checkExists().forPath(p + "/new") == null, "rolled back");
        });

        check("container parents (createContainer) and TTL node (createTTL)", () -> {
            String p = root + "/cont/a/leaf";
            c1.create().creatingParentContainersIfNeeded().forPath(p, b("l"));
            Stat st = c1.checkExists().forPath(root + "/cont/a");
            expect(st != null, "container parent created");
            expectEq(0L, st.getEphemeralOwner(), "container ephemeralOwner as seen by clients");
            String t = root + "/ttl";
            c1.create().withTtl(60_000).withMode(CreateMode.PERSISTENT_WITH_TTL).forPath(t, b("t"));
            expectEq("t", s(c1.getData().forPath(t)), "ttl node data");
        });

        CuratorFramework c2 = newClient();

        check("LeaderLatch: exactly one leader, hand-over on close", () -> {
            String path = root + "/latch";
            LeaderLatch l1 = new LeaderLatch(c1, path, "c1");
            LeaderLatch l2 = new LeaderLatch(c2, path, "c2");
            l1.start();
            l2.start();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(WAIT_S);
            while (!(l1.hasLeadership() || l2.hasLeadership()) && System.nanoTime() < deadline) {
                Thread.sleep(20);
            }
            expect(l1.hasLeadership() ^ l2.hasLeadership(), "exactly one leader (l1="
                    + l1.hasLeadership() + ", l2=" + l2.hasLeadership() + ")");
            expectEq(2, l1.getParticipants().size(), "participants");
            LeaderLatch leader = l1.hasLeadership() ? l1 : l2;
            LeaderLatch follower = leader == l1 ? l2 : l1;
            expectEq(leader.getId(), follower.getLeader().getId(), "both agree on the leader");
            leader.close();
            expect(follower.await(WAIT_S, TimeUnit.SECONDS), "follower becomes leader after close");
            follower.close();
        });

        check("InterProcessMutex: mutual exclusion between two clients", () -> {
            String path = root + "/mutex";
            InterProcessMutex m1 = new InterProcessMutex(c1, path);
            InterProcessMutex m2 = new InterProcessMutex(c2, path);
            expect(m1.acquire(WAIT_S, TimeUnit.SECONDS), "c1 acquires");
            final boolean[] got = new boolean[1];
            CountDownLatch tried = new CountDownLatch(1);
            Thread t = new Thread(() -> {
                try {
                    got[0] = m2.acquire(200, TimeUnit.MILLISECONDS);
                } catch (Exception e) {
                    got[0] = true;
                } finally {
                    tried.countDown();
                }
            });
            t.setDaemon(true);
            t.start();
            expect(tried.await(WAIT_S, TimeUnit.SECONDS), "contender returned");
            expect(!got[0], "c2 must not acquire while c1 holds");
            m1.release();
            CountDownLatch acquired = new CountDownLatch(1);
            Thread t2 = new Thread(() -> {
                try {
                    if (m2.acquire(WAIT_S, TimeUnit.SECONDS)) {
                        acquired.countDown();
                        m2.release();
                    }
                } catch (Exception e) {
                    // reported by the await below
                }
            });
            t2.setDaemon(true);
            t2.start();
            expect(acquired.await(WAIT_S, TimeUnit.SECONDS), "c2 acquires after c1 releases");
            t2.join(TimeUnit.SECONDS.toMillis(WAIT_S));

            // stress: 4 threads over 2 clients, never two inside
            AtomicInteger inside = new AtomicInteger();
            AtomicInteger maxInside = new AtomicInteger();
            AtomicInteger done = new AtomicInteger();
            List<Thread> ts = new ArrayList<>();
            List<Throwable> errs = Collections.synchronizedList(new ArrayList<>());
            for (int i = 0; i < 4; i++) {
                CuratorFramework c = i % 2 == 0 ? c1 : c2;
                Thread w = new Thread(() -> {
                    InterProcessMutex m = new InterProcessMutex(c, path);
                    try {
                        for (int k = 0; k < 5; k++) {
                            if (!m.acquire(WAIT_S, TimeUnit.SECONDS)) {
                                throw new AssertionError("acquire timed out");
                            }
                            int now = inside.incrementAndGet();
                            maxInside.accumulateAndGet(now, Math::max);
                            Thread.sleep(5);
                            inside.decrementAndGet();
                            done.incrementAndGet();
                            m.release();
                        }
                    } catch (Throwable e) {
                        errs.add(e);
                    }
                });
                w.setDaemon(true);
                ts.add(w);
                w.start();
            }
            for (Thread w : ts) {
                w.join(TimeUnit.SECONDS.toMillis(WAIT_S * 2));
            }
            expect(errs.isEmpty(), "worker errors: " + errs);
            expectEq(20, done.get(), "critical sections completed");
            expectEq(1, maxInside.get(), "max threads inside the mutex");
        });

        check("NodeCache sees changes", () -> {
            String p = root + "/nodecache";
            c1.create().forPath(p, b("a"));
            BlockingQueue<String> seen = new LinkedBlockingQueue<>();
            @SuppressWarnings("deprecation")
            NodeCache cache = new NodeCache(c1, p);
            cache.getListenable().addListener(() -> {
                ChildData d = cache.getCurrentData();
                seen.add(d == null ? "<deleted>" : s(d.getData()));
            });
            cache.start(true);
            expectEq("a", s(cache.getCurrentData().getData()), "initial data");
            c2.setData().forPath(p, b("b"));
            expectEq("b", poll(seen, "NodeCache change b"), "first change");
            c2.setData().forPath(p, b("c"));
            String v = poll(seen, "NodeCache change c");
            while (!"c".equals(v)) {
                v = poll(seen, "NodeCache change c");
            }
            c2.delete().forPath(p);
            v = poll(seen, "NodeCache delete");
            while (!"<deleted>".equals(v)) {
                v = poll(seen, "NodeCache delete");
            }
            cache.close();
        });

        check("CuratorCache (persistent recursive watch) sees creates, changes, deletes", () -> {
            String p = root + "/cc";
            c1.create().forPath(p, b("top"));
            BlockingQueue<String> events = new LinkedBlockingQueue<>();
            CuratorCache cache = CuratorCache.build(c1, p);
            CountDownLatch initialized = new CountDownLatch(1);
            cache.listenable().addListener(CuratorCacheListener.builder()
                    .forCreates(n -> events.add("create " + n.getPath()))
                    .forChanges((o, n) -> events.add("change " + n.getPath() + " " + s(n.getData())))
                    .forDeletes(o -> events.add("delete " + o.getPath()))
                    .forInitialized(initialized::countDown)
                    .build());
            cache.start();
            expect(initialized.await(WAIT_S, TimeUnit.SECONDS), "cache initialized");
            expectEq("create " + p, poll(events, "initial create event"), "initial snapshot");
            c2.create().forPath(p + "/x", b("1"));
            expectEq("create " + p + "/x", poll(events, "create x"), "child create");
            c2.create().forPath(p + "/x/deep", b("d"));
            expectEq("create " + p + "/x/deep", poll(events, "create deep"), "grandchild create");
            c2.setData().forPath(p + "/x/deep", b("d2"));
            expectEq("change " + p + "/x/deep d2", poll(events, "change deep"), "grandchild change");
            c2.delete().forPath(p + "/x/deep");
            expectEq("delete " + p + "/x/deep", poll(events, "delete deep"), "grandchild delete");
            expect(cache.get(p + "/x").isPresent(), "cache holds x");
            expect(!cache.get(p + "/x/deep").isPresent(), "cache dropped deep");
            cache.close();
        });

        // cleanup
        try {
            c1.delete().deletingChildrenIfNeeded().forPath(root);
        } catch (Exception e) {
            System.out.println("curator: cleanup of " + root + " failed: " + e);
        }
        for (CuratorFramework c : clients) {
            c.close();
        }
        System.out.printf("curator: %d passed, %d failed%n", passed, failed);
        System.exit(failed == 0 ? 0 : 1);
    }
}
