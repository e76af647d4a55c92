/**
 * The Kubernetes permissions an agent config needs (design §11.2, §11.6): for every target, the
 * requests its executor or each of its plan steps sends, as RBAC sees them (verb, API group,
 * resource or `resource/subresource`, namespace, object name), on the cluster the step acts on.
 * Names are kept wherever Kubernetes allows `resourceNames`: every request that names an object
 * in its URL. `list`, `watch` and a `create` by POST name none, so those stay unnamed.
 *
 * What each executor needs follows the hand-written RBAC of agent/deploy/base (rbac*.yaml), whose
 * tests hold it against the requests each executor really sends; what each plan step needs
 * follows agent/plan/*-step.ts. test/ship/plan-rbac.test.ts holds both against the fake API's log.
 */
import {
  type AgentConfig,
  type AgentTarget,
  type DnsFlipTarget,
  type EtcdSyncTeardownTarget,
  type NodeFenceTarget,
  type PlanStep,
  planSteps,
  type RouteSwapTarget,
} from "../../shared/config.ts";
import { configMapName } from "../memory.ts";

/** The agent's own cluster, as a key of {@link clusterPermissions}. */
export const OWN_CLUSTER = "";

/** One permission: a verb on a resource, in a namespace (absent: cluster-wide), of named objects (absent: any). */
export interface Permission {
  apiGroup: string;
  /** `deployments`, or `deployments/scale` for a subresource. */
  resource: string;
  verb: string;
  namespace?: string;
  name?: string;
  /** Who needs it, for the comment beside its rule: `<target>/<step>: <what it does>`. */
  why: string;
}

/** The permissions of each cluster the config acts on ({@link OWN_CLUSTER} and each `clusters` entry used). */
export type ClusterPermissions = Map<string, Permission[]>;

/** apiVersion `apps/v1` → `apps`; `v1` → the core group "". */
export function groupOf(apiVersion: string): string {
  const slash = apiVersion.indexOf("/");
  return slash < 0 ? "" : apiVersion.slice(0, slash);
}

/** Plurals that the rule below gets wrong, among the kinds a plan is likely to name. */
const IRREGULAR: Record<string, string> = { Endpoints: "endpoints" };

/**
 * A kind's resource name, as Kubernetes guesses it (meta.UnsafeGuessKindToResource in
 * k8s.io/apimachinery): lower case, `s` → `ses`, `y` → `ies`, else `s`. Every built-in kind a step
 * names and the Gateway API and CloudNativePG kinds follow it; a CRD whose plural differs needs its
 * rules edited after printing.
 */
export function resourceOf(kind: string): string {
  const irregular = IRREGULAR[kind];
  if (irregular) return irregular;
  const lower = kind.toLowerCase();
  if (lower.endsWith("s")) return `${lower}es`;
  if (lower.endsWith("y") && !/[aeiou]y$/.test(lower)) return `${lower.slice(0, -1)}ies`;
  return `${lower}s`;
}

const WORKLOAD_RESOURCE = { Deployment: "deployments", StatefulSet: "statefulsets", DaemonSet: "daemonsets" } as const;

function routeSwap(target: RouteSwapTarget, why: string): Permission[] {
  const out: Permission[] = [];
  for (const route of [target.routes.primary.name, target.routes.secondary.name]) {
    for (const verb of ["get", "patch", "delete"]) {
      out.push({
        apiGroup: "networking.digitalocean.com",
        resource: "staticroutes",
        verb,
        name: route,
        why: `${why}: reads, applies and deletes its two StaticRoutes`,
      });
    }
  }
  out.push(
    {
      apiGroup: "networking.digitalocean.com",
      resource: "staticroutes",
      verb: "create",
      why: `${why}: a server-side apply that creates the incoming route is also authorized as create`,
    },
    {
      apiGroup: "apps",
      resource: "daemonsets",
      verb: "get",
      namespace: target.operator.namespace,
      name: target.operator.daemonSet,
      why: `${why}: reads the static-route operator's DaemonSet`,
    },
    {
      apiGroup: "",
      resource: "pods",
      verb: "list",
      namespace: target.operator.namespace,
      why: `${why}: lists the operator's pods`,
    },
    {
      apiGroup: "",
      resource: "events",
      verb: "list",
      namespace: "default",
      why: `${why}: waits for the operator's Events (kopf writes them in default)`,
    },
  );
  return out;
}

