"""ACL users: replies compared with redis-server 7.0.15, enforcement, and replication through
Raft (a follower enforces users created on the leader; users survive restarts and reach a new
node with the snapshot)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests._server_util import FAST_RAFT, RawConn, RealRedis, error
from tests.respkv_proc import Cluster, RespkvProcess, wait_until

pytestmark = pytest.mark.integration

NOPERM_KEYS = error(
    "NOPERM this user has no permissions to access one of the keys used as arguments"
)
WRONGPASS = error("WRONGPASS invalid username-password pair or user is disabled.")


def redis_order(rules: bytes) -> bytes:
    """Command rules as compared with Redis 7.0: ``+@all``/``-@all`` and the categories in
    their order (both servers choose them with the same greedy rule), then the single commands
    sorted (Redis lists them in the order of a hash table seeded at random per process)."""
    tokens = rules.split()
    categories = [t for t in tokens if t[1:2] == b"@"]
    assert tokens[: len(categories)] == categories, rules  # categories come first
    return b" ".join(categories + sorted(tokens[len(categories) :]))


def normalized(reply: Any) -> Any:
    if isinstance(reply, list) and reply[:1] == [b"flags"]:
        fields = dict(zip(reply[::2], reply[1::2], strict=True))
        fields[b"commands"] = redis_order(fields[b"commands"])
        return fields
    if (
        isinstance(reply, list)
        and reply
        and all(isinstance(x, bytes) and x.startswith(b"user ") for x in reply)
    ):
        out = []
        for line in reply:
            at = line.index(b" -@all") if b" -@all" in line else line.index(b" +@all")
            out.append(line[:at] + b" " + redis_order(line[at + 1 :]))
        return out
    return reply


def script(port: int) -> list[Any]:
    """The same conversation with any server; its replies, in order."""
    out: list[Any] = []
    with RawConn(port) as admin:
        for command in (
            ("ACL", "SETUSER", "alice", "on", ">alice-pw", "~app:*", "+get", "+set", "+multi"),
            ("ACL", "SETUSER", "alice", "+exec", "+@hash", "-hdel"),
            ("ACL", "SETUSER", "bob"),
            ("ACL", "SETUSER", "carol", "on", "nopass", "+@all", "-@write", "~*", "allkeys"),
            ("ACL", "SETUSER", "dave", "on", ">a", ">b", "<a", "allcommands", "~*"),
            ("ACL", "SETUSER", "erin", "on", ">x", "+@read", "reset", "on", "nopass", "+ping"),
            ("ACL", "SETUSER", "frank", "on", ">f", "~s:*", "+@set"),
            ("ACL", "SETUSER", "gina", "+@hash", "+@string", "-append"),
            ("ACL", "SETUSER", "hank", "+@all", "-@dangerous", "-@admin", "+config|get"),
            ("ACL", "SETUSER", "ivy", "+@set", "+@transaction", "-smove", "+@sortedset", "+get"),
            ("ACL", "SETUSER", "jack", "+@hash", "+@read", "-hget", "+client|list", "+@write"),
            ("ACL", "SETUSER", "kim", "+@all", "-config|set", "-@pubsub", "+publish"),
            ("ACL", "SETUSER", "x", "+config|get|x"),
            ("ACL", "SETUSER", "x", "-config|nosuch"),
            ("ACL", "SETUSER", "x", "+config|"),
            ("ACL", "SETUSER", "x", "bogus"),
            ("ACL", "SETUSER", "x", "+nosuchcommand"),
            ("ACL", "SETUSER", "x", "+@nosuchcategory"),
            ("ACL", "SETUSER", "x", "#abc"),
            ("ACL", "SETUSER", "x", "~*", "~more"),
            ("ACL", "DELUSER", "default"),
            ("ACL", "GETUSER", "alice"),
            ("ACL", "GETUSER", "bob"),
            ("ACL", "GETUSER", "carol"),
            ("ACL", "GETUSER", "dave"),
            ("ACL", "GETUSER", "hank"),
            ("ACL", "GETUSER", "nobody"),
            ("ACL", "LIST"),
            ("ACL", "USERS"),
            ("ACL", "WHOAMI"),
            ("ACL", "CAT"),
            ("ACL", "CAT", "nosuch"),
            ("ACL", "NOSUCH"),
        ):
            out.append(normalized(admin.call(*command)))
        with RawConn(port) as c:
            out.append(c.call("AUTH", "alice", "wrong"))
            out.append(c.call("AUTH", "nobody", "alice-pw"))
            out.append(c.call("AUTH", "bob", ""))  # a disabled user
            out.append(c.call("AUTH", "alice", "alice-pw"))
            out.append(c.call("ACL", "WHOAMI"))  # not allowed to alice
            out.append(c.call("SET", "app:1", "v"))
            out.append(c.call("GET", "app:1"))
            out.append(c.call("GET", "other"))
            out.append(c.call("DEL", "app:1"))
            out.append(c.call("HSET", "app:h", "f", "v"))
            out.append(c.call("HDEL", "app:h", "f"))
            out.append(c.call("HSET", "elsewhere", "f", "v"))
            out.append(c.call("CONFIG", "GET", "maxclients"))
            out.append(c.call("MULTI"))
            out.append(c.call("SET", "app:2", "x"))
            out.append(c.call("DEL", "app:2"))
            out.append(c.call("GET", "other"))
            out.append(c.call("EXEC"))
            out.append(c.call("NOSUCH"))  # unknown commands first, as in Redis
            out.append(c.call("GET"))  # then arity
        with RawConn(port) as c:
            out.append(c.call("HELLO", "2", "AUTH", "carol", "anything")[:2])
            out.append(c.call("GET", "app:1"))
            out.append(c.call("SET", "app:1", "no"))
            out.append(c.call("ACL", "WHOAMI"))
        with RawConn(port) as c:
            out.append(c.call("AUTH", "dave", "a"))
            out.append(c.call("AUTH", "dave", "b"))
            out.append(c.call("AUTH", "erin", "x"))
            out.append(c.call("AUTH", "erin", "whatever"))
            out.append(c.call("PING"))
            out.append(c.call("GET", "app:1"))
        with RawConn(port) as c:  # keys found through numkeys are checked too
            out.append(c.call("AUTH", "frank", "f"))
            out.append(c.call("SINTERCARD", "2", "s:a", "s:b"))
            out.append(c.call("SINTERCARD", "2", "s:a", "other"))
            out.append(c.call("SINTERCARD", "1", "s:a", "LIMIT", "0"))
        with RawConn(port) as admin:
            out.append(
                admin.call("ACL", "DELUSER", "bob", "nobody", "carol", "dave", "erin", "frank")
            )
            out.append(admin.call("ACL", "DELUSER", "gina", "hank", "ivy", "jack", "kim"))
            out.append(admin.call("ACL", "USERS"))
            # Keys and SCAN never show the users.
            out.append(sorted(admin.call("KEYS", "*")))
    return out


def test_same_replies_as_redis(node: RespkvProcess, real: RealRedis) -> None:
    ours, theirs = script(node.port), script(real.port)
    for position, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert a == b, f"reply {position}: respkv {a!r} != redis {b!r}"
    # The script did exercise the denials.
    assert NOPERM_KEYS in ours and WRONGPASS in ours
    assert error("NOPERM this user has no permissions to run 'del' command") not in ours
    assert error("NOPERM this user has no permissions to run the 'del' command") in ours


def test_changes_apply_to_open_connections(node: RespkvProcess) -> None:
    with RawConn(node.port) as admin, RawConn(node.port) as c:
        assert admin.call("ACL", "SETUSER", "frank", "on", ">pw", "~*", "+get") == b"OK"
        assert c.call("AUTH", "frank", "pw") == b"OK"
        assert c.call("GET", "k") is None
        assert c.call("SET", "k", "v") == error(
            "NOPERM this user has no permissions to run the 'set' command"
        )
        assert admin.call("ACL", "SETUSER", "frank", "+set") == b"OK"
        assert c.call("SET", "k", "v") == b"OK"
        assert admin.call("ACL", "DELUSER", "frank") == 1
        with pytest.raises(ConnectionError):  # a deleted user's connections are closed
            c.call("GET", "k")


def test_no_clear_password_in_the_log(node: RespkvProcess) -> None:
    with RawConn(node.port) as admin:
        assert admin.call("ACL", "SETUSER", "grace", "on", ">very-secret-word", "+@all") == b"OK"
    data = node.workdir / "data"
    for path in data.rglob("*"):
        if path.is_file():
            assert b"very-secret-word" not in path.read_bytes(), path


RAFT = FAST_RAFT + "snapshot_threshold = 20\nsnapshot_tail = 2\n"


def test_users_are_replicated(tmp_path: Path) -> None:
    with Cluster(tmp_path, 3, raft_extra=RAFT) as cluster:
        cluster.start()
        leader = cluster.wait_leader(timeout=30)
        follower = next(i for i in cluster.ids if i != leader)
        with RawConn(cluster.port(leader)) as admin:
            assert admin.call("ACL", "SETUSER", "reader", "on", ">rpw", "~pub:*", "+@read") == b"OK"
            assert admin.call("SET", "pub:1", "one") == b"OK"
        # Created on the leader, enforced on a follower.
        with RawConn(cluster.port(follower)) as c:
            assert c.call("AUTH", "reader", "rpw") == b"OK"
            assert c.call("GET", "pub:1") == b"one"
            assert c.call("GET", "secret") == NOPERM_KEYS
            assert c.call("SET", "pub:1", "x") == error(
                "NOPERM this user has no permissions to run the 'set' command"
            )
        # ACL SETUSER sent to a follower goes through the leader too.
        with RawConn(cluster.port(follower)) as admin:
            assert admin.call("ACL", "SETUSER", "writer", "on", ">wpw", "~*", "+set") == b"OK"
        with RawConn(cluster.port(leader)) as c:
            assert c.call("AUTH", "writer", "wpw") == b"OK"
            assert c.call("SET", "w", "1") == b"OK"
        # Survives a restart of every node.
        for i in cluster.ids:
            cluster.nodes[i].stop()
        cluster.start()
        cluster.wait_leader(timeout=30)
        for i in cluster.ids:
            with RawConn(cluster.port(i)) as c:
                assert c.call("AUTH", "reader", "rpw") == b"OK", i
                assert c.call("GET", "secret") == NOPERM_KEYS
        # Enough writes to compact the log: a new node gets the users with the snapshot.
        leader = cluster.wait_leader(timeout=30)
        with RawConn(cluster.port(leader)) as admin:
            for n in range(60):
                assert admin.call("SET", f"fill{n}", n) == b"OK"
        info = cluster.info_raft(leader)
        assert info["raft_first_index"] > 5, info  # the ACL entries were compacted away
        joiner = cluster.add_node(4, f"127.0.0.1:{cluster.nodes[leader].peer_port}")
        joiner.start()
        wait_until(
            lambda: "installed the leader's snapshot" in joiner.log(), 30, "node 4's snapshot"
        )
        with RawConn(joiner.port) as c:
            assert c.call("AUTH", "reader", "rpw") == b"OK"
            assert c.call("GET", "secret") == NOPERM_KEYS
            assert c.call("ACL", "WHOAMI") == error(
                "NOPERM this user has no permissions to run the 'acl|whoami' command"
            )
        with RawConn(joiner.port) as c:
            assert sorted(c.call("ACL", "USERS")) == [b"default", b"reader", b"writer"]


def acl_log_script(port: int) -> tuple[list[Any], list[Any]]:
    """Refusals of every kind, then ACL LOG (RESP2 and RESP3 shapes) and its arguments."""
    with RawConn(port) as admin:
        assert admin.call("ACL", "LOG", "RESET") == b"OK"
        admin.call("ACL", "SETUSER", "lena", "on", ">lpw", "~app:*", "+get", "+multi", "+exec")
        with RawConn(port) as c:
            c.call("AUTH", "lena", "wrong")
            c.call("AUTH", "lena", "wrong")  # merged with the previous one: count 2
            c.call("AUTH", "lena", "lpw")
            c.call("GET", "other")
            c.call("SET", "app:1", "v")
            c.call("ACL", "WHOAMI")
            c.call("MULTI")
            c.call("GET", "elsewhere")
            c.call("EXEC")
        entries = admin.call("ACL", "LOG")
        others = [
            admin.call("ACL", "LOG", "2"),
            admin.call("ACL", "LOG", "0"),
            admin.call("ACL", "LOG", "-1"),
            admin.call("ACL", "LOG", "x"),
            admin.call("ACL", "LOG", "1", "2"),
        ]
        with RawConn(port, protocol=3) as c3:
            c3.call("HELLO", "3")
            resp3 = c3.call("ACL", "LOG", "1")
        others.append(type(resp3[0]).__name__)
        others.append(admin.call("ACL", "LOG", "RESET"))
        others.append(admin.call("ACL", "LOG"))
        admin.call("ACL", "DELUSER", "lena")
    return entries, others


def test_acl_log_like_redis(node: RespkvProcess, real: RealRedis) -> None:
    ours, our_others = acl_log_script(node.port)
    theirs, their_others = acl_log_script(real.port)

    def fields(entry: list[Any]) -> dict[bytes, Any]:
        return dict(zip(entry[::2], entry[1::2], strict=True))

    def shape(entries: list[Any]) -> list[Any]:
        out = []
        for entry in entries:
            f = fields(entry)
            info = dict(part.split(b"=", 1) for part in f[b"client-info"].split(b" "))
            float(f[b"age-seconds"])  # a double, sent as a bulk string in RESP2
            out.append(
                (
                    [k for k in f],
                    f[b"count"],
                    f[b"reason"],
                    f[b"context"],
                    f[b"object"],
                    f[b"username"],
                    info[b"user"],
                    info[b"cmd"],
                )
            )
        return out

    assert shape(ours) == shape(theirs)
    assert [e[1::2][1:4] for e in ours] == [
        [b"key", b"multi", b"elsewhere"],
        [b"command", b"toplevel", b"acl|whoami"],
        [b"command", b"toplevel", b"set"],
        [b"key", b"toplevel", b"other"],
        [b"auth", b"toplevel", b"AUTH"],
    ]
    assert fields(ours[-1])[b"count"] == 2
    assert len(our_others[0]) == 2 and our_others[1:3] == [[], []]
    assert our_others[3:] == their_others[3:]
    assert shape(our_others[0]) == shape(their_others[0])


def test_described_rules_rebuild_the_same_permissions() -> None:
    """ACL LIST's regenerated rules, applied to a fresh user, allow exactly the same commands
    (what the replicated record relies on), for random rule sequences."""
    import random

    from respkv.kv.acl import CATEGORIES, AclError, build_user, user_from_record
    from respkv.kv.commands import all_commands

    specs = list(all_commands())
    names = [s.name for s in specs] + [sub.name for s in specs for sub in s.subcommands]
    names += ["select|0", "get|x"]
    rng = random.Random(7)
    built = 0
    for _ in range(1500):
        rules = []
        for _ in range(rng.randint(1, 6)):
            what = "@" + rng.choice([*CATEGORIES, "all"]) if rng.random() < 0.4 else None
            rules.append((rng.choice("+-") + (what or rng.choice(names))).encode())
        try:
            user = build_user(None, "u", rules)
        except AclError:
            continue
        built += 1
        again = user_from_record("u", user.describe().encode())
        assert again.allowed == user.allowed, (rules, user.describe())
        assert again.describe() == user.describe()
    assert built > 1000
