/**
 * `--prometheus … --expr 'gateway_up == 0' --for 1m` against a real Prometheus holding a month of
 * backfilled history (promtool create-blocks-from openmetrics) with outages of known lengths,
 * under the configured hold and two variants: the exact failovers, failbacks, blocked reasons and
 * minutes down for each, worked out by hand below from the rules of design §5.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { backfill, type ReplayServer, startPrometheus } from "../support/prometheus-replay.ts";
import { type JsonResult, runSimulate } from "./run-cli.ts";

const FROM = Date.UTC(2026, 9, 1); // 2026-10-01T00:00:00Z
const TO = Date.UTC(2026, 10, 1); // 2026-11-01T00:00:00Z, 44,641 one-minute steps: 5 requests
const MIN = 60_000;
const PRIMARY = "10.116.0.4";
const SECONDARY = "10.116.0.12";
const at = (day: number, h: number, m: number) => Date.UTC(2026, 9, day, h, m);

/** Minutes at which a gateway scrapes 0: [start, number of zero samples]. */
const OUTAGES: Record<string, [number, number][]> = {
  [PRIMARY]: [
    [at(3, 10, 0), 2], // fires 10:01–10:02: 1 min
    [at(6, 10, 0), 4], // 3 min
    [at(9, 10, 0), 16], // 15 min
    [at(12, 10, 0), 1], // one zero sample: shorter than `for`, never fires
    [at(15, 10, 0), 31], // 30 min, while the secondary is down too
    [at(24, 10, 0), 16], // 15 min
    [at(24, 14, 0), 16], // 15 min the same day: the day's budget is spent by then
  ],
  [SECONDARY]: [[at(15, 9, 50), 60]], // fires 09:51–10:50
};

function openMetrics(): string {
  const lines = ["# HELP gateway_up Whether the gateway answers.", "# TYPE gateway_up gauge"];
  const down = (gw: string, t: number) => (OUTAGES[gw] ?? []).some(([s, n]) => t >= s && t < s + n * MIN);
  for (let t = FROM; t <= TO; t += MIN) {
    for (const gw of [PRIMARY, SECONDARY]) {
      lines.push(`gateway_up{gateway="${gw}"} ${down(gw, t) ? 0 : 1} ${t / 1000}`);
    }
  }
  lines.push("# EOF", "");
  return lines.join("\n");
}

const CONFIG = {
  agent: { url: "http://127.0.0.1:8788" },
  targets: {
    "egress-gw": {
      sides: {
        primary: { matchers: ['alertname="GatewayDown"', `gateway="${PRIMARY}"`] },
        secondary: { matchers: ['alertname="GatewayDown"', `gateway="${SECONDARY}"`] },
      },
      policy: { holdSeconds: 30, failback: "auto", failbackAfterSeconds: 300 },
    },
  },
};

let dir: string;
let prom: ReplayServer;
let configFile: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "turnout-sim-prom-"));
  await backfill(openMetrics(), join(dir, "data"));
  prom = await startPrometheus(dir, "global:\n  scrape_interval: 1m\n");
  configFile = join(dir, "turnout.config.json");
  writeFileSync(configFile, JSON.stringify(CONFIG));
}, 120_000);

