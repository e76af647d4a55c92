/**
 * `npm run simulate -- …` (design §10 "Simulate"): replays recorded alerts through turnout's own
 * ingest, routing, signal merge and decide() on a virtual clock, once per policy variant, and
 * prints what turnout would have done. The engine is worker/simulate/engine.ts; this file reads
 * the inputs (files, Prometheus, a worker's audit log) and writes the outputs.
 *
 *   npm run simulate -- --webhooks recorded.ndjson --policy holdSeconds=120 --policy holdSeconds=600
 *   npm run simulate -- --prometheus http://prom:9090 --expr 'gateway_up == 0' --for 1m \
 *       --alertname GatewayDown --from -30d --to now --quiet
 *   npm run simulate -- --webhooks night.ndjson --agent-silent agent-b@2026-11-02T03:00:00Z/2026-11-02T04:00:00Z
 *
 * Exit 0; 1 when some input could not be read (everything else is still replayed and printed);
 * 2 on bad usage (unknown option, bad --policy, invalid config).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { Command, CommanderError, Option } from "commander";
import { validateWorkerConfig, type WorkerConfig } from "../shared/config.ts";
import { type AgentSilence, parseAgentSilence } from "../worker/simulate/agent-silences.ts";
import { SimulateUsageError, simulate } from "../worker/simulate/engine.ts";
import { renderHtml } from "../worker/simulate/html.ts";
import {
  auditToDeliveries,
  type FiringInterval,
  type InputProblem,
  intervalsToWebhooks,
  parseNotReady,
  parseWebhookLines,
  type SimInput,
} from "../worker/simulate/inputs.ts";
import {
  alertIntervals,
  exprIntervals,
  PrometheusError,
  parseDuration,
  parseTime,
  queryRange,
  type Series,
} from "../worker/simulate/prometheus.ts";
import { jsonReport, textReport } from "../worker/simulate/report.ts";
import { AS_CONFIGURED, parseVariant, type Variant } from "../worker/simulate/variants.ts";
import { fetchAuditEvents, WorkerSourceError } from "../worker/simulate/worker-source.ts";

interface Options {
  webhooks: string[];
  prometheus?: string;
  query?: string;
  expr?: string;
  for?: string;
  alertname?: string;
  from: string;
  to: string;
  step: string;
  repeatInterval: string;
  worker?: string;
  target?: string;
  config: string;
  policy: string[];
  quiet: boolean;
  json: boolean;
  html?: string;
  actionSeconds: string;
  notReady: string[];
  agentSilent: string[];
  progress: boolean;
}

class UsageError extends Error {}

const collect = (value: string, previous: string[]) => [...previous, value];

function program(): Command {
  return new Command("simulate")
    .description("Replay recorded alerts through turnout's own decision code and compare policies")
    .option(
      "--webhooks <file>",
      "NDJSON of deliveries as received: {at, source, body} a line (repeatable)",
      collect,
      [],
    )
    .option("--prometheus <url>", "Prometheus base URL for --query or --expr")
    .option("--query <selector>", "a selector on ALERTS, read with query_range (firing intervals)")
    .option("--expr <promql>", "an alerting expression, for history from before a rule existed")
    .option("--for <duration>", "the rule's `for` with --expr (e.g. 1m)", "0s")
    .option("--alertname <name>", "the alertname label the --expr alerts carry")
    .option("--from <time>", "start: ISO time or -30d", "-30d")
    .option("--to <time>", "end: ISO time or now", "now")
    .option("--step <duration>", "query step: the rule's evaluation interval", "1m")
    .option("--repeat-interval <duration>", "Alertmanager repeat_interval for Prometheus alerts (0s: none)", "4h")
    .option("--worker <url>", "a running worker whose audit log to replay (token in TURNOUT_TOKEN)")
    .option("--target <name>", "the target whose audit log --worker reads")
    .option("--config <file>", "the worker config", "turnout.config.json")
    .option("--policy <k=v,…>", "a policy variant: k=v for every target, target:k=v for one (repeatable)", collect, [])
    .option("--quiet", "print only the summary", false)
    .option("--json", "print the result as JSON", false)
    .option("--html <file>", "write a self-contained swim-lane page")
    .option("--action-seconds <n>", "a dispatched action succeeds this many seconds later", "5")
    .option(
      "--not-ready <target@from/to>",
      "the target is not ready to fail over (design §11.3) from one ISO time to another (repeatable)",
      collect,
      [],
    )
    .option(
      "--agent-silent <agent@from/to>",
      "the agent is silent from `from` to `to` (ISO, now, or -2h) and does not answer the probe (repeatable)",
      collect,
      [],
    )
    .addOption(new Option("--no-progress", "no progress bar on stderr"))
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
}

function loadConfig(file: string): WorkerConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new UsageError(`--config ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const v = validateWorkerConfig(raw);
  if (!v.ok)
    throw new UsageError(
      `--config ${file} is invalid:\n${v.problems.map((p) => `  ${p.path}: ${p.message}`).join("\n")}`,
    );
  return v.value;
}

function duration(name: string, text: string): number {
  const ms = parseDuration(text);
  if (ms === null)
    throw new UsageError(`${name} ${JSON.stringify(text)}: expected a Prometheus duration such as 30s, 1m, 4h`);
  return ms;
}

/** A progress bar on stderr for long ranges (only on a terminal: logs stay clean). */
function progressBar(label: string, enabled: boolean): (done: number, total: number) => void {
  const tty = enabled && process.stderr.isTTY === true;
  return (done, total) => {
    if (!tty || total < 2) return;
    const width = 30;
    const filled = Math.round((done / total) * width);
    process.stderr.write(`\r${label} [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${done}/${total} requests`);
    if (done === total) process.stderr.write("\n");
  };
}

