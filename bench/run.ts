/**
 * `npm run bench`: runs every benchmark in turn (route swap, node fence, DNS flip, etcd consistency
 * check, readiness CPU, worker ingest under wrangler dev and Miniflare, a SQLite commit by shape,
 * one-target saturation, the alert storm, decision latency, the simulator), prints ONE table
 * (figure, value, baseline, ratio, goal) and writes the figures with the machine they ran on to
 * bench/results/summary.json (and each bench's to <name>.json).
 *
 * `ratio` is baseline ÷ value for times, so > 1 means turnout beats (or meets) the baseline; for
 * throughput it is value ÷ baseline, and for ingest CPU it is turnout ÷ the baseline, as issue 24
 * states those goals against the storage floor (throughput ≥ 0.9×, CPU ≤ 1.15×; the parse-only
 * worker stays as a second row). The goal column says which way a
 * ratio must go and whether this run met it. A bench that fails (a missing binary, an error)
 * prints its error in the table and makes the run exit 1.
 * Run a subset with `npm run bench -- ingest saturation …` (names as in `benches`).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { arch, cpus, platform, release, totalmem } from "node:os";
import { pathToFileURL } from "node:url";
import { run as runDnsFlip } from "./dns-flip.ts";
import type { Runtime } from "./endpoint.ts";
import { run as runEtcdConsistency } from "./etcd-consistency.ts";
import { type IngestBenchFigures, run as runIngest } from "./ingest.ts";
import { run as runNodeFence } from "./node-fence.ts";
import { run as runPlan } from "./plan.ts";
import { run as runReadiness } from "./readiness.ts";
import { run as runRouteSwap } from "./route-swap.ts";
import { run as runSaturation } from "./saturation.ts";
import { run as runSimulate, SIMULATE_FAILOVERS } from "./simulate.ts";
import { run as runSqliteCommit } from "./sqlite-commit.ts";
import { run as runStorm } from "./storm.ts";

/** One line of the table. */
export interface BenchRow {
  figure: string;
  value: string;
  baseline: string;
  /** baseline ÷ value (times), value ÷ baseline (throughput, ingest CPU); see the file's comment. */
  ratio: number | null;
  /** The acceptance goal (e.g. `≤ 2.0×`, `≤ 500 ms`) and whether this run met it. */
  goal?: { text: string; met: boolean };
}

/** One benchmark: its name (for selection), and how to turn its figures into rows. */
export interface BenchEntry {
  name: string;
  run(): Promise<{ rows: BenchRow[]; figures: unknown }>;
}

const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;
const ms = (n: number) => `${round(n, n < 10 ? 2 : 0)} ms`;

/** baseline ÷ value, rounded; null when either is not a positive number. */
export function ratioOf(baseline: number, value: number): number | null {
  if (!(baseline > 0) || !(value > 0)) return null;
  return round(baseline / value, baseline / value < 10 ? 2 : 1);
}

const RUNTIME_NAME: Record<Runtime, string> = { wrangler: "wrangler dev", miniflare: "Miniflare direct" };

/** value ÷ baseline, rounded; null when either is not a positive number. */
function share(value: number, baseline: number): number | null {
  return ratioOf(value, baseline);
}

const FLOOR = "storage floor";
const PARSE_ONLY = "parse-only Hono worker";

