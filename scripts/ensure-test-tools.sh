#!/usr/bin/env bash
# Make sure the programs the tests start exist: redis-server always, and a
# docker compose client for checking docker-compose.yml when one can be had.
set -euo pipefail

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
