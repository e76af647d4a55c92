/**
 * `kubectl auth can-i` for the agent's ServiceAccount, evaluated over the Roles and bindings of
 * the kustomize base (test/ship/rbac-can-i.ts follows the Kubernetes RBAC authorizer). Each
 * executor's steps, the Lease and the action memory run against the fake Kubernetes API through a
 * recording proxy; every request they send must be allowed. Then the refusals: what least
 * privilege exists for (design §7): no StaticRoute, ConfigMap or workload the config does not
 * name may be read, patched or deleted.
 */
import { describe, expect, it } from "vitest";
import { createRouteSwapExecutor } from "../../agent/executors/route-swap.ts";
import { startLeaseElector } from "../../agent/lease.ts";
import { silentLogger } from "../../agent/log.ts";
import { ConfigMapActionStore } from "../../agent/memory.ts";
import { startFakeKubeApi } from "../../agent/sandbox/fake-kube-api.ts";
import { useCleanups } from "../support/cleanups.ts";
import { MapMemory } from "../support/map-memory.ts";
import { routeSwapTarget, startRecordingProxy, startSwapCluster, swapAction } from "../support/route-swap-cluster.ts";
import { runSteps } from "../support/run-steps.ts";
import type { BaseObject } from "./kustomize-base.ts";
import { readBase, shippedAgentConfig } from "./kustomize-base.ts";
import { attributesOf, canI, describe as describeRequest, type RequestAttributes } from "./rbac-can-i.ts";

const base = readBase();
const saObject = base.find((o) => o.kind === "ServiceAccount");
const sa = { name: saObject?.name ?? "", namespace: saObject?.namespace ?? "" };

const config = shippedAgentConfig();

const cleanup = useCleanups();

function refusedOf(requests: RequestAttributes[]): string[] {
  return requests.filter((r) => !canI(base, sa, r)).map(describeRequest);
}

describe("the evaluator follows Kubernetes RBAC", () => {
  // A tiny base whose answers are Kubernetes' own documented ones.
  const objects: BaseObject[] = [
    {
      file: "t",
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      name: "r",
      namespace: "a",
      raw: {
        rules: [
          { apiGroups: ["apps"], resources: ["deployments/scale"], resourceNames: ["one"], verbs: ["patch"] },
          { apiGroups: [""], resources: ["configmaps"], resourceNames: ["cm"], verbs: ["get", "list"] },
        ],
      },
    },
    {
      file: "t",
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      name: "r",
      namespace: "a",
      raw: { roleRef: { kind: "Role", name: "r" }, subjects: [{ kind: "ServiceAccount", name: "x", namespace: "n" }] },
    },
  ];
  const who = { name: "x", namespace: "n" };
  const scale = { verb: "patch", apiGroup: "apps", resource: "deployments", subresource: "scale", namespace: "a" };

  it("matches resource/subresource and resourceNames, within the binding's namespace only", () => {
    expect(canI(objects, who, { ...scale, name: "one" })).toBe(true);
    expect(canI(objects, who, { ...scale, name: "two" })).toBe(false);
    expect(canI(objects, who, { ...scale, subresource: undefined, name: "one" } as RequestAttributes)).toBe(false);
    expect(canI(objects, who, { ...scale, namespace: "b", name: "one" })).toBe(false);
    expect(canI(objects, { name: "y", namespace: "n" }, { ...scale, name: "one" })).toBe(false);
  });

  it("never lets a rule with resourceNames allow a list (no name in the request)", () => {
    const cm = { apiGroup: "", resource: "configmaps", namespace: "a" };
    expect(canI(objects, who, { ...cm, verb: "get", name: "cm" })).toBe(true);
    expect(canI(objects, who, { ...cm, verb: "list" })).toBe(false);
  });
});

