"""Directory cross-check: the mail server's directory is the ground truth about users."""
