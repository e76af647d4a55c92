/**
 * The simulator's contract around its input (design §10): the same inputs print the same bytes,
 * whatever order equal-time lines come in; a line it cannot read is reported with its number and
 * everything else is still replayed; a bad variant or config is a usage error (exit 2).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { validateWorkerConfig, type WorkerConfig } from "../../shared/config.ts";
import { simulate } from "../../worker/simulate/engine.ts";
import { parseWebhookLines } from "../../worker/simulate/inputs.ts";
import { jsonReport, textReport } from "../../worker/simulate/report.ts";
import { AS_CONFIGURED, parseVariant, type Variant } from "../../worker/simulate/variants.ts";
import { runSimulate } from "./run-cli.ts";

const RAW_CONFIG = {
  agent: { url: "http://127.0.0.1:8788" },
  targets: {
    "egress-gw": {
      sides: {
        primary: { anyOf: [['alertname="GatewayDown"', 'gateway="10.116.0.4"'], ['host="gw-primary"']] },
        secondary: { anyOf: [['alertname="GatewayDown"', 'gateway="10.116.0.12"'], ['host="gw-secondary"']] },
      },
      policy: { holdSeconds: 60, quorum: 1 },
    },
    "bootstrap-dns": {
      sides: {
        primary: { matchers: ['alertname="BootstrapNodeDown"', 'node="bootstrap-a"'] },
        secondary: { matchers: ['alertname="BootstrapNodeDown"', 'node="bootstrap-b"'] },
      },
      policy: { holdSeconds: 30, approval: "required" },
    },
  },
};

function config(): WorkerConfig {
  const v = validateWorkerConfig(RAW_CONFIG);
  if (!v.ok) throw new Error(JSON.stringify(v.problems));
  return v.value;
}

const T = (minute: number, second = 0) => new Date(Date.UTC(2026, 10, 2, 10, minute, second)).toISOString();

function am(at: string, status: "firing" | "resolved", labels: Record<string, string>, startsAt: string): string {
  return JSON.stringify({
    at,
    source: "alertmanager",
    body: {
      version: "4",
      status,
      alerts: [{ status, labels, startsAt, endsAt: status === "resolved" ? at : "0001-01-01T00:00:00Z" }],
    },
  });
}

function nagios(at: string, type: "PROBLEM" | "RECOVERY", host: string, epochSeconds: number): string {
  const state = type === "PROBLEM" ? "DOWN" : "UP";
  return JSON.stringify({
    at,
    source: "nagios",
    body: `NOTIFICATIONTYPE=${type}&HOSTNAME=${host}&HOSTSTATE=${state}&HOSTSTATETYPE=HARD&HOSTPROBLEMID=7&LASTHOSTPROBLEMID=7&TIMET=${epochSeconds}`,
  });
}

const GW_P = { alertname: "GatewayDown", gateway: "10.116.0.4" };
const GW_S = { alertname: "GatewayDown", gateway: "10.116.0.12" };
const BOOT_A = { alertname: "BootstrapNodeDown", node: "bootstrap-a" };
const sec = (iso: string) => Date.parse(iso) / 1000;

/** An incident with many equal-time lines: both sources at once, both targets at once. */
const LINES = [
  am(T(0), "firing", GW_P, T(0)),
  nagios(T(0), "PROBLEM", "gw-primary", sec(T(0))),
  am(T(0), "firing", BOOT_A, T(0)),
  am(T(0, 30), "firing", GW_S, T(0, 30)),
  am(T(0, 30), "resolved", GW_S, T(0, 30)),
  am(T(1), "resolved", GW_P, T(0)),
  am(T(1), "firing", GW_P, T(0)), // an HA peer re-sending old firing after resolved: stale
  nagios(T(3), "RECOVERY", "gw-primary", sec(T(3))),
  am(T(3), "resolved", BOOT_A, T(0)),
  am(T(10), "firing", GW_P, T(10)),
  am(T(10), "firing", BOOT_A, T(10)),
  am(T(20), "resolved", GW_P, T(10)),
];

const VARIANTS: Variant[] = [AS_CONFIGURED, ...["holdSeconds=120", "egress-gw:holdSeconds=10"].map(variant)];

function variant(text: string): Variant {
  const v = parseVariant(text);
  if (!v.ok) throw new Error(v.message);
  return v.variant;
}

function run(lines: readonly string[]): { text: string; json: string } {
  const { inputs, problems } = parseWebhookLines(lines.join("\n"), "in.ndjson");
  expect(problems).toEqual([]);
  const result = simulate(inputs, { config: config(), variants: VARIANTS, actionSeconds: 5 });
  const o = { quiet: false, actionSeconds: 5 };
  return { text: textReport(result, o), json: jsonReport(result, o) };
}

