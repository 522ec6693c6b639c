// Curator with SASL DIGEST-MD5: the JVM's JAAS Client section (username bob) logs every
// connection in. Phase "sasl": a node created with the ACL sasl:bob:cdrwa reads back
// with that ACL, and a second client with SASL turned off (ZKClientConfig) gets NoAuth.
// Phase "enforce" (enforce.auth.schemes=sasl on the server): the logged-in client reads
// and writes. Prints one line per check; exits 1 on the first failure.
//
//   java -Djava.security.auth.login.config=client.jaas CuratorSasl HOST:PORT sasl|enforce

import java.util.Collections;
import java.util.List;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.retry.RetryOneTime;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.client.ZKClientConfig;
import org.apache.zookeeper.data.ACL;
import org.apache.zookeeper.data.Id;

public class CuratorSasl {
    static void check(boolean ok, String what) {
        if (!ok) {
            System.err.println("curator-sasl: FAIL " + what);
            System.exit(1);
        }
        System.out.println("curator-sasl: ok   " + what);
    }

    static CuratorFramework client(String server, boolean sasl) throws Exception {
        CuratorFrameworkFactory.Builder b = CuratorFrameworkFactory.builder()
                .connectString(server)
                .sessionTimeoutMs(10000)
                .connectionTimeoutMs(10000)
                .retryPolicy(new RetryOneTime(500));
        if (!sasl) {
            ZKClientConfig config = new ZKClientConfig();
            config.setProperty(ZKClientConfig.ENABLE_CLIENT_SASL_KEY, "false");
            b = b.zookeeperFactory((connect, timeout, watcher, canBeReadOnly) ->
                    new ZooKeeper(connect, timeout, watcher, canBeReadOnly, config));
        }
        CuratorFramework c = b.build();
        c.start();
        check(c.blockUntilConnected(20, java.util.concurrent.TimeUnit.SECONDS), "connected (sasl=" + sasl + ")");
        return c;
    }

    public static void main(String[] args) throws Exception {
        String server = args[0];
        String phase = args[1];
        String path = "/curator-sasl-" + System.nanoTime();
        try (CuratorFramework bob = client(server, true)) {
            if (phase.equals("sasl")) {
                List<ACL> acl = Collections.singletonList(
                        new ACL(ZooDefs.Perms.ALL, new Id("sasl", "bob")));
                bob.create().withACL(acl).forPath(path, "v".getBytes());
                check(new String(bob.getData().forPath(path)).equals("v"), "read as bob");
                List<ACL> got = bob.getACL().forPath(path);
                check(got.equals(acl), "the ACL is sasl:bob:cdrwa (" + got + ")");
                try (CuratorFramework anon = client(server, false)) {
                    try {
                        anon.getData().forPath(path);
                        check(false, "a client without SASL gets NoAuth");
                    } catch (KeeperException.NoAuthException e) {
                        check(true, "a client without SASL gets NoAuth");
                    }
                }
            } else {
                bob.create().forPath(path, "w".getBytes());
                check(new String(bob.getData().forPath(path)).equals("w"), "write and read under enforce.auth");
            }
            bob.delete().forPath(path);
        }
        System.exit(0);
    }
}
