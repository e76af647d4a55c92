/**
 * The guarantees of plan steps (design §11.2, §11.6), each shown on the real plan executor and
 * runner against the fake Kubernetes API over HTTP, read back through its request log.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { validateAgentConfig } from "../../shared/config.ts";
import { type PlanCluster, planAgent, planConfig, startPlanCluster } from "../support/plan-sandbox.ts";

const GATEWAY_OBJECTS = join(import.meta.dirname, "../../examples/plans/gateway-api-objects.yaml");
const route = { group: "gateway.networking.k8s.io", resource: "httproutes" };
const weights = (c: PlanCluster) =>
  (
    c.api.store.get(route, "shop", "web") as unknown as {
      spec: { rules: { backendRefs: { weight: number }[] }[] };
    }
  ).spec.rules[0]?.backendRefs.map((b) => b.weight);

const WEIGHTS = {
  primary: { "{.spec.rules[0].backendRefs[0].weight}": 100, "{.spec.rules[0].backendRefs[1].weight}": 0 },
  secondary: { "{.spec.rules[0].backendRefs[0].weight}": 0, "{.spec.rules[0].backendRefs[1].weight}": 100 },
};
const ops = (a: number, b: number) => [
  { op: "replace", path: "/spec/rules/0/backendRefs/0/weight", value: a },
  { op: "replace", path: "/spec/rules/0/backendRefs/1/weight", value: b },
];
const shift = (name = "shift-weights") => ({
  name,
  kube: {
    apiVersion: "gateway.networking.k8s.io/v1",
    kind: "HTTPRoute",
    namespace: "shop",
    name: "web",
    patchType: "json",
    patch: { primary: ops(100, 0), secondary: ops(0, 100) },
    expect: WEIGHTS,
  },
});
const scaleUp = {
  name: "scale-up-standby",
  scale: { kind: "Deployment", namespace: "shop", name: "web-secondary", replicas: { primary: 1, secondary: 3 } },
};

let cluster: PlanCluster;
beforeEach(async () => {
  cluster = await startPlanCluster();
  cluster.apply(GATEWAY_OBJECTS);
  await cluster.controllers.settled();
});
afterEach(async () => {
  await cluster.close();
});

/** A receiver that dedupes by Idempotency-Key and counts effects. */
let lb: Server;
let lbUrl = "";
const lbCalls: { key: string | undefined; auth: string | undefined; body: string }[] = [];
const lbEffects = new Set<string>();
lb = createServer((req, res) => {
  let body = "";
  req.on("data", (c) => {
    body += c;
  });
  req.on("end", () => {
    const key = req.headers["idempotency-key"] as string | undefined;
    lbCalls.push({ key, auth: req.headers.authorization, body });
    if (key) lbEffects.add(key);
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ ok: true }));
  });
});
await new Promise<void>((r) => lb.listen(0, "127.0.0.1", () => r()));
lbUrl = `http://127.0.0.1:${(lb.address() as AddressInfo).port}/v1/pools/shop-web/active`;
afterAll(() => new Promise<void>((r) => lb.close(() => r())));

const lbStep = (name = "lb-pool") => ({
  name,
  http: {
    method: "PUT",
    url: lbUrl,
    headersEnv: { Authorization: "LB_API_TOKEN" },
    body: { primary: { pool: "dc-1" }, secondary: { pool: "dc-2" } },
  },
});

