"""The recording format (version 2), documented in the README.

One SQLite file in WAL mode. ``PRAGMA application_id`` marks it as a sockscope
recording and ``PRAGMA user_version`` holds the schema version, so a foreign or newer
file is refused with a clear message instead of being misread.
"""

APPLICATION_ID = 0x736F636B  # "sock"
SCHEMA_VERSION = 2
#: The oldest format this version still reads (and upgrades when appending to it).
OLDEST_VERSION = 1

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
    amount         INTEGER,           -- dropped: new drops; lost: lost events
    duration_lower_bound INTEGER      -- 1: the socket opened before it was seen (version 2)
);
CREATE INDEX IF NOT EXISTS events_time ON events (time);
"""

# Version 2: every listener's queue at each poll. A listener is named once (address,
# port, family and its socket cookie, which tells a listener from its successor on the
# same port), and each poll adds one small row per listener.
#: A version 1 file becomes a version 2 one: its events gain this column (NULL in the old rows).
EVENTS_V2 = "ALTER TABLE events ADD COLUMN duration_lower_bound INTEGER"

SCHEMA_V2 = """
CREATE TABLE IF NOT EXISTS listeners (
    id             INTEGER PRIMARY KEY,
    family         INTEGER NOT NULL,
    local_address  TEXT,
    local_port     INTEGER NOT NULL,
    cookie         INTEGER,
    pid            INTEGER,
    process        TEXT
);
CREATE TABLE IF NOT EXISTS queue_samples (
    time           REAL NOT NULL,     -- seconds since the epoch, when the poll was read
    mono           REAL NOT NULL,
    listener       INTEGER NOT NULL REFERENCES listeners (id),
    accept_queue   INTEGER NOT NULL,  -- accepted by TCP, not yet by the application
    backlog        INTEGER NOT NULL,  -- effective: min(listen() backlog, somaxconn)
    capacity       INTEGER NOT NULL,  -- what the queue admits: backlog + 1
    half_open      INTEGER NOT NULL,  -- SYN_RECV request sockets
    drops          INTEGER            -- the listener's sk_drops counter, when known
);
"""

QUEUE_COLUMNS = ("time", "mono", "listener", "accept_queue", "backlog", "capacity", "half_open", "drops")
LISTENER_COLUMNS = ("family", "local_address", "local_port", "cookie", "pid", "process")

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
    "duration_lower_bound",
)
