/**
 * Readiness of a plan (design §11.2, §11.3): each step kind with checks is broken the way
 * `turnout sandbox break` breaks it (or as a person would), one evaluation says not ready naming
 * `<step>:<what>` and the agent's metrics say 0; mending it makes the next evaluation ready, the
 * metrics 1. Wait and approval steps give no checks; `failbackSteps` are what is evaluated toward
 * the primary; drift of `expect[active]` is reported; a step with `ifUnreachable: "skip"` is
 * advisory, its cluster included.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigMapActionStore } from "../../agent/memory.ts";
import type { PlanClusters } from "../../agent/plan/clusters.ts";
import { executorMemoryPrefix } from "../../agent/plan/executor-step.ts";
import type { Readiness } from "../../agent/readiness/runner.ts";
import { BREAKABLE_CHECKS } from "../../agent/readiness/sandbox-faults.ts";
import { CHECKS } from "../../cli/sandbox.ts";
import { type AgentConfig, AgentConfigSchema } from "../../shared/config.ts";
import type { SideReadiness } from "../../shared/protocol.ts";
import { readinessSentence } from "../../shared/readiness-sentences.ts";
import { failing, metricValue, PLAN, type ReadinessSandbox, side, startReadinessSandbox } from "./readiness-sandbox.ts";

let sandbox: ReadinessSandbox;
let readiness: Readiness;

beforeAll(async () => {
  sandbox = await startReadinessSandbox();
  readiness = sandbox.readiness();
}, 60_000);

afterAll(async () => {
  await sandbox?.stop();
});

const check = (s: SideReadiness, name: string) => s.checks.find((c) => c.name === name);

async function metric(name: string, labels: Record<string, string>): Promise<number | undefined> {
  return metricValue((await sandbox.metrics.render()).body, name, labels);
}

/** Breaks, expects exactly `names` to fail (their metrics at 0), mends, expects ready again. */
async function breakAndMend(
  breakIt: () => Promise<unknown>,
  mendIt: () => Promise<unknown>,
  names: string[],
  detail: RegExp,
): Promise<void> {
  const before = side(await readiness.evaluate(), PLAN);
  expect(before.ready, JSON.stringify(before.checks)).toBe(true);
  expect(await metric("turnout_target_ready", { target: PLAN, to: "secondary" })).toBe(1);

  await breakIt();
  try {
    const broken = side(await readiness.evaluate(), PLAN);
    expect(broken.ready).toBe(false);
    expect(failing(broken)).toEqual(names);
    expect(check(broken, names[0] ?? "")?.detail).toMatch(detail);
    expect(await metric("turnout_target_ready", { target: PLAN, to: "secondary" })).toBe(0);
    for (const name of names) expect(await metric("turnout_readiness_check_ok", { target: PLAN, check: name })).toBe(0);
    // The page's sentence names the step and says what to do about that kind of check.
    const sentence = readinessSentence({
      to: "secondary",
      agent: "default",
      state: "not-ready",
      at: broken.at,
      checks: broken.checks,
    });
    expect(sentence).toContain(`(${names[0]})`);
    expect(sentence).not.toContain("see what the detail says");
  } finally {
    await mendIt();
  }
  const mended = side(await readiness.evaluate(), PLAN);
  expect(mended.ready, JSON.stringify(mended.checks)).toBe(true);
  expect(await metric("turnout_target_ready", { target: PLAN, to: "secondary" })).toBe(1);
  for (const name of names) expect(await metric("turnout_readiness_check_ok", { target: PLAN, check: name })).toBe(1);
}

const CONFIGMAPS = { resource: "configmaps" };
/** Sets `shop/<name>`'s data as a person with kubectl would. */
function setData(name: string, data: Record<string, string>): void {
  sandbox.cluster.api.store.mutate(CONFIGMAPS, "shop", name, (o) => {
    o.data = data;
  });
}

