"""The recording format (version 1), documented in the README.

One SQLite file in WAL mode. ``PRAGMA application_id`` marks it as a sockscope
recording and ``PRAGMA user_version`` holds the schema version, so a foreign or newer
file is refused with a clear message instead of being misread.
"""

APPLICATION_ID = 0x736F636B  # "sock"
SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id             INTEGER PRIMARY KEY,
    time           REAL NOT NULL,     -- seconds since the epoch
    mono           REAL NOT NULL,     -- monotonic seconds (same clock within a recording)
    event          TEXT NOT NULL,     -- opened, accepted, state, closed, listen, ...
    source         TEXT NOT NULL,     -- poll, destroy, trace
    proto          TEXT NOT NULL,
    family         INTEGER,
    state          TEXT NOT NULL,
    old_state      TEXT,
    local_address  TEXT,
    local_port     INTEGER,
    remote_address TEXT,
    remote_port    INTEGER,
    recv_q         INTEGER,
    send_q         INTEGER,
    uid            INTEGER,
    inode          INTEGER,
    cookie         INTEGER,
    pid            INTEGER,
    process        TEXT,
    duration       REAL,              -- closed: seconds from open to close
    bytes_sent     INTEGER,
    bytes_received INTEGER,
    rtt_us         INTEGER,
    retrans        INTEGER,
    amount         INTEGER            -- dropped: new drops; lost: lost events
);
CREATE INDEX IF NOT EXISTS events_time ON events (time);
"""

COLUMNS = (
    "time",
    "mono",
    "event",
    "source",
    "proto",
    "family",
    "state",
    "old_state",
    "local_address",
    "local_port",
    "remote_address",
    "remote_port",
    "recv_q",
    "send_q",
    "uid",
    "inode",
    "cookie",
    "pid",
    "process",
    "duration",
    "bytes_sent",
    "bytes_received",
    "rtt_us",
    "retrans",
    "amount",
)
