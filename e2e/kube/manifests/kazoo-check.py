"""Run inside a pod (kubesim maps paddock/kazoo to e2e/.venv's python): writes and reads
through the ZooKeeper hosts given in argv[1], prints what it saw, exits non-zero on any
failure.

    kazoo-check.py HOSTS PATH VALUE write|read|print

write sets PATH to VALUE then reads it back, read expects VALUE, print prints the data
(e.g. /zookeeper/config) between BEGIN and END lines and always succeeds if it can read."""
import sys

from kazoo.client import KazooClient

hosts, path, value, mode = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
zk = KazooClient(hosts=hosts, timeout=15, connection_retry={"max_tries": 60, "delay": 0.25, "max_delay": 1})
zk.start(timeout=60)
if mode == "write":
    zk.ensure_path(path)
    zk.set(path, value.encode())
data, stat = zk.get(path)
if mode == "print":
    print("BEGIN\n" + data.decode() + "\nEND", flush=True)
    zk.stop()
    sys.exit(0)
print(f"read {path} = {data.decode()} (mzxid {stat.mzxid:#x}) via {hosts}")
zk.stop()
sys.exit(0 if data.decode() == value else 1)
