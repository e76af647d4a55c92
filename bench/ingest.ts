/**
 * Benchmark: the worker's ingest path and its decision latency, in workerd (`wrangler dev`).
 *
 * 1. Ingest: POST /v1/alertmanager with 10-alert bodies, 50 requests in flight, against the real
 *    worker (bearer auth, validation, routing, one Durable Object call per target with SQLite
 *    writes and a decision) and, in the same workerd, against bench/baseline-worker.ts, which
 *    only parses the JSON and answers 200. Every alert is a new update (its startsAt moves on),
 *    so each request does the full write path, not the cheap duplicate path. The two endpoints
 *    alternate over two rounds and each keeps its best round (the machine may be shared).
 * 2. Decision latency: a target with holdSeconds 1 is made down; the time from hold expiry (the
 *    `pending` event's time + hold) to the action's `action.dispatched` event (alarm lateness +
 *    decide + commit) and to the signed request arriving at a stub agent on this machine.
 *
 * Run with `node bench/ingest.ts [requests]`; `run()` returns the figures.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { readText } from "../test/support/request-text.ts";
import { startWorker, type WorkerProcess } from "../test/support/worker-process.ts";
import type { AuditEvent } from "../worker/target-view.ts";
import { percentile } from "./percentile.ts";

const root = join(import.meta.dirname, "..");
const TOKENS = { alertmanager: "bench-am-token", operator: "bench-operator-token", agent: "bench-agent-secret" };
const TARGETS = 3;
const POOL = 60;
const LATENCY_TARGETS = 5;
const ROUNDS = 2;

/** Throughput and latency of one endpoint. */
export interface LoadFigures {
  requests: number;
  concurrency: number;
  alertsPerRequest: number;
  seconds: number;
  requestsPerSecond: number;
  alertsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
}

export interface IngestBenchFigures {
  turnout: LoadFigures;
  baseline: LoadFigures;
  /** turnout ÷ baseline requests per second (≤ 1: the share of the bare parser's rate turnout keeps). */
  throughputRatio: number;
  decision: {
    samples: number;
    /** Hold expiry → `action.dispatched` in the object's audit log. */
    toDispatchMs: { median: number; max: number };
    /** Hold expiry → the signed ActionRequest arrives at the (stub) agent. */
    toAgentMs: { median: number; max: number };
  };
}

const round = (n: number) => Math.round(n * 10) / 10;

/** The labels of alert `i` of the pool: spread over the ingest targets' primary and secondary sides. */
function alertLabels(i: number): Record<string, string> {
  return {
    alertname: "IngestBench",
    target: `ingest-${i % TARGETS}`,
    side: i % 2 === 0 ? "primary" : "secondary",
    instance: `host-${i}`,
  };
}

function body(seq: number, alerts: number): string {
  const startsAt = new Date(Date.UTC(2026, 0, 1) + seq * 1000).toISOString();
  return JSON.stringify({
    version: "4",
    groupKey: '{}:{alertname="IngestBench"}',
    truncatedAlerts: 0,
    status: "firing",
    receiver: "turnout",
    groupLabels: { alertname: "IngestBench" },
    commonLabels: { alertname: "IngestBench" },
    commonAnnotations: {},
    externalURL: "http://alertmanager.local",
    alerts: Array.from({ length: alerts }, (_, k) => {
      const i = (seq * alerts + k) % POOL;
      return {
        status: "firing",
        labels: alertLabels(i),
        annotations: { summary: "ingest benchmark" },
        startsAt,
        endsAt: "0001-01-01T00:00:00Z",
        generatorURL: "http://prometheus.local/graph",
        fingerprint: `${i.toString(16).padStart(16, "0")}`,
      };
    }),
  });
}

