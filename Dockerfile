# Minimal image: runs one cycle per start (schedule it with cron or a Kubernetes
# CronJob). The scheduler, health check and PostgreSQL come with a later issue.
FROM python:3.11-slim

RUN useradd --system --uid 10001 --home-dir /var/lib/connector --create-home connector
WORKDIR /opt/connector
COPY pyproject.toml README.md ./
COPY connector ./connector
COPY jobs ./jobs
RUN pip install --no-cache-dir .

USER connector
# Mount the config at /etc/connector/connector.yaml and a writable volume at
# /var/lib/connector (point state.url there); secrets come from the environment.
VOLUME ["/var/lib/connector"]
ENTRYPOINT ["connector"]
CMD ["sync", "-c", "/etc/connector/connector.yaml"]
