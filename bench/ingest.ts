/**
 * Benchmark: the worker's ingest path and its decision latency, in workerd, run either under
 * `wrangler dev` (as developers run it, its proxy worker in front) or loaded directly into
 * Miniflare (no proxy, so the proxy's cost stops hiding ours).
 *
 * 1. Ingest: POST /v1/alertmanager with 10-alert bodies, 50 requests in flight, against the real
 *    worker (bearer auth, validation, routing, one Durable Object call per target with SQLite
 *    writes and a decision) and, in the same runtime, against its baselines: the storage floor
 *    (bench/storage-floor-worker.ts: the same auth, parser and routing, one RPC per target, one
 *    SQLite transaction upserting the signals and auditing status changes; the goals are stated
 *    against it), bench/baseline-worker.ts (a Hono worker that only parses the JSON and answers
 *    200) and turnout's front worker before a no-op object. Alert k of a body goes to target k, so
 *    a 10-alert body fans out to 10 targets (issue 19's case). Every alert is a new update (its
 *    startsAt moves on), so each request does the full write path, not the cheap duplicate path.
 *    The endpoints get identical bodies and alternate over {@link ROUNDS} rounds, turnout and
 *    its floor back to back, each first in every other round (so that whatever going second
 *    costs, such as the first's leftover work on a shared machine, falls on both alike). CPU per
 *    webhook is `user + sys` of the endpoint's workerd processes (/proc/<pid>/stat) over all its
 *    measured requests, divided by their number; throughput and latency are each one's median
 *    round. The goal ratios are the
 *    median over rounds of each round's turnout ÷ floor: this machine's speed drifts from second
 *    to second (the same code measured twice, in one run, differs by up to 6% over all rounds),
 *    and a pair measured seconds apart drifts least.
 * 2. Decision latency (optional): a target with holdSeconds 1 is made down; the time from hold
 *    expiry (the `pending` event's time + hold) to the action's `action.dispatched` event (alarm
 *    lateness + decide + commit) and to the signed request arriving at a stub agent.
 *
 * Run with `node bench/ingest.ts [wrangler|miniflare] [requests]`; `run()` returns the figures.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { pathToFileURL } from "node:url";
import { readText } from "../test/support/request-text.ts";
import type { AuditEvent } from "../worker/target/target-view.ts";
import { type Endpoint, type Runtime, startEndpoint } from "./endpoint.ts";
import { median, percentile } from "./percentile.ts";

export const TOKENS = { alertmanager: "bench-am-token", operator: "bench-operator-token", agent: "bench-agent-secret" };
/** Targets the ingest bodies fan out to: alert k of a body goes to target k mod TARGETS. */
export const TARGETS = 10;
/** Distinct alerts (fingerprints) the bodies cycle through: POOL / TARGETS per target. */
const POOL = 100;
const LATENCY_TARGETS = 5;
const ROUNDS = 8;
const GROUPED_ROUNDS = 4;
const WARM_UP = 100;

/** Throughput, latency and CPU of one endpoint. */
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
  /** user + sys of the endpoint's workerd processes over these requests, ÷ requests (ms). */
  cpuMsPerRequest: number;
}

export interface IngestBenchFigures {
  runtime: Runtime;
  /** workerd processes that served each endpoint (wrangler dev runs its proxy worker in a second one). */
  workerdProcesses: { turnout: number; baseline: number };
  /** Median round of each (throughput, latency); CPU over all measured rounds. */
  turnout: LoadFigures;
  /** The storage floor (bench/storage-floor-worker.ts): the baseline the goals are stated against. */
  floor: LoadFigures;
  /** The parse-only Hono worker (bench/baseline-worker.ts). */
  baseline: LoadFigures;
  /** turnout's front worker before a no-op Durable Object: the front worker's and the RPC calls' share. */
  frontOnly: LoadFigures;
  /** The same four with `grouped` bodies: all 10 alerts of a webhook for one target. */
  grouped: { turnout: LoadFigures; floor: LoadFigures; baseline: LoadFigures; frontOnly: LoadFigures };
  /** turnout ÷ storage floor requests per second, the median of the rounds' (goal ≥ 0.9). */
  throughputRatio: number;
  /** turnout ÷ storage floor CPU per webhook, the median of the rounds' (goal ≤ 1.15). */
  cpuRatio: number;
  /** Rounds the ratios are medians of, and each round's pair (for the spread). */
  rounds: { cpuRatio: number; throughputRatio: number }[];
  decision?: {
    samples: number;
    /** Hold expiry → `action.dispatched` in the object's audit log. */
    toDispatchMs: { median: number; max: number };
    /** Hold expiry → the signed ActionRequest arrives at the (stub) agent. */
    toAgentMs: { median: number; max: number };
  };
}

