/**
 * The readiness loop (design §11.3): a round at once, the next only after `intervalSeconds` on the
 * injected clock; only destination checks decide `ready`; the sides evaluated follow the
 * heartbeat answer's `serves` (both before one), and `latest()` never carries a side the worker
 * does not send this agent; a throwing evaluator is a failing check, not a failed round.
 */
import { KubeConfig } from "@kubernetes/client-node";
import { expect, it } from "vitest";
import { silentLogger } from "../../agent/log.ts";
import { createAgentMetrics } from "../../agent/metrics.ts";
import { advisory, destination, type TargetReadiness } from "../../agent/readiness/check.ts";
import { createReadiness } from "../../agent/readiness/runner.ts";
import { AgentConfigSchema, type Side } from "../../shared/config.ts";
import { metricValue } from "./readiness-sandbox.ts";

const config = AgentConfigSchema.parse({
  reportUrl: "http://127.0.0.1:1/v1/agent/reports",
  readiness: { intervalSeconds: 60 },
  targets: {
    "dc-nodes": {
      kind: "node-fence",
      nodes: { primary: { selector: "zone=a" }, secondary: { selector: "zone=b" } },
    },
    "www-dns": {
      kind: "dns-flip",
      provider: { type: "cloudflare", zoneId: "z", tokenEnv: "CF" },
      record: { name: "www.example.test" },
      values: { primary: ["192.0.2.1"], secondary: ["192.0.2.2"] },
    },
  },
});

/** A clock whose sleeps wait until the test moves time past them. */
function manualClock(start: number) {
  let t = start;
  const sleepers: { until: number; resolve: () => void }[] = [];
  return {
    now: () => t,
    sleep: (ms: number, signal: AbortSignal) =>
      new Promise<void>((resolve, reject) => {
        sleepers.push({ until: t + ms, resolve });
        signal.addEventListener("abort", () => reject(signal.reason), { once: true });
      }),
    advance(ms: number) {
      t += ms;
      for (const s of sleepers.splice(0)) {
        if (s.until <= t) s.resolve();
        else sleepers.push(s);
      }
    },
  };
}

it("evaluates at once, then once per interval; advisory checks never decide ready", async () => {
  const clock = manualClock(Date.parse("2026-12-01T10:00:00Z"));
  const calls: string[] = [];
  let sourceOk = false;
  const nodes: TargetReadiness = async (_n, _t, to) => {
    calls.push(`dc-nodes→${to}`);
    return { checks: [destination("destination-nodes", true, "ok"), advisory("source-nodes", sourceOk, "read")] };
  };
  const dns: TargetReadiness = async () => {
    throw new Error("boom");
  };
  const metrics = createAgentMetrics({ processMetrics: false });
  const readiness = createReadiness({
    config,
    kubeConfig: new KubeConfig(),
    log: silentLogger,
    clock,
    metrics,
    access: { review: async () => [] },
    memory: () => ({ get: async () => undefined }),
    evaluators: new Map([
      ["node-fence", nodes],
      ["dns-flip", dns],
    ]),
  });
  readiness.start();
  await expect.poll(() => calls.length).toBe(2);
  const first = readiness.latest();
  expect(first["dc-nodes"]?.secondary).toMatchObject({ ready: true, at: "2026-12-01T10:00:00.000Z" });
  expect(first["www-dns"]?.secondary).toMatchObject({
    ready: false,
    checks: [{ name: "evaluator", ok: false, destination: true, detail: "the evaluation failed: boom" }],
  });
  const text = (await metrics.render()).body;
  expect(metricValue(text, "turnout_target_ready", { target: "dc-nodes", to: "secondary" })).toBe(1);
  expect(metricValue(text, "turnout_target_ready", { target: "www-dns", to: "primary" })).toBe(0);
  expect(metricValue(text, "turnout_readiness_check_ok", { target: "dc-nodes", check: "source-nodes" })).toBe(0);

  clock.advance(59_000);
  await new Promise((r) => setImmediate(r));
  expect(calls).toHaveLength(2);
  sourceOk = true;
  clock.advance(1_000);
  await expect.poll(() => calls.length).toBe(4);
  await expect.poll(() => readiness.latest()["dc-nodes"]?.secondary?.at).toBe("2026-12-01T10:01:00.000Z");
  await readiness.stop();
});

it("evaluates only the sides the worker sends this agent, and latest() carries no other", async () => {
  let serves: Record<string, Side[]> | undefined;
  const seen: string[] = [];
  const readiness = createReadiness({
    config,
    kubeConfig: new KubeConfig(),
    log: silentLogger,
    clock: { now: () => 0, sleep: () => new Promise(() => {}) },
    serves: () => serves,
    access: { review: async () => [] },
    memory: () => ({ get: async () => undefined }),
    evaluators: new Map<string, TargetReadiness>([
      [
        "node-fence",
        async (name, _t, to) => {
          seen.push(`${name}→${to}`);
          return { checks: [] };
        },
      ],
      ["dns-flip", async () => ({ checks: [] })],
    ]),
  });
  await readiness.evaluate();
  expect(seen.sort()).toEqual(["dc-nodes→primary", "dc-nodes→secondary"]);
  serves = { "dc-nodes": ["secondary"] };
  // Until the next round, the results of both sides are kept but only the served one is carried.
  expect(Object.keys(readiness.latest())).toEqual(["dc-nodes"]);
  expect(Object.keys(readiness.latest()["dc-nodes"] ?? {})).toEqual(["secondary"]);
  seen.length = 0;
  await readiness.evaluate();
  expect(seen).toEqual(["dc-nodes→secondary"]);
});
