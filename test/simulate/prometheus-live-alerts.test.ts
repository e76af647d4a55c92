/**
 * `--query` reads `ALERTS`, which exists only where Prometheus evaluated a rule live. So this test
 * runs a real Prometheus scraping a tiny exporter every second with a `GatewayDown` rule
 * (`for: 2s`, evaluated every second), takes the primary gateway down for about 12 s, and
 * replays that window: a 5 s hold fails over once, a 60 s hold holds the whole alert out.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../../agent/sandbox/free-port.ts";
import { type PrometheusProcess, startPrometheus } from "../support/prometheus.ts";
import { type JsonResult, runSimulate } from "./run-cli.ts";

const values = { primary: 1, secondary: 1 };
let exporter: Server;
let prom: PrometheusProcess;
let dir: string;

async function instant(query: string): Promise<unknown[]> {
  const res = await fetch(`${prom.url}/api/v1/query?query=${encodeURIComponent(query)}`);
  const body = (await res.json()) as { data: { result: unknown[] } };
  return body.data.result;
}

/** Polls a live system (Prometheus evaluates on its own clock) until `check` holds. */
async function until(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${prom.output().slice(-1500)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  return Date.now();
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "turnout-sim-live-"));
  const port = await freePort();
  exporter = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
    res.end(
      `# TYPE gateway_up gauge\ngateway_up{gateway="10.116.0.4"} ${values.primary}\ngateway_up{gateway="10.116.0.12"} ${values.secondary}\n`,
    );
  });
  await new Promise<void>((r) => exporter.listen(port, "127.0.0.1", () => r()));
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
      "scrape_configs:",
      "  - job_name: gateways",
      "    static_configs:",
      `      - targets: ["127.0.0.1:${port}"]`,
      "",
    ].join("\n"),
  );
}, 90_000);

afterAll(async () => {
  await prom?.stop();
  await new Promise<void>((r) => (exporter ? exporter.close(() => r()) : r()));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("--query on live-evaluated ALERTS", () => {
  it("replays a live alert with the decisions each hold gives", async () => {
    await until("both gateways scraped", async () => (await instant("gateway_up == 1")).length === 2);
    const from = new Date(Date.now() - 2_000).toISOString();
    values.primary = 0;
    const firing = await until(
      "GatewayDown firing",
      async () => (await instant('ALERTS{alertname="GatewayDown",alertstate="firing"}')).length === 1,
    );
    await until("12 s of firing", async () => Date.now() - firing >= 12_000);
    values.primary = 1;
    const resolved = await until(
      "GatewayDown resolved",
      async () => (await instant('ALERTS{alertname="GatewayDown"}')).length === 0,
    );
    // A few more evaluations (Prometheus's own 1 s clock) so the range ends past the alert.
    await until("3 s past the resolution", async () => Date.now() - resolved >= 3_000);
    const to = new Date().toISOString();

    const configFile = join(dir, "turnout.config.json");
    writeFileSync(
      configFile,
      JSON.stringify({
        agent: { url: "http://127.0.0.1:8788" },
        targets: {
          "egress-gw": {
            sides: {
              primary: { matchers: ['alertname="GatewayDown"', 'gateway="10.116.0.4"'] },
              secondary: { matchers: ['alertname="GatewayDown"', 'gateway="10.116.0.12"'] },
            },
            policy: { holdSeconds: 5 },
          },
        },
      }),
    );
    const run = await runSimulate([
      "--config",
      configFile,
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
      "--json",
    ]);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    const result = JSON.parse(run.stdout) as JsonResult;
    const [hold5, hold60] = result.variants;
    expect(hold5?.summary).toMatchObject({ failovers: 1, failbacks: 0, alerts: 1, shortAlerts: 0 });
    expect(hold60?.summary).toMatchObject({ failovers: 0, failbacks: 0, alerts: 1, shortAlerts: 1 });
    // The firing interval the replay saw is the one Prometheus evaluated: about 12 s, on primary.
    const timeline = hold60?.targets[0]?.timeline ?? [];
    const signals = timeline.filter((l) => l.type.startsWith("signal."));
    expect(signals.map((l) => l.text)).toEqual([
      expect.stringMatching(/^signal received: alertmanager says primary is firing \(am:[0-9a-f]{16}\)$/),
      expect.stringMatching(/^signal received: alertmanager says primary is resolved/),
    ]);
    const seconds = (Date.parse(signals[1]?.at ?? "") - Date.parse(signals[0]?.at ?? "")) / 1000;
    expect(seconds).toBeGreaterThanOrEqual(11);
    expect(seconds).toBeLessThanOrEqual(16);
    expect(hold5?.targets[0]?.final).toEqual({ activeSide: "secondary", phase: "steady" });
  }, 120_000);
});
