/**
 * `turnout sandbox break|mend <target> <check>` (design §11.6): in the sandbox only, make one
 * kind of readiness check fail and pass again, so a person sees readiness go red and green.
 * - `permissions`: binds the agent a ClusterRole that grants every verb but the first one the
 *   target's switch needs (a Role that lost a verb in a manifest cleanup); mend removes it;
 * - `dns-server`: stops the sandbox's BIND for the target's server (SIGSTOP: it is there but
 *   answers nothing, like a hung server); mend continues it (SIGCONT);
 * - `destination-nodes`: makes every node of the incoming group NotReady; mend makes them Ready;
 * - `saved-spec`: saves a spec for the incoming side whose gateway the config never named; mend
 *   puts back what was saved before (or nothing);
 * - `object` (a plan): removes the object of the first kube, scale or restart step toward the
 *   incoming side (a restart: its first workload); mend creates it again as it was;
 * - `check` (a plan): removes the object the first `check` step's kube read names, so its probe
 *   fails; mend creates it again. An http check's server is not the sandbox's to stop.
 * For a plan, `permissions` takes away the verb of the first Kubernetes write of its steps.
 * The incoming side is `secondary` unless given. Nothing here runs outside the sandbox: it needs
 * the sandbox's own objects (its fake API's store, its control plane, its servers' process ids).
 */
import type { KubeConfig } from "@kubernetes/client-node";
import type { AgentConfig, PlanStep, Side } from "../../shared/config.ts";
import { savedRouteKey } from "../executors/route-swap.ts";
import { ConfigMapActionStore } from "../memory.ts";
import { groupOf, resourceOf } from "../rbac/permissions.ts";
import { DEFAULT_IDENTITY } from "../sandbox/access-review.ts";
import type { ControlPlane } from "../sandbox/control-plane.ts";
import type { FakeStore, KubeObject } from "../sandbox/fake-kube-api.ts";
import type { LocalServersSummary } from "../sandbox/local-servers.ts";
import type { WriteAttributes } from "./access.ts";
import { etcdSyncTeardownWrites } from "./etcd-sync-teardown.ts";
import { planStepsToward, planStepWrites } from "./plan.ts";
import { routeSwapWrites } from "./route-swap.ts";

/** The checks `break` and `mend` know how to fail. */
export const BREAKABLE_CHECKS = [
  "permissions",
  "dns-server",
  "destination-nodes",
  "saved-spec",
  "object",
  "check",
] as const;
export type BreakableCheck = (typeof BREAKABLE_CHECKS)[number];

/** What of the sandbox the faults act on. */
export interface SandboxHandles {
  config: Pick<AgentConfig, "targets" | "namespace">;
  store: FakeStore;
  kubeConfig: KubeConfig;
  controlPlane?: Pick<ControlPlane, "setNodeReady">;
  localServers?: () => LocalServersSummary;
  /** Sends a signal to a process (tests observe it). @default process.kill */
  kill?: (pid: number, signal: NodeJS.Signals) => void;
}

/** A refusal a person can act on (the HTTP layer answers 400 or 404 with it). */
export class FaultError extends Error {
  readonly status: 400 | 404;
  constructor(status: 400 | 404, message: string) {
    super(message);
    this.name = "FaultError";
    this.status = status;
  }
}

/** The sandbox's fault switches; what `break` changed is kept here for `mend`. */
export interface SandboxFaults {
  /** Makes `check` of `target` fail toward `side` [secondary]; returns what it did, in words. */
  break(target: string, check: string, side?: Side): Promise<string>;
  /** Undoes {@link SandboxFaults.break}; returns what it did. */
  mend(target: string, check: string, side?: Side): Promise<string>;
}

const SANDBOX_ROLE = "turnout-agent-sandbox";
const RBAC = { group: "rbac.authorization.k8s.io" };
const ALL_VERBS = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"];
/** A gateway no config names (TEST-NET-3, RFC 5737). */
const FOREIGN_GATEWAY = "203.0.113.250";