/** Rows of one ingest run: issue 24's goals against the storage floor, the parse-only worker beside it. */
export function ingestRows(f: IngestBenchFigures): BenchRow[] {
  const { turnout: t, floor: fl, baseline: b } = f;
  const runtime = RUNTIME_NAME[f.runtime];
  const where = `${runtime}, ${f.workerdProcesses.turnout} workerd`;
  const errors = t.errors || fl.errors || b.errors ? ` (errors: ${t.errors} vs ${fl.errors} vs ${b.errors})` : "";
  // The goals' ratios are the medians of the rounds' pairs (bench/ingest.ts), not these figures'
  // quotients: the machine's speed drifts, and a pair measured back to back drifts least.
  const cpu = Number.isFinite(f.cpuRatio) && f.cpuRatio > 0 ? f.cpuRatio : null;
  const tput = Number.isFinite(f.throughputRatio) && f.throughputRatio > 0 ? f.throughputRatio : null;
  const spread = (xs: number[]) => `${Math.min(...xs)}–${Math.max(...xs)}`;
  const pairs = (k: "cpuRatio" | "throughputRatio") =>
    `median of ${f.rounds.length} rounds' turnout ÷ floor, ${spread(f.rounds.map((r) => r[k]))}`;
  const webhook = `${t.alertsPerRequest}-alert webhook to 10 targets`;
  const rows: BenchRow[] = [
    {
      figure: `ingest (${where}): CPU per ${webhook}, workerd user+sys ÷ requests (ratio: ${pairs("cpuRatio")})`,
      value: ms(t.cpuMsPerRequest),
      baseline: `${ms(fl.cpuMsPerRequest)} (${FLOOR})`,
      ratio: cpu,
      goal: { text: "≤ 1.15×", met: cpu !== null && cpu <= 1.15 },
    },
    {
      figure: `ingest (${runtime}): CPU per ${webhook}, against the parse-only worker`,
      value: ms(t.cpuMsPerRequest),
      baseline: `${ms(b.cpuMsPerRequest)} (${PARSE_ONLY})`,
      ratio: share(t.cpuMsPerRequest, b.cpuMsPerRequest),
    },
    {
      figure: `ingest (${runtime}): CPU per webhook of the storage floor itself`,
      value: ms(fl.cpuMsPerRequest),
      baseline: `${ms(b.cpuMsPerRequest)} (${PARSE_ONLY})`,
      ratio: share(fl.cpuMsPerRequest, b.cpuMsPerRequest),
    },
    {
      figure: `ingest (${runtime}): CPU per webhook of turnout's front worker + 10 RPC calls alone (no-op Durable Object)`,
      value: ms(f.frontOnly.cpuMsPerRequest),
      baseline: `${ms(fl.cpuMsPerRequest)} (${FLOOR})`,
      ratio: share(f.frontOnly.cpuMsPerRequest, fl.cpuMsPerRequest),
    },
    {
      figure: `ingest (${runtime}): throughput, ${t.concurrency} in flight, median round (ratio: ${pairs("throughputRatio")})${errors}`,
      value: `${t.requestsPerSecond} req/s (${Math.round(t.alertsPerSecond)} alerts/s)`,
      baseline: `${fl.requestsPerSecond} req/s (${FLOOR})`,
      ratio: tput,
      goal: { text: "≥ 0.9×", met: tput !== null && tput >= 0.9 },
    },
    {
      figure: `ingest (${runtime}): throughput, ${t.concurrency} in flight, against the parse-only worker`,
      value: `${t.requestsPerSecond} req/s`,
      baseline: `${b.requestsPerSecond} req/s (${PARSE_ONLY})`,
      ratio: share(t.requestsPerSecond, b.requestsPerSecond),
    },
    ...groupedRows(f),
    {
      figure: `ingest (${runtime}): p50 latency`,
      value: ms(t.p50Ms),
      baseline: `${ms(fl.p50Ms)} (${FLOOR})`,
      ratio: ratioOf(fl.p50Ms, t.p50Ms),
    },
    {
      figure: `ingest (${runtime}): p99 latency`,
      value: ms(t.p99Ms),
      baseline: `${ms(fl.p99Ms)} (${FLOOR})`,
      ratio: ratioOf(fl.p99Ms, t.p99Ms),
    },
  ];
  if (f.decision) {
    rows.push(
      {
        figure: `decision: hold expiry → action.dispatched (median of ${f.decision.samples}, max ${f.decision.toDispatchMs.max} ms)`,
        value: ms(f.decision.toDispatchMs.median),
        baseline: "— (none; lower is better)",
        ratio: null,
      },
      {
        figure: `decision: hold expiry → request at the agent (median, max ${f.decision.toAgentMs.max} ms)`,
        value: ms(f.decision.toAgentMs.median),
        baseline: "— (none; lower is better)",
        ratio: null,
      },
    );
  }
  return rows;
}

