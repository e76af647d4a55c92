/**
 * The node-fence executor against the fake API and the simulated node control plane (design §7,
 * runbook D): the datacenter's nodes go NotReady, the executor cordons and taints them
 * out-of-service, the control plane deletes their pods and VolumeAttachments, and the StatefulSet
 * and Deployment come back Ready on the cloud nodes; DaemonSet pods stay. Every refusal is checked
 * to leave the nodes untouched (no node PATCH in the fake API's request log).
 */
import { describe, expect, it } from "vitest";
import { CORDONED_BY, createNodeFenceExecutor, FENCED_BY, NODE_FENCE_STEPS } from "../../agent/executors/node-fence.ts";
import { useCleanups } from "../support/cleanups.ts";
import { MapMemory } from "../support/map-memory.ts";
import {
  CLOUD,
  DC,
  type FenceCluster,
  fenceAction,
  fenceTarget,
  isObjectReady,
  runFenceSteps,
  startFenceCluster,
} from "../support/node-fence-cluster.ts";

const cleanup = useCleanups();

/** Two minutes after the outage: past notReadySeconds=60. */
const LATER = 120_000;

async function setup() {
  const c = await startFenceCluster();
  cleanup(() => c.close());
  const executor = () => createNodeFenceExecutor({ kubeConfig: c.sandbox.kubeConfig, pollMs: 20 });
  return { c, executor, memory: new MapMemory(), target: fenceTarget() };
}

type Taint = { key: string; effect: string; value?: string };
const taints = (c: FenceCluster, n: string) =>
  ((c.node(n).spec as { taints?: Taint[] } | undefined)?.taints ?? []).map((t) => t.key);
const unschedulable = (c: FenceCluster, n: string) =>
  (c.node(n).spec as { unschedulable?: boolean } | undefined)?.unschedulable === true;
const nodeOf = (c: FenceCluster, ns: string, name: string) =>
  (c.pod(ns, name)?.spec as { nodeName?: string } | undefined)?.nodeName;
const daemonPods = (c: FenceCluster) =>
  [...DC, ...CLOUD]
    .flatMap((n) => c.podsOn(n).filter((p) => p.metadata.namespace === "monitoring"))
    .map((p) => p.metadata.uid);
const webPods = (c: FenceCluster) => c.sandbox.api.store.list({ resource: "pods" }, "web");

function expectFenced(c: FenceCluster, actionId: string): void {
  for (const n of DC) {
    expect(taints(c, n)).toContain("node.kubernetes.io/out-of-service");
    expect(unschedulable(c, n)).toBe(true);
    expect(c.node(n).metadata.annotations?.[FENCED_BY]).toBe(actionId);
    expect(c.node(n).metadata.annotations?.[CORDONED_BY]).toBe(actionId);
    // Only DaemonSet pods remain, and no volume stays attached.
    expect(c.podsOn(n).map((p) => p.metadata.namespace)).toEqual(["monitoring"]);
  }
  expect(CLOUD).toContain(nodeOf(c, "db", "postgres-0"));
  expect(isObjectReady(c.pod("db", "postgres-0"))).toBe(true);
  expect(c.volumeAttachments().map((va) => (va.spec as { nodeName: string }).nodeName)).toEqual([
    nodeOf(c, "db", "postgres-0"),
  ]);
  for (const p of webPods(c)) expect(CLOUD).toContain((p.spec as { nodeName: string }).nodeName);
}

