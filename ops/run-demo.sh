#!/usr/bin/env bash
# Run the web server, a Celery worker and Celery beat together; Ctrl-C stops all three.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p var
pids=()
stop() {
  trap - INT TERM EXIT
  echo; echo "Stopping web, worker and beat..."
  kill "${pids[@]}" 2>/dev/null
  wait "${pids[@]}" 2>/dev/null
  exit 0
}
trap stop INT TERM EXIT

# No proxy buffers the demo's answers: gthread workers, so that slow readers
# of the ledger's downloads hold a thread each, not every worker
# (ops/gunicorn.conf.py; README "Running it in production" puts nginx in front).
export GUNICORN_THREADS="${GUNICORN_THREADS:-4}"

.venv/bin/gunicorn sun_commune.wsgi:application -c ops/gunicorn.conf.py & pids+=($!)
.venv/bin/celery -A sun_commune worker --loglevel=INFO --concurrency=2 & pids+=($!)
.venv/bin/celery -A sun_commune beat --loglevel=INFO --schedule=var/celerybeat-schedule & pids+=($!)

sleep 3
cat <<MSG

  Sun Commune is running at http://${BIND:-127.0.0.1:8000}/
  The demo logins are listed above (password: sun-commune-demo) and in the README.
  Press Ctrl-C to stop the web server, the worker and beat.

MSG
wait -n "${pids[@]}"
echo "One of the processes stopped; stopping the others." >&2
stop