/** `requests` POSTs, `concurrency` at a time; latency per request from the client. */
async function load(
  url: string,
  requests: number,
  concurrency: number,
  alerts: number,
  offset = 0,
): Promise<LoadFigures> {
  const headers = { authorization: `Bearer ${TOKENS.alertmanager}`, "content-type": "application/json" };
  const bodies = Array.from({ length: requests }, (_, i) => body(offset + i, alerts));
  const times: number[] = [];
  let errors = 0;
  let next = 0;
  const started = performance.now();
  const workers = Array.from({ length: concurrency }, async () => {
    for (;;) {
      const i = next++;
      if (i >= requests) return;
      const t = performance.now();
      try {
        const res = await fetch(url, { method: "POST", headers, body: bodies[i] });
        await res.arrayBuffer();
        if (res.status !== 200) errors++;
      } catch {
        errors++;
      }
      times.push(performance.now() - t);
    }
  });
  await Promise.all(workers);
  const seconds = (performance.now() - started) / 1000;
  const sorted = times.sort((a, b) => a - b);
  return {
    requests,
    concurrency,
    alertsPerRequest: alerts,
    seconds: round(seconds),
    requestsPerSecond: round(requests / seconds),
    alertsPerSecond: round((requests * alerts) / seconds),
    p50Ms: round(percentile(sorted, 50)),
    p99Ms: round(percentile(sorted, 99)),
    errors,
  };
}

