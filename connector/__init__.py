"""Mail-flow user provisioning connector.

Reads gateway delivery logs, decides which recipients are real users
(SmartCreate / SMTP Autocreate), cross-checks them against the mail
directory and provisions them in the compliance directory.
"""

__version__ = "0.1.0"
