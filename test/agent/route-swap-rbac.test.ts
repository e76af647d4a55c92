/**
 * agent/deploy/base/rbac.yaml grants the route-swap executor exactly what it uses: a swap that also
 * replaces a stale incoming route (every verb the executor has) goes through a recording proxy,
 * each request becomes (apiGroup, resource, namespace, verb), and that set must equal the rules.
 */
import { readFileSync } from "node:fs";
import { expect, it } from "vitest";
import { createRouteSwapExecutor } from "../../agent/executors/route-swap.ts";
import { useCleanups } from "../support/cleanups.ts";
import { MapMemory } from "../support/map-memory.ts";
import { grantsOf, permissionsUsed, rbacDocs } from "../support/rbac-grants.ts";
import { routeSwapTarget, startRecordingProxy, startSwapCluster, swapAction } from "../support/route-swap-cluster.ts";
import { runSteps } from "../support/run-steps.ts";

const cleanup = useCleanups();

/** "group|resource|namespace|verb" of a permission: the route-swap rules name no objects. */
const withoutName = (p: string) => p.split("|").slice(0, 4).join("|");

function granted() {
  const all = rbacDocs(readFileSync(new URL("../../agent/deploy/base/rbac.yaml", import.meta.url), "utf8"));
  const roles = all.filter(
    (d) => (d.kind === "ClusterRole" || d.kind === "Role") && d.metadata.name.startsWith("turnout-agent-route-swap"),
  );
  return { routeSwap: new Set(grantsOf(roles).map(withoutName)), all };
}

it("rbac.yaml grants the route-swap executor exactly the verbs it sends, per API group, resource and namespace", async () => {
  const c = await startSwapCluster();
  cleanup(() => c.close());
  const proxy = await startRecordingProxy(c.api);
  cleanup(() => proxy.close());
  await c.seedRoute("primary", ["34.160.111.145"], "10.116.0.4");
  await c.seedRoute("secondary", ["198.51.100.7"], "10.116.0.99"); // stale: replaced, not edited
  const executor = createRouteSwapExecutor({ kubeConfig: proxy.kubeConfig(), pollMs: 20 });
  const runs = await runSteps(executor, swapAction("primary", "secondary"), routeSwapTarget(), new MapMemory());
  expect(runs.map((r) => r.error?.message)).toEqual(Array(5).fill(undefined));

  const used = new Set([...permissionsUsed(proxy.requests)].map(withoutName));
  const { routeSwap, all } = granted();
  expect([...used].sort()).toEqual([...routeSwap].sort());
  expect(used).toContain("|events|default|list"); // core/v1 Events, not events.k8s.io

  // Every Role/ClusterRole is bound to the agent's ServiceAccount.
  const roles = all.filter((d) => d.kind === "Role" || d.kind === "ClusterRole").map((d) => d.metadata.name);
  const bindings = all
    .filter((d) => d.kind === "RoleBinding" || d.kind === "ClusterRoleBinding")
    .map((d) => d.metadata.name);
  expect(bindings.sort()).toEqual(roles.sort());
});