/** A stand-in agent that accepts every action and records when each arrived. */
export async function stubAgent(): Promise<{ url: string; arrivals: Map<string, number>; close(): Promise<void> }> {
  const arrivals = new Map<string, number>();
  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const at = Date.now();
    try {
      const id = (JSON.parse(await readText(req)) as { id?: unknown }).id;
      if (typeof id === "string" && !arrivals.has(id)) arrivals.set(id, at);
      res.writeHead(202, { "content-type": "application/json" }).end(JSON.stringify({ id, status: "accepted" }));
    } catch {
      res.writeHead(400).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    arrivals,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function workerConfig(agentUrl: string): string {
  const side = (target: string, s: string) => ({ matchers: [`target="${target}"`, `side="${s}"`] });
  const targets: Record<string, unknown> = {};
  for (let t = 0; t < TARGETS; t++) {
    const name = `ingest-${t}`;
    // A long hold: the ingest figures are about recording signals, not acting on them.
    targets[name] = {
      sides: { primary: side(name, "primary"), secondary: side(name, "secondary") },
      policy: { holdSeconds: 3600 },
    };
  }
  for (let t = 0; t < LATENCY_TARGETS; t++) {
    const name = `latency-${t}`;
    targets[name] = {
      sides: { primary: side(name, "primary"), secondary: side(name, "secondary") },
      policy: { holdSeconds: 1 },
    };
  }
  return JSON.stringify({ agent: { url: agentUrl, transport: "direct" }, targets });
}

async function decisionLatency(
  worker: WorkerProcess,
  arrivals: Map<string, number>,
): Promise<IngestBenchFigures["decision"]> {
  const headers = { authorization: `Bearer ${TOKENS.alertmanager}`, "content-type": "application/json" };
  const toDispatch: number[] = [];
  const toAgent: number[] = [];
  for (let t = 0; t < LATENCY_TARGETS; t++) {
    const name = `latency-${t}`;
    const now = new Date().toISOString();
    const res = await fetch(`${worker.url}/v1/alertmanager`, {
      method: "POST",
      headers,
      body: JSON.stringify({
        version: "4",
        status: "firing",
        receiver: "turnout",
        groupKey: "{}:{}",
        truncatedAlerts: 0,
        groupLabels: {},
        commonLabels: {},
        commonAnnotations: {},
        externalURL: "http://alertmanager.local",
        alerts: [
          {
            status: "firing",
            labels: { alertname: "LatencyBench", target: name, side: "primary" },
            annotations: {},
            startsAt: now,
            endsAt: "0001-01-01T00:00:00Z",
            generatorURL: "",
            fingerprint: `${(0xfeed0000 + t).toString(16).padStart(16, "0")}`,
          },
        ],
      }),
    });
    if (res.status !== 200) throw new Error(`latency alert answered ${res.status}: ${await res.text()}`);
    const deadline = Date.now() + 15_000;
    let events: AuditEvent[] = [];
    while (Date.now() < deadline && !arrivals.has(`${name}:1`)) await new Promise((r) => setTimeout(r, 50));
    // The audit log shows the dispatch once the object has committed it.
    while (Date.now() < deadline) {
      const page = (await (
        await fetch(`${worker.url}/v1/targets/${name}/events?limit=1000`, {
          headers: { authorization: `Bearer ${TOKENS.operator}` },
        })
      ).json()) as { events: AuditEvent[] };
      events = page.events;
      if (events.some((e) => e.type === "action.dispatched")) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const pending = events.find(
      (e) => e.type === "phase.changed" && JSON.stringify(e.detail).includes('"to":"pending"'),
    );
    const dispatched = events.find((e) => e.type === "action.dispatched");
    const arrived = arrivals.get(`${name}:1`);
    if (!pending || !dispatched || arrived === undefined) throw new Error(`${name}: no dispatch within 15 s`);
    const expiry = Date.parse(pending.at) + 1000;
    toDispatch.push(Date.parse(dispatched.at) - expiry);
    toAgent.push(arrived - expiry);
  }
  const summary = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return { median: round(percentile(s, 50)), max: round(s.at(-1) ?? Number.NaN) };
  };
  return { samples: LATENCY_TARGETS, toDispatchMs: summary(toDispatch), toAgentMs: summary(toAgent) };
}

/** Runs both parts; `requests` per endpoint in {@link ROUNDS} rounds (after 100 warm-up requests each). */
export async function run(requests = 2000, concurrency = 50, alertsPerRequest = 10): Promise<IngestBenchFigures> {
  const agent = await stubAgent();
  const starting = [
    startWorker({
      vars: {
        TURNOUT_CONFIG: workerConfig(agent.url),
        ALERTMANAGER_TOKEN: TOKENS.alertmanager,
        OPERATOR_TOKEN: TOKENS.operator,
        TURNOUT_AGENT_SECRET: TOKENS.agent,
      },
    }),
    startWorker({ vars: {}, config: join(root, "bench/baseline-wrangler.toml") }),
  ] as const;
  // Stops whichever workers started (one may fail while the other runs).
  const stopWorkers = () =>
    Promise.all(
      starting.map((p) =>
        p.then(
          (w) => w.stop(),
          () => {},
        ),
      ),
    );
  // wrangler runs in its own process group, so Ctrl-C must stop it from here.
  const onSignal = () => {
    void stopWorkers()
      .then(() => agent.close())
      .finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    const [turnoutWorker, baselineWorker] = await Promise.all(starting);
    const turnoutUrl = `${turnoutWorker.url}/v1/alertmanager`;
    const baselineUrl = `${baselineWorker.url}/v1/alertmanager`;
    // Warm up both (isolates, Durable Objects, connection pools) with earlier startsAt values, so
    // every update of the measured run is still new to the worker.
    await load(baselineUrl, 100, concurrency, alertsPerRequest);
    await load(turnoutUrl, 100, concurrency, alertsPerRequest);
    // The machine may be shared: alternate the two endpoints over rounds and keep each one's best
    // round, so a burst of outside load does not land on one side only.
    const perRound = Math.ceil(requests / ROUNDS);
    const rounds: { baseline: LoadFigures; turnout: LoadFigures }[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const offset = 100 + r * perRound;
      const b = await load(baselineUrl, perRound, concurrency, alertsPerRequest, offset);
      const t = await load(turnoutUrl, perRound, concurrency, alertsPerRequest, offset);
      rounds.push({ baseline: b, turnout: t });
    }
    const best = (xs: LoadFigures[]) => xs.reduce((a, b) => (b.requestsPerSecond > a.requestsPerSecond ? b : a));
    const baseline = best(rounds.map((r) => r.baseline));
    const turnout = best(rounds.map((r) => r.turnout));
    const decision = await decisionLatency(turnoutWorker, agent.arrivals);
    return {
      turnout,
      baseline,
      throughputRatio: Math.round((turnout.requestsPerSecond / baseline.requestsPerSecond) * 1000) / 1000,
      decision,
    };
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    await stopWorkers();
    await agent.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const f = await run(Number(process.argv[2] ?? 2000));
  console.log(JSON.stringify(f, null, 2));
}
