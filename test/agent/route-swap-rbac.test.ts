/**
 * agent/deploy/rbac.yaml grants the route-swap executor exactly what it uses: a swap that also
 * replaces a stale incoming route (every verb the executor has) goes through a recording proxy,
 * each request becomes (apiGroup, resource, namespace, verb), and that set must equal the rules.
 */
import { readFileSync } from "node:fs";
import { afterEach, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { z } from "zod";
import { createRouteSwapExecutor } from "../../agent/executors/route-swap.ts";
import {
  apiTargetOf,
  MapMemory,
  type ProxiedRequest,
  routeSwapTarget,
  runSteps,
  startRecordingProxy,
  startSwapCluster,
  swapAction,
} from "../support/route-swap-cluster.ts";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** "group|resource|namespace|verb" for one API request (namespace "*" for cluster-scoped). */
function permissionOf(r: ProxiedRequest): string[] {
  const { group, namespace, resource, name } = apiTargetOf(r.path);
  const verbs: string[] = [];
  if (r.method === "GET") verbs.push(name ? "get" : r.query.watch === "true" ? "watch" : "list");
  else if (r.method === "POST") verbs.push("create");
  else if (r.method === "PUT") verbs.push("update");
  else if (r.method === "DELETE") verbs.push("delete");
  else if (r.method === "PATCH") {
    verbs.push("patch");
    // An apply that creates the object is also authorized as `create`.
    if ((r.contentType ?? "").startsWith("application/apply-patch")) verbs.push("create");
  }
  return verbs.map((v) => `${group}|${resource}|${namespace}|${v}`);
}

const RbacDoc = z.object({
  kind: z.string(),
  metadata: z.object({ name: z.string(), namespace: z.string().optional() }),
  rules: z
    .array(z.object({ apiGroups: z.array(z.string()), resources: z.array(z.string()), verbs: z.array(z.string()) }))
    .optional(),
});

function granted(): { routeSwap: Set<string>; all: z.infer<typeof RbacDoc>[] } {
  const text = readFileSync(new URL("../../agent/deploy/rbac.yaml", import.meta.url), "utf8");
  const docs = parseAllDocuments(text).map((d) => RbacDoc.parse(d.toJS()));
  const routeSwap = new Set<string>();
  for (const d of docs) {
    if (!(d.kind === "ClusterRole" || d.kind === "Role") || !d.metadata.name.startsWith("turnout-agent-route-swap"))
      continue;
    const ns = d.kind === "ClusterRole" ? "*" : (d.metadata.namespace ?? "");
    for (const rule of d.rules ?? [])
      for (const g of rule.apiGroups)
        for (const res of rule.resources) for (const v of rule.verbs) routeSwap.add(`${g}|${res}|${ns}|${v}`);
  }
  return { routeSwap, all: docs };
}

it("rbac.yaml grants the route-swap executor exactly the verbs it sends, per API group, resource and namespace", async () => {
  const c = await startSwapCluster();
  cleanups.push(() => c.close());
  const proxy = await startRecordingProxy(c.api);
  cleanups.push(() => proxy.close());
  await c.seedRoute("primary", ["34.160.111.145"], "10.116.0.4");
  await c.seedRoute("secondary", ["198.51.100.7"], "10.116.0.99"); // stale: replaced, not edited
  const executor = createRouteSwapExecutor({ kubeConfig: proxy.kubeConfig(), pollMs: 20 });
  const runs = await runSteps(executor, swapAction("primary", "secondary"), routeSwapTarget(), new MapMemory());
  expect(runs.map((r) => r.error?.message)).toEqual(Array(5).fill(undefined));

  const used = new Set(proxy.requests.flatMap(permissionOf));
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
