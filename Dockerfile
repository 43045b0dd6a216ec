# The connector as a service: `connector run` keeps the job schedule (see docs/deploy.md).
# Works with a read-only root filesystem: everything it writes goes to the
# /var/lib/connector volume (SQLite state, or nothing at all with PostgreSQL).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CONNECTOR_CONFIG=/etc/connector/connector.yaml

RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/connector --create-home connector
WORKDIR /opt/connector
COPY pyproject.toml README.md ./
COPY connector ./connector
COPY jobs ./jobs
RUN pip install --no-cache-dir .

USER 10001:10001
WORKDIR /var/lib/connector
# Mount the config read-only at /etc/connector/connector.yaml; secrets come from
# the environment or mounted files ({env: NAME} / {file: PATH} in the config).
VOLUME ["/var/lib/connector"]
# Prometheus metrics when monitoring.metrics_port is set to 9108; the review console
# (the same image with `--entrypoint connector` and `serve --host 0.0.0.0`, docs/console.md) on 8080.
EXPOSE 9108 8080
HEALTHCHECK --interval=60s --timeout=30s --start-period=60s --retries=3 CMD ["connector", "health"]
ENTRYPOINT ["connector", "run"]
CMD []