export function createSandboxFaults(handles: SandboxHandles): SandboxFaults {
  const { config, store } = handles;
  const kill = handles.kill ?? ((pid, signal) => process.kill(pid, signal));
  const memory = new ConfigMapActionStore({
    kubeConfig: handles.kubeConfig,
    namespace: config.namespace,
    targets: Object.keys(config.targets),
  });
  /** The saved spec before `break saved-spec`, per target and side (`null`: none was saved). */
  const savedBefore = new Map<string, unknown>();

  const targetOf = (name: string) => {
    const t = Object.hasOwn(config.targets, name) ? config.targets[name] : undefined;
    if (!t) throw new FaultError(404, `no target ${JSON.stringify(name)} in this agent's config`);
    return t;
  };

  /** The Kubernetes writes of one plan step toward `side` (the embedded executors' too). */
  function stepWrites(name: string, step: PlanStep, side: Side): Pick<WriteAttributes, "verb">[] {
    if (step.routeSwap) return routeSwapWrites(name, { kind: "route-swap", ...step.routeSwap }, side, config.namespace);
    if (step.etcdSyncTeardown)
      return etcdSyncTeardownWrites({ ...step.etcdSyncTeardown, kind: "etcd-sync-teardown", dns: "" });
    if (step.nodeFence) return [{ verb: "patch" }];
    return planStepWrites(step);
  }

  function firstWrite(name: string, side: Side) {
    const t = targetOf(name);
    const writes: Pick<WriteAttributes, "verb">[] =
      t.kind === "route-swap"
        ? routeSwapWrites(name, t, side, config.namespace)
        : t.kind === "etcd-sync-teardown"
          ? etcdSyncTeardownWrites(t)
          : t.kind === "node-fence"
            ? [{ verb: "patch" }]
            : t.kind === "plan"
              ? planStepsToward(t, side).flatMap((step) => stepWrites(name, step, side))
              : [];
    const write = writes[0];
    if (!write) throw new FaultError(400, `${name} (${t.kind}) makes no Kubernetes writes, so it needs no permission`);
    return write.verb;
  }

  function setRole(verbs: string[] | undefined): void {
    const role = { resource: "clusterroles", ...RBAC };
    const binding = { resource: "clusterrolebindings", ...RBAC };
    for (const ref of [binding, role])
      if (store.get(ref, undefined, SANDBOX_ROLE)) store.delete(ref, undefined, SANDBOX_ROLE);
    if (!verbs) return;
    store.create(role, {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: SANDBOX_ROLE },
      rules: [{ apiGroups: ["*"], resources: ["*"], verbs }],
    });
    store.create(binding, {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: SANDBOX_ROLE },
      roleRef: { apiGroup: RBAC.group, kind: "ClusterRole", name: SANDBOX_ROLE },
      subjects: [{ kind: "ServiceAccount", name: DEFAULT_IDENTITY.name, namespace: DEFAULT_IDENTITY.namespace }],
    });
  }

  function dnsServerPid(name: string): { pid: number; server: string } {
    const t = targetOf(name);
    const dns = t.kind === "etcd-sync-teardown" ? config.targets[t.dns] : t;
    if (dns?.kind !== "dns-flip" || dns.provider.type !== "rfc2136") {
      throw new FaultError(400, `${name} has no rfc2136 DNS server to stop`);
    }
    const server = dns.provider.server;
    const bind = handles.localServers?.().bind.find((b) => b.server === server && b.started && b.pid !== undefined);
    if (!bind?.pid)
      throw new FaultError(400, `the sandbox did not start the DNS server ${server}, so it cannot stop it`);
    return { pid: bind.pid, server };
  }

  function nodesOf(name: string, side: Side): string[] {
    const t = targetOf(name);
    if (t.kind !== "node-fence")
      throw new FaultError(400, `${name} is a ${t.kind} target; destination-nodes is node-fence's`);
    if (!handles.controlPlane) throw new FaultError(400, "the sandbox runs no node control plane");
    const nodes = store.list({ resource: "nodes" }, undefined, { labelSelector: t.nodes[side].selector });
    return nodes.map((n) => n.metadata.name ?? "").filter((n) => n !== "");
  }

  function routeTarget(name: string) {
    const t = targetOf(name);
    if (t.kind !== "route-swap") throw new FaultError(400, `${name} is a ${t.kind} target; saved-spec is route-swap's`);
    return t;
  }

  /** The object `check` (object | check) removes from a plan toward `side`, and the step that names it. */
  function planObject(name: string, check: "object" | "check", side: Side) {
    const t = targetOf(name);
    if (t.kind !== "plan") throw new FaultError(400, `${name} is a ${t.kind} target; ${check} is a plan's`);
    for (const step of planStepsToward(t, side)) {
      const ref =
        check === "object"
          ? step.kube
            ? {
                apiVersion: step.kube.apiVersion,
                kind: step.kube.kind,
                namespace: step.kube.namespace,
                name: step.kube.name,
              }
            : step.scale
              ? { apiVersion: "apps/v1", ...step.scale }
              : step.restart?.workloads[0]
                ? { apiVersion: "apps/v1", ...step.restart.workloads[0] }
                : undefined
          : step.check?.kube;
      if (!ref) continue;
      // Only the agent's own cluster is the sandbox's store.
      if (step.cluster !== undefined) continue;
      const type = { group: groupOf(ref.apiVersion), resource: resourceOf(ref.kind) };
      return {
        step: step.name,
        type,
        namespace: ref.namespace,
        name: ref.name,
        what: `${ref.kind} ${ref.namespace ? `${ref.namespace}/` : ""}${ref.name}`,
      };
    }
    const wanted = check === "object" ? "kube, scale or restart step" : "check step with a kube read";
    throw new FaultError(400, `${name} has no ${wanted} on the agent's own cluster toward ${side}`);
  }
  /** The objects `break object|check` removed, per target, check and side, for `mend`. */
  const removed = new Map<string, KubeObject>();

  const unknown = (check: string) =>
    new FaultError(400, `cannot break ${JSON.stringify(check)}; known: ${BREAKABLE_CHECKS.join(", ")}`);

  return {
    async break(name, check, side = "secondary") {
      switch (check) {
        case "permissions": {
          const verb = firstWrite(name, side);
          setRole(ALL_VERBS.filter((v) => v !== verb));
          return `ClusterRole ${SANDBOX_ROLE} now grants the agent every verb but ${verb}`;
        }
        case "dns-server": {
          const { pid, server } = dnsServerPid(name);
          kill(pid, "SIGSTOP");
          return `stopped the DNS server ${server} (named, pid ${pid})`;
        }
        case "destination-nodes": {
          const nodes = nodesOf(name, side);
          for (const n of nodes) handles.controlPlane?.setNodeReady(n, false);
          return `made the ${side} group NotReady: ${nodes.join(", ") || "(no nodes)"}`;
        }
        case "saved-spec": {
          const t = routeTarget(name);
          const key = `${name}/${side}`;
          const mem = memory.memory(name);
          const prior = await mem.get(savedRouteKey(side));
          if (!savedBefore.has(key)) savedBefore.set(key, prior ?? null);
          const route = t.routes[side];
          await mem.set(savedRouteKey(side), {
            name: route.name,
            spec: { destinations: route.destinations, gateway: FOREIGN_GATEWAY },
            actionId: `${name}:sandbox-break`,
            savedAt: new Date(0).toISOString(),
          });
          return `saved a ${side} spec for StaticRoute ${route.name} with gateway ${FOREIGN_GATEWAY}, which the config does not name`;
        }
        case "object":
        case "check": {
          const o = planObject(name, check, side);
          const current = store.get(o.type, o.namespace, o.name);
          const key = `${name}/${check}/${side}`;
          if (!current) {
            if (removed.has(key)) return `${o.what} (step ${o.step}) is already removed`;
            throw new FaultError(400, `${o.what} (step ${o.step}) does not exist, so there is nothing to remove`);
          }
          removed.set(key, current);
          store.delete(o.type, o.namespace, o.name);
          return `removed ${o.what}, which step ${o.step} ${check === "check" ? "reads" : "acts on"}`;
        }
        default:
          throw unknown(check);
      }
    },
    async mend(name, check, side = "secondary") {
      switch (check) {
        case "permissions":
          firstWrite(name, side);
          setRole(undefined);
          return `removed ClusterRole ${SANDBOX_ROLE}: the agent may make every write again`;
        case "dns-server": {
          const { pid, server } = dnsServerPid(name);
          kill(pid, "SIGCONT");
          return `continued the DNS server ${server} (named, pid ${pid})`;
        }
        case "destination-nodes": {
          const nodes = nodesOf(name, side);
          for (const n of nodes) handles.controlPlane?.setNodeReady(n, true);
          return `made the ${side} group Ready: ${nodes.join(", ") || "(no nodes)"}`;
        }
        case "saved-spec": {
          routeTarget(name);
          const key = `${name}/${side}`;
          const prior = savedBefore.get(key);
          await memory.memory(name).set(savedRouteKey(side), prior ?? undefined);
          savedBefore.delete(key);
          return prior ? `restored the ${side} spec saved before` : `removed the ${side} spec: the config's is used`;
        }
        case "object":
        case "check": {
          const o = planObject(name, check, side);
          const key = `${name}/${check}/${side}`;
          const was = removed.get(key);
          if (!was) return `${o.what} (step ${o.step}) was not removed by break; nothing to put back`;
          if (!store.get(o.type, o.namespace, o.name)) {
            const { metadata, ...rest } = was;
            const { uid: _uid, resourceVersion: _rv, creationTimestamp: _ct, managedFields: _mf, ...meta } = metadata;
            store.create(o.type, { ...rest, metadata: meta });
          }
          removed.delete(key);
          return `created ${o.what} again as it was`;
        }
        default:
          throw unknown(check);
      }
    },
  };
}