describe("node-fence failover and failback", () => {
  it("fences the lost datacenter, moves the StatefulSet with its volume, then lifts the fence when the nodes are back", async () => {
    const { c, executor, memory, target } = await setup();
    expect(DC).toContain(nodeOf(c, "db", "postgres-0"));
    const dcVolume = c.volumeAttachments()[0]?.metadata.name;
    const before = daemonPods(c);
    c.setReady(DC, false);

    const action = fenceAction("failover");
    const progress: string[] = [];
    const runs = await runFenceSteps(executor(), action, target, memory, { skewMs: LATER, progress });
    expect(runs.map((r) => [r.name, r.error?.message])).toEqual(NODE_FENCE_STEPS.fence.map((n) => [n, undefined]));
    expect(runs[0]?.outcome?.detail).toContain("pods to move: db/postgres-0, web/");
    expect(runs[0]?.outcome?.detail).toContain(`VolumeAttachments to detach: ${dcVolume}`);
    expect(runs[3]?.outcome?.detail).toMatch(/dc-1-\d: pods 1\/1 gone, volumes 1\/1 detached/);
    expect(runs[4]?.outcome?.detail).toMatch(/StatefulSet db\/postgres 1\/1 Ready on cloud-a-\d/);
    expect(runs[4]?.outcome?.detail).toContain("after the fence decision");
    expect(progress.some((p) => /^\d\/3 nodes: dc-1-\d tainted/.test(p))).toBe(true);
    expectFenced(c, action.id);
    // DaemonSet pods are left alone.
    expect(daemonPods(c)).toEqual(before);
    expect(c.nodeWrites()).toEqual([...DC, ...DC]);

    c.setReady(DC, true);
    const back = fenceAction("failback");
    const rest = await runFenceSteps(executor(), back, target, memory, { skewMs: LATER });
    expect(rest.map((r) => [r.name, r.error?.message])).toEqual(NODE_FENCE_STEPS.unfence.map((n) => [n, undefined]));
    for (const n of DC) {
      expect(taints(c, n)).toEqual([]);
      expect(unschedulable(c, n)).toBe(false);
      expect(c.node(n).metadata.annotations ?? {}).toEqual({});
    }
    expect(c.nodeWrites()).toEqual([...DC, ...DC, ...DC, ...DC]);
  });

  it("the way back waits until the returning nodes have been Ready for notReadySeconds", async () => {
    const { c, executor, memory, target } = await setup();
    c.setReady(DC, false);
    await runFenceSteps(executor(), fenceAction("failover"), target, memory, { skewMs: LATER });
    c.setReady(DC, true);
    const progress: string[] = [];
    // The clock jumps 10 s per poll: the taint stays until 60 s of Ready have passed.
    const runs = await runFenceSteps(executor(), fenceAction("failback"), fenceTarget({ settleSeconds: 300 }), memory, {
      jumpMsPerSleep: 10_000,
      progress,
    });
    expect(runs.map((r) => r.error?.message)).toEqual([undefined, undefined, undefined]);
    expect(progress[0]).toMatch(/waiting for dc-1-1, dc-1-2, dc-1-3 to be Ready for 60 s/);
    expect(progress.length).toBeGreaterThanOrEqual(5);
  });

  it("the way back never removes the taint of a node that is still down", async () => {
    const { c, executor, memory } = await setup();
    const target = fenceTarget({ settleSeconds: 0.3 });
    c.setReady(DC, false);
    await runFenceSteps(executor(), fenceAction("failover"), fenceTarget(), memory, { skewMs: LATER });
    c.setReady(["dc-1-1", "dc-1-2"], true);
    const runs = await runFenceSteps(executor(), fenceAction("failback"), target, memory, { skewMs: LATER });
    expect(runs.at(-1)?.error?.code).toBe("node-not-ready");
    expect(runs.at(-1)?.error?.message).toContain("dc-1-3 Ready=Unknown");
    for (const n of DC) expect(taints(c, n)).toContain("node.kubernetes.io/out-of-service");
  });
});

