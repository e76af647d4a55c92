/**
 * npm start: the worker (wrangler dev, 127.0.0.1:8787) and the agent (127.0.0.1:8788) together,
 * logs prefixed, Ctrl-C stops both. Local secrets come from .dev.vars (created from
 * .dev.vars.example on first run) and are shared with the agent. With agent.config.json the agent
 * runs the sandbox (design §9) with its targets: egress-gw on the simulated cluster,
 * bootstrap-dns (and platform-dns) on a local BIND at 127.0.0.1:5353, global-dr between two
 * local etcd at 127.0.0.1:23791/23792, and dc-nodes on the simulated nodes dc-1-1..3 and
 * cloud-a-1..3; the agent stops them on Ctrl-C. The agent's "sandbox cluster running" log line
 * names the kubeconfig it wrote for kubectl (`kubeconfig`, `try`).
 */
import { copyFileSync, existsSync, readFileSync, rmSync } from "node:fs";
import { parseEnv } from "node:util";
import concurrently from "concurrently";

if (!existsSync(".dev.vars")) {
  copyFileSync(".dev.vars.example", ".dev.vars");
  console.log("start: created .dev.vars from .dev.vars.example (local development secrets)");
}
// A .dev.vars from an older example may lack newer keys (e.g. TSIG_SECRET for the sandbox BIND):
// the example's values fill the gaps, and the developer's own values win.
const example = parseEnv(readFileSync(".dev.vars.example", "utf8"));
const own = parseEnv(readFileSync(".dev.vars", "utf8"));
const missing = Object.keys(example).filter((k) => own[k] === undefined);
if (missing.length) console.log(`start: .dev.vars lacks ${missing.join(", ")}; using .dev.vars.example's values`);
const vars = { ...example, ...own };
const agentConfig = process.env.TURNOUT_AGENT_CONFIG_FILE ?? "agent.config.json";

// The sandbox cluster, BIND and etcd start fresh on every run, so the worker's Durable Object state
// must too: otherwise a target left on `secondary` last time disagrees with a sandbox on primary.
// TURNOUT_KEEP_STATE=1 keeps it (e.g. when the agent runs against a real cluster).
const persistTo = ".wrangler/sandbox-state";
if (process.env.TURNOUT_KEEP_STATE !== "1" && existsSync(persistTo)) {
  rmSync(persistTo, { recursive: true, force: true });
  console.log(`start: fresh worker state (${persistTo} cleared; TURNOUT_KEEP_STATE=1 keeps it)`);
}

const { result } = concurrently(
  [
    {
      name: "worker",
      prefixColor: "cyan",
      command: `wrangler dev --ip 127.0.0.1 --port 8787 --persist-to ${persistTo} --show-interactive-dev-session=false`,
      // No network here: skip the fetch of Request.cf data and the telemetry ping.
      env: { WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false" },
    },
    {
      name: "agent",
      prefixColor: "magenta",
      command: `node agent/main.ts --config ${agentConfig}`,
      env: { ...vars },
    },
  ],
  { killOthersOn: ["failure", "success"], prefix: "name", restartTries: 0 },
);

result.then(
  () => process.exit(0),
  () => process.exit(1),
);
