/**
 * The sandbox cluster (design §9): an in-process simulated Kubernetes cluster for `npm start` and
 * tests when the agent has neither a kubeconfig nor a service account. It runs the fake API server
 * (agent/sandbox/fake-kube-api.ts) and the workload controllers (agent/sandbox/workloads.ts), then
 * creates every object the agent config references, so any valid config runs in it:
 * - the agent's namespace (Lease and action memory);
 * - route-swap: the operator namespace and DaemonSet with one pod per node (3 nodes by default),
 *   the simulated static-route operator (agent/sandbox/static-route-operator.ts) on those pods, and
 *   the target's primary StaticRoute, present and Ready on every node;
 * - etcd-sync-teardown: the synchronizer Deployment (1 replica), backed by a real
 *   `etcdctl make-mirror` (agent/sandbox/etcd-mirror.ts) when etcdctl is installed, so scaling it
 *   to zero really stops the sync; and every workload listed under `restart`.
 * - node-fence: three Ready nodes per group, named after the selector's (first) value and labelled
 *   by the selector (`topology.kubernetes.io/zone=dc-1` → dc-1-1, dc-1-2, dc-1-3), the simulated
 *   node control plane (agent/sandbox/control-plane.ts), and every listed workload running on the
 *   primary group (preferred node affinity: primary, then secondary), one replica, a StatefulSet's
 *   volume attached through a VolumeAttachment.
 * - always: the simulated CloudNativePG operator (agent/sandbox/cnpg-controller.ts), which answers
 *   Clusters once examples/plans/cnpg-cluster-crd.yaml (or any CRD of that name) is applied.
 * Beside those, the API serves every built-in kind, every Gateway API kind and any CRD applied to
 * it, so a person or a test creates the objects a plan acts on with kubectl.
 * It never touches a real cluster.
 */

import { rmSync } from "node:fs";
import type { KubeConfig } from "@kubernetes/client-node";
import type { AgentConfig, EtcdSyncTeardownTarget, NodeFenceTarget, RouteSwapTarget } from "../../shared/config.ts";
import { type Logger, silentLogger } from "../log.ts";
import { type CnpgController, startCnpgController } from "./cnpg-controller.ts";
import { type ControlPlane, type ControlPlaneOptions, startControlPlane } from "./control-plane.ts";
import { createEtcdMirrorBackend, type EtcdMirrorBackend, etcdctlAvailable, mirrorPrefixesFor } from "./etcd-mirror.ts";
import {
  type FakeKubeApi,
  type FakeKubeApiOptions,
  type KubeObject,
  startFakeKubeApi,
  type TypeRef,
} from "./fake-kube-api.ts";
import { selfSignedCertificate, writeKubeconfig } from "./kubeconfig.ts";
import { type OperatorNodeMode, startStaticRouteOperators } from "./static-route-operator.ts";
import {
  startWorkloadControllers,
  type WorkloadControllers,
  type WorkloadControllersOptions,
  type WorkloadKey,
} from "./workloads.ts";

const STATIC_ROUTES = { group: "networking.digitalocean.com", version: "v1", resource: "staticroutes" };
const NAMESPACES = { resource: "namespaces" };
const WORKLOAD_TYPES = {
  Deployment: { group: "apps", resource: "deployments" },
  StatefulSet: { group: "apps", resource: "statefulsets" },
  DaemonSet: { group: "apps", resource: "daemonsets" },
} as const;

/** What starts the simulated static-route operator for one route-swap target's DaemonSet. */
export type StartOperator = (ctx: {
  kubeConfig: KubeConfig;
  namespace: string;
  daemonSet: string;
  target: string;
}) => Promise<{ stop(): Promise<void> }>;

export interface SandboxClusterOptions {
  /** Simulated node names (default node-1, node-2, node-3). */
  nodes?: string[];
  /** Passed to the fake API server (token, bookmark interval, history size…). */
  api?: FakeKubeApiOptions;
  /** Passed to the workload controllers (rollout and readiness delays). */
  workloads?: Omit<WorkloadControllersOptions, "nodes" | "onScale">;
  /** Extra backing for Deployments/StatefulSets, called after the etcd mirror backend. */
  onScale?: WorkloadControllersOptions["onScale"];
  /**
   * Starts the static-route operator simulation; default: startStaticRouteOperators with
   * `operatorDelayMs` and `operatorModes`; `false` runs none (StaticRoute statuses are then
   * written directly as Ready).
   */
  startOperator?: StartOperator | false;
  /** Handler delay of the simulated operator pods (default 200 ms). */
  operatorDelayMs?: number;
  /** Per-node behaviour of the simulated operator pods. */
  operatorModes?: Record<string, OperatorNodeMode>;
  /** Back synchronizer Deployments by `etcdctl make-mirror` (default: when etcdctl is installed). */
  etcdMirror?: boolean;
  /** Passed to the node control plane (pod readiness and attach delays) when there are node-fence targets. */
  controlPlane?: Omit<ControlPlaneOptions, "onError">;
  /**
   * Write a kubeconfig for kubectl here (the API then also serves HTTPS with a self-signed
   * certificate); removed on stop. Default: none.
   */
  kubeconfigFile?: string;
  /** How long the simulated CloudNativePG operator takes to answer a Cluster change (default 100 ms). */
  cnpgDelayMs?: number;
  /** How long to wait for the seeded StaticRoute to be Ready on every node (default 10 s). */
  readyTimeoutMs?: number;
  log?: Logger;
}