describe("node-fence crash and resume", () => {
  for (let k = 1; k < NODE_FENCE_STEPS.fence.length; k++) {
    const after = NODE_FENCE_STEPS.fence[k - 1];
    it(`a crash after ${after}, then a re-delivery from preflight and a resume at the next step, write each node once`, async () => {
      const { c, executor, memory, target } = await setup();
      c.setReady(DC, false);
      const action = fenceAction("failover");
      const first = await runFenceSteps(executor(), action, target, memory, { skewMs: LATER, to: k });
      expect(first.every((r) => r.error === undefined)).toBe(true);
      const resumed = await runFenceSteps(executor(), action, target, memory, { skewMs: LATER, from: k });
      expect(resumed.map((r) => r.error?.message)).toEqual(Array(5 - k).fill(undefined));
      const again = await runFenceSteps(executor(), action, target, memory, { skewMs: LATER });
      expect(again.map((r) => r.error?.message)).toEqual(Array(5).fill(undefined));
      expect(again[1]?.outcome?.detail).toContain(`dc-1-1 already cordoned by ${action.id}`);
      expect(again[2]?.outcome?.detail).toContain(`dc-1-1 already tainted out-of-service by ${action.id}`);
      expectFenced(c, action.id);
      expect(c.nodeWrites()).toEqual([...DC, ...DC]);
    });
  }

  it("a crash while waiting for the pods to go, then a re-delivery, does not write again", async () => {
    const { c, executor, memory, target } = await setup();
    c.setReady(DC, false);
    const action = fenceAction("failover");
    const crash = new AbortController();
    const running = runFenceSteps(executor(), action, target, memory, { skewMs: LATER, signal: crash.signal });
    await c.until(() => c.nodeWrites().length === 6, 5000, "all three nodes tainted");
    crash.abort();
    const first = await running;
    expect(first.at(-1)?.aborted).toBe(true);
    const again = await runFenceSteps(executor(), action, target, memory, { skewMs: LATER });
    expect(again.map((r) => r.error?.message)).toEqual(Array(5).fill(undefined));
    expectFenced(c, action.id);
    expect(c.nodeWrites()).toEqual([...DC, ...DC]);
  });

  for (let k = 1; k < NODE_FENCE_STEPS.unfence.length; k++) {
    const after = NODE_FENCE_STEPS.unfence[k - 1];
    it(`a crash on the way back after ${after}, then a resume and a re-delivery, write each node once`, async () => {
      const { c, executor, memory, target } = await setup();
      c.setReady(DC, false);
      await runFenceSteps(executor(), fenceAction("failover"), target, memory, { skewMs: LATER });
      c.setReady(DC, true);
      const back = fenceAction("failback");
      await runFenceSteps(executor(), back, target, memory, { skewMs: LATER, to: k });
      const resumed = await runFenceSteps(executor(), back, target, memory, { skewMs: LATER, from: k });
      expect(resumed.map((r) => r.error?.message)).toEqual(Array(3 - k).fill(undefined));
      const again = await runFenceSteps(executor(), back, target, memory, { skewMs: LATER });
      expect(again.map((r) => r.error?.message)).toEqual([undefined, undefined, undefined]);
      expect(again[0]?.outcome?.detail).toContain("nothing turnout fenced or cordoned");
      for (const n of DC) {
        expect(taints(c, n)).toEqual([]);
        expect(unschedulable(c, n)).toBe(false);
      }
      expect(c.nodeWrites()).toEqual([...DC, ...DC, ...DC, ...DC]);
    });
  }

  it("a node tainted or cordoned by a person is left alone on the way back, and named", async () => {
    const { c, executor, memory, target } = await setup();
    c.setReady(DC, false);
    await runFenceSteps(executor(), fenceAction("failover"), target, memory, { skewMs: LATER });
    c.setReady(DC, true);
    // Someone took dc-1-3 over by hand: turnout's annotations are gone, the taint and cordon stay.
    c.sandbox.api.store.mutate({ resource: "nodes" }, undefined, "dc-1-3", (n) => {
      n.metadata.annotations = {};
    });
    const runs = await runFenceSteps(executor(), fenceAction("failback"), target, memory, { skewMs: LATER });
    expect(runs.map((r) => r.error?.message)).toEqual([undefined, undefined, undefined]);
    expect(runs[0]?.outcome?.detail).toContain("without turnout's annotation, left alone: dc-1-3");
    expect(taints(c, "dc-1-3")).toContain("node.kubernetes.io/out-of-service");
    expect(unschedulable(c, "dc-1-3")).toBe(true);
    expect(taints(c, "dc-1-1")).toEqual([]);
  });
});