describe("readiness of a plan, step by step", () => {
  it("is ready with every step's checks named <step>:<what>, and none for wait and approval", async () => {
    const s = side(await readiness.evaluate(), PLAN);
    expect(s.ready, JSON.stringify(s.checks)).toBe(true);
    const names = s.checks.map((c) => c.name);
    expect(names).toEqual(
      expect.arrayContaining([
        "scale-up:object",
        "scale-up:permissions",
        "switch-config:object",
        "switch-config:permissions",
        "restart-app:object",
        "restart-app:permissions",
        "gate:check",
        "lb-pool:env",
        "lb-pool:endpoint",
        "swap-routes:saved-spec",
        "swap-routes:permissions",
      ]),
    );
    expect(names.filter((n) => n.startsWith("settle:") || n.startsWith("go-ahead:"))).toEqual([]);
    expect(check(s, "switch-config:object")?.detail).toBe(
      "ConfigMap shop/orders-db is at primary: the compare-and-swap to secondary would succeed",
    );
    expect(check(s, "lb-pool:endpoint")?.detail).toMatch(/accepts TCP connections \(no request is sent/);
    expect(s.drift).toEqual({
      ok: true,
      detail:
        "switch-config: ConfigMap shop/orders-db is at primary; swap-routes: StaticRoute primary matches its spec",
    });
    expect(sandbox.lbRequests).toEqual([]);
  });

  it("kube: the object removed (sandbox break object) names the step; mended it is back", async () => {
    await breakAndMend(
      () => sandbox.faults.break(PLAN, "object"),
      () => sandbox.faults.mend(PLAN, "object"),
      ["scale-up:object"],
      /Deployment shop\/web-secondary does not exist/,
    );
  });

  it("kube: an object at neither side names the JSONPath, the expected and the actual value, and drift", async () => {
    setData("orders-db", { DATABASE_HOST: "pg-dc3" });
    try {
      const s = side(await readiness.evaluate(), PLAN);
      expect(failing(s)).toEqual(["switch-config:object"]);
      expect(check(s, "switch-config:object")?.detail).toBe(
        'ConfigMap shop/orders-db is at neither side: {.data.DATABASE_HOST} is "pg-dc3", expected "pg-dc1" (the primary state): the step would fail (precondition-failed)',
      );
      expect(s.drift).toEqual({
        ok: false,
        detail:
          'switch-config: ConfigMap shop/orders-db is no longer at primary: {.data.DATABASE_HOST} is "pg-dc3", expected "pg-dc1"',
      });
    } finally {
      setData("orders-db", { DATABASE_HOST: "pg-dc1" });
    }
  });

  it("kube: an object already at the destination is ready (nothing to write), and the active side drifted", async () => {
    setData("orders-db", { DATABASE_HOST: "pg-dc2" });
    try {
      const s = side(await readiness.evaluate(), PLAN);
      expect(s.ready).toBe(true);
      expect(check(s, "switch-config:object")?.detail).toMatch(/already at secondary; the step would write nothing/);
      expect(s.drift?.ok).toBe(false);
    } finally {
      setData("orders-db", { DATABASE_HOST: "pg-dc1" });
    }
  });

  it("scale, restart, kube and the routeSwap step: a Role without patch names each write (sandbox break permissions)", async () => {
    await breakAndMend(
      () => sandbox.faults.break(PLAN, "permissions"),
      () => sandbox.faults.mend(PLAN, "permissions"),
      ["scale-up:permissions", "switch-config:permissions", "restart-app:permissions", "swap-routes:permissions"],
      /does not allow: patch deployments\/scale\.apps\/web-secondary -n shop/,
    );
  });

  it("check: its probe failing (sandbox break check) names the step", async () => {
    await breakAndMend(
      () => sandbox.faults.break(PLAN, "check"),
      () => sandbox.faults.mend(PLAN, "check"),
      ["gate:check"],
      /ConfigMap shop\/gate: the object does not exist/,
    );
    setData("gate", { open: "no" });
    try {
      const s = side(await readiness.evaluate(), PLAN);
      expect(failing(s)).toEqual(["gate:check"]);
      expect(check(s, "gate:check")?.detail).toBe('ConfigMap shop/gate: {.data.open} is "no", expected "yes"');
    } finally {
      setData("gate", { open: "yes" });
    }
  });

  it("http: a headersEnv variable missing and an endpoint that does not answer, with nothing sent", async () => {
    const noToken = sandbox.readiness({ env: { ...sandbox.env, LB_TOKEN: "" } });
    const s = side(await noToken.evaluate(), PLAN);
    expect(failing(s)).toEqual(["lb-pool:env"]);
    expect(check(s, "lb-pool:env")?.detail).toMatch(/environment variable LB_TOKEN is not set/);

    const closedPort = structuredClone(sandbox.config);
    const plan = closedPort.targets[PLAN];
    if (plan?.kind !== "plan") throw new Error("no plan");
    for (const e of plan.steps) if ("http" in e && e.http) e.http.url = "http://127.0.0.1:1/v1/pools/shop";
    const closed = side(await sandbox.readiness({ config: closedPort }).evaluate(), PLAN);
    expect(failing(closed)).toEqual(["lb-pool:endpoint"]);
    expect(check(closed, "lb-pool:endpoint")?.detail).toMatch(/127\.0\.0\.1:1 does not answer: .*ECONNREFUSED/);
    expect(sandbox.lbRequests).toEqual([]);
  });

  it("routeSwap as a step: its evaluator reads the spec saved in the plan's own memory", async () => {
    const plan = sandbox.config.targets[PLAN];
    const step = plan?.kind === "plan" ? plan.steps.find((e) => "routeSwap" in e && e.routeSwap) : undefined;
    if (!step || !("routeSwap" in step) || !step.routeSwap) throw new Error("no routeSwap step");
    const key = `${executorMemoryPrefix({ kind: "route-swap", ...step.routeSwap })}route-swap:saved:secondary`;
    const memory = new ConfigMapActionStore({
      kubeConfig: sandbox.cluster.kubeConfig,
      namespace: sandbox.config.namespace,
      targets: [PLAN],
    }).memory(PLAN);
    await breakAndMend(
      () =>
        memory.set(key, {
          name: "secondary",
          spec: { destinations: ["34.160.111.145"], gateway: "203.0.113.9" },
          actionId: "shop-plan:earlier",
          savedAt: new Date(0).toISOString(),
        }),
      () => memory.set(key, undefined),
      ["swap-routes:saved-spec"],
      /gateway "203\.0\.113\.9".*does not match routes\.secondary/,
    );
  });

  it("the sandbox's breakable checks and the CLI's list agree", () => {
    expect(CHECKS).toBe(BREAKABLE_CHECKS.join(", "));
  });
});

describe("which steps a plan's readiness reads", () => {
  /** A config of plans alone, parsed as the agent parses it, evaluated against the same sandbox. */
  function plans(targets: Record<string, unknown>, clusters: Record<string, unknown> = {}): AgentConfig {
    return AgentConfigSchema.parse({ reportUrl: "http://127.0.0.1:1/v1/agent/reports", targets, clusters });
  }
  const scale = (name: string, deployment: string) => ({
    name,
    scale: { kind: "Deployment", namespace: "shop", name: deployment, replicas: { primary: 1, secondary: 3 } },
  });

  it("toward the primary it evaluates failbackSteps, toward the secondary steps", async () => {
    const config = plans({
      fb: { kind: "plan", steps: [scale("up", "web-secondary")], failbackSteps: [scale("back", "web-primary")] },
    });
    const report = await sandbox.readiness({ config }).evaluate();
    expect(side(report, "fb", "secondary").checks.map((c) => c.name)).toEqual(["up:object", "up:permissions"]);
    const toPrimary = side(report, "fb", "primary");
    expect(failing(toPrimary)).toEqual(["back:object"]);
    expect(check(toPrimary, "back:object")?.detail).toMatch(/Deployment shop\/web-primary does not exist/);
  });

  it("a plan of wait and approval steps has no checks and is ready", async () => {
    const config = plans({
      pause: {
        kind: "plan",
        steps: [
          { name: "wait-a-bit", wait: { seconds: 1 } },
          { name: "ok", approval: { message: "Go?" } },
        ],
      },
    });
    expect(side(await sandbox.readiness({ config }).evaluate(), "pause")).toMatchObject({ ready: true, checks: [] });
  });

  it("a check that reads what an earlier step writes is shown, advisory", async () => {
    const config = plans({
      dep: {
        kind: "plan",
        steps: [
          scale("up", "web-secondary"),
          {
            name: "serving",
            check: {
              kube: {
                apiVersion: "apps/v1",
                kind: "Deployment",
                namespace: "shop",
                name: "web-secondary",
                waitFor: { "{.status.readyReplicas}": 3 },
              },
            },
          },
        ],
      },
    });
    const s = side(await sandbox.readiness({ config }).evaluate(), "dep");
    expect(s.ready).toBe(true);
    expect(check(s, "serving:check")).toMatchObject({ ok: false, destination: false });
    expect(check(s, "serving:check")?.detail).toMatch(/reads what step "up" writes first/);
  });

  it("a step on an unreachable cluster: advisory with ifUnreachable skip, blocking without", async () => {
    let answers = false;
    const clusters: PlanClusters = {
      kubeConfig: () => sandbox.cluster.kubeConfig,
      reachable: async () => answers,
    };
    const config = plans(
      {
        old: {
          kind: "plan",
          steps: [
            { ...scale("down-old", "web-secondary"), cluster: "old-primary", ifUnreachable: "skip" },
            { ...scale("must-reach", "web-secondary"), cluster: "old-primary" },
          ],
        },
      },
      { "old-primary": { kubeconfig: "/nonexistent/old-primary.kubeconfig" } },
    );
    const r = sandbox.readiness({ config, clusters });
    const down = side(await r.evaluate(), "old");
    expect(check(down, "down-old:cluster")).toMatchObject({ ok: false, destination: false });
    expect(check(down, "down-old:cluster")?.detail).toBe(
      "cluster old-primary does not answer: the step would be skipped and owed",
    );
    expect(failing(down)).toEqual(["must-reach:cluster"]);
    answers = true;
    const up = side(await r.evaluate(), "old");
    expect(up.ready, JSON.stringify(up.checks)).toBe(true);
    expect(check(up, "down-old:object")).toMatchObject({ ok: true, destination: false });
    expect(check(up, "must-reach:object")).toMatchObject({ ok: true, destination: true });
  });
});
