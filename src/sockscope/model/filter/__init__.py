"""Pure: the filter language shared by every command (see ``render_filter_help``).

``parse_filter`` turns text in either syntax (sockscope's ``port == 22`` or ss's
``sport = :22``) into a ``Filter``; ``Filter.matches`` evaluates it on an ``Endpoint``
and ``sockscope.query.pushdown`` gives the part the kernel can evaluate during the dump.
"""

from sockscope.model.filter.core import Filter, parse_filter
from sockscope.model.filter.errors import FilterError
from sockscope.model.filter.help import render_filter_help

__all__ = ["Filter", "FilterError", "parse_filter", "render_filter_help"]