describe("node-fence safety", () => {
  it("refuses when a node of the outgoing group is Ready, even forced, and touches no node", async () => {
    const { c, executor, memory, target } = await setup();
    c.setReady(["dc-1-2", "dc-1-3"], false);
    for (const force of [false, true]) {
      const runs = await runFenceSteps(executor(), fenceAction("failover", { force }), target, memory, {
        skewMs: LATER,
      });
      expect(runs.map((r) => r.name)).toEqual(["preflight"]);
      expect(runs[0]?.error?.code).toBe("node-ready");
      expect(runs[0]?.error?.message).toContain("dc-1-1 Ready=True");
      expect(runs[0]?.error?.message).not.toContain("dc-1-2 Ready");
    }
    expect(c.nodeWrites()).toEqual([]);
    for (const n of DC) expect(taints(c, n)).not.toContain("node.kubernetes.io/out-of-service");
  });

  it("does not taint a node that turned Ready after preflight", async () => {
    const { c, executor, memory, target } = await setup();
    c.setReady(DC, false);
    const action = fenceAction("failover");
    await runFenceSteps(executor(), action, target, memory, { skewMs: LATER, to: 2 });
    c.setReady(["dc-1-2"], true);
    const runs = await runFenceSteps(executor(), action, target, memory, { skewMs: LATER, from: 2 });
    expect(runs[0]?.error?.code).toBe("node-ready");
    expect(runs[0]?.error?.message).toContain("dc-1-2 Ready=True");
    expect(runs[0]?.error?.message).toContain("done before it: dc-1-1");
    expect(taints(c, "dc-1-2")).not.toContain("node.kubernetes.io/out-of-service");
    expect(c.nodeWrites()).toEqual([...DC, "dc-1-1"]);
  });

  it("refuses to fence more than maxFenceFraction of the cluster's nodes", async () => {
    const { c, executor, memory } = await setup();
    c.setReady(DC, false);
    const runs = await runFenceSteps(
      executor(),
      fenceAction("failover", { force: true }),
      fenceTarget({ maxFenceFraction: 0.4 }),
      memory,
      {
        skewMs: LATER,
      },
    );
    expect(runs[0]?.error?.code).toBe("fence-fraction");
    expect(runs[0]?.error?.message).toContain(
      "3 of the cluster's 6 nodes tainted out-of-service (dc-1-1, dc-1-2, dc-1-3)",
    );
    expect(runs[0]?.error?.message).toContain("maxFenceFraction=0.4");
    expect(c.nodeWrites()).toEqual([]);
  });

  it("refuses when the incoming group has no Ready node", async () => {
    const { c, executor, memory, target } = await setup();
    c.setReady([...DC, ...CLOUD], false);
    const runs = await runFenceSteps(executor(), fenceAction("failover", { force: true }), target, memory, {
      skewMs: LATER,
    });
    expect(runs[0]?.error?.code).toBe("no-destination");
    expect(runs[0]?.error?.message).toContain("cloud-a-1 Ready=Unknown");
    expect(c.nodeWrites()).toEqual([]);
  });

  it("force waives notReadySeconds and nothing else", async () => {
    const { c, executor, memory, target } = await setup();
    c.setReady(DC, false);
    const early = await runFenceSteps(executor(), fenceAction("failover"), target, memory);
    expect(early[0]?.error?.code).toBe("not-ready-too-recent");
    expect(early[0]?.error?.message).toMatch(/dc-1-1 Ready=Unknown for [0-5] s/);
    expect(c.nodeWrites()).toEqual([]);
    const forced = fenceAction("failover", { force: true });
    const runs = await runFenceSteps(executor(), forced, target, memory);
    expect(runs.map((r) => r.error?.message)).toEqual(Array(5).fill(undefined));
    expect(runs[0]?.outcome?.detail).toContain("FORCED past notReadySeconds");
    expectFenced(c, forced.id);
  });
});

describe("node-fence drill", () => {
  it("sends every node patch with dryRun=All, reports what would move, and changes nothing", async () => {
    const { c, executor, memory, target } = await setup();
    c.setReady(DC, false);
    await c.settled();
    const rv = c.sandbox.api.store.resourceVersion;
    const runs = await runFenceSteps(executor(), fenceAction("drill"), target, memory, { skewMs: LATER });
    expect(runs.map((r) => r.error?.message)).toEqual(Array(5).fill(undefined));
    expect(runs[0]?.outcome?.detail).toContain("would fence dc-1-1 Ready=Unknown");
    expect(runs[0]?.outcome?.detail).toContain("pods to move: db/postgres-0");
    expect(runs[2]?.outcome?.detail).toContain("dc-1-1 taint accepted with dryRun=All");
    expect(runs.slice(3).map((r) => r.outcome?.status)).toEqual(["skipped", "skipped"]);
    expect(c.nodeWrites(true)).toEqual([...DC, ...DC]);
    expect(c.nodeWrites()).toEqual([]);
    await c.settled();
    expect(c.sandbox.api.store.resourceVersion).toBe(rv);
    expect(memory.sets).toBe(0);
    expect(DC).toContain(nodeOf(c, "db", "postgres-0"));
  });

  it("with healthy nodes, says a real failover would refuse now instead of failing the drill", async () => {
    const { c, executor, memory, target } = await setup();
    const runs = await runFenceSteps(executor(), fenceAction("drill"), target, memory);
    expect(runs.map((r) => r.error?.message)).toEqual(Array(5).fill(undefined));
    expect(runs[0]?.outcome?.detail).toContain("a real failover would refuse now (node-ready)");
    expect(c.nodeWrites()).toEqual([]);
    for (const n of DC) expect(unschedulable(c, n)).toBe(false);
  });
});

describe("the simulated control plane", () => {
  it("without the taint, the StatefulSet pod stays on the lost node, not Ready, its volume attached", async () => {
    const { c } = await setup();
    const node = nodeOf(c, "db", "postgres-0");
    c.setReady(DC, false);
    await c.until(() => !isObjectReady(c.pod("db", "postgres-0")), 2000, "postgres-0 NotReady");
    await new Promise((r) => setTimeout(r, 200));
    await c.sandbox.controlPlane?.settled();
    expect(nodeOf(c, "db", "postgres-0")).toBe(node);
    expect(c.volumeAttachments().map((va) => (va.spec as { nodeName: string }).nodeName)).toEqual([node]);
    expect(taints(c, node ?? "")).toEqual(["node.kubernetes.io/unreachable", "node.kubernetes.io/unreachable"]);
  });
});
