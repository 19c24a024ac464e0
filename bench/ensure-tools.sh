#!/usr/bin/env bash
# Make sure the programs `make bench` compares and drives are installed:
# nginx, HAProxy, wrk and redis-server, from Debian's packages.  The package
# index is refreshed once, and only when something is missing.
set -euo pipefail

missing=()
for tool in wrk nginx haproxy redis-server; do
  if ! command -v "$tool" >/dev/null && ! [ -x "/usr/sbin/$tool" ]; then
    missing+=("$tool")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "bench: missing ${missing[*]}; install them (Debian: apt-get install ${missing[*]})" >&2
  exit 1
fi

# Installing a server package may start it (port 80 for nginx) where no
# policy-rc.d forbids that; whatever the installer starts is stopped again.
was_running() { pgrep -x "$1" >/dev/null; }
before=()
for tool in nginx haproxy redis-server; do
  if was_running "$tool"; then before+=("$tool"); fi
done

echo "bench: installing ${missing[*]} from Debian's packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null

for tool in "${missing[@]}"; do
  case " ${before[*]} " in *" $tool "*) continue ;; esac
  if was_running "$tool" && [ -x "/etc/init.d/$tool" ]; then
    echo "bench: the $tool package started a service; stopping it"
    "/etc/init.d/$tool" stop >/dev/null || true
  fi
done
