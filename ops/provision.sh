#!/usr/bin/env bash
# Make sure PostgreSQL and Redis answer (and, with --browser, that Debian's
# chromium is there for the browser tests). Starts local servers that are
# installed but stopped; installs the Debian packages when missing and run
# as root; otherwise stops and names what to install. Safe to run again.
set -euo pipefail

want_browser=0
[ "${1:-}" = "--browser" ] && want_browser=1

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
is_root() { [ "$(id -u)" = 0 ]; }
apt_updated=0
apt_install() {
  if ! is_root; then
    echo "Missing: $*. Install it with: sudo apt-get install -y $*" >&2
    exit 1
  fi
  if [ "$apt_updated" = 0 ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# --- PostgreSQL ---------------------------------------------------------------
if [ -n "${DATABASE_URL:-}" ]; then
  say "DATABASE_URL is set: using that server as it is"
else
  if ! command -v pg_lsclusters >/dev/null 2>&1 && ! command -v pg_isready >/dev/null 2>&1; then
    say "Installing PostgreSQL"
    apt_install postgresql
  fi
  if ! pg_isready -q 2>/dev/null; then
    say "Starting PostgreSQL"
    if command -v pg_lsclusters >/dev/null 2>&1; then
      version=$(pg_lsclusters -h | awk 'NR==1 {print $1}')
      if [ -z "$version" ]; then
        echo "PostgreSQL is installed but has no cluster: create one with pg_createcluster." >&2
        exit 1
      fi
      if is_root; then
        pg_ctlcluster --skip-systemctl-redirect "$version" main start
      else
        echo "PostgreSQL is stopped. Start it: sudo pg_ctlcluster $version main start" >&2
        exit 1
      fi
    fi
    for _ in $(seq 1 30); do pg_isready -q && break; sleep 1; done
  fi
  me=$(id -un)
  if ! psql -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
    if is_root; then
      say "Creating a PostgreSQL role for $me"
      su postgres -c "createuser --superuser $me"
    else
      echo "PostgreSQL has no role for $me. Create one: sudo -u postgres createuser --createdb $me" >&2
      exit 1
    fi
  fi
fi

# --- Redis --------------------------------------------------------------------
redis_url=${REDIS_URL:-redis://127.0.0.1:6379/0}
if [ -z "${REDIS_URL:-}" ] && ! (command -v redis-cli >/dev/null 2>&1 && redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1); then
  if ! command -v redis-server >/dev/null 2>&1; then
    say "Installing Redis"
    apt_install redis-server
  fi
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    say "Starting Redis"
    mkdir -p /tmp/sun-commune-redis
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
      --dir /tmp/sun-commune-redis --logfile /tmp/sun-commune-redis/redis.log
    for _ in $(seq 1 20); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 0.5; done
  fi
fi
say "PostgreSQL and Redis ($redis_url) are ready"

# --- Chromium for the browser tests --------------------------------------------
if [ "$want_browser" = 1 ] && [ ! -x /usr/bin/chromium ]; then
  say "Installing Debian's chromium for the browser tests"
  apt_install chromium
fi
# A Chinese font: without one every Chinese character renders as a box and
# the layout checks of the browser tests measure nothing real.
if [ "$want_browser" = 1 ] && ! fc-list :lang=zh 2>/dev/null | grep -q .; then
  say "Installing Debian's fonts-noto-cjk for the browser tests"
  apt_install fonts-noto-cjk
fi
exit 0