describe("determinism", () => {
  const reference = run(LINES);

  it("replays the incident as the rules say", () => {
    const json = JSON.parse(reference.json) as {
      variants: { name: string; targets: { name: string; summary: { failovers: number; approvals: number } }[] }[];
    };
    const of = (v: number, t: string) => json.variants[v]?.targets.find((x) => x.name === t)?.summary;
    // hold 60: the first outage lasts 3 min (the Nagios check recovers last), the second 10 min.
    expect(of(0, "egress-gw")?.failovers).toBe(1);
    // approval required: asked at 10:00:30 (withdrawn when the node recovers) and at 10:10:30.
    expect(of(0, "bootstrap-dns")?.approvals).toBe(2);
    // hold 120 for every target: still one failover for egress-gw (the first outage lasts 180 s).
    expect(of(1, "egress-gw")?.failovers).toBe(1);
    // egress-gw:holdSeconds=10 touches egress-gw only.
    expect(json.variants[2]?.targets.find((t) => t.name === "bootstrap-dns")).toMatchObject({
      policy: { holdSeconds: 30 },
    });
    // Equal-time lines are taken in content order, so the Nagios line of 10:00 comes first.
    expect(reference.text).toContain("hold started: primary down (nagios); holding 60 s");
  });

  it("gives the same bytes twice", () => {
    expect(run(LINES)).toEqual(reference);
  });

  it("gives the same bytes for any order of the lines", () => {
    fc.assert(
      fc.property(fc.shuffledSubarray(LINES, { minLength: LINES.length, maxLength: LINES.length }), (shuffled) => {
        expect(run(shuffled)).toEqual(reference);
      }),
      { numRuns: 40 },
    );
  });
});

describe("the command", () => {
  const dir = mkdtempSync(join(tmpdir(), "turnout-sim-cli-"));
  const configFile = join(dir, "config.json");
  writeFileSync(configFile, JSON.stringify(RAW_CONFIG));
  const file = (name: string, lines: readonly string[]) => {
    const path = join(dir, name);
    writeFileSync(path, `${lines.join("\n")}\n`);
    return path;
  };
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("prints the same bytes for a file and its equal-time lines reversed", async () => {
    const a = await runSimulate(["--config", configFile, "--webhooks", file("a.ndjson", LINES)]);
    const reversedTies = [...LINES].sort((x, y) => {
      const ax = (JSON.parse(x) as { at: string }).at;
      const ay = (JSON.parse(y) as { at: string }).at;
      return ax < ay ? -1 : ax > ay ? 1 : -1;
    });
    const b = await runSimulate(["--config", configFile, "--webhooks", file("b.ndjson", reversedTies.reverse())]);
    expect(a.code).toBe(0);
    expect(a.stderr).toBe("");
    expect(b.stdout).toBe(a.stdout);
  });

  it("reports each unreadable line by number and still replays the rest (exit 1)", async () => {
    const bad = [
      LINES[0] ?? "",
      "{not json",
      JSON.stringify({ at: T(0), source: "zabbix", body: {} }),
      JSON.stringify({ source: "alertmanager", body: {} }),
      JSON.stringify({ at: T(0), source: "alertmanager", body: { version: "3", alerts: [] } }),
      "",
      ...LINES.slice(1),
    ];
    const run = await runSimulate(["--config", configFile, "--webhooks", file("bad.ndjson", bad), "--json"]);
    expect(run.code).toBe(1);
    const lines = run.stderr.trim().split("\n");
    expect(lines).toEqual([
      expect.stringMatching(/^simulate: .*bad\.ndjson:2: not JSON: /),
      expect.stringMatching(/bad\.ndjson:3: unknown source "zabbix": expected "alertmanager" or "nagios"$/),
      expect.stringMatching(/bad\.ndjson:4: at: /),
      expect.stringMatching(/bad\.ndjson:5: the Alertmanager body is invalid: version: expected "4"/),
    ]);
    const good = await runSimulate(["--config", configFile, "--webhooks", file("good.ndjson", LINES), "--json"]);
    const strip = (s: string) => {
      const j = JSON.parse(s) as { problems: unknown[] };
      j.problems = [];
      return j;
    };
    // Nothing else is lost: the result is the one of the good lines alone.
    expect(strip(run.stdout)).toEqual(strip(good.stdout));
  });

  it("refuses a bad variant or an unknown target with exit 2", async () => {
    const input = file("c.ndjson", LINES);
    const a = await runSimulate(["--config", configFile, "--webhooks", input, "--policy", "holdSeconds"]);
    expect(a.code).toBe(2);
    expect(a.stderr).toContain('"holdSeconds" is not key=value or target:key=value');
    const b = await runSimulate(["--config", configFile, "--webhooks", input, "--policy", "nope:holdSeconds=5"]);
    expect(b.code).toBe(2);
    expect(b.stderr).toContain('no target "nope" in the config');
    const c = await runSimulate(["--config", configFile, "--webhooks", input, "--policy", "holdSeconds=-1,quorum=3"]);
    expect(c.code).toBe(2);
    expect(c.stderr).toContain("egress-gw: policy.holdSeconds:");
    const d = await runSimulate(["--config", configFile]);
    expect(d.code).toBe(2);
    expect(d.stderr).toContain("no input");
  });
});