/** Rows of the grouped case: each 10-alert webhook for one target (one Durable Object call). */
function groupedRows(f: IngestBenchFigures): BenchRow[] {
  const { turnout: t, floor: fl, frontOnly: fo } = f.grouped;
  const where = `ingest (${RUNTIME_NAME[f.runtime]}), webhooks grouped per target (1 Durable Object call)`;
  return [
    {
      figure: `${where}: CPU per webhook (front worker + RPC alone: ${ms(fo.cpuMsPerRequest)})`,
      value: ms(t.cpuMsPerRequest),
      baseline: `${ms(fl.cpuMsPerRequest)} (${FLOOR})`,
      ratio: share(t.cpuMsPerRequest, fl.cpuMsPerRequest),
    },
    {
      figure: `${where}: throughput`,
      value: `${t.requestsPerSecond} req/s`,
      baseline: `${fl.requestsPerSecond} req/s (${FLOOR})`,
      ratio: share(t.requestsPerSecond, fl.requestsPerSecond),
    },
  ];
}

/** The real worker's ingest rate (wrangler dev) measured earlier in this run: the simulator's baseline. */
let workerAlertsPerSecond: number | null = null;

function ingestEntry(name: string, runtime: Runtime): BenchEntry {
  return {
    name,
    async run() {
      const f = await runIngest({ runtime, requests: 2000, decision: runtime === "wrangler" });
      if (runtime === "wrangler") workerAlertsPerSecond = f.turnout.alertsPerSecond;
      return { figures: f, rows: ingestRows(f) };
    },
  };
}

/** `npm run simulate`'s engine: 30 days × 100 targets × 100,000 signals (issue 24: ≤ 5 CPU s, 2,935 failovers). */
const simulateEntry: BenchEntry = {
  name: "simulate",
  async run() {
    const f = await runSimulate();
    const worker = workerAlertsPerSecond;
    return {
      figures: { ...f, workerAlertsPerSecond: worker },
      rows: [
        {
          figure: `simulate: ${f.days} days × ${f.targets} targets × ${f.signals.toLocaleString("en")} signals, CPU time on one core (wall ${f.seconds} s)`,
          value: `${f.cpuSeconds} s (${f.failovers} failovers)`,
          baseline: `5 s (goal), ${SIMULATE_FAILOVERS.toLocaleString("en")} failovers`,
          ratio: ratioOf(5, f.cpuSeconds),
          goal: { text: "≤ 5 s, same failovers", met: f.cpuSeconds <= 5 && f.failovers === SIMULATE_FAILOVERS },
        },
        {
          figure: "simulate: signals/s vs the real worker's ingest rate in this run",
          value: `${f.signalsPerSecond.toLocaleString("en")} signals/s`,
          baseline:
            worker === null
              ? "— (run with the ingest bench: npm run bench -- ingest simulate)"
              : `${Math.round(worker).toLocaleString("en")} alerts/s (POST /v1/alertmanager, wrangler dev)`,
          ratio: worker === null ? null : share(f.signalsPerSecond, worker),
        },
      ],
    };
  },
};

function saturationEntry(name: string, runtime: Runtime): BenchEntry {
  return {
    name,
    async run() {
      const f = await runSaturation(runtime);
      const what = `saturation (${RUNTIME_NAME[runtime]}): one target, ${f.offeredSignalsPerSecond.toLocaleString("en")} signals/s offered for ${f.seconds} s`;
      const retried = f.retries ? `, ${f.retries} retried 5xx` : "";
      return {
        figures: f,
        rows: [
          {
            figure: `${what}: achieved${retried}`,
            value: `${f.achievedSignalsPerSecond} signals/s`,
            baseline: `${f.offeredSignalsPerSecond} signals/s (offered)`,
            ratio: share(f.achievedSignalsPerSecond, f.offeredSignalsPerSecond),
          },
          {
            figure: `${what}: p99 latency (p50 ${ms(f.p50Ms)}, max ${ms(f.maxMs)})`,
            value: ms(f.p99Ms),
            baseline: "500 ms (goal)",
            ratio: ratioOf(500, f.p99Ms),
            goal: { text: "≤ 500 ms", met: f.p99Ms <= 500 },
          },
          {
            figure: `${what}: signals lost (target's view and audit log; ${f.signalEvents === null ? "log trimmed by retention" : `${f.signalEvents.toLocaleString("en")} signal events`})`,
            value: `${f.signalsLost} of ${f.signalsSent.toLocaleString("en")}`,
            baseline: "0",
            ratio: null,
            goal: { text: "0", met: f.signalsLost === 0 && f.failedBodies === 0 },
          },
        ],
      };
    },
  };
}

