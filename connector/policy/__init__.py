"""Pure rules: no I/O, no clock reads (``now`` is an argument), no logging."""
