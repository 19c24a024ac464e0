#!/usr/bin/env bash
# `make run`: the upstream demo and the gateway on this machine, in the
# foreground, stopped together with Ctrl-C.
set -euo pipefail
BIN=${BIN:-.venv/bin}

secret_file=${DEV_SECRET_FILE:-data/dev-jwt-secret}
if [ -z "${GATEWAY_JWT_SECRET:-}" ]; then
  mkdir -p "$(dirname "$secret_file")"
  if [ ! -s "$secret_file" ]; then
    (umask 077 && "$BIN/python" -c 'import secrets; print(secrets.token_urlsafe(48))' > "$secret_file")
    echo "make run: generated a JWT secret for local use in $secret_file"
  fi
  GATEWAY_JWT_SECRET=$(cat "$secret_file")
  export GATEWAY_JWT_SECRET
  echo "make run: using the local JWT secret (set GATEWAY_JWT_SECRET for a real one)"
fi

export GATEWAY_STORE_URL=${GATEWAY_STORE_URL:-memory://}
port=${GATEWAY_LISTEN_PORT:-8080}
upstream_port=${UPSTREAM_PORT:-9000}
export GATEWAY_UPSTREAM_URL=${GATEWAY_UPSTREAM_URL:-http://127.0.0.1:$upstream_port}
export GATEWAY_LOG_FORMAT=${GATEWAY_LOG_FORMAT:-text}

"$BIN/upstream-demo" --host 127.0.0.1 --port "$upstream_port" &
upstream_pid=$!
trap 'kill "$upstream_pid" 2>/dev/null || true' EXIT

case "$GATEWAY_STORE_URL" in
  memory://*) echo "make run: sessions in the embedded store (one process, lost on restart)" ;;
  *) echo "make run: sessions in $GATEWAY_STORE_URL" ;;
esac
cat <<TXT
make run: gateway on http://localhost:$port, upstream demo on :$upstream_port
make run: try first
  curl -i -X POST http://localhost:$port/user/register \\
       -H 'Content-Type: application/json' \\
       -d '{"username": "joe", "password": "correct horse battery"}'
TXT
"$BIN/gateway" serve --config config.yaml