const benches: BenchEntry[] = [
  {
    name: "route-swap",
    async run() {
      const f = await runRouteSwap(20);
      const what = `route swap, ${f.nodes} nodes, operator ${f.operatorDelayMs} ms/run`;
      return {
        figures: f,
        rows: [
          {
            figure: `${what}: median of ${f.swaps}${f.failures ? ` (${f.failures} failed)` : ""}`,
            value: ms(f.medianMs),
            baseline: "30 000 ms (runbook A's fixed wait, low end)",
            ratio: ratioOf(30_000, f.medianMs),
          },
          {
            figure: `${what}: p99`,
            value: ms(f.p99Ms),
            baseline: "30 000 ms (runbook A)",
            ratio: ratioOf(30_000, f.p99Ms),
          },
        ],
      };
    },
  },
  {
    name: "node-fence",
    async run() {
      const f = await runNodeFence(3);
      return {
        figures: f,
        rows: [
          {
            figure: `node fence, 3 of ${f.nodes} nodes lost, pod start ${f.podReadyDelayMs} ms: fence decision → workloads Ready, median of ${f.runs}${f.failures ? ` (${f.failures} failed)` : ""}`,
            value: ms(f.medianMs),
            baseline: `${f.baselineSeconds * 1000} ms (eviction after tolerationSeconds; StatefulSet pods with attached volumes: never)`,
            ratio: ratioOf(f.baselineSeconds * 1000, f.medianMs),
          },
        ],
      };
    },
  },
  {
    name: "dns-flip",
    async run() {
      const f = await runDnsFlip(100);
      return {
        figures: f,
        rows: [
          {
            figure: `DNS flip, executor (preflight+UPDATE+verify) vs BIND: median of ${f.flips}${f.failures ? ` (${f.failures} failed)` : ""}`,
            value: ms(f.executor.medianMs),
            baseline: `${ms(f.nsupdate.medianMs)} (nsupdate -y per flip)`,
            ratio: ratioOf(f.nsupdate.medianMs, f.executor.medianMs),
          },
          {
            figure: "DNS flip, signed UPDATE alone: median",
            value: ms(f.sendUpdate.medianMs),
            baseline: `${ms(f.nsupdate.medianMs)} (nsupdate -y per flip)`,
            ratio: ratioOf(f.nsupdate.medianMs, f.sendUpdate.medianMs),
          },
          {
            figure: "DNS flip, executor: p99",
            value: ms(f.executor.p99Ms),
            baseline: `${ms(f.nsupdate.p99Ms)} (nsupdate p99)`,
            ratio: ratioOf(f.nsupdate.p99Ms, f.executor.p99Ms),
          },
        ],
      };
    },
  },
  {
    name: "etcd-consistency",
    async run() {
      const f = await runEtcdConsistency(100_000);
      const what = `etcd consistency check, ${f.keys.toLocaleString("en")} keys × ${f.valueBytes} B, two etcd 3.4`;
      return {
        figures: f,
        rows: [
          {
            figure: `${what}: time`,
            value: ms(f.checkMs),
            baseline: "2 000 ms (goal)",
            ratio: ratioOf(2000, f.checkMs),
          },
          {
            figure: `${what}: peak RSS growth`,
            value: `${f.peakRssDeltaMb} MB`,
            baseline: "200 MB (goal)",
            ratio: ratioOf(200, Math.max(f.peakRssDeltaMb, 0.1)),
          },
        ],
      };
    },
  },
  {
    name: "readiness",
    async run() {
      const f = await runReadiness();
      return {
        figures: f,
        rows: [
          {
            figure: `readiness: agent CPU per round, ${f.targets} targets (4 of each executor, 4 plans) × 2 sides, as a share of one core at the ${f.intervalSeconds} s interval (incl. the in-process fake API; ${f.notReadyRounds} rounds not ready, ${f.planRequestsSent} http step requests sent)`,
            value: `${f.corePercent} % (${ms(f.cpuMsPerRound)} CPU, ${ms(f.wallMsPerRound)} wall per round)`,
            baseline: `${ms(f.baselineCpuMsPerRound)} (one GET /version per target and side)`,
            ratio: ratioOf(f.baselineCpuMsPerRound, f.cpuMsPerRound),
            goal: {
              text: "< 1 % of a core",
              met: f.corePercent < 1 && f.notReadyRounds === 0 && f.planRequestsSent === 0,
            },
          },
        ],
      };
    },
  },
  {
    name: "plan",
    async run() {
      const f = await runPlan(5);
      return {
        figures: f,
        rows: [
          {
            figure: `plan: Gateway API example failover, dispatch → final report in the sandbox, median of ${f.runs}${f.failures ? ` (${f.failures} failed)` : ""} (max ${ms(f.maxMs)})`,
            value: ms(f.medianMs),
            baseline: `${ms(f.baselineMedianMs)} (the same writes and waits with client-node directly)`,
            ratio: ratioOf(f.baselineMedianMs, f.medianMs),
          },
        ],
      };
    },
  },
  ingestEntry("ingest", "wrangler"),
  ingestEntry("ingest-miniflare", "miniflare"),
  {
    name: "sqlite-commit",
    async run() {
      const f = await runSqliteCommit();
      const c = f.cpuMicrosPerCall;
      const row = (shape: keyof typeof c, what: string): BenchRow => ({
        figure: `sqlite commit (Miniflare direct): CPU per RPC call that commits ${what}`,
        value: `${c[shape]} µs`,
        baseline: `${c.floor} µs (the storage floor's batch: read a key, upsert it)`,
        ratio: share(c[shape], c.floor),
      });
      return {
        figures: f,
        rows: [
          row("none", "nothing (an empty transaction)"),
          row("signal", "one signal's UPDATE (1 table)"),
          row("signal+events", "the UPDATE and two audit events (2 tables)"),
          row("signal+events+state", "the UPDATE, two audit events and the state row: turnout's batch (3 tables)"),
        ],
      };
    },
  },
  saturationEntry("saturation", "wrangler"),
  saturationEntry("saturation-miniflare", "miniflare"),
  simulateEntry,
  {
    name: "storm",
    async run() {
      const f = await runStorm();
      const ok = f.targetsWithExactlyOneAction === f.downTargets && f.actionsForTargetsNotDown === 0;
      return {
        figures: f,
        rows: [
          {
            figure: `storm: ${f.alerts.toLocaleString("en")} alerts across ${f.targets} targets, sent in (errors ${f.errors})`,
            value: `${f.sendSeconds} s (${f.alertsPerSecond} alerts/s)`,
            baseline: "60 s (goal)",
            ratio: ratioOf(60, f.sendSeconds),
          },
          {
            figure: `storm: targets with exactly one action (${f.downTargets} went down; ${f.actionsForTargetsNotDown} actions elsewhere)`,
            value: `${f.targetsWithExactlyOneAction}${ok ? "" : " (WRONG)"}`,
            baseline: `${f.downTargets}`,
            ratio: null,
            goal: { text: `= ${f.downTargets}, none elsewhere`, met: ok },
          },
          {
            figure: "storm: signals lost",
            value: `${f.signalsLost} (${f.signalsStored.toLocaleString("en")} stored)`,
            baseline: "0",
            ratio: null,
            goal: { text: "0", met: f.signalsLost === 0 },
          },
          {
            figure: `decision: hold expiry → action.dispatched over ${f.decisionMs.samples} targets, p50 (after the storm)`,
            value: ms(f.decisionMs.p50),
            baseline: "— (none; lower is better)",
            ratio: null,
          },
          {
            figure: "decision: hold expiry → action.dispatched, p99",
            value: ms(f.decisionMs.p99),
            baseline: "— (none; lower is better)",
            ratio: null,
          },
        ],
      };
    },
  },
];

