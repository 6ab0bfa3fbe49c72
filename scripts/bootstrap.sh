#!/usr/bin/env bash
# Install everything resourced needs on a fresh Debian/Ubuntu machine, idempotently:
# system packages (redis-server for the local stack, ffmpeg/ffprobe as the independent
# decoder in tests and the benchmark's baseline, promtool and docker-compose for the deploy/
# checks) and a virtualenv with the project.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
# The default test suite plays exported clips in a real browser.
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need+=(chromium)
# the reliability tests run against RabbitMQ too (CELERY_BROKER_URL=amqp://...)
command -v rabbitmq-server >/dev/null 2>&1 || [ -x /usr/sbin/rabbitmq-server ] || need+=(rabbitmq-server)
# tests/unit/test_deploy.py: promtool checks and unit-tests the alert rules, docker-compose
# validates the trial compose file (neither runs a container). Debian ships promtool only in
# the prometheus package, whose server a systemd machine then starts on :9090; stop it with
# `systemctl disable --now prometheus` where it is not wanted.
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
command -v python3 >/dev/null 2>&1 || need+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
for extra in ${BOOTSTRAP_EXTRA_PACKAGES:-}; do
  command -v "$extra" >/dev/null 2>&1 || need+=("$extra")
done
if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "bootstrap: installing ${need[*]}" >&2
  # Wait for another apt (a second shell's `make demo`, unattended upgrades) instead of failing
  # at once on its lock.
  wait_lock=(-o DPkg::Lock::Timeout=600)
  $sudo apt-get "${wait_lock[@]}" update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get "${wait_lock[@]}" install -y -qq --no-install-recommends \
    "${need[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "bootstrap: installing Python packages into .venv" >&2
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev]"
  rm -f .venv/.installed-*
  touch "$stamp"
fi
