#!/usr/bin/python3
"""Drives the Redis gateway with Debian's python3-redis (process_resp_test).

Usage: resp_clients.py DEFAULT_PORT AUTH_PORT ADMIN_SECRET READER_SECRET
  DEFAULT_PORT: a node whose connections act as the admin until they AUTH
  AUTH_PORT:    a node where connections must AUTH first
Prints one line per check and exits non-zero at the first failure.
"""
import sys
import threading

import redis

default_port, auth_port = int(sys.argv[1]), int(sys.argv[2])
admin_secret, reader_secret = sys.argv[3], sys.argv[4]


def check(what, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + what + (": " + str(detail) if detail else ""))
    if not ok:
        sys.exit(1)


def raises(what, call, needle):
    try:
        got = call()
    except (redis.ResponseError, redis.AuthenticationError) as e:
        # redis-py raises NOAUTH and WRONGPASS as AuthenticationError.
        check(what, needle in str(e), e)
        return
    check(what, False, "no error, got %r" % (got,))


r = redis.Redis(host="127.0.0.1", port=default_port, socket_timeout=10)
check("ping", r.ping() is True)
check("set", r.set("py:a", "1") is True)
check("get", r.get("py:a") == b"1")
check("overwrite", r.set("py:a", "2") and r.get("py:a") == b"2")
check("absent key is None", r.get("py:absent") is None)

# Binary values: every byte value, CR/LF and NUL included.
blob = bytes(range(256)) * 4
r.set(b"py:bin\x00\r\n", blob)
check("binary key and value", r.get(b"py:bin\x00\r\n") == blob)

# MSET/MGET, EXISTS, DEL with Redis's counts.
check("mset", r.mset({"py:m1": "x", "py:m2": "y"}) is True)
check("mget", r.mget(["py:m1", "py:absent", "py:m2"]) == [b"x", None, b"y"])
check("exists counts each name", r.exists("py:m1", "py:m1", "py:absent") == 2)
check("del counts live keys", r.delete("py:m1", "py:absent") == 1)
check("deleted", r.get("py:m1") is None)

# Pipelining: 500 writes then 500 reads in one round trip each.
pipe = r.pipeline(transaction=False)
for i in range(500):
    pipe.set("py:p%d" % i, "v%d" % i)
check("pipelined sets", all(x is True for x in pipe.execute()))
pipe = r.pipeline(transaction=False)
for i in range(500):
    pipe.get("py:p%d" % i)
check("pipelined gets in order", pipe.execute() == [b"v%d" % i for i in range(500)])

# Concurrent clients, each on its own connection.
errors = []


def worker(n):
    c = redis.Redis(host="127.0.0.1", port=default_port, socket_timeout=10)
    try:
        for i in range(100):
            key = "py:t%d:%d" % (n, i)
            c.set(key, key)
            if c.get(key) != key.encode():
                errors.append("thread %d read back a wrong value for %s" % (n, key))
    except Exception as e:  # reported below
        errors.append("thread %d: %r" % (n, e))


threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join(60)
check("8 concurrent clients x 100 set/get", not errors and not any(t.is_alive() for t in threads),
      errors[:3])

# Siblings: two blind KV.PUTs, GET refuses to pick, KV.GETALL shows both with
# the context, KV.PUT with that context resolves them.
r.execute_command("KV.PUT", "py:sib", "", "x")
r.execute_command("KV.PUT", "py:sib", "", "y")
raises("GET of siblings", lambda: r.get("py:sib"), "SIBLINGS 2")
context, values = r.execute_command("KV.GETALL", "py:sib")
check("KV.GETALL", sorted(values) == [b"x", b"y"] and len(context) > 0, values)
r.execute_command("KV.PUT", "py:sib", context, "z")
check("KV.PUT with the context resolves", r.get("py:sib") == b"z")

# Consistency per connection.
check("KV.CONSISTENCY all", r.execute_command("KV.CONSISTENCY", "all", "strict"))
check("level reported", r.execute_command("KV.CONSISTENCY") == b"all strict")
check("get at all", r.get("py:a") == b"2")

raises("unknown command", lambda: r.execute_command("LPUSH", "l", "x"), "unknown command")
raises("SET NX", lambda: r.set("py:a", "3", nx=True), "not supported")

# A node that wants AUTH: refused before, served after, with the grants of the user.
anonymous = redis.Redis(host="127.0.0.1", port=auth_port, socket_timeout=10)
check("ping without AUTH", anonymous.ping() is True)
raises("get without AUTH", lambda: anonymous.get("py:a"), "Authentication required")
raises("wrong secret", lambda: redis.Redis(host="127.0.0.1", port=auth_port, username="admin",
                                           password=reader_secret).ping(), "WRONGPASS")
admin = redis.Redis(host="127.0.0.1", port=auth_port, username="admin", password=admin_secret)
check("admin after AUTH", admin.get("py:a") == b"2")
admin.set("pub:x", "public")
reader = redis.Redis(host="127.0.0.1", port=auth_port, username="reader", password=reader_secret)
check("reader reads under its prefix", reader.get("pub:x") == b"public")
raises("reader may not write", lambda: reader.set("pub:x", "mine"), "no write grant")
raises("reader may not read elsewhere", lambda: reader.get("py:a"), "no read grant")
print("all checks passed")
