"""Pure parts of the eBPF source: an assembler, a BTF reader, the tracepoint program's
builder, and the decoders of what the program writes to its ring buffer.

Nothing here loads a program or touches a map; ``sockscope.sources.bpf`` does that with
the bytes built here. Kernel names (``BPF_JNE``, ``bpf_ringbuf_reserve``) are kept
verbatim so they can be grepped against ``include/uapi/linux/bpf.h``.
"""