afterAll(async () => {
  await prom?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const exprArgs = () => [
  "--config",
  configFile,
  "--prometheus",
  prom.url,
  "--expr",
  "gateway_up == 0",
  "--for",
  "1m",
  "--alertname",
  "GatewayDown",
  "--step",
  "1m",
  "--from",
  new Date(FROM).toISOString(),
  "--to",
  new Date(TO).toISOString(),
];

describe("a month of backfilled history through --expr with for 1m", () => {
  let result: JsonResult;

  beforeAll(async () => {
    const run = await runSimulate([
      ...exprArgs(),
      "--policy",
      "holdSeconds=120",
      "--policy",
      "holdSeconds=600",
      "--json",
      "--quiet",
    ]);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    result = JSON.parse(run.stdout) as JsonResult;
  }, 120_000);

  it("replays the whole range", () => {
    expect(result.from).toBe("2026-10-01T00:00:00.000Z");
    expect(result.until).toBe("2026-11-01T00:00:00.000Z");
    expect(result.variants.map((v) => v.name)).toEqual(["as configured", "holdSeconds=120", "holdSeconds=600"]);
  });

  // Every outage but the one that never fired goes pending; a failover is followed by an auto
  // failback (primary up 300 s, cooldown 600 s over). Oct 15: both sides down, never a switch.
  // Oct 24 afternoon: that morning's failover + failback spent maxAutoActionsPerDay (2).
  it("hold 30 s (as configured): every alert that fired fails over, bar the two blocked", () => {
    const s = result.variants[0]?.summary;
    expect(s).toMatchObject({ failovers: 4, failbacks: 4, approvals: 0, alerts: 6, shortAlerts: 0 });
    expect(s?.blocked).toMatchObject({ "both-sides-down": 1, budget: 1, cooldown: 0, flapping: 0 });
    // Held 0.5 min in six outages; blocked 29.5 (Oct 15) + 14.5 (Oct 24 afternoon).
    expect(s?.downMinutes).toEqual({ hold: 3, blocked: 44, approval: 0, failed: 0, steady: 0, total: 47 });
  });

  it("hold 120 s: the 1-minute alert is held out", () => {
    const s = result.variants[1]?.summary;
    expect(s).toMatchObject({ failovers: 3, failbacks: 3, approvals: 0, alerts: 6, shortAlerts: 1 });
    expect(s?.blocked).toMatchObject({ "both-sides-down": 1, budget: 1 });
    // Held 1 (Oct 3, whole alert) + 2 × 5; blocked 28 + 13.
    expect(s?.downMinutes).toEqual({ hold: 11, blocked: 41, approval: 0, failed: 0, steady: 0, total: 52 });
  });

  it("hold 600 s: the 1- and 3-minute alerts are held out, the side stays down longer", () => {
    const s = result.variants[2]?.summary;
    expect(s).toMatchObject({ failovers: 2, failbacks: 2, approvals: 0, alerts: 6, shortAlerts: 2 });
    expect(s?.blocked).toMatchObject({ "both-sides-down": 1, budget: 1 });
    // Held 1 + 3 + 10 × 4; blocked 20 (Oct 15) + 5 (Oct 24 afternoon).
    expect(s?.downMinutes).toEqual({ hold: 44, blocked: 25, approval: 0, failed: 0, steady: 0, total: 69 });
  });

  it("ends every variant back on primary, steady", () => {
    for (const v of result.variants) expect(v.targets[0]?.final).toEqual({ activeSide: "primary", phase: "steady" });
  });
});

describe("Prometheus problems are reported, not fatal", () => {
  it("a query Prometheus refuses names Prometheus's error; exit 1", async () => {
    const run = await runSimulate([...exprArgs().slice(0, 4), "--expr", "gateway_up ==", "--quiet"]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/prometheus --expr gateway_up ==: Prometheus error \(bad_data\): .*parse error/);
    expect(run.stdout).toContain("summary");
  });

  it("a range with no data is a warning naming the range; exit 0", async () => {
    const args = exprArgs();
    args[args.indexOf("--from") + 1] = "2025-01-01T00:00:00Z";
    args[args.indexOf("--to") + 1] = "2025-01-02T00:00:00Z";
    const run = await runSimulate([...args, "--quiet"]);
    expect(run.code).toBe(0);
    expect(run.stderr).toContain(
      "warning: prometheus --expr gateway_up == 0: no data between 2025-01-01T00:00:00.000Z and 2025-01-02T00:00:00.000Z",
    );
  });

  it("an unreachable Prometheus is retried, then reported", async () => {
    const args = exprArgs();
    args[args.indexOf("--prometheus") + 1] = "http://127.0.0.1:1";
    const run = await runSimulate([...args, "--quiet"]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/cannot reach Prometheus: .*\(after 3 retries\)/);
  });
});
