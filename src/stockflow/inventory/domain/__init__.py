"""Pure inventory domain: commands, events, the per-SKU stock model and its errors. No I/O."""
