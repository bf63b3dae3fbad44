"""``python -m sockscope``."""

from sockscope.cli.main import entry_point

entry_point()
