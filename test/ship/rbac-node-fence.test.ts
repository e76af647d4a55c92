/**
 * agent/deploy/rbac-node-fence.yaml covers every Kubernetes request the node-fence executor sends
 * for the example target of agent/deploy/configmap.yaml: a failover of the lost dc group and the
 * failback run against the sandbox cluster (whose controllers act in-process, so every HTTP request
 * the fake API records is the agent's), each request becomes (group, resource, namespace, verb,
 * object name), and each must be granted. What is granted but unused is exactly the three
 * `watch` verbs the manifest explains.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { parseAllDocuments, parse as parseYaml } from "yaml";
import { z } from "zod";
import { createNodeFenceExecutor } from "../../agent/executors/node-fence.ts";
import type { RecordedRequest } from "../../agent/sandbox/fake-kube-api.ts";
import { AgentConfigSchema, type NodeFenceTarget } from "../../shared/config.ts";
import { MapMemory } from "../support/map-memory.ts";
import { DC, fenceAction, fenceTarget, runFenceSteps, startFenceCluster } from "../support/node-fence-cluster.ts";
import { apiTargetOf } from "../support/route-swap-cluster.ts";
import { DEPLOY_DIR } from "./kustomize-base.ts";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function shippedTarget(): NodeFenceTarget {
  const cm = z
    .object({ data: z.object({ "agent.yaml": z.string() }) })
    .parse(parseYaml(readFileSync(join(DEPLOY_DIR, "configmap.yaml"), "utf8")));
  const config = AgentConfigSchema.parse(parseYaml(cm.data["agent.yaml"]));
  const t = Object.values(config.targets).find((x) => x.kind === "node-fence");
  if (t?.kind !== "node-fence") throw new Error("configmap.yaml has no node-fence target");
  return t;
}

/** "group|resource|namespace|verb|name" for one API request (name "*" for collections). */
function permissionOf(r: RecordedRequest): string {
  const { group, namespace, resource, name } = apiTargetOf(r.path);
  const verb =
    r.method === "GET"
      ? name
        ? "get"
        : r.query.watch === "true"
          ? "watch"
          : "list"
      : ({ POST: "create", PUT: "update", PATCH: "patch", DELETE: "delete" }[r.method] ?? r.method);
  return `${group}|${resource}|${namespace}|${verb}|${name ?? "*"}`;
}

const Rule = z.object({
  apiGroups: z.array(z.string()),
  resources: z.array(z.string()),
  resourceNames: z.array(z.string()).optional(),
  verbs: z.array(z.string()),
});

/** The manifest's grants, "*" for any namespace (ClusterRole) or any name. */
function granted(): string[] {
  const out: string[] = [];
  for (const doc of parseAllDocuments(readFileSync(join(DEPLOY_DIR, "rbac-node-fence.yaml"), "utf8"))) {
    const o = z
      .object({
        kind: z.string(),
        metadata: z.object({ namespace: z.string().optional() }),
        rules: z.array(Rule).optional(),
      })
      .parse(doc.toJS());
    const ns = o.kind === "ClusterRole" ? "*" : (o.metadata.namespace ?? "");
    for (const r of o.rules ?? [])
      for (const g of r.apiGroups)
        for (const res of r.resources)
          for (const v of r.verbs) for (const n of r.resourceNames ?? ["*"]) out.push(`${g}|${res}|${ns}|${v}|${n}`);
  }
  return out;
}

function covers(grant: string, used: string): boolean {
  const [g, res, ns, v, n] = grant.split("|");
  const [ug, ures, uns, uv, un] = used.split("|");
  return g === ug && res === ures && v === uv && (ns === "*" || ns === uns) && (n === "*" || n === un);
}

describe("rbac-node-fence.yaml", () => {
  it("grants every request a failover and a failback of the shipped example target send", async () => {
    const target = { ...shippedTarget(), settleSeconds: fenceTarget().settleSeconds };
    const c = await startFenceCluster();
    cleanups.push(() => c.close());
    const executor = createNodeFenceExecutor({ kubeConfig: c.sandbox.kubeConfig, pollMs: 20 });
    const memory = new MapMemory();
    c.setReady(DC, false);
    const over = await runFenceSteps(executor, fenceAction("failover"), target, memory, { skewMs: 120_000 });
    expect(over.map((r) => r.error?.message)).toEqual(Array(5).fill(undefined));
    c.setReady(DC, true);
    const back = await runFenceSteps(executor, fenceAction("failback"), target, memory, { skewMs: 120_000 });
    expect(back.map((r) => r.error?.message)).toEqual([undefined, undefined, undefined]);

    const used = [...new Set(c.sandbox.api.requests.map(permissionOf))].sort();
    const grants = granted();
    expect(used.filter((u) => !grants.some((g) => covers(g, u)))).toEqual([]);
    const unused = grants.filter((g) => !used.some((u) => covers(g, u)));
    expect(unused.sort()).toEqual(
      ["storage.k8s.io|volumeattachments|*|watch|*", "|nodes|*|watch|*", "|pods|*|watch|*"].sort(),
    );
  }, 30_000);
});
