/**
 * Simulated workload controllers for the fake API server (design §9): what kube-controller-manager
 * and the kubelets would do for Deployments, StatefulSets and DaemonSets, driven by the store's
 * watch events (no polling).
 *
 * - Deployment / StatefulSet: keep `spec.replicas` pods (labelled from the selector, owned by the
 *   workload), publish `status.{replicas, readyReplicas, updatedReplicas, availableReplicas,
 *   observedGeneration}`; scaling to zero deletes the pods. A template change (e.g. kubectl's
 *   rollout restart annotation) marks the pods outdated and replaces them after `rolloutDelayMs`.
 * - DaemonSet: one pod per simulated node (3 by default), status `desiredNumberScheduled`,
 *   `currentNumberScheduled`, `numberReady`, `numberAvailable`, `numberUnavailable`,
 *   `updatedNumberScheduled`, `observedGeneration`; {@link WorkloadControllers.setNodeReady} makes a
 *   node's pods NotReady (a failed operator pod).
 * - `onScale(key, replicas)` tells a backing process (e.g. the sandbox's `etcdctl make-mirror` for
 *   the synchronizer Deployment) the desired replica count whenever it changes.
 */
import { createHash } from "node:crypto";
import type { FakeStore, KubeObject, TypeRef, WatchEvent } from "./fake-kube-api.ts";
import { isJsonObject, type JsonObject } from "./kube-patch.ts";

export type WorkloadKind = "Deployment" | "StatefulSet" | "DaemonSet";

/** Identifies one workload. */
export interface WorkloadKey {
  kind: WorkloadKind;
  namespace: string;
  name: string;
}

export interface WorkloadControllersOptions {
  /** Simulated node names (default node-1, node-2, node-3). */
  nodes?: string[];
  /** Delay before a changed template's pods replace the old ones (default 200 ms). */
  rolloutDelayMs?: number;
  /** Delay before a new pod turns Ready (default 0: Ready at once). */
  podReadyDelayMs?: number;
  /** Called with the desired replicas of a Deployment/StatefulSet when first seen and on every change;
   * called with 0 when the workload is deleted. Errors are reported to `onError`. */
  onScale?: (key: WorkloadKey, replicas: number) => void | Promise<void>;
  /**
   * Workloads whose pods a scheduler binds (agent/sandbox/control-plane.ts): their pods are created
   * Pending, unbound and not Ready, as kube-controller-manager creates them; the scheduler and the
   * simulated kubelet do the rest. Default: none (pods are created Running, unbound).
   */
  externallyScheduled?: (key: WorkloadKey) => boolean;
  /** Unexpected reconcile errors (default: ignored; the next event retries). */
  onError?: (error: unknown, key: WorkloadKey) => void;
}

export interface WorkloadControllers {
  /** The simulated node names. */
  readonly nodes: readonly string[];
  /** Marks every pod on `node` (and the Node object) Ready or NotReady. */
  setNodeReady(node: string, ready: boolean): void;
  /** Marks one pod Ready or NotReady. */
  setPodReady(namespace: string, name: string, ready: boolean): void;
  /** Resolves once no reconcile is queued or running and no rollout or readiness timer is pending. */
  settled(): Promise<void>;
  /** Stops watching and cancels timers (pods stay as they are). */
  stop(): void;
}

const TYPES: Record<WorkloadKind, TypeRef> = {
  Deployment: { group: "apps", version: "v1", resource: "deployments" },
  StatefulSet: { group: "apps", version: "v1", resource: "statefulsets" },
  DaemonSet: { group: "apps", version: "v1", resource: "daemonsets" },
};
const PODS: TypeRef = { resource: "pods" };
const NODES: TypeRef = { resource: "nodes" };
const HASH_LABEL = "pod-template-hash";

function keyString(k: WorkloadKey): string {
  return `${k.kind}/${k.namespace}/${k.name}`;
}

function obj(value: unknown): JsonObject {
  return isJsonObject(value) ? value : {};
}

function stringMap(value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(obj(value))) if (typeof v === "string") out[k] = v;
  return out;
}

