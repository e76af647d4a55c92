/**
 * Plan step rules of design §11.6 that need time or failure: waitFor's observedGeneration, check
 * polling every 2 s and its timeout, a parallel group's failure, owed steps after
 * `ifUnreachable: "skip"`, and an http step cut mid-request (sent again with the same
 * Idempotency-Key) or answered before a crash (never sent again).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { InMemoryActionStore } from "../../agent/action-store.ts";
import type { PlanClusters } from "../../agent/plan/clusters.ts";
import {
  manualClock,
  type PlanCluster,
  planAction,
  planAgent,
  planConfig,
  startPlanCluster,
  steppingClock,
} from "../support/plan-sandbox.ts";

const pg = { group: "postgresql.cnpg.io", resource: "clusters" };
const cms = { resource: "configmaps" };

let cluster: PlanCluster;
beforeEach(async () => {
  cluster = await startPlanCluster();
});
afterEach(async () => {
  await cluster.close();
});

describe("plan steps", () => {
  it("waitFor a condition holds only once status.observedGeneration reached the generation the write returned", async () => {
    cluster.api.store.create(pg, {
      apiVersion: "postgresql.cnpg.io/v1",
      kind: "Cluster",
      metadata: { name: "pg", namespace: "default" },
      spec: { replica: { enabled: true } },
    });
    cluster.api.store.patch(
      pg,
      "default",
      "pg",
      "merge",
      { status: { observedGeneration: 1, conditions: [{ type: "Ready", status: "True" }] } },
      { subresource: "status" },
    );
    const step = {
      name: "promote",
      kube: {
        apiVersion: "postgresql.cnpg.io/v1",
        kind: "Cluster",
        namespace: "default",
        name: "pg",
        patch: {
          primary: { spec: { replica: { enabled: true } } },
          secondary: { spec: { replica: { enabled: false } } },
        },
        expect: { primary: { "{.spec.replica.enabled}": true }, secondary: { "{.spec.replica.enabled}": false } },
        waitFor: { condition: { type: "Ready", status: "True" } },
      },
    };
    const agent = planAgent({ config: planConfig([step]), kubeConfig: cluster.api.kubeConfig() });
    await agent.runner.submit(planAction({ id: "shop:1" }));
    // Ready is already True, but for generation 1: the step must not take it.
    await agent.waitForReport((r) => r.steps[0]?.detail === "waiting: status.observedGeneration 1 < generation 2");
    expect(agent.reports.every((r) => r.status === "running")).toBe(true);
    cluster.api.store.patch(
      pg,
      "default",
      "pg",
      "merge",
      { status: { observedGeneration: 2 } },
      { subresource: "status" },
    );
    const done = await agent.waitForReport((r) => r.status !== "running");
    expect(done.status).toBe("succeeded");
    expect(done.steps[0]?.detail).toContain("condition Ready=True");
  });

  it("a check polls every 2 s and fails check-failed at timeoutSeconds", async () => {
    cluster.api.store.create(cms, { metadata: { name: "gate", namespace: "default" }, data: { open: "no" } });
    const clock = steppingClock();
    const check = {
      name: "gate-open",
      timeoutSeconds: 10,
      check: {
        kube: {
          apiVersion: "v1",
          kind: "ConfigMap",
          namespace: "default",
          name: "gate",
          waitFor: { "{.data.open}": "yes" },
        },
      },
    };
    const agent = planAgent({ config: planConfig([check]), kubeConfig: cluster.api.kubeConfig(), clock });
    const report = await agent.run({ id: "shop:1" });
    expect(report.error?.code).toBe("check-failed");
    expect(report.error?.message).toContain('{.data.open} is "no", expected "yes"');
    expect(clock.slept).toEqual([2000, 2000, 2000, 2000, 2000]);
  });

  it("a check that comes to hold while polled passes", async () => {
    cluster.api.store.create(cms, { metadata: { name: "gate", namespace: "default" }, data: { open: "no" } });
    const check = {
      name: "gate-open",
      check: {
        kube: {
          apiVersion: "v1",
          kind: "ConfigMap",
          namespace: "default",
          name: "gate",
          waitFor: { "{.data.open}": "yes" },
        },
      },
    };
    const clock = manualClock();
    const agent = planAgent({ config: planConfig([check]), kubeConfig: cluster.api.kubeConfig(), clock });
    const start = clock.now();
    await agent.runner.submit(planAction({ id: "shop:1" }));
    while (clock.sleeping() === 0) await new Promise((r) => setTimeout(r, 5)); // polled once: not yet
    cluster.api.store.patch(cms, "default", "gate", "merge", { data: { open: "yes" } });
    await clock.advance(1999);
    expect(agent.reports.at(-1)?.status).toBe("running");
    await clock.advance(1);
    const done = await agent.waitForReport((r) => r.status !== "running");
    expect(done.status).toBe("succeeded");
    expect(Date.parse(done.steps[0]?.finishedAt ?? "") - start).toBe(2000);
  });

  it("in a parallel group a failure lets the running sibling finish, starts nothing after, then fails the group", async () => {
    const steps = [
      {
        name: "both",
        parallel: [
          { name: "slow", wait: { seconds: 30 } },
          {
            name: "broken",
            timeoutSeconds: 2,
            check: {
              kube: {
                apiVersion: "v1",
                kind: "ConfigMap",
                namespace: "default",
                name: "missing",
                waitFor: { "{.data.x}": "y" },
              },
            },
          },
        ],
      },
      { name: "after", wait: { seconds: 1 } },
    ];
    const agent = planAgent({ config: planConfig(steps), kubeConfig: cluster.api.kubeConfig() });
    const report = await agent.run({ id: "shop:1" });
    expect(report.status).toBe("failed");
    expect(report.error?.code).toBe("check-failed");
    expect(report.steps.map((s) => [s.name, s.group, s.status])).toEqual([
      ["slow", "both", "succeeded"],
      ["broken", "both", "failed"],
      ["after", undefined, "pending"],
    ]);
    const [slow, broken] = report.steps;
    expect(Date.parse(slow?.finishedAt ?? "")).toBeGreaterThanOrEqual(Date.parse(broken?.finishedAt ?? ""));
  });

  it("a step skipped by ifUnreachable is owed, reported so, and run once its cluster answers", async () => {
    cluster.api.store.create(cms, { metadata: { name: "old", namespace: "default" }, data: { side: "primary" } });
    let reachable = false;
    const own = cluster.api.kubeConfig();
    const clusters: PlanClusters = { kubeConfig: () => own, reachable: async () => reachable };
    const steps = [
      {
        name: "retire-old",
        cluster: "old-primary",
        ifUnreachable: "skip",
        kube: {
          apiVersion: "v1",
          kind: "ConfigMap",
          namespace: "default",
          name: "old",
          patch: { primary: { data: { side: "primary" } }, secondary: { data: { side: "retired" } } },
        },
      },
    ];
    const agent = planAgent({
      config: planConfig(steps, {}, { clusters: { "old-primary": { kubeconfig: "/nonexistent" } } }),
      kubeConfig: own,
      clusters,
    });
    const report = await agent.run({ id: "shop:1" });
    expect(report.status).toBe("succeeded");
    expect(report.steps[0]).toMatchObject({
      status: "skipped",
      detail: expect.stringMatching(/^owed: cluster old-primary does not answer/),
    });
    expect(await agent.runner.owedSteps("shop")).toMatchObject([{ actionId: "shop:1", step: "retire-old" }]);
    expect(await agent.runner.settleOwed()).toEqual([]);
    expect(cluster.writes()).toEqual([]);

    reachable = true;
    expect(await agent.runner.settleOwed()).toMatchObject([{ actionId: "shop:1", step: "retire-old" }]);
    expect((cluster.api.store.read(cms, "default", "old").data as { side: string }).side).toBe("retired");
    const settled = await agent.waitForReport((r) => r.steps[0]?.status === "succeeded");
    expect(settled.status).toBe("succeeded");
    expect(settled.steps[0]?.detail).toMatch(/^owed since .*, done at /);
    expect(await agent.runner.owedSteps("shop")).toEqual([]);
    expect(await agent.runner.settleOwed()).toEqual([]);
  });
});

describe("http steps across crashes", () => {
  let server: Server;
  let url = "";
  const effects = new Map<string, number>();
  let requests: string[] = [];
  let hold = false;
  const held: ServerResponse[] = [];
  beforeEach(async () => {
    effects.clear();
    requests = [];
    hold = false;
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      req.resume();
      req.on("end", () => {
        const key = String(req.headers["idempotency-key"]);
        requests.push(key);
        if (hold) {
          held.push(res);
          return;
        }
        effects.set(key, (effects.get(key) ?? 0) + 1);
        res.writeHead(200, { "content-type": "application/json" });
        res.end('{"pool":"dc-2"}');
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/pool`;
  });
  afterEach(async () => {
    for (const r of held.splice(0)) r.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
  const steps = () => [
    { name: "lb-pool", http: { method: "PUT", url, body: { primary: { pool: "dc-1" }, secondary: { pool: "dc-2" } } } },
  ];

  it("one cut mid-request is sent again with the same Idempotency-Key after the restart", async () => {
    hold = true;
    const store = new InMemoryActionStore();
    const first = planAgent({ config: planConfig(steps()), kubeConfig: cluster.api.kubeConfig(), store });
    await first.runner.submit(planAction({ id: "shop:1" }));
    while (requests.length === 0) await new Promise((r) => setTimeout(r, 5));
    await first.runner.abortAll("simulated crash"); // the request is in flight, unanswered
    hold = false;
    const second = planAgent({ config: planConfig(steps()), kubeConfig: cluster.api.kubeConfig(), store });
    await second.runner.resumeUnfinished();
    const done = await second.waitForReport((r) => r.status !== "running");
    expect(done.status).toBe("succeeded");
    expect(requests).toEqual(["shop:1:lb-pool", "shop:1:lb-pool"]);
    expect(effects.get("shop:1:lb-pool")).toBe(1);
  });

  it("one whose answer was recorded before the crash is not sent again", async () => {
    const base = new InMemoryActionStore();
    let crashed = false;
    // The crash lands right after the answer is recorded, before the step's end is.
    const store = Object.assign(Object.create(base) as InMemoryActionStore, {
      put: async (record: Parameters<InMemoryActionStore["put"]>[0]) => {
        if (crashed) throw new Error("process gone");
        return base.put(record);
      },
      memory: (target: string) => {
        const m = base.memory(target);
        return {
          get: m.get,
          set: async (key: string, value: unknown) => {
            await m.set(key, value);
            if (key.endsWith(":answer")) crashed = true;
          },
        };
      },
    });
    const first = planAgent({
      config: planConfig(steps()),
      kubeConfig: cluster.api.kubeConfig(),
      store,
      clock: steppingClock(),
    });
    await first.runner.submit(planAction({ id: "shop:1" }));
    while (!crashed) await new Promise((r) => setTimeout(r, 5));
    await first.runner.abortAll("simulated crash");
    expect((await base.get("shop", "shop:1"))?.report.steps[0]?.status).toBe("running");

    const second = planAgent({ config: planConfig(steps()), kubeConfig: cluster.api.kubeConfig(), store: base });
    await second.runner.resumeUnfinished();
    const done = await second.waitForReport((r) => r.status !== "running");
    expect(done.status).toBe("succeeded");
    expect(done.steps[0]?.detail).toContain("recorded; not sent again");
    expect(requests).toEqual(["shop:1:lb-pool"]);
  });
});
