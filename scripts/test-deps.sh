#!/usr/bin/env bash
# Installs what the test suite needs on a Debian 12 machine (root, or sudo): redis-server (the
# Redis store tests start their own), SIPp (Debian's sip-tester: the live tests' SIP callers), and
# real FreeSWITCH 1.11 and 1.10.12 from ../shared/freeswitch/dist and dist-1.10 (the live tests start
# their own nodes),
# Chromium and its WebDriver (Debian's chromium and chromium-driver: the dashboard's browser
# tests), Schemathesis from PyPI (the API fuzzer run against the lab), and Garage from
# ../shared/garage (the S3 server of the object-storage tests). Does
# nothing for what is already there; fails with a clear message when something cannot be had.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v sipp >/dev/null 2>&1 || missing+=(sip-tester)
[ -x "${SWITCHYARD_CHROMIUM:-/usr/bin/chromium}" ] || missing+=(chromium)
[ -x "${SWITCHYARD_CHROMEDRIVER:-/usr/bin/chromedriver}" ] || missing+=(chromium-driver)
# jq: the README's lab tour pipes answers through it, and tests/cli/docs.rs runs the tour.
command -v jq >/dev/null 2>&1 || missing+=(jq)
# xz: Garage's build in ../shared/garage is xz-compressed.
command -v xz >/dev/null 2>&1 || missing+=(xz-utils)
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The tests start their own servers; the packaged service is not needed.
  ($SUDO service redis-server stop || true) >/dev/null 2>&1
fi

# Both FreeSWITCH lines the live tests run against: 1.11 (the default) and 1.10.12 (what
# docker-compose.yml pins and most deployments run), each from its build under ../shared/freeswitch.
install_freeswitch() { # <binary> <dist folder>
  if ! [ -x "$1" ]; then
    if ! [ -f "$2/install.sh" ]; then
      echo "test-deps: no FreeSWITCH at $1 and no $2/install.sh to install one." >&2
      echo "  Put the shared/ folder beside the checkout, or set SWITCHYARD_FREESWITCH_DIST(_1_10)." >&2
      exit 1
    fi
    bash "$2/install.sh" >/dev/null
  fi
}
fs=${SWITCHYARD_FREESWITCH:-/usr/local/freeswitch/bin/freeswitch}
install_freeswitch "$fs" "${SWITCHYARD_FREESWITCH_DIST:-../shared/freeswitch/dist}"
fs110=${SWITCHYARD_FREESWITCH_1_10:-/usr/local/freeswitch-1.10/bin/freeswitch}
install_freeswitch "$fs110" "${SWITCHYARD_FREESWITCH_DIST_1_10:-../shared/freeswitch/dist-1.10}"
# Garage, the S3 server of the object-storage tests, from its build under ../shared/garage.
garage=${SWITCHYARD_GARAGE:-/usr/local/bin/garage}
if ! [ -x "$garage" ]; then
  dist=${SWITCHYARD_GARAGE_DIST:-../shared/garage}
  if ! [ -f "$dist/install.sh" ]; then
    echo "test-deps: no Garage at $garage and no $dist/install.sh to install one." >&2
    echo "  Put the shared/ folder beside the checkout, or set SWITCHYARD_GARAGE_DIST." >&2
    exit 1
  fi
  bash "$dist/install.sh" >/dev/null
fi
# Schemathesis (PyPI), the API fuzzer tests/api/schemathesis.rs runs against the lab.
if ! command -v schemathesis >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check "schemathesis==4.32.5" >/dev/null 2>&1 \
    || { echo "test-deps: pip could not install schemathesis (python3 -m pip install schemathesis)" >&2; exit 1; }
  hash -r
  command -v schemathesis >/dev/null 2>&1 \
    || { echo "test-deps: schemathesis installed but not on PATH ($(python3 -m site --user-base)/bin?)" >&2; exit 1; }
fi
echo "test-deps: $(redis-server --version | cut -d' ' -f1-3), $("${SWITCHYARD_CHROMEDRIVER:-/usr/bin/chromedriver}" --version | cut -d' ' -f1-2), $(sipp -v 2>/dev/null | grep -o 'SIPp v[^ ]*' | head -1), $("$fs" -version | head -1), $("$fs110" -version | head -1), $(schemathesis --version), $("$garage" --version | cut -d' ' -f1-2)"
