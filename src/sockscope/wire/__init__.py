"""Pure decoders and encoders: bytes or text in, typed records out.

Nothing in this package opens a file, a socket or reads the clock; a test walks its AST
to keep it that way. Kernel names are kept verbatim so they can be grepped against
``include/uapi/linux/*.h``.
"""
