#!/usr/bin/env python3
"""The cost of a uniqueness index on random keys, in the shape of device_keys (BENCHMARKS.md, issue 12).

Inserts 1,000,000 rows into a WITHOUT ROWID table keyed by a 16-octet BLOB, 2,048 per transaction, in WAL mode, and
prints the CPU seconds. Usage: scripts/bench-key-index.py [random|sequential|sorted] [CACHE_SIZE_PRAGMA] [DB_PATH]
"""
import os
import sqlite3
import sys
import time

order = sys.argv[1] if len(sys.argv) > 1 else "random"
cache = int(sys.argv[2]) if len(sys.argv) > 2 else -2000
path = sys.argv[3] if len(sys.argv) > 3 else "/tmp/metertrust-key-index.sqlite"
for p in (path, path + "-wal", path + "-shm"):
    if os.path.exists(p):
        os.remove(p)
db = sqlite3.connect(path, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute(f"PRAGMA cache_size={cache}")
db.execute("CREATE TABLE device_keys (key BLOB PRIMARY KEY CHECK(length(key)=16), eui64 TEXT NOT NULL) WITHOUT ROWID")


def key(n):
    return n.to_bytes(16, "big") if order == "sequential" else os.urandom(16)


cpu, wall = time.process_time(), time.time()
for r in range(500):
    rows = [(key(r * 2048 + i), "%016x" % (r * 2048 + i)) for i in range(2048)]
    if order == "sorted":
        rows.sort()
    db.execute("BEGIN")
    db.executemany("INSERT INTO device_keys VALUES (?, ?) ON CONFLICT (key) DO NOTHING", rows)
    db.execute("COMMIT")
print(f"{order} keys, cache_size {cache}: CPU {time.process_time() - cpu:.2f} s, wall {time.time() - wall:.2f} s, "
      f"{os.path.getsize(path) / 1e6:.0f} MB")
