"""Pure values that flow through the pipeline: no I/O, no clock, no logging."""
