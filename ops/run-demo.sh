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
