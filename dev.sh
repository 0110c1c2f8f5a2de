#!/usr/bin/env bash
# One entry point for people and CI: sets up what is missing, then runs the service, the tests or the benchmark.
#   bash dev.sh run      serve on the embedded defaults (127.0.0.1:8000, ./data)
#   bash dev.sh test     run the test suite (extra args go to pytest)
#   bash dev.sh bench    run the benchmark (bench/README in README.md); `bench quality` the corpus quality benchmark
set -euo pipefail
cd "$(dirname "$0")"

apt_packages=()
command -v python3 >/dev/null 2>&1 || apt_packages+=(python3)
command -v tesseract >/dev/null 2>&1 || apt_packages+=(tesseract-ocr tesseract-ocr-eng tesseract-ocr-osd)
if [ "${1:-}" = "test" ] && ! command -v chromium >/dev/null 2>&1; then
  apt_packages+=(chromium)  # the web page's end-to-end test drives headless Chromium
fi
if [ "${1:-}" = "test" ]; then
  # The distributed mode's tests start throwaway PostgreSQL and Redis servers (tests/servers.py).
  command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || apt_packages+=(postgresql)
  command -v redis-server >/dev/null 2>&1 || apt_packages+=(redis-server)
fi
apt_install() {
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "dev.sh: installing $* with apt-get" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
if [ ${#apt_packages[@]} -gt 0 ]; then
  apt_install "${apt_packages[@]}"
fi

if [ ! -x .venv/bin/pip ]; then
  # Debian ships venv without pip unless python3-venv is installed: try, and install it if needed.
  if ! python3 -m venv .venv >/dev/null 2>&1; then
    rm -rf .venv
    apt_install python3-venv
    python3 -m venv .venv
  fi
fi
# Reinstall only when the dependency list changed since the last install.
if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e '.[test]'
  touch .venv/.installed
fi

command="${1:-run}"
[ $# -gt 0 ] && shift
case "$command" in
  run) exec .venv/bin/python run.py "$@" ;;
  test) exec .venv/bin/python -m pytest "$@" ;;
  bench)
    if [ "${1:-}" = quality ]; then shift; exec .venv/bin/python -m bench.quality "$@"; fi
    exec .venv/bin/python -m bench.run "$@" ;;
  *) echo "usage: bash dev.sh run|test|bench" >&2; exit 2 ;;
esac
