/**
 * Benchmark: `npm run simulate`'s engine over 30 days of a 100-target configuration with 100,000
 * signals (50,000 Alertmanager incidents, firing then resolved, of 10 s to 30 min, on both sides
 * of every target), one policy variant, on one core. Goal (issue 24): at most 5 CPU s, with the
 * month's {@link SIMULATE_FAILOVERS} failovers (fewer or more means the engine decided
 * differently, so the run throws instead of reporting a time). The inputs are
 * built before the clock starts; the timed part is everything `simulate()` does: parsing every
 * webhook body, routing, merging, deciding, alarms and the simulated agent.
 *
 * Run with `node bench/simulate.ts`; `run()` returns the figures.
 */
import { pathToFileURL } from "node:url";
import { validateWorkerConfig } from "../shared/config.ts";
import { simulate } from "../worker/simulate/engine.ts";
import { type FiringInterval, intervalsToWebhooks } from "../worker/simulate/inputs.ts";
import { AS_CONFIGURED } from "../worker/simulate/variants.ts";

export interface SimulateBenchFigures {
  targets: number;
  days: number;
  signals: number;
  /** Wall-clock seconds (inflated when other work shares the machine's cores). */
  seconds: number;
  /** CPU seconds of this single-threaded run: the time on one dedicated core. */
  cpuSeconds: number;
  /** Signals per CPU second. */
  signalsPerSecond: number;
  failovers: number;
}

const DAY = 86_400_000;

/** Failovers the default month (100 targets, 100,000 signals, 30 days) replays to. */
export const SIMULATE_FAILOVERS = 2935;

/** A small deterministic PRNG (mulberry32), so every run replays the same month. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Simulates the month once and measures it. */
export async function run(targets = 100, signals = 100_000, days = 30): Promise<SimulateBenchFigures> {
  const names = Array.from({ length: targets }, (_, i) => `gw-${String(i).padStart(3, "0")}`);
  const config = validateWorkerConfig({
    agent: { url: "http://127.0.0.1:8788" },
    targets: Object.fromEntries(
      names.map((n) => [
        n,
        {
          sides: {
            primary: { matchers: ['alertname="GatewayDown"', `target="${n}"`, 'side="primary"'] },
            secondary: { matchers: ['alertname="GatewayDown"', `target="${n}"`, 'side="secondary"'] },
          },
          policy: { holdSeconds: 60, failback: "auto" },
        },
      ]),
    ),
  });
  if (!config.ok) throw new Error(JSON.stringify(config.problems));
  const random = prng(18);
  const from = Date.UTC(2026, 9, 1);
  const until = from + days * DAY;
  const intervals: FiringInterval[] = [];
  for (let i = 0; i < signals / 2; i++) {
    const target = names[i % targets] ?? "gw-000";
    const start = from + Math.floor(random() * (until - from - 2 * 3_600_000));
    const length = 10_000 + Math.floor(random() * 1_790_000);
    // Distinct instances: each incident its own alert, as with many checks per gateway.
    intervals.push({
      labels: {
        alertname: "GatewayDown",
        target,
        side: random() < 0.7 ? "primary" : "secondary",
        instance: `probe-${i % 7}`,
      },
      start,
      end: start + length,
    });
  }
  const inputs = intervalsToWebhooks(intervals, "bench", 0, until);
  const started = performance.now();
  const cpu = process.cpuUsage();
  const result = simulate(inputs, {
    config: config.value,
    variants: [AS_CONFIGURED],
    actionSeconds: 5,
    from,
    until,
    keepTimeline: false,
  });
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  const cpuSeconds = (used.user + used.system) / 1e6;
  const failovers = result.variants[0]?.summary.failovers ?? 0;
  if (targets === 100 && signals === 100_000 && days === 30 && failovers !== SIMULATE_FAILOVERS) {
    throw new Error(
      `simulate bench: ${failovers} failovers, expected ${SIMULATE_FAILOVERS}: the engine decides differently`,
    );
  }
  return {
    targets,
    days,
    signals: result.inputs.signals,
    seconds: Math.round(seconds * 100) / 100,
    cpuSeconds: Math.round(cpuSeconds * 100) / 100,
    signalsPerSecond: Math.round(result.inputs.signals / cpuSeconds),
    failovers,
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  run().then(
    (f) => console.log(JSON.stringify(f)),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
