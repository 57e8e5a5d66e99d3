"""Drives Debian's python-etcd (v2 API) and etcd3gw (v3 JSON gateway) against one URL.

  python_clients.py rw|ro PROXY_URL WRITER_URL PREFIX

Prints one JSON object: step name -> ["ok", result] or ["err", "ExceptionType: message"].
WRITER_URL takes the writes a step waits for (a watch's event), so that a read-only proxy's
watches get events too. Every step is bounded by client-side timeouts.
"""
import base64
import json
import sys
import threading
import time

import etcd
from etcd3gw.client import Etcd3Client
from etcd3gw.lease import Lease

mode, proxy_url, writer_url, prefix = sys.argv[1:5]


def host_port(url):
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    return host, int(port)


results = {}


def step(name, run):
    try:
        results[name] = ["ok", run()]
    except Exception as error:  # the test asserts on the error's type and text
        detail = getattr(error, "detail_text", None)  # etcd3gw keeps the answer's body here
        text = "%s: %s" % (type(error).__name__, error)
        results[name] = ["err", text if detail is None else "%s %s" % (text, detail)]


def later(delay, action):
    timer = threading.Timer(delay, action)
    timer.daemon = True
    timer.start()


v2 = etcd.Client(*host_port(proxy_url), read_timeout=5)
v2_writer = etcd.Client(*host_port(writer_url), read_timeout=5)
gw = Etcd3Client(*host_port(proxy_url), api_path="/v3/", timeout=5)
gw_writer = Etcd3Client(*host_port(writer_url), api_path="/v3/", timeout=5)
v2_key = "/" + prefix
gw_key = prefix + "/"

# python-etcd, v2 keys API
if mode == "ro":
    v2_writer.write(v2_key + "/seed", "seeded")
    step("v2 read", lambda: v2.read(v2_key + "/seed").value)
    step("v2 write", lambda: v2.write(v2_key + "/seed", "changed").value)
    step("v2 lock", lambda: etcd.Lock(v2, prefix).acquire(blocking=False, lock_ttl=5))
else:
    step("v2 write", lambda: v2.write(v2_key + "/a", "1").value)
    step("v2 read", lambda: v2.read(v2_key + "/a").value)
    step("v2 dir", lambda: v2.write(v2_key + "/d", None, dir=True).dir)
    step("v2 write in dir", lambda: v2.write(v2_key + "/d/x", "x").key)
    step(
        "v2 recursive read",
        lambda: sorted(node.key for node in v2.read(v2_key, recursive=True).leaves),
    )
    step(
        "v2 in-order keys",
        lambda: [v2.write(v2_key + "/q", "v%d" % i, append=True).value for i in range(3)]
        and [node.value for node in v2.read(v2_key + "/q", sorted=True).children],
    )
    step("v2 ttl", lambda: v2.write(v2_key + "/t", "t", ttl=30).ttl)
    step("v2 test_and_set", lambda: v2.test_and_set(v2_key + "/a", "2", "1").value)
    step("v2 test_and_set stale", lambda: v2.test_and_set(v2_key + "/a", "3", "1").value)

    def lock():
        first = etcd.Lock(v2, prefix)
        acquired = first.acquire(blocking=True, lock_ttl=10)
        second = etcd.Lock(etcd.Client(*host_port(proxy_url)), prefix)
        held_elsewhere = second.acquire(blocking=False, lock_ttl=10)
        first.release()
        return [acquired, held_elsewhere, first.is_acquired]

    step("v2 lock", lock)
    step("v2 members", lambda: sorted(m["name"] for m in v2.members.values()))
    step("v2 leader", lambda: v2.leader["name"])
    step("v2 delete dir", lambda: v2.delete(v2_key + "/d", recursive=True, dir=True).key)

index = v2_writer.write(v2_key + "/w", "0").modifiedIndex
later(0.3, lambda: v2_writer.write(v2_key + "/w", "1"))
step("v2 watch", lambda: v2.watch(v2_key + "/w", timeout=5).value)
step(
    "v2 read waitIndex",
    lambda: v2.read(v2_key + "/w", wait=True, waitIndex=index + 1, timeout=5).value,
)


