/**
 * `--query` reads `ALERTS`, which exists only where Prometheus evaluated a rule live. So this test
 * runs the whole live chain on 127.0.0.1: an exporter the test flips → a real Prometheus (rule
 * `GatewayDown`, `for: 2s`, evaluated every second) → a real Alertmanager → the real worker in
 * workerd (`wrangler dev`, a `record: true` target, hold 5 s) → a fake agent over real HTTP that
 * reports `succeeded` 5 s after each action. Then it replays that window three ways and requires
 * each to take the decisions the live worker took: `--query` on ALERTS, `--webhooks` on the
 * worker's recording, `--worker` on its audit log; and a longer-hold variant holds the alert out.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../../agent/sandbox/free-port.ts";
import { type ActionReport, type ActionRequest, ActionRequestSchema } from "../../shared/protocol.ts";
import { sign, verify } from "../../shared/signature.ts";
import { type ReplayServer, startAlertmanager, startPrometheus } from "../support/prometheus-replay.ts";
import { readText } from "../support/request-text.ts";
import { startWorker, type WorkerProcess } from "../support/worker-process.ts";
import { type JsonResult, runSimulate } from "./run-cli.ts";

const TARGET = "egress-gw";
const AM_TOKEN = "live-chain-am-token-0123";
const VIEWER = "live-chain-operator-token-0123";
const AGENT_SECRET = "live-chain-agent-secret-0123";
const ACTION_SECONDS = 5;

const values = { primary: 1, secondary: 1 };
let dir: string;
let exporter: Server;
let agentServer: Server;
let prom: ReplayServer;
let am: ReplayServer;
let worker: WorkerProcess;
const received: ActionRequest[] = [];

const sides = {
  primary: { matchers: ['alertname="GatewayDown"', 'gateway="10.116.0.4"'] },
  secondary: { matchers: ['alertname="GatewayDown"', 'gateway="10.116.0.12"'] },
};

async function listen(server: Server): Promise<number> {
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, "127.0.0.1", () => r()));
  return port;
}

/** The agent's part, as agent/ does it: accept, report `running`, then `succeeded` after the action ran. */
function fakeAgent(reportUrl: () => string): Server {
  const post = async (r: ActionReport) => {
    const raw = JSON.stringify(r);
    await fetch(reportUrl(), {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "Turnout-Signature": await sign(AGENT_SECRET, raw, Date.now() / 1000),
      },
      body: raw,
    });
  };
  return createServer((req, res) => {
    void (async () => {
      const raw = await readText(req);
      const header = req.headers["turnout-signature"];
      const check = await verify([AGENT_SECRET], typeof header === "string" ? header : null, raw, Date.now() / 1000);
      if (req.url !== "/v1/actions" || !check.ok) {
        res.writeHead(401).end();
        return;
      }
      const request = ActionRequestSchema.parse(JSON.parse(raw));
      const first = !received.some((r) => r.id === request.id);
      res.writeHead(first ? 202 : 200, { "content-type": "application/json" }).end("{}");
      if (!first) return;
      received.push(request);
      const report = (status: "running" | "succeeded"): ActionReport => ({
        actionId: request.id,
        target: request.target,
        status,
        activeSide: status === "succeeded" ? request.to : request.from,
        dryRun: request.dryRun,
        steps: [],
        at: new Date().toISOString(),
      });
      await post(report("running"));
      // The action takes ACTION_SECONDS, as `--action-seconds` assumes.
      setTimeout(() => void post(report("succeeded")), ACTION_SECONDS * 1000);
    })();
  });
}

async function instant(query: string): Promise<unknown[]> {
  const res = await fetch(`${prom.url}/api/v1/query?query=${encodeURIComponent(query)}`);
  return ((await res.json()) as { data: { result: unknown[] } }).data.result;
}

/** Polls a live system (Prometheus and Alertmanager run on their own clocks) until `check` holds. */
async function until(what: string, check: () => Promise<boolean>, timeoutMs = 40_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}\n${prom.output().slice(-800)}\n${am.output().slice(-800)}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return Date.now();
}

interface ApiEvent {
  seq: number;
  at: string;
  type: string;
  detail: Record<string, unknown>;
}

async function liveEvents(): Promise<ApiEvent[]> {
  const res = await fetch(`${worker.url}/v1/targets/${TARGET}/events?limit=1000`, {
    headers: { authorization: `Bearer ${VIEWER}` },
  });
  return ((await res.json()) as { events: ApiEvent[] }).events;
}

