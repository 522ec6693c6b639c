// Curator over TLS: the JVM's zookeeper.client.secure, zookeeper.clientCnxnSocket (Netty)
// and zookeeper.ssl.* system properties (JKS key and trust stores) make every connection
// TLS. A node created with the ACL x509:CN=client,O=Example reads back with that ACL; the
// session's whoami lists the x509 id; a second client on the plaintext port (TLS off
// through ZKClientConfig) gets NoAuth. Prints one line per check; exits 1 on the first
// failure.
//
//   java -Dzookeeper.client.secure=true ... CuratorTls SECURE_HOST:PORT PLAIN_HOST:PORT

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
import org.apache.zookeeper.data.ClientInfo;
import org.apache.zookeeper.data.Id;

public class CuratorTls {
    static void check(boolean ok, String what) {
        if (!ok) {
            System.err.println("curator-tls: FAIL " + what);
            System.exit(1);
        }
        System.out.println("curator-tls: ok   " + what);
    }

    static CuratorFramework client(String server, boolean tls) throws Exception {
        CuratorFrameworkFactory.Builder b = CuratorFrameworkFactory.builder()
                .connectString(server)
                .sessionTimeoutMs(10000)
                .connectionTimeoutMs(10000)
                .retryPolicy(new RetryOneTime(500));
        if (!tls) {
            ZKClientConfig config = new ZKClientConfig();
            config.setProperty(ZKClientConfig.SECURE_CLIENT, "false");
            config.setProperty(ZKClientConfig.ZOOKEEPER_CLIENT_CNXN_SOCKET,
                    "org.apache.zookeeper.ClientCnxnSocketNIO");
            b = b.zookeeperFactory((connect, timeout, watcher, canBeReadOnly) ->
                    new ZooKeeper(connect, timeout, watcher, canBeReadOnly, config));
        }
        CuratorFramework c = b.build();
        c.start();
        check(c.blockUntilConnected(20, java.util.concurrent.TimeUnit.SECONDS), "connected (tls=" + tls + ")");
        return c;
    }

    public static void main(String[] args) throws Exception {
        String secure = args[0];
        String plain = args[1];
        String path = "/curator-tls-" + System.nanoTime();
        List<ACL> acl = Collections.singletonList(
                new ACL(ZooDefs.Perms.ALL, new Id("x509", "CN=client,O=Example")));
        try (CuratorFramework c = client(secure, true)) {
            c.create().withACL(acl).forPath(path, "v".getBytes());
            check(new String(c.getData().forPath(path)).equals("v"), "read over TLS");
            List<ACL> got = c.getACL().forPath(path);
            check(got.equals(acl), "the ACL is x509:CN=client,O=Example:cdrwa (" + got + ")");
            List<ClientInfo> who = c.getZookeeperClient().getZooKeeper().whoAmI();
            boolean x509 = false;
            for (ClientInfo i : who) {
                x509 |= i.getAuthScheme().equals("x509") && i.getUser().equals("CN=client,O=Example");
            }
            check(x509, "whoami lists x509 CN=client,O=Example (" + who + ")");
            try (CuratorFramework p = client(plain, false)) {
                try {
                    p.getData().forPath(path);
                    check(false, "a plaintext client may not read the x509 node");
                } catch (KeeperException.NoAuthException e) {
                    check(true, "a plaintext client gets NoAuth");
                }
            }
            c.delete().forPath(path);
        }
    }
}
