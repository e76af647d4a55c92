/**
 * A simulated CloudNativePG operator for the playground CRD (examples/plans/cnpg-cluster-crd.yaml):
 * once a `postgresql.cnpg.io` Cluster type is served, every Cluster whose generation it has not
 * answered yet gets, `delayMs` after the change, the status CloudNativePG reports for a healthy
 * cluster: phase "Cluster in healthy state", the condition Ready True carrying the generation it
 * saw (`observedGeneration`, as metav1.Condition has it), and `currentPrimary` (`<name>-1`, the
 * primary, or the designated primary of a replica cluster). So a plan step that promotes a
 * replica cluster (`spec.replica.enabled: false`) has a Ready condition of its generation to
 * wait for. It watches the CRDs too: applying the CRD after start works, deleting it stops it.
 */
import { CRD_TYPE } from "./custom-resource-definitions.ts";
import type { FakeStore, KubeObject, TypeRef } from "./fake-kube-api.ts";
import { isJsonObject, type Json } from "./kube-patch.ts";

const CRD_NAME = "clusters.postgresql.cnpg.io";
const CLUSTERS: TypeRef = { group: "postgresql.cnpg.io", resource: "clusters" };

export interface CnpgControllerOptions {
  /** How long the simulated operator takes to answer a change (default 100 ms). */
  delayMs?: number;
  /** The clock for condition timestamps (default Date.now). */
  now?: () => number;
  onError?: (error: unknown) => void;
}

export interface CnpgController {
  /** Resolves once no answer is pending. */
  settled(): Promise<void>;
  stop(): void;
}

function answeredGeneration(o: KubeObject): number | undefined {
  const conditions = isJsonObject(o.status) ? o.status.conditions : undefined;
  const ready = Array.isArray(conditions) ? conditions.find((c) => isJsonObject(c) && c.type === "Ready") : undefined;
  return isJsonObject(ready) && typeof ready.observedGeneration === "number" ? ready.observedGeneration : undefined;
}

/** Starts the simulated operator on `store`. */
export function startCnpgController(store: FakeStore, options: CnpgControllerOptions = {}): CnpgController {
  const delayMs = options.delayMs ?? 100;
  const now = options.now ?? Date.now;
  const timers = new Map<string, NodeJS.Timeout>();
  const idle = new Set<() => void>();
  let offClusters: (() => void) | undefined;

  const checkIdle = () => {
    if (timers.size > 0) return;
    for (const resolve of [...idle]) resolve();
    idle.clear();
  };

  const answer = (namespace: string, name: string) => {
    timers.delete(`${namespace}/${name}`);
    try {
      const current = store.findType(CLUSTERS) ? store.get(CLUSTERS, namespace, name) : undefined;
      const generation = current?.metadata.generation;
      if (!current || generation === undefined || answeredGeneration(current) === generation) return;
      const status = isJsonObject(current.status) ? current.status : {};
      const conditions: Json[] = Array.isArray(status.conditions)
        ? status.conditions.filter((c) => !(isJsonObject(c) && c.type === "Ready"))
        : [];
      store.update(
        CLUSTERS,
        {
          ...current,
          status: {
            ...status,
            phase: "Cluster in healthy state",
            currentPrimary: `${name}-1`,
            conditions: [
              ...conditions,
              {
                type: "Ready",
                status: "True",
                reason: "ClusterIsReady",
                message: "Cluster is Ready",
                lastTransitionTime: new Date(now()).toISOString().replace(/\.\d{3}Z$/, "Z"),
                observedGeneration: generation,
              },
            ],
          },
        },
        { subresource: "status" },
      );
    } catch (error) {
      options.onError?.(error);
    } finally {
      checkIdle();
    }
  };

  const schedule = (o: KubeObject) => {
    const namespace = o.metadata.namespace ?? "";
    const name = o.metadata.name ?? "";
    if (o.metadata.generation === undefined || answeredGeneration(o) === o.metadata.generation) return;
    const key = `${namespace}/${name}`;
    clearTimeout(timers.get(key));
    timers.set(
      key,
      setTimeout(() => answer(namespace, name), delayMs),
    );
  };

  const watchClusters = () => {
    offClusters?.();
    offClusters = store.findType(CLUSTERS)
      ? store.watch(CLUSTERS, undefined, (e) => {
          if (e.type !== "DELETED") schedule(e.object);
        })
      : undefined;
  };

  const offCrds = store.watch(CRD_TYPE, undefined, (e) => {
    if (e.object.metadata.name !== CRD_NAME) return;
    if (e.type === "DELETED") {
      offClusters?.();
      offClusters = undefined;
    } else if (e.type === "ADDED") watchClusters();
  });
  watchClusters();

  return {
    settled: () =>
      timers.size === 0
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            idle.add(resolve);
          }),
    stop() {
      offCrds();
      offClusters?.();
      for (const t of timers.values()) clearTimeout(t);
      timers.clear();
      checkIdle();
    },
  };
}
