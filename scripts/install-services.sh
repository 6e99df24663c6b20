#!/usr/bin/env bash
# Install what serving the course needs, from the distribution's and npm's registries only:
#   chromium    Debian's browser, driven by Playwright in tests/test_browser.py (never `playwright install`)
#   postgresql  Debian's server, the JupyterHub route's gradebook (started by `course hub`, not as a system service)
#   configurable-http-proxy  JupyterHub's proxy, from npm at the version pinned in services/package-lock.json
#   util-linux  unshare and setpriv, the grading sandbox's namespaces and its capability drop (course_lib/grading/sandbox.py)
# Idempotent and quick when everything is there. Needs root (or sudo) for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
{ command -v unshare && command -v setpriv; } >/dev/null 2>&1 || need+=(util-linux)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
if [ ${#need[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "install-services: apt-get install ${need[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ ! -x services/node_modules/.bin/configurable-http-proxy ]; then
    echo "install-services: npm ci configurable-http-proxy (services/package-lock.json)"
    npm ci --prefix services --no-audit --no-fund --loglevel=error >/dev/null
fi
echo "install-services: chromium $(chromium --version 2>/dev/null | awk '{print $2}'), postgresql $(ls /usr/lib/postgresql | sort -V | tail -1), configurable-http-proxy $(services/node_modules/.bin/configurable-http-proxy --version)"