function isReady(pod: KubeObject): boolean {
  const conditions = obj(pod.status).conditions;
  return (
    Array.isArray(conditions) &&
    conditions.some((c) => isJsonObject(c) && c.type === "Ready" && c.status === "True") &&
    pod.metadata.deletionTimestamp === undefined
  );
}

function podStatus(ready: boolean): JsonObject {
  return {
    phase: ready ? "Running" : "Pending",
    conditions: [{ type: "Ready", status: ready ? "True" : "False" }],
  };
}

function randomSuffix(): string {
  return Math.random().toString(36).slice(2, 7).padEnd(5, "x");
}

/** Starts the controllers on `store`. */
export function startWorkloadControllers(
  store: FakeStore,
  options: WorkloadControllersOptions = {},
): WorkloadControllers {
  const nodes = options.nodes ?? ["node-1", "node-2", "node-3"];
  const rolloutDelayMs = options.rolloutDelayMs ?? 200;
  const podReadyDelayMs = options.podReadyDelayMs ?? 0;
  const queue = new Map<string, WorkloadKey>();
  const rolloutDue = new Map<string, string>();
  const rolloutTimers = new Map<string, NodeJS.Timeout>();
  const readyTimers = new Set<NodeJS.Timeout>();
  const reportedReplicas = new Map<string, number>();
  const notReadyNodes = new Set<string>();
  const unsubscribes: (() => void)[] = [];
  let running = false;
  let stopped = false;
  let settleWaiters: (() => void)[] = [];

  for (const node of nodes) {
    if (!store.get(NODES, undefined, node)) {
      store.create(NODES, {
        metadata: { name: node, labels: { "kubernetes.io/hostname": node } },
        status: { conditions: [{ type: "Ready", status: "True" }] },
      });
    }
  }

  const isSettled = () => queue.size === 0 && !running && rolloutTimers.size === 0 && readyTimers.size === 0;
  const notifySettled = () => {
    if (!isSettled()) return;
    const waiters = settleWaiters;
    settleWaiters = [];
    for (const w of waiters) w();
  };

  function enqueue(key: WorkloadKey): void {
    if (stopped) return;
    queue.set(keyString(key), key);
    if (!running) {
      running = true;
      queueMicrotask(drain);
    }
  }

  function drain(): void {
    try {
      while (queue.size > 0 && !stopped) {
        const [first] = queue;
        if (!first) break;
        const [k, key] = first;
        queue.delete(k);
        try {
          reconcile(key);
        } catch (e) {
          options.onError?.(e, key);
        }
      }
    } finally {
      running = false;
      // Controllers' own writes arrive as events a microtask later; settle after those.
      setImmediate(notifySettled);
    }
  }

  /** The pods `w` controls that are not being deleted. */
  function livePods(w: KubeObject): KubeObject[] {
    const uid = w.metadata.uid ?? "";
    return store.list(PODS, w.metadata.namespace).filter((p) => {
      const refs = p.metadata.ownerReferences;
      return (
        p.metadata.deletionTimestamp === undefined &&
        Array.isArray(refs) &&
        refs.some((r) => isJsonObject(r) && r.uid === uid && r.controller === true)
      );
    });
  }

  /** The counts both status shapes are written from, after this reconcile's creates and deletes. */
  function podCounts(w: KubeObject, hash: string): { live: number; ready: number; updated: number } {
    const live = livePods(w);
    return {
      live: live.length,
      ready: live.filter(isReady).length,
      updated: live.filter((p) => p.metadata.labels?.[HASH_LABEL] === hash).length,
    };
  }

  function ownerOf(pod: KubeObject): WorkloadKey | undefined {
    const refs = pod.metadata.ownerReferences;
    if (!Array.isArray(refs)) return undefined;
    for (const r of refs) {
      if (!isJsonObject(r) || r.controller !== true || typeof r.name !== "string") continue;
      if (r.kind === "Deployment" || r.kind === "StatefulSet" || r.kind === "DaemonSet") {
        return { kind: r.kind, namespace: pod.metadata.namespace ?? "", name: r.name };
      }
    }
    return undefined;
  }

  function createPod(w: KubeObject, key: WorkloadKey, name: string, hash: string, node: string | undefined): void {
    const spec = obj(w.spec);
    const template = obj(spec.template);
    const labels = {
      ...stringMap(obj(template.metadata).labels),
      ...stringMap(obj(spec.selector).matchLabels),
      [HASH_LABEL]: hash,
    };
    const scheduled = key.kind !== "DaemonSet" && options.externallyScheduled?.(key) === true;
    const ready = !scheduled && podReadyDelayMs <= 0 && !(node !== undefined && notReadyNodes.has(node));
    const podSpec = { ...obj(template.spec), ...(node ? { nodeName: node } : {}) };
    store.create(PODS, {
      metadata: {
        name,
        namespace: key.namespace,
        labels,
        annotations: stringMap(obj(template.metadata).annotations),
        ownerReferences: [
          {
            apiVersion: "apps/v1",
            kind: key.kind,
            name: key.name,
            uid: w.metadata.uid ?? "",
            controller: true,
            blockOwnerDeletion: true,
          },
        ],
      },
      spec: podSpec,
      status: scheduled
        ? { phase: "Pending", conditions: [{ type: "PodScheduled", status: "False" }] }
        : podStatus(ready),
    });
    if (podReadyDelayMs > 0 && !scheduled) {
      const timer = setTimeout(() => {
        readyTimers.delete(timer);
        if (!stopped && !(node !== undefined && notReadyNodes.has(node)))
          setPodReadyIfPresent(key.namespace, name, true);
        notifySettled();
      }, podReadyDelayMs);
      readyTimers.add(timer);
    }
  }

  function setPodReadyIfPresent(namespace: string, name: string, ready: boolean): void {
    if (!store.get(PODS, namespace, name)) return;
    store.mutate(
      PODS,
      namespace,
      name,
      (p) => {
        p.status = podStatus(ready);
      },
      { subresource: "status" },
    );
  }

  function deletePod(pod: KubeObject): void {
    if (pod.metadata.deletionTimestamp !== undefined) return;
    try {
      store.delete(PODS, pod.metadata.namespace, pod.metadata.name ?? "");
    } catch {
      // Already gone: another reconcile got there first.
    }
  }

  function writeStatus(key: WorkloadKey, status: JsonObject): void {
    store.mutate(
      TYPES[key.kind],
      key.namespace,
      key.name,
      (w) => {
        w.status = { ...obj(w.status), ...status };
      },
      { subresource: "status" },
    );
  }

  function reportScale(key: WorkloadKey, replicas: number): void {
    const k = keyString(key);
    if (reportedReplicas.get(k) === replicas) return;
    reportedReplicas.set(k, replicas);
    if (!options.onScale) return;
    try {
      Promise.resolve(options.onScale(key, replicas)).catch((e: unknown) => options.onError?.(e, key));
    } catch (e) {
      options.onError?.(e, key);
    }
  }

  /** Schedules the replacement of outdated pods, once per template hash. */
  function scheduleRollout(k: string, key: WorkloadKey, hash: string): void {
    if (rolloutDue.get(k) === hash || rolloutTimers.has(k)) return;
    const timer = setTimeout(() => {
      rolloutTimers.delete(k);
      rolloutDue.set(k, hash);
      enqueue(key);
    }, rolloutDelayMs);
    rolloutTimers.set(k, timer);
  }

  function reconcile(key: WorkloadKey): void {
    const k = keyString(key);
    const w = store.get(TYPES[key.kind], key.namespace, key.name);
    if (!w || w.metadata.deletionTimestamp !== undefined) {
      // The garbage collector's part: pods of a deleted workload go too.
      for (const p of store.list(PODS, key.namespace)) {
        const owner = ownerOf(p);
        if (owner && keyString(owner) === k) deletePod(p);
      }
      if (key.kind !== "DaemonSet" && reportedReplicas.has(k)) reportScale(key, 0);
      reportedReplicas.delete(k);
      return;
    }
    const spec = obj(w.spec);
    const hash = createHash("sha256")
      .update(JSON.stringify(spec.template ?? {}))
      .digest("hex")
      .slice(0, 10);
    const pods = livePods(w);
    const current = pods.filter((p) => p.metadata.labels?.[HASH_LABEL] === hash);
    const outdated = pods.filter((p) => p.metadata.labels?.[HASH_LABEL] !== hash);
    if (outdated.length > 0) {
      if (rolloutDue.get(k) === hash) {
        for (const p of outdated) deletePod(p);
        outdated.length = 0;
      } else scheduleRollout(k, key, hash);
    }
    const generation = w.metadata.generation ?? 1;

    if (key.kind === "DaemonSet") {
      for (const node of nodes) {
        const onNode = [...current, ...outdated].filter((p) => obj(p.spec).nodeName === node);
        if (onNode.length === 0) createPod(w, key, `${key.name}-${randomSuffix()}`, hash, node);
      }
      const { live, ready, updated } = podCounts(w, hash);
      writeStatus(key, {
        desiredNumberScheduled: nodes.length,
        currentNumberScheduled: live,
        numberReady: ready,
        numberAvailable: ready,
        numberUnavailable: nodes.length - ready,
        updatedNumberScheduled: updated,
        numberMisscheduled: 0,
        observedGeneration: generation,
      });
      return;
    }

    const desired = typeof spec.replicas === "number" ? spec.replicas : 1;
    reportScale(key, desired);
    const live = [...current, ...outdated];
    if (live.length > desired) {
      // Scale down: outdated pods first, then the newest (StatefulSets remove the highest ordinal).
      const victims = [
        ...outdated,
        ...current.sort((a, b) => (b.metadata.name ?? "").localeCompare(a.metadata.name ?? "")),
      ];
      for (const p of victims.slice(0, live.length - desired)) deletePod(p);
    } else if (live.length < desired) {
      const names = new Set(live.map((p) => p.metadata.name));
      for (let i = 0, made = 0; made < desired - live.length; i++) {
        const name =
          key.kind === "StatefulSet" ? `${key.name}-${i}` : `${key.name}-${hash.slice(0, 6)}-${randomSuffix()}`;
        if (names.has(name) || store.get(PODS, key.namespace, name)) continue;
        createPod(w, key, name, hash, undefined);
        made++;
      }
    }
    const { live: replicas, ready, updated } = podCounts(w, hash);
    writeStatus(key, {
      replicas,
      readyReplicas: ready,
      updatedReplicas: updated,
      availableReplicas: ready,
      ...(key.kind === "StatefulSet" ? { currentReplicas: updated, updateRevision: `${key.name}-${hash}` } : {}),
      observedGeneration: generation,
    });
  }

  const onWorkload = (kind: WorkloadKind) => (e: WatchEvent) =>
    enqueue({ kind, namespace: e.object.metadata.namespace ?? "", name: e.object.metadata.name ?? "" });
  for (const kind of ["Deployment", "StatefulSet", "DaemonSet"] as const) {
    unsubscribes.push(store.watch(TYPES[kind], undefined, onWorkload(kind)));
  }
  unsubscribes.push(
    store.watch(PODS, undefined, (e) => {
      const owner = ownerOf(e.object);
      if (owner) enqueue(owner);
    }),
  );

  return {
    nodes,
    setNodeReady(node, ready) {
      if (ready) notReadyNodes.delete(node);
      else notReadyNodes.add(node);
      if (store.get(NODES, undefined, node)) {
        store.mutate(
          NODES,
          undefined,
          node,
          (n) => {
            n.status = { ...obj(n.status), conditions: [{ type: "Ready", status: ready ? "True" : "False" }] };
          },
          { subresource: "status" },
        );
      }
      for (const p of store.list(PODS)) {
        if (obj(p.spec).nodeName === node)
          setPodReadyIfPresent(p.metadata.namespace ?? "", p.metadata.name ?? "", ready);
      }
    },
    setPodReady(namespace, name, ready) {
      setPodReadyIfPresent(namespace, name, ready);
    },
    settled() {
      return new Promise<void>((resolve) => {
        settleWaiters.push(resolve);
        // Let pending watch deliveries (microtasks) enqueue their reconciles first.
        setImmediate(notifySettled);
      });
    },
    stop() {
      stopped = true;
      for (const u of unsubscribes) u();
      for (const t of rolloutTimers.values()) clearTimeout(t);
      for (const t of readyTimers) clearTimeout(t);
      rolloutTimers.clear();
      readyTimers.clear();
      queue.clear();
      notifySettled();
    },
  };
}