const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;

/** The labels of alert `i` of the pool: alert i goes to target i mod TARGETS, either side. */
function alertLabels(i: number): Record<string, string> {
  return {
    alertname: "IngestBench",
    target: `ingest-${i % TARGETS}`,
    side: Math.floor(i / TARGETS) % 2 === 0 ? "primary" : "secondary",
    instance: `host-${i}`,
  };
}

/**
 * How a body's alerts spread: `spread` sends alert k to target k (a 10-alert body reaches 10
 * targets, issue 19's case); `grouped` sends all of body `seq` to target `seq mod TARGETS`, as
 * Alertmanager does with `group_by: [target]` (one Durable Object call per webhook).
 */
export type FanOut = "spread" | "grouped";

/** Pool index of alert `k` of body `seq`. */
function poolIndex(seq: number, k: number, alerts: number, fanOut: FanOut): number {
  if (fanOut === "spread") return (seq * alerts + k) % POOL;
  const perTarget = POOL / TARGETS;
  const j = (Math.floor(seq / TARGETS) * alerts + k) % perTarget;
  return j * TARGETS + (seq % TARGETS);
}

/** Body `seq`: `alerts` alerts of the pool, all with a startsAt no earlier body used. */
export function body(seq: number, alerts: number, fanOut: FanOut = "spread"): string {
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
      const i = poolIndex(seq, k, alerts, fanOut);
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

/**
 * `requests` POSTs of bodies `offset…`, `concurrency` in flight; CPU is read from `endpoint`'s
 * workerd processes before and after.
 */
export async function load(
  endpoint: Endpoint,
  requests: number,
  concurrency: number,
  alerts: number,
  offset = 0,
  fanOut: FanOut = "spread",
): Promise<LoadFigures> {
  const url = `${endpoint.url}/v1/alertmanager`;
  const headers = { authorization: `Bearer ${TOKENS.alertmanager}`, "content-type": "application/json" };
  const bodies = Array.from({ length: requests }, (_, i) => body(offset + i, alerts, fanOut));
  const times: number[] = [];
  let errors = 0;
  let next = 0;
  const cpuBefore = endpoint.cpuMs();
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
  const cpu = endpoint.cpuMs() - cpuBefore;
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
    cpuMsPerRequest: round(cpu / requests, 2),
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

/** TURNOUT_CONFIG of the ingest bench: TARGETS ingest targets (long hold) and the latency targets. */
export function workerConfig(agentUrl: string): string {
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
  worker: { url: string },
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

export interface IngestRunOptions {
  runtime?: Runtime;
  /** Measured requests per endpoint, over {@link ROUNDS} rounds (after {@link WARM_UP} warm-up requests each). */
  requests?: number;
  concurrency?: number;
  alertsPerRequest?: number;
  /** Also measure hold expiry → dispatch (a few seconds). */
  decision?: boolean;
}

/** Runs the ingest comparison (and, if asked, the decision latency) in one runtime. */
export async function run(options: IngestRunOptions = {}): Promise<IngestBenchFigures> {
  const { runtime = "wrangler", requests = 2000, concurrency = 50, alertsPerRequest = 10 } = options;
  const agent = await stubAgent();
  const vars = {
    TURNOUT_CONFIG: workerConfig(agent.url),
    ALERTMANAGER_TOKEN: TOKENS.alertmanager,
    OPERATOR_TOKEN: TOKENS.operator,
    TURNOUT_AGENT_SECRET: TOKENS.agent,
  };
  // One after the other: a Miniflare endpoint's workerd is told apart as the one that appeared.
  const after = <T>(p: Promise<unknown>, next: () => Promise<T>) => p.then(next, next);
  const turnoutStarting = startEndpoint(runtime, "turnout", vars);
  const floorStarting = after(turnoutStarting, () => startEndpoint(runtime, "storage-floor", vars));
  const baselineStarting = after(floorStarting, () => startEndpoint(runtime, "baseline", {}));
  const frontStarting = after(baselineStarting, () => startEndpoint(runtime, "front-only", vars));
  const starting = [turnoutStarting, floorStarting, baselineStarting, frontStarting] as const;
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
    const [turnoutWorker, floorWorker, baselineWorker, frontWorker] = await Promise.all(starting);
    // Warm up all (isolates, Durable Objects, connection pools) with earlier startsAt values, so
    // every update of the measured run is still new to the worker.
    for (const w of [floorWorker, baselineWorker, turnoutWorker, frontWorker])
      await load(w, WARM_UP, concurrency, alertsPerRequest);
    // Rounds as the file's comment gives them; the two other baselines follow the pair, in turn.
    const perRound = Math.ceil(requests / ROUNDS);
    type Round = { floor: LoadFigures; turnout: LoadFigures; baseline: LoadFigures; frontOnly: LoadFigures };
    const endpoints = { floor: floorWorker, turnout: turnoutWorker, baseline: baselineWorker, frontOnly: frontWorker };
    const measure = async (r: number, offset: number, fanOut: FanOut): Promise<Round> => {
      const order: (keyof Round)[] =
        r % 2 === 0 ? ["floor", "turnout", "baseline", "frontOnly"] : ["turnout", "floor", "frontOnly", "baseline"];
      const out: Partial<Round> = {};
      for (const k of order) out[k] = await load(endpoints[k], perRound, concurrency, alertsPerRequest, offset, fanOut);
      return out as Round;
    };
    const rounds: Round[] = [];
    for (let r = 0; r < ROUNDS; r++) rounds.push(await measure(r, WARM_UP + r * perRound, "spread"));
    // Then webhooks grouped per target (one Durable Object call each), on later startsAt values.
    const groupedRounds: Round[] = [];
    for (let r = 0; r < GROUPED_ROUNDS; r++)
      groupedRounds.push(await measure(r, WARM_UP + (ROUNDS + r) * perRound, "grouped"));
    const medianRound = (xs: LoadFigures[]): LoadFigures => {
      const byThroughput = [...xs].sort((a, b) => a.requestsPerSecond - b.requestsPerSecond);
      const mid = byThroughput[Math.floor((byThroughput.length - 1) / 2)];
      if (!mid) throw new Error("ingest bench: no rounds measured");
      return { ...mid, requestsPerSecond: round(median(xs.map((x) => x.requestsPerSecond))) };
    };
    const cpuOverAll = (xs: LoadFigures[]) =>
      round(xs.reduce((sum, x) => sum + x.cpuMsPerRequest * x.requests, 0) / xs.reduce((n, x) => n + x.requests, 0), 2);
    const summarize = (rs: Round[], k: keyof Round): LoadFigures => ({
      ...medianRound(rs.map((r) => r[k])),
      cpuMsPerRequest: cpuOverAll(rs.map((r) => r[k])),
      errors: rs.reduce((n, r) => n + r[k].errors, 0),
    });
    const pairs = rounds.map((r) => ({
      cpuRatio: round(r.turnout.cpuMsPerRequest / r.floor.cpuMsPerRequest, 3),
      throughputRatio: round(r.turnout.requestsPerSecond / r.floor.requestsPerSecond, 3),
    }));
    const baseline = summarize(rounds, "baseline");
    const floor = summarize(rounds, "floor");
    const turnout = summarize(rounds, "turnout");
    const frontOnly = summarize(rounds, "frontOnly");
    const grouped = {
      turnout: summarize(groupedRounds, "turnout"),
      floor: summarize(groupedRounds, "floor"),
      baseline: summarize(groupedRounds, "baseline"),
      frontOnly: summarize(groupedRounds, "frontOnly"),
    };
    const figures: IngestBenchFigures = {
      runtime,
      workerdProcesses: { turnout: turnoutWorker.pids.length, baseline: baselineWorker.pids.length },
      turnout,
      floor,
      baseline,
      frontOnly,
      grouped,
      throughputRatio: round(median(pairs.map((p) => p.throughputRatio)), 3),
      cpuRatio: round(median(pairs.map((p) => p.cpuRatio)), 3),
      rounds: pairs,
    };
    if (options.decision) figures.decision = await decisionLatency(turnoutWorker, agent.arrivals);
    return figures;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    await stopWorkers();
    await agent.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const runtime = process.argv[2] === "miniflare" ? "miniflare" : "wrangler";
  const f = await run({ runtime, requests: Number(process.argv[3] ?? 2000), decision: true });
  console.log(JSON.stringify(f, null, 2));
}