describe("plan guarantees", () => {
  it("a drill writes nothing but dry runs, sends no http request, and shows the request with its secret masked", async () => {
    lbCalls.length = 0;
    const agent = planAgent({
      config: planConfig([scaleUp, shift(), lbStep()]),
      kubeConfig: cluster.api.kubeConfig(),
      env: { LB_API_TOKEN: "Bearer s3cret-token" },
    });
    const report = await agent.run({ id: "shop:1", kind: "drill", dryRun: true });
    expect(report.status).toBe("succeeded");
    const writes = cluster.writes();
    expect(writes.length).toBe(2);
    expect(writes.every((w) => w.dryRun)).toBe(true);
    expect(weights(cluster)).toEqual([100, 0]);
    expect(lbCalls).toEqual([]);
    const lb = report.steps.find((s) => s.name === "lb-pool");
    expect(lb?.detail).toContain("dry run: not sent: PUT");
    expect(lb?.detail).toContain('"Authorization":"***"');
    expect(lb?.detail).toContain('"Idempotency-Key":"shop:1:lb-pool"');
    expect(JSON.stringify(agent.reports)).not.toContain("s3cret-token");
  });

  it("a step already at its side's state succeeds without writing", async () => {
    cluster.api.store.patch(route, "shop", "web", "json", ops(0, 100));
    const agent = planAgent({ config: planConfig([shift()]), kubeConfig: cluster.api.kubeConfig() });
    const report = await agent.run({ id: "shop:1" });
    expect(report.status).toBe("succeeded");
    expect(report.steps[0]?.detail).toContain("already at secondary; nothing written");
    expect(cluster.writes()).toEqual([]);
  });

  it("an HTTPRoute changed out of band between two steps fails the next kube step precondition-failed and stays as it was (kubectl shows it)", async () => {
    await cluster.close();
    cluster = await startPlanCluster({ kubectl: true });
    cluster.apply(GATEWAY_OBJECTS);
    await cluster.controllers.settled();
    // The out-of-band change lands while the first step runs (a person with kubectl).
    const first = {
      name: "scale-up-standby",
      scale: scaleUp.scale,
    };
    const agent = planAgent({ config: planConfig([first, shift()]), kubeConfig: cluster.api.kubeConfig() });
    const off = cluster.api.store.watch({ group: "apps", resource: "deployments" }, "shop", (e) => {
      if (e.object.metadata.name === "web-secondary" && (e.object.spec as { replicas?: number }).replicas === 3) {
        off();
        cluster.api.store.patch(route, "shop", "web", "json", ops(50, 50));
      }
    });
    const report = await agent.run({ id: "shop:1" });
    expect(report.status).toBe("failed");
    expect(report.error?.code).toBe("precondition-failed");
    expect(report.error?.message).toContain("{.spec.rules[0].backendRefs[0].weight} is 50, expected 100");
    expect(weights(cluster)).toEqual([50, 50]);
    expect(cluster.writes().filter((w) => w.path.includes("httproutes"))).toEqual([]);
    // What a person sees: kubectl reads the route through the sandbox's kubeconfig.
    const shown = await cluster.kubectl(
      "get",
      "httproute",
      "web",
      "-n",
      "shop",
      "-o",
      "jsonpath={.spec.rules[0].backendRefs[*].weight}",
    );
    expect(shown.trim()).toBe("50 50");
  });

  it('expect compares as JSON: the string "100" does not match the number 100', async () => {
    const step = shift();
    const stringly = {
      ...step,
      kube: {
        ...step.kube,
        expect: {
          primary: { "{.spec.rules[0].backendRefs[0].weight}": "100" },
          secondary: { "{.spec.rules[0].backendRefs[0].weight}": "0" },
        },
      },
    };
    const agent = planAgent({ config: planConfig([stringly]), kubeConfig: cluster.api.kubeConfig() });
    const report = await agent.run({ id: "shop:1" });
    expect(report.error?.code).toBe("precondition-failed");
    expect(report.error?.message).toContain('is 100, expected "100"');
    expect(weights(cluster)).toEqual([100, 0]);
  });

  it("a path selecting several values is a mismatch, never a guess", async () => {
    const step = shift();
    const many = {
      ...step,
      kube: {
        ...step.kube,
        expect: {
          primary: { "{.spec.rules[0].backendRefs[*].weight}": 100 },
          secondary: { "{.spec.rules[0].backendRefs[*].weight}": 0 },
        },
      },
    };
    const agent = planAgent({ config: planConfig([many]), kubeConfig: cluster.api.kubeConfig() });
    const report = await agent.run({ id: "shop:1" });
    expect(report.error?.code).toBe("precondition-failed");
    expect(report.error?.message).toContain("is 2 values");
  });

  it("a resumed kube step whose write is stored goes on at waitFor without testing expect again", async () => {
    const step = shift();
    const withWait = {
      ...step,
      kube: { ...step.kube, waitFor: { "{.metadata.annotations.routed}": "yes" } },
    };
    const agent = planAgent({ config: planConfig([withWait]), kubeConfig: cluster.api.kubeConfig() });
    // The first execution wrote and is waiting; the agent "crashes" (abortAll) mid-wait.
    await agent.runner.submit((await import("../support/plan-sandbox.ts")).planAction({ id: "shop:1" }));
    await agent.waitForReport((r) => r.steps[0]?.detail?.startsWith("waiting:") === true);
    await agent.runner.abortAll("simulated crash");
    expect(weights(cluster)).toEqual([0, 100]);
    const patches = cluster.writes().length;
    // Now at neither side's expect: a fresh test of expect would fail precondition-failed.
    cluster.api.store.patch(route, "shop", "web", "json", ops(0, 100));
    cluster.api.store.patch(route, "shop", "web", "merge", { metadata: { annotations: { routed: "yes" } } });
    const resumed = planAgent({
      config: planConfig([withWait]),
      kubeConfig: cluster.api.kubeConfig(),
      store: agent.store,
    });
    await resumed.runner.resumeUnfinished();
    const final = await resumed.waitForReport((r) => r.status !== "running");
    expect(final.status).toBe("succeeded");
    expect(final.steps[0]?.detail).toContain("patched earlier");
    expect(cluster.writes().length).toBe(patches);
  });

  it("patchType json without expect takes only replace and test operations", () => {
    const bad = validateAgentConfig({
      reportUrl: "http://127.0.0.1:1/r",
      targets: {
        shop: {
          kind: "plan",
          steps: [
            {
              name: "add-backend",
              kube: {
                apiVersion: "gateway.networking.k8s.io/v1",
                kind: "HTTPRoute",
                namespace: "shop",
                name: "web",
                patchType: "json",
                patch: {
                  primary: [{ op: "remove", path: "/spec/rules/0/backendRefs/1" }],
                  secondary: [{ op: "add", path: "/spec/rules/0/backendRefs/-", value: {} }],
                },
              },
            },
          ],
        },
      },
    });
    expect(bad.ok).toBe(false);
    if (bad.ok) return;
    expect(bad.problems).toContainEqual({
      path: "targets.shop.steps.0.kube.patch.secondary.0.op",
      message: 'patchType "json" needs `expect`, or only replace and test operations (found add)',
    });
    expect(bad.problems.map((p) => p.path)).toContain("targets.shop.steps.0.kube.patch.primary.0.op");
  });

  it("the config refuses duplicate step names and an unknown cluster, naming each path", () => {
    const r = validateAgentConfig({
      reportUrl: "http://127.0.0.1:1/r",
      targets: {
        shop: {
          kind: "plan",
          steps: [
            { name: "a", wait: { seconds: 1 } },
            {
              parallel: [
                { name: "a", wait: { seconds: 1 } },
                { name: "b", wait: { seconds: 1 }, cluster: "nowhere" },
              ],
            },
          ],
          failbackSteps: [{ name: "b", wait: { seconds: 1 } }],
        },
      },
    });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems).toContainEqual({
      path: "targets.shop.steps.1.parallel.0.name",
      message: '"a" is used at steps.0 too; step and group names are unique in a plan',
    });
    expect(r.problems.map((p) => p.path)).toContain("targets.shop.failbackSteps.0.name");
    expect(r.problems).toContainEqual({
      path: "targets.shop.steps.1.parallel.1.cluster",
      message: 'names "nowhere", which `clusters` lacks',
    });
  });

  it("the config refuses a JSONPath kubectl would not take", () => {
    const r = validateAgentConfig({
      reportUrl: "http://127.0.0.1:1/r",
      targets: {
        shop: {
          kind: "plan",
          steps: [
            {
              name: "c",
              check: {
                kube: { apiVersion: "v1", kind: "ConfigMap", namespace: "x", name: "y", waitFor: { "{.data[0": 1 } },
              },
            },
          ],
        },
      },
    });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems[0]?.path).toMatch(/^targets\.shop\.steps\.0\.check\.kube\.waitFor/);
    expect(r.problems[0]?.message).toContain("is not a kubectl JSONPath");
  });
});