/** The decisions of an audit log: phase changes and dispatched actions, in order. */
function decisions(events: readonly { type: string; detail: unknown }[]): string[] {
  const out: string[] = [];
  for (const e of events) {
    const d = e.detail as Record<string, unknown>;
    if (e.type === "phase.changed") out.push(`phase ${String(d.from)} → ${String(d.to)}`);
    if (e.type === "action.dispatched") out.push(`${String(d.kind)} ${String(d.from)} → ${String(d.to)}`);
    if (e.type === "failover.blocked" || e.type === "both-sides-down") out.push(`blocked ${e.type}`);
  }
  return out;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "turnout-sim-live-"));
  exporter = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
    res.end(
      `# TYPE gateway_up gauge\ngateway_up{gateway="10.116.0.4"} ${values.primary}\ngateway_up{gateway="10.116.0.12"} ${values.secondary}\n`,
    );
  });
  const exporterPort = await listen(exporter);
  agentServer = fakeAgent(() => `${worker.url}/v1/agent/reports`);
  const agentPort = await listen(agentServer);
  const config = {
    agent: { url: `http://127.0.0.1:${agentPort}`, transport: "direct" },
    targets: { [TARGET]: { sides, policy: { holdSeconds: 5 }, record: true } },
  };
  writeFileSync(join(dir, "turnout.config.json"), JSON.stringify(config));
  worker = await startWorker({
    vars: {
      TURNOUT_CONFIG: JSON.stringify(config),
      ALERTMANAGER_TOKEN: AM_TOKEN,
      OPERATOR_TOKEN: VIEWER,
      TURNOUT_AGENT_SECRET: AGENT_SECRET,
    },
  });
  am = await startAlertmanager(
    dir,
    [
      "route:",
      "  receiver: turnout",
      "  group_by: ['...']", // one group per alert: each is delivered on its own
      "  group_wait: 0s",
      "  group_interval: 1s",
      "  repeat_interval: 1h",
      "receivers:",
      "  - name: turnout",
      "    webhook_configs:",
      `      - url: ${worker.url}/v1/alertmanager`,
      "        send_resolved: true",
      "        http_config:",
      "          authorization:",
      `            credentials: ${AM_TOKEN}`,
      "",
    ].join("\n"),
  );
  writeFileSync(
    join(dir, "rules.yml"),
    "groups:\n  - name: gw\n    interval: 1s\n    rules:\n      - alert: GatewayDown\n        expr: gateway_up == 0\n        for: 2s\n",
  );
  prom = await startPrometheus(
    dir,
    [
      "global:",
      "  scrape_interval: 1s",
      "  evaluation_interval: 1s",
      "rule_files:",
      `  - ${join(dir, "rules.yml")}`,
      "alerting:",
      "  alertmanagers:",
      "    - static_configs:",
      `        - targets: ["${am.url.replace("http://", "")}"]`,
      "scrape_configs:",
      "  - job_name: gateways",
      "    static_configs:",
      `      - targets: ["127.0.0.1:${exporterPort}"]`,
      "",
    ].join("\n"),
  );
}, 120_000);

