#!/usr/bin/env bash
# Debian packages the tests need beside Python: PostgreSQL (scripts/postgres.sh
# installs it on demand), headless Chromium and a CJK font for the report
# screenshots. Installs only what is missing; needs root (or sudo) for apt.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
dpkg -s fonts-noto-cjk >/dev/null 2>&1 || missing+=(fonts-noto-cjk)
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
echo "installing ${missing[*]} (Debian packages) …" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
