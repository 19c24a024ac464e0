# One image for the gateway and the upstream demo (different commands).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY upstream_demo ./upstream_demo
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --home-dir /app gateway \
    && mkdir -p /app/data && chown gateway /app/data
COPY config.yaml ./config.yaml

USER gateway
EXPOSE 8080 9090
CMD ["gateway", "serve", "--config", "/app/config.yaml"]