afterAll(async () => {
  await prom?.stop();
  await am?.stop();
  await worker?.stop();
  for (const s of [exporter, agentServer]) await new Promise<void>((r) => (s ? s.close(() => r()) : r()));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("a live incident, replayed", () => {
  it("gives the live worker's decisions from ALERTS and from the recording; a longer hold holds it out", async () => {
    await until("both gateways scraped", async () => (await instant("gateway_up == 1")).length === 2);
    const from = new Date(Date.now() - 2_000).toISOString();
    values.primary = 0;
    const firing = await until(
      "GatewayDown firing",
      async () => (await instant('ALERTS{alertname="GatewayDown",alertstate="firing"}')).length === 1,
    );
    await until("12 s of firing", async () => Date.now() - firing >= 12_000);
    values.primary = 1;
    // Done when the live worker has acted and seen the resolution.
    await until("the worker's failover succeeded and the primary resolved", async () => {
      const types = (await liveEvents()).map((e) => `${e.type}:${String(e.detail.status ?? "")}`);
      return types.includes("action.succeeded:") && types.includes("signal.resolved:resolved");
    });
    const resolved = await until(
      "ALERTS gone",
      async () => (await instant('ALERTS{alertname="GatewayDown"}')).length === 0,
    );
    // A few more of Prometheus's 1 s evaluations, so the range ends past the alert.
    await until("3 s past the resolution", async () => Date.now() - resolved >= 3_000);
    const to = new Date().toISOString();

    const live = await liveEvents();
    const liveDecisions = decisions(live);
    expect(liveDecisions).toEqual([
      "phase steady → pending",
      "phase pending → executing",
      "failover primary → secondary",
      "phase executing → steady",
    ]);
    expect(received.map((r) => `${r.id} ${r.kind} → ${r.to}`)).toEqual([`${TARGET}:1 failover → secondary`]);

    const configFile = join(dir, "turnout.config.json");
    const common = ["--config", configFile, "--action-seconds", String(ACTION_SECONDS), "--json"];
    const fromAlerts = await runSimulate([
      ...common,
      "--prometheus",
      prom.url,
      "--query",
      'ALERTS{alertname="GatewayDown"}',
      "--step",
      "1s",
      "--from",
      from,
      "--to",
      to,
      "--policy",
      "holdSeconds=60",
    ]);
    expect(fromAlerts.stderr).toBe("");
    expect(fromAlerts.code).toBe(0);
    const a = JSON.parse(fromAlerts.stdout) as JsonResult;
    const [hold5, hold60] = a.variants;
    const timeline = (v: typeof hold5) => v?.targets[0]?.timeline ?? [];
    expect(decisions(timeline(hold5))).toEqual(liveDecisions);
    expect(hold5?.summary).toMatchObject({ failovers: 1, failbacks: 0, alerts: 1, shortAlerts: 0 });
    expect(hold5?.targets[0]?.final).toEqual({ activeSide: "secondary", phase: "steady" });
    // The same alert, the same key: ALERTS' labels less alertstate are the labels Alertmanager sent.
    const liveKeys = new Set(live.filter((e) => e.type.startsWith("signal.")).map((e) => String(e.detail.key)));
    const simKeys = new Set(
      timeline(hold5)
        .filter((l) => l.type.startsWith("signal."))
        .map((l) => String(l.detail.key)),
    );
    expect(simKeys).toEqual(liveKeys);
    // A 60 s hold outlasts the ~12 s alert: no failover, one alert shorter than the hold.
    expect(hold60?.summary).toMatchObject({ failovers: 0, failbacks: 0, alerts: 1, shortAlerts: 1 });
    const signals = timeline(hold60).filter((l) => l.type.startsWith("signal."));
    const seconds = (Date.parse(signals[1]?.at ?? "") - Date.parse(signals[0]?.at ?? "")) / 1000;
    expect(seconds).toBeGreaterThanOrEqual(11);
    expect(seconds).toBeLessThanOrEqual(16);

    // The worker's own recording (record: true), exported and replayed as --webhooks.
    const recording = await fetch(`${worker.url}/v1/targets/${TARGET}/recording?limit=1000`, {
      headers: { authorization: `Bearer ${VIEWER}` },
    });
    expect(recording.status).toBe(200);
    const file = join(dir, "recording.ndjson");
    writeFileSync(file, await recording.text());
    const fromRecording = await runSimulate([...common, "--webhooks", file]);
    expect(fromRecording.stderr).toBe("");
    const r = JSON.parse(fromRecording.stdout) as JsonResult;
    const replayed = r.variants[0]?.targets[0]?.timeline ?? [];
    expect(decisions(replayed)).toEqual(liveDecisions);
    // Receipt-time driven: every signal event happens when the live worker received it.
    const liveSignalTimes = live.filter((e) => e.type.startsWith("signal.")).map((e) => e.at);
    expect(replayed.filter((l) => l.type.startsWith("signal.")).map((l) => l.at)).toEqual(liveSignalTimes);

    // --worker: the signals of the live worker's audit log, read with a viewer token.
    const fromLog = await runSimulate([...common, "--worker", worker.url, "--target", TARGET], {
      TURNOUT_TOKEN: VIEWER,
    });
    expect(fromLog.stderr).toBe("");
    const w = JSON.parse(fromLog.stdout) as JsonResult;
    expect(decisions(w.variants[0]?.targets[0]?.timeline ?? [])).toEqual(liveDecisions);
    const refused = await runSimulate([...common, "--worker", worker.url, "--target", TARGET], {
      TURNOUT_TOKEN: "wrong",
    });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(
      /worker egress-gw: GET \/v1\/targets\/egress-gw\/events answered 401: .*TURNOUT_TOKEN/,
    );
  }, 150_000);
});
