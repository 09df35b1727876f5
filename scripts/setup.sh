#!/usr/bin/env bash
# Creates .venv with the project installed. System packages come from apt, installed here,
# because CI and new machines start bare.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for pkg in libusb-1.0-0 socat fonts-dejavu-core ser2net; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "setup: missing system packages ${need[*]}: run 'sudo apt-get install ${need[*]}'" >&2; exit 1
  fi
fi
if [ ! -x .venv/bin/python ]; then
  python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[labgrid,test]'
  # labgrid without its pyserial fork (pyproject.toml, the labgrid extra): one `serial` package only.
  if .venv/bin/pip show -q pyserial-labgrid 2>/dev/null; then
    .venv/bin/pip uninstall -q -y pyserial-labgrid && .venv/bin/pip install -q --force-reinstall --no-deps pyserial==3.5
  fi
  .venv/bin/pip install -q --no-deps labgrid==26.0.1
  touch "$stamp"
fi
# Allure 3 (the nightly's Allure report; Node.js, no Java), pinned, into the venv where npm is present.
allure_pkg=$(.venv/bin/python -c 'from hil.report.allure_report import NPM_PACKAGE; print(NPM_PACKAGE)')
if [ ! -f ".venv/allure/.installed-$allure_pkg" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "setup: no npm, so no Allure 3 report (install Node.js and re-run; the nightly runs without it)" >&2
  elif npm install --prefix .venv/allure --no-audit --no-fund --silent "$allure_pkg" >/dev/null; then
    touch ".venv/allure/.installed-$allure_pkg"
  else
    echo "setup: npm could not install $allure_pkg; the nightly runs without the Allure 3 report" >&2
  fi
fi