describe("the agent can do every step it needs", () => {
  it("route-swap: a swap that also replaces a stale incoming route sends only allowed requests", async () => {
    const c = await startSwapCluster();
    cleanup(() => c.close());
    const proxy = await startRecordingProxy(c.api);
    cleanup(() => proxy.close());
    const shipped = config.targets["egress-gw"];
    if (shipped?.kind !== "route-swap") throw new Error("configmap.yaml has no egress-gw route-swap target");
    // The harness's routes carry the shipped names, which the ClusterRole's resourceNames list.
    const target = routeSwapTarget();
    expect([target.routes.primary.name, target.routes.secondary.name]).toEqual([
      shipped.routes.primary.name,
      shipped.routes.secondary.name,
    ]);
    await c.seedRoute("primary", ["34.160.111.145"], "10.116.0.4");
    await c.seedRoute("secondary", ["198.51.100.7"], "10.116.0.99"); // stale: replaced (delete + create)
    const executor = createRouteSwapExecutor({ kubeConfig: proxy.kubeConfig(), pollMs: 20 });
    const runs = await runSteps(executor, swapAction("primary", "secondary"), target, new MapMemory());
    expect(runs.map((r) => r.error?.message)).toEqual(Array(5).fill(undefined));
    const used = proxy.requests.flatMap(attributesOf);
    expect(used.map(describeRequest)).toContain("delete staticroutes.networking.digitalocean.com/secondary");
    expect(refusedOf(used)).toEqual([]);
  }, 30_000);

  it("the Lease and the action memory of every configured target", async () => {
    const api = await startFakeKubeApi();
    cleanup(() => api.close());
    api.store.create({ resource: "namespaces" }, { metadata: { name: config.namespace } });
    const proxy = await startRecordingProxy(api);
    cleanup(() => proxy.close());
    const store = new ConfigMapActionStore({
      kubeConfig: proxy.kubeConfig(),
      namespace: config.namespace,
      targets: Object.keys(config.targets),
    });
    for (const target of Object.keys(config.targets)) {
      await store.memory(target).set("savedRoute", { name: "primary" });
      await store.memory(target).set("savedRoute", { name: "secondary" });
      expect(await store.memory(target).get("savedRoute")).toEqual({ name: "secondary" });
      await store.latest(target);
    }
    expect(await store.unfinished()).toEqual([]);
    const elector = startLeaseElector({
      kubeConfig: proxy.kubeConfig(),
      namespace: config.namespace,
      name: config.lease.name,
      durationSeconds: 2,
      renewSeconds: 0.2,
      log: silentLogger,
    });
    await new Promise<void>((resolve) => {
      if (elector.isLeader()) resolve();
      const off = elector.onChange((s) => {
        if (s.leader) {
          off();
          resolve();
        }
      });
    });
    await elector.stop();
    const used = proxy.requests.flatMap(attributesOf);
    expect(new Set(used.map((r) => `${r.verb} ${r.resource}`))).toEqual(
      new Set([
        "get configmaps",
        "create configmaps",
        "update configmaps",
        "get leases",
        "create leases",
        "update leases",
      ]),
    );
    expect(refusedOf(used)).toEqual([]);
  }, 30_000);

  it("dns-flip: the coredns-check's read of each configured CoreDNS ConfigMap", () => {
    for (const t of Object.values(config.targets)) {
      if (t.kind !== "dns-flip" || !t.coredns) continue;
      const read = {
        verb: "get",
        apiGroup: "",
        resource: "configmaps",
        namespace: t.coredns.namespace,
        name: t.coredns.configMap,
      };
      expect(canI(base, sa, read), describeRequest(read)).toBe(true);
    }
  });
});

