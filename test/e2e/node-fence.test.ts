/**
 * node-fence end to end (runbook D): the real worker in workerd and the agent as a separate process
 * in sandbox mode. The datacenter's nodes are made NotReady through the kubeconfig the sandbox
 * writes (as a person would with `kubectl patch node --subresource=status`), a KubeNodeNotReady
 * alert for the zone arrives, the hold runs, the approval is given (the default config's node-fence
 * target requires it), the agent fences the nodes and the postgres StatefulSet comes back Ready on
 * the cloud nodes; then the nodes return, a manual failback lifts the fence.
 */
import { CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { TargetView } from "../../worker/target/target-view.ts";
import { NODE_GROUPS, type Stack, startStack, waitFor } from "./stack.ts";

const DC = [1, 2, 3].map((i) => `${NODE_GROUPS.primary}-${i}`);
const CLOUD = [1, 2, 3].map((i) => `${NODE_GROUPS.secondary}-${i}`);

let stack: Stack;
let core: CoreV1Api;

beforeAll(async () => {
  stack = await startStack({
    targets: { "dc-nodes": { kind: "node-fence", holdSeconds: 2, policy: { approval: "required" } } },
  });
  const kc = new KubeConfig();
  kc.loadFromFile(stack.sandboxKubeconfig);
  core = kc.makeApiClient(CoreV1Api);
}, 60_000);

afterAll(async () => {
  await stack?.stop();
}, 30_000);

beforeEach(({ onTestFailed }) => {
  onTestFailed(() => {
    console.error(`agent output (tail):\n${stack?.agentOutput().slice(-4000)}`);
  });
});

/** Sets the nodes' Ready condition, as if it had held for two minutes (past notReadySeconds=60). */
async function setReady(nodes: string[], status: "True" | "Unknown"): Promise<void> {
  const since = new Date(Date.now() - 120_000).toISOString().replace(/\.\d{3}Z$/, "Z");
  for (const name of nodes) {
    await core.patchNodeStatus(
      { name, body: { status: { conditions: [{ type: "Ready", status, lastTransitionTime: since }] } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
  }
}

async function taintsOf(name: string): Promise<string[]> {
  return ((await core.readNode({ name })).spec?.taints ?? []).map((t) => t.key);
}

function settledOn(side: "primary" | "secondary"): Promise<TargetView> {
  return waitFor(
    `dc-nodes steady on ${side}`,
    async () => {
      const v = await stack.view("dc-nodes");
      return v.activeSide === side && v.phase === "steady" && v.action?.status === "succeeded" ? v : undefined;
    },
    40_000,
  );
}

describe("node-fence through the worker and the agent process", () => {
  it("fences the lost datacenter after the hold and the approval, and postgres runs Ready on a cloud node", async () => {
    const before = await core.readNamespacedPod({ namespace: "db", name: "postgres-0" });
    expect(DC).toContain(before.spec?.nodeName);
    await setReady(DC, "Unknown");
    const answer = await stack.alert([{ target: "dc-nodes", side: "primary", status: "firing", at: Date.now() }]);
    expect(answer.body.accepted).toBe(1);
    await waitFor(
      "dc-nodes awaiting approval",
      async () => (await stack.view("dc-nodes")).phase === "awaiting_approval",
      20_000,
    );
    expect((await stack.command("dc-nodes", "approve", { reason: "datacenter power loss confirmed" })).status).toBe(
      200,
    );

    const view = await settledOn("secondary");
    expect(view.action).toMatchObject({ kind: "failover", from: "primary", to: "secondary" });
    const report = await stack.agentReport(view.action?.id ?? "");
    expect(report?.status).toBe("succeeded");
    expect(report?.steps.map((s) => [s.name, s.status])).toEqual([
      ["preflight", "succeeded"],
      ["cordon", "succeeded"],
      ["fence", "succeeded"],
      ["wait-evicted", "succeeded"],
      ["wait-workloads", "succeeded"],
    ]);
    expect(report?.steps.at(-1)?.detail).toMatch(/StatefulSet db\/postgres 1\/1 Ready on cloud-a-\d/);

    for (const n of DC) expect(await taintsOf(n)).toContain("node.kubernetes.io/out-of-service");
    const after = await core.readNamespacedPod({ namespace: "db", name: "postgres-0" });
    expect(CLOUD).toContain(after.spec?.nodeName);
    expect(after.status?.conditions?.find((c) => c.type === "Ready")?.status).toBe("True");
  }, 90_000);

  it("lifts the fence with a manual failback once the nodes are back", async () => {
    await settledOn("secondary");
    await setReady(DC, "True");
    await stack.alert([
      { target: "dc-nodes", side: "primary", status: "resolved", at: Date.now(), startsAt: Date.now() - 60_000 },
    ]);
    expect((await stack.command("dc-nodes", "failback", { reason: "datacenter power restored" })).status).toBe(200);
    const view = await settledOn("primary");
    const report = await stack.agentReport(view.action?.id ?? "");
    expect(report?.steps.map((s) => [s.name, s.status])).toEqual([
      ["preflight", "succeeded"],
      ["unfence", "succeeded"],
      ["uncordon", "succeeded"],
    ]);
    for (const n of DC) {
      expect(await taintsOf(n)).toEqual([]);
      expect((await core.readNode({ name: n })).spec?.unschedulable ?? false).toBe(false);
    }
  }, 60_000);
});
