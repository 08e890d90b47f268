#!/usr/bin/env bash
# Shared set-up for the README's commands: a project virtualenv in .venv with
# the project and its test and benchmark extras installed. Re-installs only when
# pyproject.toml changed. Source it: `. scripts/setup.sh`.
# Sourced in an operator's own terminal, it leaves that shell's options as they were (an
# operator trial: `set -e` stayed on, and the first refused command closed the terminal).
_taskforce_shell_options="$(set +o)"
case $- in *e*) _taskforce_shell_options+=$'\nset -o errexit' ;; esac  # $(…) reports it off
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
VENV="$ROOT/.venv"
if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV …" >&2
  "$PY" -m venv "$VENV" || { echo "python3 -m venv failed: apt-get install -y python3-venv" >&2; eval "$_taskforce_shell_options"; return 1 2>/dev/null || exit 1; }
fi
STAMP="$VENV/.taskforce-installed"
WANT="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "installing dependencies into $VENV (first run takes a minute or two) …" >&2
  "$VENV/bin/python" -m pip install -q --upgrade pip >&2
  "$VENV/bin/python" -m pip install -q -e "$ROOT[test,bench]" >&2
  echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
cd "$ROOT"
eval "$_taskforce_shell_options"
unset _taskforce_shell_options