describe("the agent cannot touch what the config does not name", () => {
  const route = { apiGroup: "networking.digitalocean.com", resource: "staticroutes" };
  const cm = { apiGroup: "", resource: "configmaps" };
  const deploy = { apiGroup: "apps", resource: "deployments", namespace: "cpaas-system" };
  const refused: RequestAttributes[] = [
    // StaticRoutes other than the configured primary/secondary.
    { ...route, verb: "delete", name: "payments-egress" },
    { ...route, verb: "patch", name: "payments-egress" },
    { ...route, verb: "get", name: "payments-egress" },
    { ...route, verb: "list" },
    { ...route, verb: "deletecollection" },
    // ConfigMaps other than the action memory and the CoreDNS one it reads.
    { ...cm, verb: "get", namespace: "turnout", name: "turnout-agent-config" },
    { ...cm, verb: "update", namespace: "turnout", name: "turnout-agent-config" },
    { ...cm, verb: "patch", namespace: "turnout", name: "turnout-egress-gw" },
    { ...cm, verb: "delete", namespace: "turnout", name: "turnout-egress-gw" },
    { ...cm, verb: "list", namespace: "turnout" },
    { ...cm, verb: "update", namespace: "kube-system", name: "coredns" },
    { ...cm, verb: "patch", namespace: "kube-system", name: "coredns" },
    { ...cm, verb: "get", namespace: "kube-system", name: "kube-proxy" },
    // Leases other than its own.
    { apiGroup: "coordination.k8s.io", resource: "leases", verb: "update", namespace: "turnout", name: "someone-else" },
    // Workloads: the synchronizer only through `scale`, nothing unnamed, no deletes.
    { ...deploy, verb: "patch", name: "etcd-sync" },
    { ...deploy, verb: "delete", name: "etcd-sync" },
    { ...deploy, verb: "update", name: "etcd-sync" },
    { ...deploy, verb: "patch", name: "billing" },
    { ...deploy, verb: "get", name: "billing" },
    { ...deploy, verb: "patch", subresource: "scale", name: "cluster-transformer" },
    { ...deploy, verb: "patch", subresource: "scale", name: "billing" },
    { ...deploy, verb: "delete", name: "cluster-transformer" },
    { apiGroup: "apps", resource: "statefulsets", verb: "patch", namespace: "cpaas-system", name: "postgres" },
    { apiGroup: "apps", resource: "statefulsets", verb: "delete", namespace: "cpaas-system", name: "elasticsearch" },
    { apiGroup: "apps", resource: "deployments", verb: "patch", namespace: "static-routes", name: "etcd-sync" },
    // Pods never deleted; no Secrets anywhere.
    { apiGroup: "", resource: "pods", verb: "delete", namespace: "cpaas-system", name: "etcd-sync-0" },
    { apiGroup: "", resource: "secrets", verb: "get", namespace: "turnout", name: "turnout-agent" },
    { apiGroup: "", resource: "secrets", verb: "list", namespace: "cpaas-system" },
  ];

  it.each(refused.map((r) => [describeRequest(r), r] as const))("refuses: %s", (_, r) => {
    expect(canI(base, sa, r)).toBe(false);
  });

  it("lists pods only where an executor waits on them (cluster-wide only with rbac-node-fence.yaml)", () => {
    // node-fence must see every pod bound to a fenced node, in any namespace; its file is only
    // for node-fence targets (kustomization.yaml). Without it, pods are listed only in the
    // route-swap operator's and the synchronizer's namespaces.
    const withoutNodeFence = base.filter((o) => o.file !== "rbac-node-fence.yaml");
    const list = (namespace: string) => ({ apiGroup: "", resource: "pods", verb: "list", namespace });
    for (const ns of ["turnout", "kube-system", "default", "db"]) {
      expect(canI(withoutNodeFence, sa, list(ns)), ns).toBe(false);
    }
    for (const ns of ["static-routes", "cpaas-system"]) expect(canI(withoutNodeFence, sa, list(ns)), ns).toBe(true);
  });

  it("allows the named counterparts of those refusals (so each refusal is about the name)", () => {
    const allowed: RequestAttributes[] = [
      { ...route, verb: "delete", name: "primary" },
      { ...route, verb: "patch", name: "secondary" },
      { ...cm, verb: "update", namespace: "turnout", name: "turnout-egress-gw" },
      { ...cm, verb: "get", namespace: "kube-system", name: "coredns" },
      { ...deploy, verb: "patch", subresource: "scale", name: "etcd-sync" },
      { ...deploy, verb: "patch", name: "cluster-transformer" },
      { apiGroup: "apps", resource: "statefulsets", verb: "patch", namespace: "cpaas-system", name: "elasticsearch" },
      { apiGroup: "", resource: "pods", verb: "list", namespace: "cpaas-system" },
    ];
    expect(allowed.filter((r) => !canI(base, sa, r)).map(describeRequest)).toEqual([]);
  });
});
