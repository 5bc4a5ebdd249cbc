#!/bin/sh
# Installs the services the integration tests start for themselves on a fresh Debian machine:
# Debian's PostgreSQL (its initdb, pg_ctl and psql under /usr/lib/postgresql/VERSION/bin; the
# harness in src/postgres.rs runs a throwaway cluster of its own and never uses the system's), and
# schemathesis from PyPI, pinned in requirements.txt, in a virtualenv at .venv (git-ignored), and
# Debian's coturn (its turnserver binary only: the browser tests start their own on loopback; the
# package's own service is never enabled by it), Debian's redis-server (likewise), and
# systemd-analyze.
# Quiet when everything is already there.
set -eu
cd "$(dirname "$0")"

have_postgres() {
  for bin in /usr/lib/postgresql/*/bin; do
    [ -x "$bin/initdb" ] && [ -x "$bin/pg_ctl" ] && [ -x "$bin/psql" ] && return 0
  done
  return 1
}

# Debian's python3 (not whichever python3 comes first on PATH) is the one python3-venv serves;
# without that package `python3 -m venv` fails for want of ensurepip.
have_venv() {
  [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1
}

need_apt=""
have_postgres || need_apt="$need_apt postgresql"
have_venv || need_apt="$need_apt python3-venv"
[ -x /usr/bin/turnserver ] || need_apt="$need_apt coturn"
# Debian's Redis, for the cluster's tests (tests/src/redis.rs starts one per test on a free port;
# the package's own service is never used).
[ -x /usr/bin/redis-server ] || need_apt="$need_apt redis-server"
# systemd-analyze checks the deployment kit's unit (server/tests/deploy.rs); nothing is started.
command -v systemd-analyze >/dev/null 2>&1 || need_apt="$need_apt systemd"
if [ -n "$need_apt" ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y $need_apt
fi

# The venv is rebuilt whenever requirements.txt differs from the copy stamped into it by the last
# install that went through, so a new pin takes effect and an install broken half-way is retried.
if [ -x .venv/bin/schemathesis ] && cmp -s requirements.txt .venv/requirements.installed; then
  exit 0
fi
rm -rf .venv
/usr/bin/python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check --no-input -r requirements.txt
cp requirements.txt .venv/requirements.installed
