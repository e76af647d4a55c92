/**
 * `npm run simulate -- --not-ready <target>@<from>/<to>` (design §11.3, §10): the target's
 * destination is not ready over that span, so with `requireReady=true` a failover whose hold
 * starts inside it is blocked `not-ready` and counted in the summary; one whose hold starts after
 * it goes. Through the CLI, as a person runs it.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { validateWorkerConfig } from "../../shared/config.ts";
import { simulate } from "../../worker/simulate/engine.ts";
import { parseNotReady, parseWebhookLines } from "../../worker/simulate/inputs.ts";
import { AS_CONFIGURED, parseVariant } from "../../worker/simulate/variants.ts";
import { runSimulate } from "./run-cli.ts";

const T = (s: number) => new Date(Date.UTC(2026, 10, 2, 10, 0, s)).toISOString();
const RAW = {
  agent: { url: "http://127.0.0.1:8788" },
  targets: {
    gw: {
      sides: {
        primary: { matchers: ['alertname="Down"', 'side="p"'] },
        secondary: { matchers: ['alertname="Down"', 'side="s"'] },
      },
      policy: { holdSeconds: 30 },
    },
  },
};

function am(at: number, status: "firing" | "resolved", startsAt: number): string {
  const alert = {
    status,
    labels: { alertname: "Down", side: "p" },
    startsAt: T(startsAt),
    endsAt: status === "resolved" ? T(at) : "0001-01-01T00:00:00Z",
  };
  return JSON.stringify({ at: T(at), source: "alertmanager", body: { version: "4", alerts: [alert] } });
}

const lines = [am(100, "firing", 100), am(200, "resolved", 100), am(1000, "firing", 1000)];
const tmp = mkdtempSync(join(tmpdir(), "simulate-not-ready-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("simulate --not-ready", () => {
  it("blocks not-ready with requireReady while the span covers the hold's start, and counts it", () => {
    const v = validateWorkerConfig(RAW);
    if (!v.ok) throw new Error("config");
    const { inputs } = parseWebhookLines(lines.join("\n"), "in");
    const notReady = parseNotReady(`gw@${T(50)}/${T(500)}`);
    expect(notReady.problem).toBeUndefined();
    const variant = parseVariant("requireReady=true");
    if (!variant.ok) throw new Error(variant.message);
    const [asConfigured, requireReady] = simulate([...inputs, ...notReady.inputs], {
      config: v.value,
      variants: [AS_CONFIGURED, variant.variant],
      actionSeconds: 5,
    }).variants;
    // As configured, readiness blocks nothing; the first incident fails over.
    expect(asConfigured?.summary.blocked["not-ready"]).toBe(0);
    expect(asConfigured?.summary.failovers).toBe(1);
    // requireReady: the first hold starts inside the span: blocked; the second starts after: it goes.
    expect(requireReady?.summary.blocked["not-ready"]).toBe(1);
    expect(requireReady?.summary.failovers).toBe(1);
    const blocked = requireReady?.targets[0]?.events.find((e) => e.type === "failover.blocked");
    expect(blocked?.at).toBe(Date.parse(T(130)));
  });

  it("prints the blocked count through the CLI, and refuses a malformed value (exit 2)", async () => {
    const file = join(tmp, "in.ndjson");
    const config = join(tmp, "config.json");
    writeFileSync(file, `${lines.join("\n")}\n`);
    writeFileSync(config, JSON.stringify(RAW));
    const ok = await runSimulate([
      "--webhooks",
      file,
      "--config",
      config,
      "--policy",
      "requireReady=true",
      "--not-ready",
      `gw@${T(50)}/${T(500)}`,
      "--quiet",
      "--json",
      "--no-progress",
    ]);
    expect(ok.stderr).toBe("");
    expect(ok.code).toBe(0);
    const out = JSON.parse(ok.stdout) as { variants: { summary: { blocked: Record<string, number> } }[] };
    expect(out.variants.map((x) => x.summary.blocked["not-ready"])).toEqual([0, 1]);
    const bad = await runSimulate(["--webhooks", file, "--config", config, "--not-ready", "gw@yesterday"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--not-ready gw@yesterday: expected <target>@<ISO from>/<ISO to>");
  });
});
