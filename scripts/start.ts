/**
 * npm start: the worker (wrangler dev, 127.0.0.1:8787) and two agents (design §11.1 "Local"):
 * `agent-a` on 127.0.0.1:8788 serving the primary sides (and both sides of egress-gw and
 * dc-nodes, whose sides share one cluster) and `agent-b` on 127.0.0.1:8789 serving the secondary
 * sides of bootstrap-dns and global-dr. Each runs its own simulated cluster (its own fake API
 * server; design §9) and signs with its own key, taken from `TURNOUT_AGENT_SECRETS` in .dev.vars
 * (created from .dev.vars.example on first run), which the worker reads too. Logs are prefixed,
 * Ctrl-C stops everything.
 *
 * What both clusters share, as two real sites would, starts here first so it outlives either
 * agent: the BIND at 127.0.0.1:5353 (bootstrap-dns, platform-dns) and the two etcd at
 * 127.0.0.1:23791/23792 (global-dr). Each agent's "sandbox cluster running" log line names the
 * kubeconfig it wrote for kubectl (`kubeconfig`, `try`).
 */
import { copyFileSync, existsSync, readFileSync, rmSync } from "node:fs";
import { parseEnv } from "node:util";
import concurrently from "concurrently";
import { z } from "zod";
import { loadAgentConfigFile } from "../agent/config-file.ts";
import { createLogger } from "../agent/log.ts";
import { startLocalServers } from "../agent/sandbox/local-servers.ts";

if (!existsSync(".dev.vars")) {
  copyFileSync(".dev.vars.example", ".dev.vars");
  console.log("start: created .dev.vars from .dev.vars.example (local development secrets)");
}
// A .dev.vars from an older example may lack newer keys (e.g. TURNOUT_AGENT_SECRETS): the
// example's values fill the gaps, and the developer's own values win.
const example = parseEnv(readFileSync(".dev.vars.example", "utf8"));
const own = parseEnv(readFileSync(".dev.vars", "utf8"));
const missing = Object.keys(example).filter((k) => own[k] === undefined);
if (missing.length) console.log(`start: .dev.vars lacks ${missing.join(", ")}; using .dev.vars.example's values`);
const vars: Record<string, string | undefined> = { ...example, ...own };
// The worker's list of keys stays with the worker; each agent gets only its own below.
const { TURNOUT_AGENT_SECRETS: keyList, ...agentVars } = vars;

const AGENTS = [
  { name: "agent-a", config: "agent-a.config.json", color: "magenta" },
  { name: "agent-b", config: "agent-b.config.json", color: "yellow" },
] as const;
const keys = z
  .record(z.string(), z.union([z.string(), z.array(z.string()).min(1).max(2)]))
  .parse(JSON.parse(keyList ?? "{}"));
/** The key an agent signs with: its entry, or the first of a `[current, next]` pair. */
const keyOf = (name: string): string => {
  const entry = keys[name];
  const key = Array.isArray(entry) ? entry[0] : entry;
  if (!key) throw new Error(`TURNOUT_AGENT_SECRETS in .dev.vars has no key for ${name}`);
  return key;
};

// The sandbox clusters, BIND and etcd start fresh on every run, so the worker's Durable Object
// state must too: otherwise a target left on `secondary` last time disagrees with a sandbox on
// primary. TURNOUT_KEEP_STATE=1 keeps it (e.g. when the agents run against real clusters).
const persistTo = ".wrangler/sandbox-state";
if (process.env.TURNOUT_KEEP_STATE !== "1" && existsSync(persistTo)) {
  rmSync(persistTo, { recursive: true, force: true });
  console.log(`start: fresh worker state (${persistTo} cleared; TURNOUT_KEEP_STATE=1 keeps it)`);
}

// agent-a's config names every local server both agents use.
const shared = await startLocalServers(
  await loadAgentConfigFile(AGENTS[0].config),
  vars,
  createLogger({ component: "start" }),
);

const { result } = concurrently(
  [
    {
      name: "worker",
      prefixColor: "cyan",
      command: `wrangler dev --ip 127.0.0.1 --port 8787 --persist-to ${persistTo} --show-interactive-dev-session=false`,
      // No network here: skip the fetch of Request.cf data and the telemetry ping.
      env: { WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false" },
    },
    ...AGENTS.map((a) => ({
      name: a.name,
      prefixColor: a.color,
      command: `node agent/main.ts --config ${a.config}`,
      // Each agent its own key and nothing of the other's.
      env: {
        ...agentVars,
        TURNOUT_AGENT_SECRET: keyOf(a.name),
        TURNOUT_SANDBOX_KUBECONFIG: `${process.env.TMPDIR ?? "/tmp"}/turnout-${a.name}.kubeconfig`,
      },
    })),
  ],
  { killOthersOn: ["failure", "success"], prefix: "name", restartTries: 0 },
);

result.then(
  async () => {
    await shared.stop();
    process.exit(0);
  },
  async () => {
    await shared.stop();
    process.exit(1);
  },
);
