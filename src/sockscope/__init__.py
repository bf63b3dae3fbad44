"""sockscope."""