function dnsFlip(target: DnsFlipTarget, why: string): Permission[] {
  if (!target.coredns) return [];
  return [
    {
      apiGroup: "",
      resource: "configmaps",
      verb: "get",
      namespace: target.coredns.namespace,
      name: target.coredns.configMap,
      why: `${why}: reads the CoreDNS Corefile for pins of the flipped name`,
    },
  ];
}

function etcdSyncTeardown(target: Pick<EtcdSyncTeardownTarget, "sync" | "restart">, why: string): Permission[] {
  const { sync } = target;
  const out: Permission[] = [
    {
      apiGroup: "apps",
      resource: "deployments",
      verb: "get",
      namespace: sync.namespace,
      name: sync.name,
      why: `${why}: reads the synchronizer`,
    },
    sync.action === "delete"
      ? {
          apiGroup: "apps",
          resource: "deployments",
          verb: "delete",
          namespace: sync.namespace,
          name: sync.name,
          why: `${why}: deletes the synchronizer`,
        }
      : {
          apiGroup: "apps",
          resource: "deployments/scale",
          verb: "patch",
          namespace: sync.namespace,
          name: sync.name,
          why: `${why}: scales the synchronizer to 0 through the scale subresource`,
        },
    {
      apiGroup: "",
      resource: "pods",
      verb: "list",
      namespace: sync.namespace,
      why: `${why}: waits until the synchronizer's pods are gone`,
    },
  ];
  out.push(...rolloutRestart(target.restart, why));
  return out;
}

/** A rollout restart reads each workload and patches its pod template's annotation. */
function rolloutRestart(
  workloads: readonly { kind: keyof typeof WORKLOAD_RESOURCE; namespace: string; name: string }[],
  why: string,
): Permission[] {
  return workloads.flatMap((w) =>
    ["get", "patch"].map((verb) => ({
      apiGroup: "apps",
      resource: WORKLOAD_RESOURCE[w.kind],
      verb,
      namespace: w.namespace,
      name: w.name,
      why: `${why}: rollout restart of ${w.kind} ${w.name}`,
    })),
  );
}

function nodeFence(target: NodeFenceTarget, why: string): Permission[] {
  // Nodes, VolumeAttachments and the pods bound to a node are cluster-wide and cannot be named in
  // advance: the group's selector decides which nodes, when it runs.
  const out: Permission[] = [
    ...["get", "list", "patch"].map((verb) => ({
      apiGroup: "",
      resource: "nodes",
      verb,
      why: `${why}: reads the node groups and cordons, taints and uncordons their nodes`,
    })),
    { apiGroup: "", resource: "pods", verb: "list", why: `${why}: lists the pods bound to each fenced node` },
    {
      apiGroup: "storage.k8s.io",
      resource: "volumeattachments",
      verb: "list",
      why: `${why}: waits until no VolumeAttachment names a fenced node`,
    },
  ];
  for (const w of target.workloads) {
    out.push({
      apiGroup: "apps",
      resource: WORKLOAD_RESOURCE[w.kind],
      verb: "get",
      namespace: w.namespace,
      name: w.name,
      why: `${why}: waits until ${w.kind} ${w.name} is Ready`,
    });
  }
  return out;
}

