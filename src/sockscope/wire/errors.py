"""Pure: the one error type the decoders raise."""


class ParseError(ValueError):
    """Input bytes or text that do not follow the kernel's layout."""
