"""Active catch-all probes of downstream mail servers."""