/** The machine the figures come from (docs/development.md and JSON). */
export function machine(): { cpu: string; cores: number; memoryGb: number; os: string; node: string } {
  const list = cpus();
  return {
    cpu: list[0]?.model.trim() ?? "unknown",
    cores: list.length,
    memoryGb: round(totalmem() / 1024 ** 3, 1),
    os: `${platform()} ${release()} ${arch()}`,
    node: process.version,
  };
}

/** Renders rows as one Markdown table. */
export function table(rows: BenchRow[]): string {
  type Cells = [string, string, string, string, string];
  const header: Cells = ["figure", "value", "baseline", "ratio", "goal"];
  const cells = rows.map(
    (r): Cells => [
      r.figure,
      r.value,
      r.baseline,
      r.ratio === null ? "—" : `${r.ratio}×`,
      r.goal ? `${r.goal.text} ${r.goal.met ? "met" : "NOT MET"}` : "—",
    ],
  );
  const left = (i: number) => i === 0 || i === 2 || i === 4;
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]?.length ?? 0)));
  const line = (c: string[]) =>
    `| ${c.map((v, i) => (left(i) ? v.padEnd(widths[i] ?? 0) : v.padStart(widths[i] ?? 0))).join(" | ")} |`;
  const rule = `|${widths.map((w, i) => (left(i) ? `${"-".repeat(w + 2)}` : `${"-".repeat(w + 1)}:`)).join("|")}|`;
  return [line(header), rule, ...cells.map(line)].join("\n");
}

