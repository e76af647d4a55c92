/**
 * route-swap through the real ActionRunner with the ConfigMap-backed action store on the fake API:
 * the report a person reads, the saved outgoing spec in the cluster, and a restart mid-wait that
 * another runner resumes without a second write.
 */
import { afterEach, expect, it } from "vitest";
import { createRouteSwapExecutor, savedRouteKey } from "../../agent/executors/route-swap.ts";
import { silentLogger } from "../../agent/log.ts";
import { ConfigMapActionStore } from "../../agent/memory.ts";
import type { ReportSender } from "../../agent/report-sender.ts";
import { ActionRunner, executorRegistry } from "../../agent/runner.ts";
import type { ActionReport } from "../../shared/protocol.ts";
import { routeSwapTarget, type SwapCluster, startSwapCluster, swapAction } from "../support/route-swap-cluster.ts";

let cluster: SwapCluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

function recordingSender(sent: ActionReport[]): ReportSender {
  return {
    async sendOnce(report) {
      sent.push(report);
      return true;
    },
    async deliver(latest) {
      const r = latest();
      sent.push(r);
      return r;
    },
  };
}

async function setup() {
  const c = await startSwapCluster();
  cluster = c;
  c.api.store.create({ resource: "namespaces" }, { metadata: { name: "turnout" } });
  await c.seedRoute("primary", ["34.160.111.145"], "10.116.0.4");
  const kubeConfig = c.api.kubeConfig();
  const target = routeSwapTarget();
  const store = new ConfigMapActionStore({ kubeConfig, namespace: "turnout" });
  const sent: ActionReport[] = [];
  const newRunner = () =>
    new ActionRunner({
      config: { targets: { "egress-gw": target } },
      executors: executorRegistry(createRouteSwapExecutor({ kubeConfig, pollMs: 20 })),
      store,
      reports: recordingSender(sent),
      log: silentLogger,
    });
  return { c, store, sent, newRunner };
}

it("runs a failover through the runner: every step reported, the outgoing spec saved in the agent's ConfigMap", async () => {
  const { c, store, sent, newRunner } = await setup();
  const runner = newRunner();
  const action = swapAction("primary", "secondary");
  expect(await runner.submit(action)).toEqual({ outcome: "accepted", id: action.id });
  await runner.idle();
  const report = await runner.report(action.id);
  expect(report?.status).toBe("succeeded");
  expect(report?.steps.map((s) => `${s.name}:${s.status}`)).toEqual([
    "preflight:succeeded",
    "record-outgoing:succeeded",
    "delete-outgoing:succeeded",
    "create-incoming:succeeded",
    "egress-check:skipped",
  ]);
  expect(report?.steps[2]?.detail).toMatch(/3\/3 operator nodes reported RouteDeleteSucceeded/);
  expect(sent.length).toBeGreaterThan(0);
  expect(await store.memory("egress-gw").get(savedRouteKey("primary"))).toMatchObject({
    name: "primary",
    spec: { destinations: ["34.160.111.145"], gateway: "10.116.0.4" },
    actionId: action.id,
  });
  expect(c.route("primary")).toBeUndefined();
});

it("a runner stopped while waiting for deletion reports is resumed by the next one without a second DELETE", async () => {
  const { c, newRunner } = await setup();
  const first = newRunner();
  const action = swapAction("primary", "secondary");
  await first.submit(action);
  await c.until(() => c.route("primary")?.metadata.deletionTimestamp != null, 5000, "primary being deleted");
  await first.abortAll("lost leadership (test)");
  expect((await first.report(action.id))?.status).toBe("running");

  const second = newRunner();
  expect(await second.resumeUnfinished()).toEqual([action.id]);
  await second.idle();
  expect((await second.report(action.id))?.status).toBe("succeeded");
  expect(c.agentRouteWrites().map((w) => `${w.method} ${w.path.split("/").pop()}`)).toEqual([
    "DELETE primary",
    "PATCH secondary",
  ]);
  for (const n of c.nodes) expect(c.operators.table(n)[0]?.gateway).toBe("10.116.0.12");
});

it("a dry run through the runner leaves StaticRoutes and the saved-spec memory untouched", async () => {
  const { c, store, newRunner } = await setup();
  const runner = newRunner();
  const action = swapAction("primary", "secondary", { dryRun: true });
  await runner.submit(action);
  await runner.idle();
  expect((await runner.report(action.id))?.status).toBe("succeeded");
  expect(await store.memory("egress-gw").get(savedRouteKey("primary"))).toBeUndefined();
  expect(c.agentRouteWrites().every((w) => w.query.dryRun === "All")).toBe(true);
  expect(c.route("primary")?.metadata.deletionTimestamp).toBeUndefined();
  expect(c.route("secondary")).toBeUndefined();
});
