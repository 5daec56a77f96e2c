#!/usr/bin/env python3
"""Redis bytes per connected session with the bus's layout (src/bus/redis/
redis_bus.hpp): per device one pr:{user} sorted-set member (with its key
TTL) and one nd:{instance} set member, and per user one u:{user} channel
subscribed by the node that holds it. Fills a fresh redis-server with N
sessions spread over 7 instances, subscribes the N channels on one
connection, and prints used_memory after minus before, divided by N.

A measurement of the layout, not of a cluster run: one subscriber
connection stands for the nodes' seven, and nothing publishes.

Usage: bench/redis_session_memory.py [N [PORT]]   (100000, 58179)
Starts and stops its own redis-server (no persistence) in a temporary folder.
"""
import random
import socket
import subprocess
import sys
import tempfile
import time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 58179


def cmd(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def used_memory():
    r = subprocess.run(["redis-cli", "-p", str(PORT), "info", "memory"],
                       capture_output=True, text=True).stdout
    for line in r.splitlines():
        if line.startswith("used_memory:"):
            return int(line.split(":")[1])
    raise SystemExit("no answer from redis-server")


def main():
    folder = tempfile.mkdtemp(prefix="parley-redis-mem-")
    server = subprocess.Popen(["redis-server", "--port", str(PORT), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no", "--dir", folder],
                              stdout=subprocess.DEVNULL)
    try:
        for _ in range(50):
            if subprocess.run(["redis-cli", "-p", str(PORT), "ping"],
                              capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        sub = socket.create_connection(("127.0.0.1", PORT))
        time.sleep(0.3)
        before = used_memory()
        instances = ["%016x" % random.getrandbits(64) for _ in range(7)]
        expiry = int(time.time() * 1000) + 30000
        users = [386454241729839104 + i * 4096 for i in range(N)]
        buf = bytearray()
        for i, u in enumerate(users):
            inst, node = instances[i % 7], "n%d" % (i % 7 + 1)
            member = "%d/%s/%s" % (u + 1, inst, node)
            buf += cmd("ZADD", "pr:%d" % u, expiry, member)
            buf += cmd("PEXPIRE", "pr:%d" % u, 30000)
            buf += cmd("SADD", "nd:" + inst, "%d %s" % (u, member))
        subprocess.run(["redis-cli", "-p", str(PORT), "--pipe"], input=bytes(buf),
                       capture_output=True, check=True)
        for k in range(0, N, 1000):
            sub.sendall(cmd("SUBSCRIBE", *["u:%d" % u for u in users[k:k + 1000]]))
        sub.settimeout(60)
        marker = b"$9\r\nsubscribe\r\n"
        seen, data = 0, b""
        while seen < N:
            data += sub.recv(1 << 20)
            cut = data.rfind(b"\r\n")
            seen += data[:cut + 2].count(marker)
            data = data[cut + 2:]
        time.sleep(3)
        after = used_memory()
        print("sessions=%d used_memory_before=%d after=%d bytes_per_session=%.0f"
              % (N, before, after, (after - before) / N))
    finally:
        server.terminate()
        server.wait()
        subprocess.run(["rm", "-rf", folder])


main()