export interface SandboxCluster {
  /** Credentials for the agent (the real client-node talks to the fake API over HTTP). */
  kubeConfig: KubeConfig;
  api: FakeKubeApi;
  workloads: WorkloadControllers;
  /** The kubeconfig written for kubectl, when asked for and openssl could make its certificate. */
  kubeconfigFile: string | undefined;
  /** The simulated node control plane, when the config has node-fence targets. */
  controlPlane: ControlPlane | undefined;
  /** The etcd mirror backend, when synchronizer Deployments are backed by make-mirror. */
  etcdMirror: EtcdMirrorBackend | undefined;
  /** The simulated CloudNativePG operator. */
  cnpg: CnpgController;
  /** Stops the operator simulations, the mirrors, the controllers and the API server. */
  stop(): Promise<void>;
}

const defaultOperator =
  (options: SandboxClusterOptions): StartOperator =>
  async ({ kubeConfig, namespace, daemonSet }) =>
    startStaticRouteOperators({
      kubeConfig,
      namespace,
      daemonSet,
      delayMs: options.operatorDelayMs ?? 200,
      modes: options.operatorModes,
    });

function ensureNamespace(api: FakeKubeApi, name: string): void {
  if (!api.store.get(NAMESPACES, undefined, name)) {
    api.store.create(NAMESPACES, { metadata: { name, labels: { "turnout/sandbox": "true" } } });
  }
}

function workloadObject(
  kind: keyof typeof WORKLOAD_TYPES,
  namespace: string,
  name: string,
  labels: Record<string, string>,
): KubeObject {
  const selector = { matchLabels: labels };
  const template = {
    metadata: { labels },
    spec: { containers: [{ name, image: `sandbox.invalid/${name}:simulated` }] },
  };
  return {
    apiVersion: "apps/v1",
    kind,
    metadata: { name, namespace, labels: { ...labels, "turnout/sandbox": "true" } },
    spec:
      kind === "DaemonSet"
        ? { selector, template }
        : { replicas: 1, selector, template, ...(kind === "StatefulSet" ? { serviceName: name } : {}) },
  };
}

function ensureWorkload(
  api: FakeKubeApi,
  kind: keyof typeof WORKLOAD_TYPES,
  namespace: string,
  name: string,
  labels: Record<string, string>,
  shape?: (o: KubeObject) => void,
): void {
  ensureNamespace(api, namespace);
  if (!api.store.get(WORKLOAD_TYPES[kind], namespace, name)) {
    const o = workloadObject(kind, namespace, name, labels);
    shape?.(o);
    api.store.create(WORKLOAD_TYPES[kind], o);
  }
}

/** The labels a node-fence selector names (`a=b,c=d`). */
export function selectorLabels(selector: string): Record<string, string> {
  return Object.fromEntries(
    selector.split(",").map((term) => {
      const [k = "", v = ""] = term.trim().split("=");
      return [k, v];
    }),
  );
}

/** The sandbox's node names for a node-fence group: the selector's first value, then -1, -2, -3. */
export function groupNodeNames(selector: string): string[] {
  const first = Object.values(selectorLabels(selector))[0] || "node";
  return [1, 2, 3].map((i) => `${first}-${i}`);
}

/** Pod template placement for a node-fence workload: the primary group, else the secondary one. */
function placeOnGroups(t: NodeFenceTarget): (o: KubeObject) => void {
  const term = (selector: string) => ({
    matchExpressions: Object.entries(selectorLabels(selector)).map(([key, value]) => ({
      key,
      operator: "In",
      values: [value],
    })),
  });
  return (o) => {
    const spec = o.spec as { template: { spec: Record<string, unknown> } } & Record<string, unknown>;
    spec.template.spec.affinity = {
      nodeAffinity: {
        preferredDuringSchedulingIgnoredDuringExecution: [
          { weight: 100, preference: term(t.nodes.primary.selector) },
          { weight: 50, preference: term(t.nodes.secondary.selector) },
        ],
      },
    };
    if (o.kind === "StatefulSet") {
      spec.volumeClaimTemplates = [
        {
          metadata: { name: "data" },
          spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "1Gi" } } },
        },
      ];
    }
  };
}

