"""The review console in the browser (``connector serve``, docs/console.md): runs, the review queue with
approve / deny / block, one address's story, users per org, health and an audit log, behind sign-in."""
