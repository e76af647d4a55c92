/**
 * agent/deploy/base/rbac-node-fence.yaml covers every Kubernetes request the node-fence executor sends
 * for the example target of agent/deploy/base/configmap.yaml: a failover of the lost dc group and the
 * failback run against the sandbox cluster (whose controllers act in-process, so every HTTP request
 * the fake API records is the agent's), each request becomes (group, resource, namespace, verb,
 * object name), and each must be granted. What is granted but unused is exactly the three
 * `watch` verbs the manifest explains.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createNodeFenceExecutor } from "../../agent/executors/node-fence.ts";
import type { NodeFenceTarget } from "../../shared/config.ts";
import { useCleanups } from "../support/cleanups.ts";
import { MapMemory } from "../support/map-memory.ts";
import { DC, fenceAction, fenceTarget, runFenceSteps, startFenceCluster } from "../support/node-fence-cluster.ts";
import { covers, grantsOf, permissionsUsed, rbacDocs } from "../support/rbac-grants.ts";
import { DEPLOY_DIR, shippedAgentConfig } from "./kustomize-base.ts";

const cleanup = useCleanups();

function shippedTarget(): NodeFenceTarget {
  const t = Object.values(shippedAgentConfig().targets).find((x) => x.kind === "node-fence");
  if (t?.kind !== "node-fence") throw new Error("configmap.yaml has no node-fence target");
  return t;
}

/** The manifest's grants, "*" for any namespace (ClusterRole) or any name. */
const granted = () => grantsOf(rbacDocs(readFileSync(join(DEPLOY_DIR, "rbac-node-fence.yaml"), "utf8")));

describe("rbac-node-fence.yaml", () => {
  it("grants every request a failover and a failback of the shipped example target send", async () => {
    const target = { ...shippedTarget(), settleSeconds: fenceTarget().settleSeconds };
    const c = await startFenceCluster();
    cleanup(() => c.close());
    const executor = createNodeFenceExecutor({ kubeConfig: c.sandbox.kubeConfig, pollMs: 20 });
    const memory = new MapMemory();
    c.setReady(DC, false);
    const over = await runFenceSteps(executor, fenceAction("failover"), target, memory, { skewMs: 120_000 });
    expect(over.map((r) => r.error?.message)).toEqual(Array(5).fill(undefined));
    c.setReady(DC, true);
    const back = await runFenceSteps(executor, fenceAction("failback"), target, memory, { skewMs: 120_000 });
    expect(back.map((r) => r.error?.message)).toEqual([undefined, undefined, undefined]);

    const used = [...permissionsUsed(c.sandbox.api.requests)].sort();
    const grants = granted();
    expect(used.filter((u) => !grants.some((g) => covers(g, u)))).toEqual([]);
    const unused = grants.filter((g) => !used.some((u) => covers(g, u)));
    expect(unused.sort()).toEqual(
      ["storage.k8s.io|volumeattachments|*|watch|*", "|nodes|*|watch|*", "|pods|*|watch|*"].sort(),
    );
  }, 30_000);
});