/** What one plan step sends, on the cluster it acts on. */
function planStep(step: PlanStep, why: string): Permission[] {
  if (step.kube) {
    const k = step.kube;
    const object = {
      apiGroup: groupOf(k.apiVersion),
      resource: resourceOf(k.kind),
      ...(k.namespace ? { namespace: k.namespace } : {}),
      name: k.name,
    };
    return [
      { ...object, verb: "get", why: `${why}: reads ${k.kind} ${k.name} for expect and waitFor` },
      { ...object, verb: "patch", why: `${why}: ${k.patchType} patch of ${k.kind} ${k.name}` },
      // kube-apiserver authorizes an apply that would create the object as create too, by name.
      ...(k.patchType === "apply"
        ? [{ ...object, verb: "create", why: `${why}: server-side apply is also authorized as create` }]
        : []),
    ];
  }
  if (step.scale) {
    const s = step.scale;
    const object = { apiGroup: "apps", namespace: s.namespace, name: s.name };
    const resource = WORKLOAD_RESOURCE[s.kind];
    return [
      { ...object, resource: `${resource}/scale`, verb: "get", why: `${why}: reads ${s.name}'s replicas` },
      { ...object, resource: `${resource}/scale`, verb: "patch", why: `${why}: scales ${s.name}` },
      { ...object, resource, verb: "get", why: `${why}: waits until ${s.name}'s replicas are Ready` },
    ];
  }
  if (step.restart) {
    return rolloutRestart(step.restart.workloads, why);
  }
  if (step.check?.kube) {
    const k = step.check.kube;
    return [
      {
        apiGroup: groupOf(k.apiVersion),
        resource: resourceOf(k.kind),
        verb: "get",
        ...(k.namespace ? { namespace: k.namespace } : {}),
        name: k.name,
        why: `${why}: reads ${k.kind} ${k.name} until it holds`,
      },
    ];
  }
  if (step.routeSwap) return routeSwap({ kind: "route-swap", ...step.routeSwap }, why);
  if (step.dnsFlip) return dnsFlip({ kind: "dns-flip", ...step.dnsFlip }, why);
  if (step.etcdSyncTeardown) return etcdSyncTeardown(step.etcdSyncTeardown, why);
  if (step.nodeFence) return nodeFence({ kind: "node-fence", ...step.nodeFence }, why);
  // http, wait, approval and an http check talk to no Kubernetes API.
  return [];
}

function targetPermissions(name: string, target: AgentTarget): { cluster: string; permissions: Permission[] }[] {
  switch (target.kind) {
    case "route-swap":
      return [{ cluster: OWN_CLUSTER, permissions: routeSwap(target, name) }];
    case "dns-flip":
      return [{ cluster: OWN_CLUSTER, permissions: dnsFlip(target, name) }];
    case "etcd-sync-teardown":
      return [{ cluster: OWN_CLUSTER, permissions: etcdSyncTeardown(target, name) }];
    case "node-fence":
      return [{ cluster: OWN_CLUSTER, permissions: nodeFence(target, name) }];
    case "plan":
      return planSteps(target).map(({ step }) => ({
        cluster: step.cluster ?? OWN_CLUSTER,
        permissions: planStep(step, `${name}/${step.name}`),
      }));
  }
}

/** The agent's own needs in its namespace: its Lease and one action-memory ConfigMap per target. */
function agentPermissions(config: AgentConfig): Permission[] {
  const namespace = config.namespace;
  const lease = { apiGroup: "coordination.k8s.io", resource: "leases", namespace };
  const memory = { apiGroup: "", resource: "configmaps", namespace };
  return [
    ...["get", "update"].map((verb) => ({
      ...lease,
      verb,
      name: config.lease.name,
      why: "leader election: reads and renews its Lease",
    })),
    { ...lease, verb: "create", why: "leader election: creates its Lease when absent" },
    ...Object.keys(config.targets).flatMap((target) =>
      ["get", "update"].map((verb) => ({
        ...memory,
        verb,
        name: configMapName(target),
        why: `${target}: durable action memory`,
      })),
    ),
    { ...memory, verb: "create", why: "durable action memory: a target's first action creates its ConfigMap" },
  ];
}

/** Every permission the config needs, per cluster: the agent's own first, then each named cluster. */
export function clusterPermissions(config: AgentConfig): ClusterPermissions {
  const out: ClusterPermissions = new Map([[OWN_CLUSTER, agentPermissions(config)]]);
  for (const [name, target] of Object.entries(config.targets)) {
    for (const { cluster, permissions } of targetPermissions(name, target)) {
      out.set(cluster, [...(out.get(cluster) ?? []), ...permissions]);
    }
  }
  return out;
}
