#!/usr/bin/env python3
"""What the browser tests arrange in an embedded app's bus (its `bus.db`,
SQLite in WAL mode, open in the running app: every change here is one short
transaction, as another connection of the app would make it).

  embedded-bus.py dead-letter BUS_DB SUBSCRIBER EVENT_ID ROUTING_KEY ATTEMPTS ERROR < envelope.json
      a dead letter, as the consumer would have left it after its last attempt
  embedded-bus.py hold BUS_DB NAME SUBSCRIBER ROUTING_KEY NEEDLE
      from now on, deliveries of ROUTING_KEY to SUBSCRIBER whose envelope
      contains NEEDLE are held (never due): that consumer does not see them;
      returns once the running app honours the hold
  embedded-bus.py held BUS_DB NAME SUBSCRIBER ROUTING_KEY NEEDLE
      prints how many deliveries the hold keeps now
  embedded-bus.py release BUS_DB NAME SUBSCRIBER ROUTING_KEY NEEDLE
      ends the hold NAME and makes what it held due now (the consumer looks
      for due deliveries at least every 200 ms); returns once the app has let
      go of it

A hold is two things, one for each way an event reaches a consumer:
- a row in `holds`, for the events the consumer reads straight from their
  producer's outbox. The consumer reads its holds at each sweep (at least
  every 200 ms), marks a new one 'holding', and from then on parks each
  matching event in its queue (`deliveries`) as never due. `hold` waits for
  that mark, so what is published after it returns is held. `release` marks
  the row 'released' and waits until the consumer removed it.
- a trigger on `deliveries`, for what is put into its queue (a retry, a
  replay): such a delivery is inserted and made never due in one
  transaction, so the consumer can never fetch it in between.
"""
import sqlite3
import sys
import time
from datetime import datetime, timezone

# next_attempt_at (ms since the epoch) of a held delivery: year ~287,000
# (the bus's own constant, `HELD`).
HELD = 9_000_000_000_000_000
# How long the app may take to honour a hold or let go of it.
TAKEN_WITHIN_S = 15


def connect(path):
    db = sqlite3.connect(path, timeout=15, isolation_level=None)
    db.execute("PRAGMA busy_timeout = 15000")
    return db


def wait_for(db, name, done_sql, what):
    deadline = time.monotonic() + TAKEN_WITHIN_S
    while True:
        row = db.execute(f"SELECT {done_sql} FROM holds WHERE name = ?", (name,)).fetchone()
        if row is None or row[0]:
            return
        if time.monotonic() >= deadline:
            raise SystemExit(f"hold {name}: the app did not {what} within {TAKEN_WITHIN_S} s (is it running?)")
        time.sleep(0.01)


def trigger_name(name):
    safe = "".join(c if c.isalnum() else "_" for c in name)
    return f"web_tests_hold_{safe}"


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    command, path = argv[1], argv[2]
    db = connect(path)
    if command == "dead-letter":
        subscriber, event_id, routing_key, attempts, error = argv[3:8]
        envelope = sys.stdin.read()
        failed_at = datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
        db.execute(
            "INSERT INTO dead_letters (subscriber, event_id, routing_key, envelope, attempts, error, failed_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (subscriber, event_id, routing_key, envelope, int(attempts), error, failed_at),
        )
    elif command == "hold":
        name, subscriber, routing_key, needle = argv[3:7]
        # A trigger's body takes no parameters: the values are quoted here.
        q = lambda s: "'" + s.replace("'", "''") + "'"
        db.execute(
            f"CREATE TRIGGER IF NOT EXISTS {trigger_name(name)} AFTER INSERT ON deliveries"
            f" WHEN NEW.subscriber = {q(subscriber)} AND NEW.routing_key = {q(routing_key)}"
            f" AND instr(NEW.envelope, {q(needle)}) > 0"
            f" BEGIN UPDATE deliveries SET next_attempt_at = {HELD}"
            " WHERE subscriber = NEW.subscriber AND event_id = NEW.event_id AND copy = NEW.copy; END"
        )
        db.execute(
            "INSERT INTO holds (name, subscriber, routing_key, needle) VALUES (?, ?, ?, ?)",
            (name, subscriber, routing_key, needle),
        )
        wait_for(db, name, "state = 'holding'", "honour it")
    elif command == "held":
        name, subscriber, routing_key, needle = argv[3:7]
        (n,) = db.execute(
            "SELECT COUNT(*) FROM deliveries WHERE subscriber = ? AND routing_key = ?"
            " AND instr(envelope, ?) > 0 AND next_attempt_at >= ?",
            (subscriber, routing_key, needle, HELD),
        ).fetchone()
        print(n)
    elif command == "release":
        name, subscriber, routing_key, needle = argv[3:7]
        db.execute("BEGIN IMMEDIATE")
        db.execute(f"DROP TRIGGER IF EXISTS {trigger_name(name)}")
        db.execute("UPDATE holds SET state = 'released' WHERE name = ?", (name,))
        n = db.execute(
            "UPDATE deliveries SET next_attempt_at = 0 WHERE subscriber = ? AND routing_key = ?"
            " AND instr(envelope, ?) > 0 AND next_attempt_at >= ?",
            (subscriber, routing_key, needle, HELD),
        ).rowcount
        db.execute("COMMIT")
        wait_for(db, name, "0", "let go of it")
        print(n)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