async function readPrometheus(
  o: Options,
  now: number,
  problems: InputProblem[],
): Promise<{ inputs: SimInput[]; until: number }> {
  const base = o.prometheus ?? "";
  const from = parseTime(o.from, now);
  const to = parseTime(o.to, now);
  if (from === null) throw new UsageError(`--from ${JSON.stringify(o.from)}: expected an ISO time or -30d`);
  if (to === null) throw new UsageError(`--to ${JSON.stringify(o.to)}: expected an ISO time or now`);
  if (to <= from)
    throw new UsageError(
      `--from must be before --to (${new Date(from).toISOString()} ≥ ${new Date(to).toISOString()})`,
    );
  const step = duration("--step", o.step);
  if (step <= 0) throw new UsageError("--step must be more than 0");
  const repeat = duration("--repeat-interval", o.repeatInterval);
  const range = `between ${new Date(from).toISOString()} and ${new Date(to).toISOString()}`;
  const inputs: SimInput[] = [];
  const jobs: {
    what: string;
    query: string;
    intervals: (series: Series[]) => FiringInterval[];
  }[] = [];
  if (o.query !== undefined) {
    jobs.push({ what: `--query ${o.query}`, query: o.query, intervals: (s) => alertIntervals(s, step, to) });
  }
  if (o.expr !== undefined) {
    const forMs = duration("--for", o.for ?? "0s");
    jobs.push({
      what: `--expr ${o.expr}`,
      query: o.expr,
      intervals: (s) => exprIntervals(s, step, forMs, o.alertname, to),
    });
  }
  for (const job of jobs) {
    const origin = `prometheus ${job.what}`;
    try {
      const series = await queryRange(base, job.query, from, to, step, {
        fetch,
        onProgress: progressBar(`prometheus ${job.what.slice(0, 40)}`, o.progress),
      });
      if (series.length === 0) {
        problems.push({ severity: "warning", origin, message: `no data ${range} (no series matched)` });
        continue;
      }
      const intervals = job.intervals(series);
      if (intervals.length === 0) {
        problems.push({
          severity: "warning",
          origin,
          message: `${series.length} series but no firing interval ${range}`,
        });
      }
      inputs.push(...intervalsToWebhooks(intervals, origin, repeat, to));
    } catch (err) {
      if (!(err instanceof PrometheusError)) throw err;
      problems.push({ severity: "error", origin, message: err.message });
    }
  }
  return { inputs, until: to };
}