/** Writes `value` as JSON into bench/results/; returns the path. */
function writeResult(name: string, value: unknown): string {
  // The trailing slash matters: without it, `new URL(name, dir)` resolves beside results/, in bench/.
  const dir = new URL("./results/", import.meta.url);
  mkdirSync(dir, { recursive: true });
  const out = new URL(name, dir);
  writeFileSync(out, `${JSON.stringify(value, null, 2)}\n`);
  return out.pathname;
}

async function main(selected: string[]): Promise<number> {
  const chosen = selected.length ? benches.filter((b) => selected.includes(b.name)) : benches;
  const unknown = selected.filter((s) => !benches.some((b) => b.name === s));
  if (unknown.length) {
    console.error(`unknown bench(es): ${unknown.join(", ")}; known: ${benches.map((b) => b.name).join(", ")}`);
    return 2;
  }
  const started = performance.now();
  const rows: BenchRow[] = [];
  const results: Record<string, { figures?: unknown; error?: string; seconds: number }> = {};
  let failed = 0;
  for (const bench of chosen) {
    const t = performance.now();
    process.stderr.write(`bench: ${bench.name} …\n`);
    try {
      const out = await bench.run();
      rows.push(...out.rows);
      results[bench.name] = { figures: out.figures, seconds: round((performance.now() - t) / 1000) };
      writeResult(`${bench.name}.json`, { at: new Date().toISOString(), machine: machine(), ...results[bench.name] });
    } catch (err) {
      failed++;
      const message = err instanceof Error ? (err.message.split("\n")[0] ?? "") : String(err);
      rows.push({ figure: `${bench.name}: FAILED`, value: message.slice(0, 120), baseline: "", ratio: null });
      results[bench.name] = { error: String(err), seconds: round((performance.now() - t) / 1000) };
    }
    process.stderr.write(`bench: ${bench.name} done in ${results[bench.name]?.seconds} s\n`);
  }
  const host = machine();
  const totalSeconds = round((performance.now() - started) / 1000);
  console.log(
    `turnout benchmarks on ${host.cpu}, ${host.cores} cores, ${host.memoryGb} GB, ${host.os}, Node ${host.node} (${totalSeconds} s)\n`,
  );
  console.log(table(rows));
  console.log(
    "\nratio: baseline ÷ value for times (> 1: better); value ÷ baseline for throughput; turnout ÷ baseline for ingest CPU.",
  );
  // A subset run keeps its figures apart, so summary.json always holds one whole run.
  const name = selected.length ? `summary-${chosen.map((b) => b.name).join("+")}.json` : "summary.json";
  const out = writeResult(name, { at: new Date().toISOString(), machine: host, totalSeconds, rows, results });
  console.log(`figures written to ${out}`);
  return failed ? 1 : 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