/** Resolves when `check` holds, re-checking on every change of `type` (in `namespace`); rejects after `ms`. */
function untilStore(
  api: FakeKubeApi,
  type: TypeRef,
  namespace: string | undefined,
  check: () => boolean,
  ms: number,
  what: string,
): Promise<void> {
  return new Promise((resolve, reject) => {
    if (check()) return resolve();
    const timer = setTimeout(() => {
      off();
      reject(new Error(`sandbox: timed out after ${ms} ms waiting for ${what}`));
    }, ms);
    const off = api.store.watch(type, namespace, () => {
      if (!check()) return;
      clearTimeout(timer);
      off();
      resolve();
    });
  });
}

/** Resolves when a workload reports all its replicas Ready; rejects after `ms`. */
function untilReady(api: FakeKubeApi, w: NodeFenceTarget["workloads"][number], ms: number): Promise<void> {
  const ref = WORKLOAD_TYPES[w.kind];
  const check = () => {
    const o = api.store.get(ref, w.namespace, w.name);
    const spec = o?.spec as { replicas?: number } | undefined;
    const status = o?.status as { readyReplicas?: number } | undefined;
    return (status?.readyReplicas ?? 0) >= (spec?.replicas ?? 1);
  };
  return untilStore(api, ref, w.namespace, check, ms, `${w.kind} ${w.namespace}/${w.name} to be Ready`);
}