async function main(argv: string[]): Promise<number> {
  const cmd = program();
  try {
    cmd.parse(argv, { from: "user" });
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    throw err;
  }
  const o = cmd.opts<Options>();
  const now = Date.now();
  const problems: InputProblem[] = [];
  const inputs: SimInput[] = [];
  let until: number | undefined;
  let from: number | undefined;
  try {
    const config = loadConfig(o.config);
    const actionSeconds = Number(o.actionSeconds);
    if (!Number.isInteger(actionSeconds) || actionSeconds < 0) {
      throw new UsageError(`--action-seconds ${JSON.stringify(o.actionSeconds)}: expected a whole number of seconds`);
    }
    const variants: Variant[] = [AS_CONFIGURED];
    for (const text of o.policy) {
      const v = parseVariant(text);
      if (!v.ok) throw new UsageError(v.message);
      variants.push(v.variant);
    }
    const agentSilences: AgentSilence[] = [];
    for (const text of o.agentSilent) {
      const parsed = parseAgentSilence(text, config, now);
      if (!parsed.ok) throw new UsageError(parsed.message);
      agentSilences.push(parsed.silence);
    }
    const hasPrometheus = o.query !== undefined || o.expr !== undefined;
    if (hasPrometheus && o.prometheus === undefined) throw new UsageError("--query and --expr need --prometheus URL");
    if (o.prometheus !== undefined && !hasPrometheus) throw new UsageError("--prometheus needs --query or --expr");
    if ((o.worker === undefined) !== (o.target === undefined))
      throw new UsageError("--worker and --target go together");
    if (o.webhooks.length === 0 && !hasPrometheus && o.worker === undefined) {
      throw new UsageError(
        "no input: give --webhooks FILE, --prometheus URL with --query or --expr, or --worker URL --target NAME",
      );
    }
    for (const file of o.webhooks) {
      let text: string;
      try {
        text = readFileSync(file, "utf8");
      } catch (err) {
        problems.push({
          severity: "error",
          origin: file,
          message: `cannot read: ${err instanceof Error ? err.message : String(err)}`,
        });
        continue;
      }
      const parsed = parseWebhookLines(text, file);
      inputs.push(...parsed.inputs);
      problems.push(...parsed.problems);
    }
    if (hasPrometheus) {
      const p = await readPrometheus(o, now, problems);
      inputs.push(...p.inputs);
      until = p.until;
      from = parseTime(o.from, now) ?? undefined;
    }
    if (o.worker !== undefined && o.target !== undefined) {
      const origin = `worker ${o.target}`;
      try {
        const events = await fetchAuditEvents(o.worker, o.target, process.env.TURNOUT_TOKEN ?? "", fetch);
        const parsed = auditToDeliveries(events, o.target, origin);
        if (parsed.inputs.length === 0)
          problems.push({ severity: "warning", origin, message: "the audit log holds no signals" });
        inputs.push(...parsed.inputs);
        problems.push(...parsed.problems);
      } catch (err) {
        if (!(err instanceof WorkerSourceError)) throw err;
        problems.push({ severity: "error", origin, message: err.message });
      }
    }
    for (const text of o.notReady) {
      const parsed = parseNotReady(text);
      if (parsed.problem !== undefined) throw new UsageError(parsed.problem);
      inputs.push(...parsed.inputs);
    }
    const result = simulate(inputs, {
      config,
      variants,
      actionSeconds,
      agentSilences,
      ...(from !== undefined ? { from } : {}),
      ...(until !== undefined ? { until } : {}),
      keepTimeline: !o.quiet || o.html !== undefined || o.json,
    });
    result.problems.unshift(...problems);
    for (const p of result.problems)
      process.stderr.write(`simulate: ${p.severity === "warning" ? "warning: " : ""}${p.origin}: ${p.message}\n`);
    const options = { quiet: o.quiet, actionSeconds };
    process.stdout.write(o.json ? jsonReport(result, options) : textReport(result, options));
    if (o.html !== undefined) writeFileSync(o.html, renderHtml(result));
    return result.problems.some((p) => p.severity === "error") ? 1 : 0;
  } catch (err) {
    if (err instanceof UsageError || err instanceof SimulateUsageError) {
      process.stderr.write(`simulate: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`simulate failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
