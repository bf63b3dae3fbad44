"""Recordings: events kept in SQLite, read back for replay and statistics."""
