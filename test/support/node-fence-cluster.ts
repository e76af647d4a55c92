/**
 * A sandbox cluster for node-fence tests: two node groups (dc-1-1..3 in zone dc-1, cloud-a-1..3 in
 * zone cloud-a) with the simulated node control plane, the StatefulSet db/postgres (one replica,
 * one volume) and the Deployment web/web (two replicas) on the dc group, and a DaemonSet
 * monitoring/node-exporter on every node. Steps run through {@link runFenceSteps} with a clock the
 * test can skew (the API's `lastTransitionTime` is real time).
 */

import { type SandboxCluster, startSandboxCluster } from "../../agent/sandbox/cluster.ts";
import type { KubeObject } from "../../agent/sandbox/fake-kube-api.ts";
import { AgentConfigSchema, type NodeFenceTarget } from "../../shared/config.ts";
import type { ActionRequest } from "../../shared/protocol.ts";
import { runSteps } from "./run-steps.ts";

export const DC = ["dc-1-1", "dc-1-2", "dc-1-3"];
export const CLOUD = ["cloud-a-1", "cloud-a-2", "cloud-a-3"];
export const NODES = { resource: "nodes" };
export const PODS = { resource: "pods" };
export const VOLUME_ATTACHMENTS = { group: "storage.k8s.io", resource: "volumeattachments" };

/** An agent config (unparsed) with the design §8 node-fence target `dc-nodes` (zones dc-1, cloud-a) and `fields`. */
export function fenceConfig(fields: Record<string, unknown> = {}) {
  return {
    reportUrl: "http://127.0.0.1:9/v1/agent/reports",
    targets: {
      "dc-nodes": {
        kind: "node-fence",
        nodes: {
          primary: { selector: "topology.kubernetes.io/zone=dc-1" },
          secondary: { selector: "topology.kubernetes.io/zone=cloud-a" },
        },
        ...fields,
      },
    },
  };
}

/** The node-fence target of the tests (settleSeconds short: waits are on real time). */
export function fenceTarget(overrides: Partial<NodeFenceTarget> = {}): NodeFenceTarget {
  const config = AgentConfigSchema.parse(
    fenceConfig({
      notReadySeconds: 60,
      maxFenceFraction: 0.5,
      settleSeconds: 15,
      workloads: [
        { kind: "StatefulSet", namespace: "db", name: "postgres" },
        { kind: "Deployment", namespace: "web", name: "web" },
      ],
    }),
  );
  const t = config.targets["dc-nodes"];
  if (t?.kind !== "node-fence") throw new Error("fixture config");
  return { ...t, ...overrides };
}

let epoch = 0;
/** An action on the dc-nodes target. */
export function fenceAction(kind: ActionRequest["kind"], extra: Partial<ActionRequest> = {}): ActionRequest {
  epoch++;
  const back = kind === "failback";
  return {
    id: `dc-nodes:${epoch}`,
    target: "dc-nodes",
    kind,
    from: back ? "secondary" : "primary",
    to: back ? "primary" : "secondary",
    dryRun: kind === "drill",
    force: false,
    reason: "test",
    issuedAt: new Date().toISOString(),
    ...extra,
  };
}

export interface FenceCluster {
  sandbox: SandboxCluster;
  node(name: string): KubeObject;
  /** Pods bound to a node, as `ns/name`. */
  podsOn(name: string): KubeObject[];
  pod(namespace: string, name: string): KubeObject | undefined;
  volumeAttachments(): KubeObject[];
  /** Node PATCH requests the agent sent (not dry run unless `dryRun`). */
  nodeWrites(dryRun?: boolean): string[];
  setReady(nodes: string[], ready: boolean): void;
  until(check: () => boolean, ms: number, what: string): Promise<void>;
  /** Resolves when the control plane and the workload controllers have nothing left to do. */
  settled(): Promise<void>;
  close(): Promise<void>;
}

function ready(o: KubeObject | undefined): boolean {
  const conditions = (o?.status as { conditions?: { type: string; status: string }[] } | undefined)?.conditions ?? [];
  return conditions.some((c) => c.type === "Ready" && c.status === "True");
}

export { ready as isObjectReady };

/** Starts the fixture and waits until every workload is Ready. */
export async function startFenceCluster(
  controlPlane: { podReadyDelayMs?: number; attachDelayMs?: number } = {},
): Promise<FenceCluster> {
  const target = fenceTarget();
  const sandbox = await startSandboxCluster(
    AgentConfigSchema.parse({ reportUrl: "http://127.0.0.1:9/v1/agent/reports", targets: { "dc-nodes": target } }),
    {
      nodes: [...DC, ...CLOUD],
      startOperator: false,
      etcdMirror: false,
      controlPlane: { podReadyDelayMs: 30, attachDelayMs: 10, ...controlPlane },
    },
  );
  const store = sandbox.api.store;
  store.create({ resource: "namespaces" }, { metadata: { name: "monitoring" } });
  store.create(
    { group: "apps", resource: "daemonsets" },
    {
      metadata: { name: "node-exporter", namespace: "monitoring" },
      spec: {
        selector: { matchLabels: { app: "node-exporter" } },
        template: { metadata: { labels: { app: "node-exporter" } }, spec: { containers: [{ name: "e", image: "x" }] } },
      },
    },
  );
  const until = async (check: () => boolean, ms: number, what: string) => {
    const deadline = Date.now() + ms;
    while (!check()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  const podsOn = (name: string) => store.list(PODS, undefined, { fieldSelector: `spec.nodeName=${name}` });
  const c: FenceCluster = {
    sandbox,
    node: (name) => store.read(NODES, undefined, name),
    podsOn,
    pod: (ns, name) => store.get(PODS, ns, name),
    volumeAttachments: () => store.list(VOLUME_ATTACHMENTS),
    nodeWrites: (dryRun = false) =>
      sandbox.api.requests
        .filter(
          (r) => r.method === "PATCH" && r.path.startsWith("/api/v1/nodes/") && (r.query.dryRun === "All") === dryRun,
        )
        .map((r) => r.path.split("/").pop() ?? ""),
    setReady: (nodes, up) => {
      for (const n of nodes) sandbox.controlPlane?.setNodeReady(n, up);
    },
    until,
    settled: async () => {
      for (let i = 0; i < 3; i++) {
        await sandbox.controlPlane?.settled();
        await sandbox.workloads.settled();
      }
    },
    close: () => sandbox.stop(),
  };
  await until(
    () =>
      store.list(PODS, "monitoring").filter(ready).length === 6 && store.list(PODS, "web").filter(ready).length === 1,
    5000,
    "node-exporter on every node and web Ready",
  );
  return c;
}

export type { StepRun } from "./run-steps.ts";

/** Runs a node-fence executor's steps (`runSteps`), each sleep really waiting at most 20 ms. */
export const runFenceSteps: typeof runSteps<NodeFenceTarget> = (executor, action, target, memory, options = {}) =>
  runSteps(executor, action, target, memory, { maxSleepMs: 20, ...options });