/** Starts the sandbox cluster for an agent config and seeds the objects it references. */
export async function startSandboxCluster(
  config: Pick<AgentConfig, "namespace" | "targets">,
  options: SandboxClusterOptions = {},
): Promise<SandboxCluster> {
  const log = (options.log ?? silentLogger).child({ sandbox: true });
  const nodes = options.nodes ?? ["node-1", "node-2", "node-3"];
  let tls: { key: string; cert: string } | undefined;
  if (options.kubeconfigFile) {
    try {
      tls = selfSignedCertificate();
    } catch (err) {
      log.warn("no kubeconfig for kubectl", { error: String(err) });
    }
  }
  const api = await startFakeKubeApi({ ...options.api, ...(tls ? { tls } : {}) });
  let kubeconfigFile: string | undefined;
  if (tls && options.kubeconfigFile && api.httpsUrl) {
    writeKubeconfig(options.kubeconfigFile, api.httpsUrl, tls.cert, api.token);
    kubeconfigFile = options.kubeconfigFile;
  }
  const targets = Object.entries(config.targets);
  const etcdTargets = targets.filter((e): e is [string, EtcdSyncTeardownTarget] => e[1].kind === "etcd-sync-teardown");
  const routeTargets = targets.filter((e): e is [string, RouteSwapTarget] => e[1].kind === "route-swap");
  const fenceTargets = targets.filter((e): e is [string, NodeFenceTarget] => e[1].kind === "node-fence");
  const fenced = new Set(fenceTargets.flatMap(([, t]) => t.workloads.map((w) => `${w.kind}/${w.namespace}/${w.name}`)));

  const mirrorWanted = options.etcdMirror ?? (etcdTargets.length > 0 && etcdctlAvailable());
  if (options.etcdMirror === undefined && etcdTargets.length > 0 && !mirrorWanted) {
    log.warn(
      "etcdctl is not installed: the sandbox's synchronizer Deployments run without a real make-mirror (run `npm run setup`)",
    );
  }
  const etcdMirror = mirrorWanted
    ? createEtcdMirrorBackend(
        etcdTargets.map(([, t]) => ({
          namespace: t.sync.namespace,
          name: t.sync.name,
          mirror: {
            primaryEndpoints: t.etcd.primary.endpoints,
            standbyEndpoints: t.etcd.standby.endpoints,
            // The heartbeat key too when no prefix covers it: the lag check reads it on the standby.
            prefixes: mirrorPrefixesFor(t.etcd),
            tls: t.etcd.tls,
            onUnexpectedExit: (prefix: string, code: number | null, output: string) =>
              log.warn("sandbox make-mirror exited", { prefix, code, output: output.slice(-500) }),
          },
        })),
      )
    : undefined;

  const controlPlane =
    fenceTargets.length > 0
      ? startControlPlane(api.store, {
          ...options.controlPlane,
          onError: (error) => log.warn("sandbox control plane error", { error: String(error) }),
        })
      : undefined;
  // Before the workload controllers, which would create any node they place DaemonSet pods on unlabelled.
  for (const [, t] of fenceTargets) {
    for (const side of ["primary", "secondary"] as const) {
      const selector = t.nodes[side].selector;
      for (const node of groupNodeNames(selector)) controlPlane?.addNode(node, selectorLabels(selector));
    }
  }
  const workloads = startWorkloadControllers(api.store, {
    ...options.workloads,
    nodes,
    externallyScheduled: (key) => fenced.has(`${key.kind}/${key.namespace}/${key.name}`),
    onError: (error, key) => log.warn("sandbox controller error", { key, error: String(error) }),
    onScale: async (key: WorkloadKey, replicas: number) => {
      await etcdMirror?.onScale(key, replicas);
      await options.onScale?.(key, replicas);
    },
  });
  const operators: { stop(): Promise<void> }[] = [];
  const cnpg = startCnpgController(api.store, {
    delayMs: options.cnpgDelayMs,
    onError: (error) => log.warn("sandbox CloudNativePG simulation error", { error: String(error) }),
  });

  const stop = async () => {
    cnpg.stop();
    for (const o of operators.splice(0)) await o.stop().catch(() => {});
    controlPlane?.stop();
    workloads.stop();
    await etcdMirror?.stop();
    await api.close();
    if (kubeconfigFile) rmSync(kubeconfigFile, { force: true });
  };

  try {
    ensureNamespace(api, config.namespace);

    for (const [, t] of etcdTargets) {
      ensureWorkload(api, "Deployment", t.sync.namespace, t.sync.name, { app: t.sync.name });
      for (const w of t.restart) ensureWorkload(api, w.kind, w.namespace, w.name, { app: w.name });
    }

    for (const [, t] of fenceTargets) {
      for (const w of t.workloads) ensureWorkload(api, w.kind, w.namespace, w.name, { app: w.name }, placeOnGroups(t));
    }

    const daemonSets = new Map<string, string>();
    for (const [name, t] of routeTargets) {
      const dsKey = `${t.operator.namespace}/${t.operator.daemonSet}`;
      if (!daemonSets.has(dsKey)) {
        daemonSets.set(dsKey, name);
        ensureWorkload(api, "DaemonSet", t.operator.namespace, t.operator.daemonSet, { name: t.operator.daemonSet });
      }
    }
    await workloads.settled();

    const startOperator =
      options.startOperator === false ? undefined : (options.startOperator ?? defaultOperator(options));
    for (const [dsKey, target] of daemonSets) {
      const [namespace = "", daemonSet = ""] = dsKey.split("/");
      if (startOperator)
        operators.push(await startOperator({ kubeConfig: api.kubeConfig(), namespace, daemonSet, target }));
    }

    for (const [name, t] of routeTargets) {
      const primary = t.routes.primary;
      if (api.store.get(STATIC_ROUTES, undefined, primary.name)) continue;
      const created = api.store.create(STATIC_ROUTES, {
        apiVersion: "networking.digitalocean.com/v1",
        kind: "StaticRoute",
        metadata: { name: primary.name, labels: { "turnout/target": name } },
        spec: { destinations: primary.destinations, gateway: primary.gateway },
      });
      if (!startOperator) {
        // No operator simulation: record what it would have (kopf's create_fn result per node).
        api.store.mutate(
          STATIC_ROUTES,
          undefined,
          created.metadata.name ?? primary.name,
          (o) => {
            o.status = { create_fn: Object.fromEntries(nodes.map((n) => [n, "Ready"])) };
          },
          { subresource: "status" },
        );
        continue;
      }
      await untilStore(
        api,
        STATIC_ROUTES,
        undefined,
        () => {
          const status = api.store.get(STATIC_ROUTES, undefined, primary.name)?.status;
          const createFn =
            typeof status === "object" && status !== null && !Array.isArray(status) ? status.create_fn : undefined;
          return (
            typeof createFn === "object" &&
            createFn !== null &&
            !Array.isArray(createFn) &&
            nodes.filter((n) => (options.operatorModes?.[n] ?? "ok") === "ok").every((n) => createFn[n] === "Ready")
          );
        },
        options.readyTimeoutMs ?? 10_000,
        `StaticRoute ${primary.name} Ready on every node`,
      );
    }
    await workloads.settled();
    for (const [, t] of fenceTargets) {
      for (const w of t.workloads) await untilReady(api, w, options.readyTimeoutMs ?? 10_000);
    }
    await etcdMirror?.idle();
  } catch (e) {
    await stop();
    throw e;
  }

  log.info("sandbox cluster running (simulated; no real cluster is touched)", {
    url: api.url,
    nodes,
    routeSwapTargets: routeTargets.map(([n]) => n),
    etcdSyncTargets: etcdTargets.map(([n]) => n),
    nodeFenceTargets: fenceTargets.map(([n]) => n),
    ...(kubeconfigFile
      ? { kubeconfig: kubeconfigFile, try: `kubectl --kubeconfig ${kubeconfigFile} get nodes,pods -A` }
      : {}),
    etcdMirror: etcdMirror !== undefined,
  });

  return { kubeConfig: api.kubeConfig(), api, workloads, controlPlane, etcdMirror, cnpg, kubeconfigFile, stop };
}
