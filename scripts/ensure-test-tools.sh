#!/usr/bin/env bash
# Make sure the programs the tests start exist: redis-server always, and a
# docker compose client for checking docker-compose.yml when one can be had.
# PostgreSQL, for the user database tests, is started (or installed) on a
# best-effort basis: where it cannot be had, those tests skip and say why.
set -euo pipefail

PG_HOST=127.0.0.1
PG_PORT=${PG_PORT:-5432}

apt_install() {
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    return 1
  fi
  if [ -z "${APT_UPDATED:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! command -v redis-server >/dev/null; then
  echo "redis-server is missing: installing it from Debian's packages"
  apt_install redis-server || {
    echo "cannot install redis-server here; install it and run again" >&2
    exit 1
  }
fi

if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null; then
  echo "no docker compose client: installing docker-compose for the compose check"
  apt_install docker-compose || echo "docker-compose unavailable; that test will skip"
fi

postgres_answers() {
  command -v pg_isready >/dev/null && pg_isready -q -h "$PG_HOST" -p "$PG_PORT"
}

# start, reload...: applied to every installed cluster, failures ignored.
each_postgres_cluster() {
  local version
  for version in $(ls /etc/postgresql 2>/dev/null); do
    pg_ctlcluster --skip-systemctl-redirect "$version" main "$1" || true
  done
}

# A server this script just installed: let the tests in as the superuser from
# loopback without a password, as the machines the tests were written on do.
trust_loopback_superuser() {
  local hba
  for hba in /etc/postgresql/*/main/pg_hba.conf; do
    [ -f "$hba" ] || continue
    grep -q "^host all postgres $PG_HOST/32 trust" "$hba" \
      || sed -i "1i host all postgres $PG_HOST/32 trust" "$hba"
  done
}

# TEST_POSTGRES_URL names a server elsewhere: nothing to do here.
if [ -z "${TEST_POSTGRES_URL:-}" ] && ! postgres_answers; then
  if [ -d /etc/postgresql ] && command -v pg_ctlcluster >/dev/null; then
    echo "PostgreSQL is installed but not answering: starting it"
    each_postgres_cluster start
  elif apt_install postgresql; then
    echo "PostgreSQL was missing: installed it from Debian's packages"
    trust_loopback_superuser
    each_postgres_cluster start
    # The package may have started it before the change above.
    each_postgres_cluster reload
  fi
  for _ in $(seq 1 20); do
    postgres_answers && break
    sleep 0.5
  done
  postgres_answers || echo "PostgreSQL unavailable; the tests that need it will skip"
fi
