/**
 * route-swap executor against the fake Kubernetes API (real client over HTTP) with simulated
 * k8s-staticroute-operator pods converging in ~200 ms.
 */
import { afterEach, describe, expect, it } from "vitest";
import { createRouteSwapExecutor, ROUTE_SWAP_STEPS, savedRouteKey } from "../../agent/executors/route-swap.ts";
import {
  destinations,
  MapMemory,
  routeSwapTarget,
  runSteps,
  type SwapCluster,
  startSwapCluster,
  swapAction,
} from "../support/route-swap-cluster.ts";

let cluster: SwapCluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

async function setup(options: Parameters<typeof startSwapCluster>[0] = {}, dests = ["34.160.111.145"]) {
  const c = await startSwapCluster(options);
  cluster = c;
  await c.seedRoute("primary", dests, "10.116.0.4");
  const executor = createRouteSwapExecutor({ kubeConfig: c.api.kubeConfig(), pollMs: 20 });
  return { c, executor, memory: new MapMemory() };
}

/** The incoming route was deleted and recreated (never edited in place), and every node routes through it. */
function expectSecondaryRecreated(c: SwapCluster): void {
  expect(c.agentRouteWrites().map((w) => `${w.method} ${w.path.split("/").pop()}`)).toEqual([
    "DELETE primary",
    "DELETE secondary",
    "PATCH secondary",
  ]);
  for (const n of c.nodes) {
    expect(c.operators.table(n)).toEqual([
      { destination: "34.160.111.145", gateway: "10.116.0.12", route: "secondary" },
    ]);
  }
}

