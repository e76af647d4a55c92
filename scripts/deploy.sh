#!/usr/bin/env bash
# npm run deploy [-- <wrangler deploy flags>]
#
# Deploys the edge worker: validates the config the build bundles (turnout.config.json) with the
# same schema the worker uses, and only then runs `wrangler deploy` with any extra flags
# (e.g. `--dry-run --outdir <dir>`, which test/ship/worker-deploy.test.ts runs). A bad config
# stops here with every problem as `path: message`, instead of shipping a worker whose /healthz
# says `config: "invalid"`. Secrets are not touched: set them once with `wrangler secret put`
# (docs/operations.md, "7. Deployment reference").
set -euo pipefail
cd "$(dirname "$0")/.."

node scripts/config-check.ts --worker turnout.config.json
exec wrangler deploy "$@"
