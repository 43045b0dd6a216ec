"""Sending mail (the daily digest): the ``Mailer`` protocol and its SMTP adapter."""
