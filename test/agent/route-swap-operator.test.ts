/**
 * The simulated k8s-staticroute-operator behaves like the real one where the executor depends on
 * it: per-node tables, Events per handler run, status per node, a gateway-only edit ignored,
 * destination diffs applied, and deletion held by the kopf finalizer until every node handled it.
 */
import { afterEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { KOPF_FINALIZER } from "../../agent/executors/route-swap.ts";
import { type SwapCluster, startSwapCluster } from "../support/route-swap-cluster.ts";

const SR = { group: "networking.digitalocean.com", resource: "staticroutes" };
let cluster: SwapCluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

function events(c: SwapCluster, uid: string) {
  return c.api.store
    .list({ resource: "events" }, "default")
    .filter((e) => (e.involvedObject as { uid?: string } | undefined)?.uid === uid);
}

describe("simulated static-route operator", () => {
  it("adds a new route on every node, with a finalizer, one Event per node and status create_fn.<node> = Ready", async () => {
    const c = await startSwapCluster({ delayMs: 50 });
    cluster = c;
    await c.seedRoute("primary", ["34.160.111.145", "10.0.0.0/8"], "10.116.0.4");
    const r = c.route("primary");
    expect(r?.metadata.finalizers).toEqual([KOPF_FINALIZER]);
    expect(r?.status?.create_fn).toEqual({ "node-1": "Ready", "node-2": "Ready", "node-3": "Ready" });
    for (const n of c.nodes)
      expect(c.operators.table(n).map((e) => `${e.destination} via ${e.gateway}`)).toEqual([
        "10.0.0.0/8 via 10.116.0.4",
        "34.160.111.145 via 10.116.0.4",
      ]);
    const evs = events(c, r?.metadata.uid ?? "");
    expect(evs.map((e) => `${e.reason} ${(e.source as { host: string }).host} ${e.reportingInstance}`).sort()).toEqual([
      "RouteCreateSucceeded node-1 node-1",
      "RouteCreateSucceeded node-2 node-2",
      "RouteCreateSucceeded node-3 node-3",
    ]);
    expect(evs[0]?.involvedObject).toMatchObject({
      apiVersion: "networking.digitalocean.com/v1",
      kind: "StaticRoute",
      name: "primary",
    });
  });

  it("ignores a change of spec.gateway alone (operator issue #23) but applies destination diffs via the new gateway", async () => {
    const c = await startSwapCluster({ delayMs: 50 });
    cluster = c;
    await c.seedRoute("primary", ["34.160.111.145"], "10.116.0.4");
    c.api.store.patch(SR, undefined, "primary", "merge", { spec: { gateway: "10.116.0.12" } });
    // Each operator pod handles events in watch order on one queue, so once a route created after
    // the edit is Ready everywhere, every pod has seen (and ignored) the gateway edit.
    await c.seedRoute("probe", ["192.0.2.1"], "10.116.0.4");
    for (const n of c.nodes) {
      expect(c.operators.table(n).filter((e) => e.route === "primary")).toEqual([
        { destination: "34.160.111.145", gateway: "10.116.0.4", route: "primary" },
      ]);
      expect(c.operators.runs(n)).toEqual({ create: 2, update: 0, delete: 0 });
    }
    c.api.store.patch(SR, undefined, "primary", "merge", { spec: { destinations: ["34.160.111.146"] } });
    await c.until(
      () => {
        const results = z.record(z.string(), z.string()).safeParse(c.route("primary")?.status?.update_fn);
        return results.success && c.nodes.every((n) => results.data[n] === "Ready");
      },
      5000,
      "update_fn Ready on every node",
    );
    for (const n of c.nodes) {
      expect(c.operators.table(n).filter((e) => e.route === "primary")).toEqual([
        { destination: "34.160.111.146", gateway: "10.116.0.12", route: "primary" },
      ]);
    }
  });

  it("holds deletion with the kopf finalizer until every node handled it; a silent node keeps it forever", async () => {
    const c = await startSwapCluster({ delayMs: 50 });
    cluster = c;
    await c.seedRoute("primary", ["34.160.111.145"], "10.116.0.4");
    c.operators.setMode("node-2", "silent");
    c.api.store.delete(SR, undefined, "primary");
    await c.until(
      () => ["node-1", "node-3"].every((n) => c.route("primary")?.status?.delete?.[n] === "Ready"),
      5000,
      "deletion handled on node-1 and node-3",
    );
    expect(c.route("primary")?.metadata.finalizers).toEqual([KOPF_FINALIZER]);
    expect(c.operators.table("node-2")).toHaveLength(1);
    expect(c.operators.table("node-1")).toEqual([]);
    c.operators.setMode("node-2", "ok");
    // The next event on the object (here: a label) makes the recovered pod handle the deletion.
    c.api.store.patch(SR, undefined, "primary", "merge", { metadata: { labels: { poke: "1" } } });
    await c.until(() => c.route("primary") === undefined, 5000, "primary gone");
    expect(c.operators.table("node-2")).toEqual([]);
  });

  it("a failing node posts RouteCreateFailed and NotReady; an overlapping destination fails like `ip route add`", async () => {
    const c = await startSwapCluster({ delayMs: 50, modes: { "node-3": "fail" } });
    cluster = c;
    c.api.store.create(SR, {
      metadata: { name: "primary" },
      spec: { destinations: ["34.160.111.145"], gateway: "10.116.0.4" },
    });
    await c.until(() => Object.keys(c.route("primary")?.status?.create_fn ?? {}).length === 3, 5000, "3 reports");
    expect(c.route("primary")?.status?.create_fn).toEqual({
      "node-1": "Ready",
      "node-2": "Ready",
      "node-3": "NotReady",
    });
    const failed = events(c, c.route("primary")?.metadata.uid ?? "").filter((e) => e.reason === "RouteCreateFailed");
    expect(failed.map((e) => [e.type, e.reportingInstance])).toEqual([["Warning", "node-3"]]);

    c.api.store.create(SR, {
      metadata: { name: "secondary" },
      spec: { destinations: ["34.160.111.145"], gateway: "10.116.0.12" },
    });
    await c.until(() => Object.keys(c.route("secondary")?.status?.create_fn ?? {}).length === 3, 5000, "3 reports");
    // node-1/2 already route it via primary (`ip route add` answers "File exists"); node-3 still fails.
    expect(c.route("secondary")?.status?.create_fn).toEqual({
      "node-1": "NotReady",
      "node-2": "NotReady",
      "node-3": "NotReady",
    });
  });
});