def client_timeout():
    started = time.time()
    try:
        v2.read(v2_key + "/never", wait=True, timeout=1)
        return "answered"
    except etcd.EtcdWatchTimedOut:
        return "timed out after %.0f s" % (time.time() - started)


step("v2 watch client timeout", client_timeout)
step("v2 read after timeout", lambda: v2.read(v2_key + "/w").value)


def eternal_watch():
    later(0.3, lambda: v2_writer.write(v2_key + "/e", "e1"))
    later(0.6, lambda: v2_writer.write(v2_key + "/e", "e2"))
    seen = []
    for node in v2.eternal_watch(v2_key + "/e"):
        seen.append(node.value)
        if len(seen) == 2:
            return seen


step("v2 eternal_watch", eternal_watch)

# etcd3gw, v3 JSON gateway
if mode == "ro":
    gw_writer.put(gw_key + "seed", "seeded")
    step("gw get", lambda: [v.decode() for v in gw.get(gw_key + "seed")])
    step("gw put", lambda: gw.put(gw_key + "seed", "changed"))
    step("gw lease grant", lambda: gw.lease(10).id)
    lease = gw_writer.lease(30)
    gw_writer.put(gw_key + "leased", "v", lease=lease)
    step("gw lease keys", lambda: [k.decode() for k in Lease(lease.id, client=gw).keys()])
    lease.revoke()
    step("gw members", lambda: len(gw.members()))
else:
    step("gw put", lambda: gw.put(gw_key + "a", "1"))
    step("gw get", lambda: [v.decode() for v in gw.get(gw_key + "a")])
    step("gw create existing", lambda: gw.create(gw_key + "a", "x"))
    step("gw replace", lambda: gw.replace(gw_key + "a", "1", "2"))

    def lease():
        granted = gw.lease(ttl=30)
        gw.put(gw_key + "leased", "v", lease=granted)
        keys = [k.decode() for k in granted.keys()]
        alive = granted.ttl() > 0
        granted.revoke()
        return [alive, keys, gw.get(gw_key + "leased")]

    step("gw lease", lease)

    def txn():
        encode = lambda text: base64.b64encode(text.encode()).decode()
        answer = gw.transaction(
            {
                "compare": [
                    {
                        "key": encode(gw_key + "a"),
                        "result": "EQUAL",
                        "target": "VALUE",
                        "value": encode("2"),
                    }
                ],
                "success": [{"request_put": {"key": encode(gw_key + "t"), "value": encode("yes")}}],
                "failure": [{"request_put": {"key": encode(gw_key + "t"), "value": encode("no")}}],
            }
        )
        return [answer.get("succeeded"), gw.get(gw_key + "t")[0].decode()]

    step("gw txn", txn)

    def lock():
        first = gw.lock(id=prefix + "-lock", ttl=10)
        second = gw.lock(id=prefix + "-lock", ttl=10)
        return [first.acquire(), second.acquire(), first.release(), second.acquire()]

    step("gw lock", lock)
    step("gw members", lambda: sorted(m["name"] for m in gw.members()))
    step("gw get_prefix", lambda: len(gw.get_prefix(gw_key)))


def watch_prefix():
    # etcd3gw parses each HTTP chunk as one JSON message: bursts of events must keep the
    # member's chunk framing.
    events, cancel = gw.watch_prefix(gw_key + "w/")
    later(8, cancel)
    later(0.3, lambda: [gw_writer.put(gw_key + "w/%d" % i, "v%d" % i) for i in range(20)])
    seen = []
    for event in events:
        seen.append(event["kv"]["value"].decode())
        if len(seen) == 20:
            break
    cancel()
    return seen


step("gw watch_prefix", watch_prefix)
later(0.3, lambda: gw_writer.put(gw_key + "once", "once"))
step("gw watch_once", lambda: gw.watch_once(gw_key + "once", timeout=5)["kv"]["value"].decode())

print(json.dumps(results))