describe("route-swap", () => {
  it("swaps primary → secondary with verified waits and every node routing via the new gateway", async () => {
    const { c, executor, memory } = await setup();
    const target = routeSwapTarget();
    const started = performance.now();
    const runs = await runSteps(executor, swapAction("primary", "secondary"), target, memory);
    const ms = performance.now() - started;
    console.log(`route-swap with 200 ms operators on 3 nodes: ${ms.toFixed(0)} ms`);

    expect(runs.map((r) => r.error?.message)).toEqual([undefined, undefined, undefined, undefined, undefined]);
    expect(runs.map((r) => r.name)).toEqual([...ROUTE_SWAP_STEPS]);
    expect(runs[4]?.outcome?.status).toBe("skipped");
    expect(c.route("primary")).toBeUndefined();
    const sec = c.route("secondary");
    expect(sec?.spec).toMatchObject({ destinations: ["34.160.111.145"], gateway: "10.116.0.12" });
    for (const n of c.nodes) {
      expect(sec?.status?.create_fn?.[n]).toBe("Ready");
      expect(c.operators.table(n)).toEqual([
        { destination: "34.160.111.145", gateway: "10.116.0.12", route: "secondary" },
      ]);
    }
    // Exactly one DELETE and one server-side apply, with the agent's field manager and force.
    const writes = c.agentRouteWrites();
    expect(writes.map((w) => `${w.method} ${w.path}`)).toEqual([
      "DELETE /apis/networking.digitalocean.com/v1/staticroutes/primary",
      "PATCH /apis/networking.digitalocean.com/v1/staticroutes/secondary",
    ]);
    expect(writes[1]?.query).toMatchObject({ fieldManager: "turnout-agent", force: "true" });
    // The outgoing spec is kept for failback.
    expect(await memory.get(savedRouteKey("primary"))).toMatchObject({
      name: "primary",
      spec: { destinations: ["34.160.111.145"], gateway: "10.116.0.4" },
    });
  });

  it("swaps 2,000-destination routes: every node ends with exactly the incoming 2,000 destinations via the new gateway", async () => {
    const dests = destinations(2000);
    const { c, executor, memory } = await setup({}, dests);
    const target = routeSwapTarget({}, dests);
    const started = performance.now();
    const runs = await runSteps(executor, swapAction("primary", "secondary"), target, memory);
    console.log(`route-swap of 2,000 destinations: ${(performance.now() - started).toFixed(0)} ms`);
    expect(runs.every((r) => r.error === undefined)).toBe(true);
    const want = [...dests].sort();
    for (const n of c.nodes) {
      const table = c.operators.table(n);
      expect(table).toHaveLength(2000);
      expect(table.map((e) => e.destination)).toEqual(want);
      expect(table.every((e) => e.gateway === "10.116.0.12" && e.route === "secondary")).toBe(true);
    }
  });

  it("fails back with the spec saved at failover, not the (edited) config", async () => {
    const { c, executor, memory } = await setup({}, ["34.160.111.145", "34.160.111.146"]);
    await runSteps(executor, swapAction("primary", "secondary"), routeSwapTarget(), memory);
    // Config since edited: primary lists only one destination; the saved spec had two.
    const runs = await runSteps(executor, swapAction("secondary", "primary"), routeSwapTarget(), memory);
    expect(runs.every((r) => r.error === undefined)).toBe(true);
    expect(runs[3]?.outcome?.detail).toContain("saved by");
    expect(c.route("primary")?.spec.destinations).toEqual(["34.160.111.145", "34.160.111.146"]);
    expect(c.route("secondary")).toBeUndefined();
    for (const n of c.nodes) expect(c.operators.table(n).map((e) => e.gateway)).toEqual(["10.116.0.4", "10.116.0.4"]);
  });

  it.each([
    ["gateway", { name: "primary", gateway: "10.116.0.66" }],
    ["name", { name: "primary-old", gateway: "10.116.0.4" }],
  ])(
    "refuses a saved failback spec whose %s differs from the config's, naming both, and changes nothing",
    async (_, saved) => {
      const { c, executor, memory } = await setup();
      await runSteps(executor, swapAction("primary", "secondary"), routeSwapTarget(), memory);
      // Memory written by someone else (or before a config change): same shape, other route.
      const record = (await memory.get(savedRouteKey("primary"))) as { spec: Record<string, unknown> };
      await memory.set(savedRouteKey("primary"), {
        ...record,
        name: saved.name,
        spec: { ...record.spec, gateway: saved.gateway },
      });
      const writesBefore = c.agentRouteWrites().length;
      const runs = await runSteps(executor, swapAction("secondary", "primary"), routeSwapTarget(), memory);
      expect(runs[0]?.name).toBe("preflight");
      expect(runs[0]?.error?.code).toBe("saved-spec-mismatch");
      const message = runs[0]?.error?.message ?? "";
      expect(message).toContain(`StaticRoute "${saved.name}", gateway "${saved.gateway}"`);
      expect(message).toContain('StaticRoute "primary", gateway "10.116.0.4"');
      expect(c.agentRouteWrites()).toHaveLength(writesBefore);
      expect(c.route("secondary")?.spec.gateway).toBe("10.116.0.12");
      expect(c.route("primary")).toBeUndefined();
    },
  );

  it("is a no-op when already converged: no writes, remaining steps skipped as already converged", async () => {
    const { c, executor, memory } = await setup();
    await runSteps(executor, swapAction("primary", "secondary"), routeSwapTarget(), memory);
    const before = c.agentRouteWrites().length;
    const runs = await runSteps(executor, swapAction("primary", "secondary"), routeSwapTarget(), memory);
    expect(runs[0]?.outcome?.detail).toMatch(/^already converged/);
    expect(runs.slice(1).map((r) => [r.outcome?.status, r.outcome?.detail])).toEqual(
      Array(4).fill(["skipped", "already converged"]),
    );
    expect(c.agentRouteWrites().length).toBe(before);
  });

  it("blocks preflight when an operator pod is NotReady, naming the pod and its node", async () => {
    const { c, executor, memory } = await setup();
    c.workloads.setNodeReady("node-2", false);
    await c.workloads.settled();
    const runs = await runSteps(executor, swapAction("primary", "secondary"), routeSwapTarget(), memory);
    expect(runs).toHaveLength(1);
    const err = runs[0]?.error;
    expect(err?.code).toBe("operator-not-ready");
    expect(err?.message).toMatch(/2\/3 ready/);
    expect(err?.message).toMatch(/NotReady pods: k8s-staticroute-operator-\S+ on node-2/);
    expect(err?.message).toContain("A retry resumes at step preflight");
    expect(c.agentRouteWrites()).toEqual([]);
  });

  it("refuses to act when the outgoing route is absent and the incoming one is not Ready, unless forced", async () => {
    const c = await startSwapCluster();
    cluster = c;
    const executor = createRouteSwapExecutor({ kubeConfig: c.api.kubeConfig(), pollMs: 20 });
    const refused = await runSteps(executor, swapAction("primary", "secondary"), routeSwapTarget(), new MapMemory());
    expect(refused[0]?.error?.code).toBe("unexpected-state");
    expect(refused[0]?.error?.message).toContain("outgoing StaticRoute primary is absent");
    expect(refused[0]?.error?.message).toContain("StaticRoute primary: absent; StaticRoute secondary: absent");
    const forced = await runSteps(
      executor,
      swapAction("primary", "secondary", { force: true }),
      routeSwapTarget(),
      new MapMemory(),
    );
    expect(forced.map((r) => r.error?.message)).toEqual(Array(5).fill(undefined));
    expect(c.route("secondary")?.status?.create_fn).toEqual({
      "node-1": "Ready",
      "node-2": "Ready",
      "node-3": "Ready",
    });
  });

  it("verifies by counting when the operator's Events name no node (the real kopf operator's shape)", async () => {
    const dests = ["34.160.111.145", "34.160.111.146", "10.20.0.0/16"];
    const { c, executor, memory } = await setup({ reporting: "kopf" }, dests);
    const runs = await runSteps(executor, swapAction("primary", "secondary"), routeSwapTarget({}, dests), memory);
    expect(runs.map((r) => r.error?.message)).toEqual(Array(5).fill(undefined));
    expect(runs[2]?.outcome?.detail).toContain(
      "9/9 (nodes × destinations) unattributed Events reported RouteDeleteSucceeded",
    );
    expect(runs[3]?.outcome?.detail).toContain("9/9 (nodes × destinations) unattributed RouteCreateSucceeded");
    for (const n of c.nodes) expect(c.operators.table(n).every((e) => e.gateway === "10.116.0.12")).toBe(true);
    // Converged is recognised from the Events too.
    const again = await runSteps(executor, swapAction("primary", "secondary"), routeSwapTarget({}, dests), memory);
    expect(again[0]?.outcome?.detail).toMatch(/^already converged/);
  });

  it("with unattributed Events, a node that never reports still fails the wait with the count", async () => {
    const { c, executor, memory } = await setup({ reporting: "kopf" });
    c.operators.setMode("node-2", "silent");
    const runs = await runSteps(
      executor,
      swapAction("primary", "secondary"),
      routeSwapTarget({ settleSeconds: 1 }),
      memory,
    );
    expect(runs.at(-1)?.error?.code).toBe("delete-not-reported");
    expect(runs.at(-1)?.error?.message).toContain(
      "the operator's Events name no node; 2/3 (nodes × destinations) unattributed Events reported RouteDeleteSucceeded, so some of node-1, node-2, node-3 did not",
    );
  });

  it("refuses invalid specs: a default route destination or a non-IP gateway", async () => {
    const { c, executor, memory } = await setup();
    const target = routeSwapTarget();
    target.routes.secondary.destinations = ["0.0.0.0/0", "10.0.0.0/33", "example.com"];
    target.routes.secondary.gateway = "0.0.0.0";
    const runs = await runSteps(executor, swapAction("primary", "secondary"), target, memory);
    const msg = runs[0]?.error?.message ?? "";
    expect(runs[0]?.error?.code).toBe("invalid-spec");
    expect(msg).toContain('routes.secondary.destinations[0]: "0.0.0.0/0" is a default route');
    expect(msg).toContain("routes.secondary.destinations[1]");
    expect(msg).toContain("routes.secondary.destinations[2]");
    expect(msg).toContain("routes.secondary.gateway: 0.0.0.0 is refused");
    expect(c.agentRouteWrites()).toEqual([]);
  });

  it("fails delete-outgoing naming the node whose operator never reports, and says what is in the cluster", async () => {
    const { c, executor, memory } = await setup();
    c.operators.setMode("node-3", "silent");
    const target = routeSwapTarget({ settleSeconds: 1 });
    const runs = await runSteps(executor, swapAction("primary", "secondary"), target, memory);
    const failed = runs.at(-1);
    expect(failed?.name).toBe("delete-outgoing");
    expect(failed?.error?.code).toBe("delete-not-reported");
    const msg = failed?.error?.message ?? "";
    expect(msg).toContain("did not report RouteDeleteSucceeded: node-3");
    expect(msg).toMatch(
      /StaticRoute primary: present \(.*being deleted, held by finalizer; node-1 removed, node-2 removed, node-3 not reported\)/,
    );
    expect(msg).toContain("StaticRoute secondary: absent");
    expect(msg).toContain("A retry resumes at step delete-outgoing");
    // node-3 still routes via the old gateway (the runbook's "all pods must be up" hazard).
    expect(c.operators.table("node-3")[0]?.gateway).toBe("10.116.0.4");
    expect(c.operators.table("node-1")).toEqual([]);
  });

  it("fails create-incoming naming a node whose operator fails to add the route", async () => {
    const { c, executor, memory } = await setup();
    const target = routeSwapTarget({ settleSeconds: 1 });
    const ok = await runSteps(executor, swapAction("primary", "secondary"), target, memory, { to: 3 });
    expect(ok.every((r) => r.error === undefined)).toBe(true);
    c.operators.setMode("node-1", "fail");
    const runs = await runSteps(executor, swapAction("primary", "secondary"), target, memory, { from: 3 });
    expect(runs[0]?.error?.code).toBe("create-not-ready");
    expect(runs[0]?.error?.message).toMatch(/NotReady: node-1; never reported: \(none\); RouteCreateFailed: node-1:/);
    expect(runs[0]?.error?.message).toMatch(
      /StaticRoute secondary: present \(.*node-1 NotReady, node-2 Ready, node-3 Ready\)/,
    );
  });

  it("never edits spec.gateway in place: an incoming route with a stale gateway is deleted and recreated", async () => {
    const { c, executor, memory } = await setup();
    await c.seedRoute("secondary", ["198.51.100.7"], "10.116.0.99");
    const runs = await runSteps(executor, swapAction("primary", "secondary"), routeSwapTarget(), memory);
    expect(runs.every((r) => r.error === undefined)).toBe(true);
    expectSecondaryRecreated(c);
  });

  it("replaces an incoming route that failed on nodes because it was created while the outgoing one held its destinations", async () => {
    const { c, executor, memory } = await setup();
    c.api.store.create(
      { group: "networking.digitalocean.com", resource: "staticroutes" },
      { metadata: { name: "secondary" }, spec: { destinations: ["34.160.111.145"], gateway: "10.116.0.12" } },
    );
    await c.until(
      () => c.nodes.every((n) => c.route("secondary")?.status?.create_fn?.[n] === "NotReady"),
      5000,
      "secondary NotReady everywhere (File exists)",
    );
    await c.operators.idle();
    const runs = await runSteps(executor, swapAction("primary", "secondary"), routeSwapTarget(), memory);
    expect(runs.map((r) => r.error?.message)).toEqual(Array(5).fill(undefined));
    expectSecondaryRecreated(c);
  });

  it("dry run changes nothing: every write carries dryRun=All and the store is unchanged", async () => {
    const { c, executor, memory } = await setup();
    const before = JSON.stringify(c.api.store.list({ group: "networking.digitalocean.com", resource: "staticroutes" }));
    const runs = await runSteps(
      executor,
      swapAction("primary", "secondary", { dryRun: true }),
      routeSwapTarget(),
      memory,
    );
    expect(runs.map((r) => r.error?.message)).toEqual(Array(5).fill(undefined));
    const writes = c.agentRouteWrites();
    expect(writes).toHaveLength(2);
    for (const w of writes) expect(w.query.dryRun).toBe("All");
    expect(JSON.stringify(c.api.store.list({ group: "networking.digitalocean.com", resource: "staticroutes" }))).toBe(
      before,
    );
    expect(memory.sets).toBe(0);
    for (const n of c.nodes) expect(c.operators.table(n)[0]?.gateway).toBe("10.116.0.4");
  });
});
