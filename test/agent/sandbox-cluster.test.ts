import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AppsV1Api, CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { Etcd3 } from "etcd3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectKube } from "../../agent/kube.ts";
import { type SandboxCluster, startSandboxCluster } from "../../agent/sandbox/cluster.ts";
import { startFakeKubeApi } from "../../agent/sandbox/fake-kube-api.ts";
import { type AgentConfig, validateAgentConfig } from "../../shared/config.ts";
import { type EtcdInstance, eventually, startEtcds } from "../support/etcd.ts";
import { swapRoutes } from "../support/route-swap-cluster.ts";

const SR = { group: "networking.digitalocean.com", version: "v1", plural: "staticroutes" };

function agentConfig(
  etcd: { primary: string; standby: string } = { primary: "http://127.0.0.1:1", standby: "http://127.0.0.1:2" },
): AgentConfig {
  const result = validateAgentConfig({
    reportUrl: "http://127.0.0.1:8787/v1/agent/reports",
    namespace: "turnout",
    targets: {
      "egress-gw": {
        kind: "route-swap",
        routes: swapRoutes(),
        operator: { namespace: "static-routes", daemonSet: "k8s-staticroute-operator" },
      },
      "platform-dns": {
        kind: "dns-flip",
        provider: { type: "cloudflare", zoneId: "z", tokenEnv: "CF_API_TOKEN" },
        record: { name: "www.example.test", type: "A", ttl: 60 },
        values: { primary: ["172.30.41.193"], secondary: ["172.30.41.194"] },
      },
      "global-dr": {
        kind: "etcd-sync-teardown",
        etcd: {
          primary: { endpoints: [etcd.primary] },
          standby: { endpoints: [etcd.standby] },
          prefixes: ["/registry/"],
        },
        sync: { kind: "Deployment", namespace: "cpaas-system", name: "etcd-sync" },
        dns: "platform-dns",
        restart: [
          { kind: "StatefulSet", namespace: "cpaas-system", name: "elasticsearch" },
          { kind: "Deployment", namespace: "cpaas-system", name: "cluster-transformer" },
          { kind: "DaemonSet", namespace: "monitoring", name: "node-exporter" },
        ],
      },
    },
  });
  if (!result.ok) throw new Error(JSON.stringify(result.problems));
  return result.value;
}

describe("sandbox cluster", () => {
  let sandbox: SandboxCluster;
  const scaled: string[] = [];

  beforeAll(async () => {
    sandbox = await startSandboxCluster(agentConfig(), {
      etcdMirror: false,
      operatorDelayMs: 20,
      onScale: (key, replicas) => {
        scaled.push(`${key.namespace}/${key.name}=${replicas}`);
      },
    });
  });

  afterAll(async () => {
    await sandbox?.stop();
  });

  it("creates the agent namespace, the operator DaemonSet with a ready pod per node, and the primary route Ready", async () => {
    const core = sandbox.kubeConfig.makeApiClient(CoreV1Api);
    const apps = sandbox.kubeConfig.makeApiClient(AppsV1Api);
    const custom = sandbox.kubeConfig.makeApiClient(CustomObjectsApi);
    expect((await core.readNamespace({ name: "turnout" })).metadata?.name).toBe("turnout");
    const ds = await apps.readNamespacedDaemonSet({ name: "k8s-staticroute-operator", namespace: "static-routes" });
    expect(ds.status).toMatchObject({ desiredNumberScheduled: 3, numberReady: 3 });
    const pods = await core.listNamespacedPod({ namespace: "static-routes" });
    expect(pods.items.map((p) => p.spec?.nodeName).sort()).toEqual(["node-1", "node-2", "node-3"]);
    const primary = (await custom.getClusterCustomObject({ ...SR, name: "primary" })) as {
      spec: unknown;
      status: { create_fn: Record<string, string> };
    };
    expect(primary.spec).toEqual({ destinations: ["34.160.111.145"], gateway: "10.116.0.4" });
    expect(primary.status.create_fn).toEqual({ "node-1": "Ready", "node-2": "Ready", "node-3": "Ready" });
    // The standby route stays out of the cluster, as in runbook A.
    await expect(custom.getClusterCustomObject({ ...SR, name: "secondary" })).rejects.toMatchObject({ code: 404 });
  });

  it("runs the simulated operator: deleting the route is reported by every node and then completes", async () => {
    const custom = sandbox.kubeConfig.makeApiClient(CustomObjectsApi);
    const core = sandbox.kubeConfig.makeApiClient(CoreV1Api);
    await custom.deleteClusterCustomObject({ ...SR, name: "primary" });
    await eventually(
      async () =>
        await custom.getClusterCustomObject({ ...SR, name: "primary" }).then(
          () => false,
          () => true,
        ),
      "primary route deleted after the operator's finalizer",
      5000,
    );
    const events = await core.listNamespacedEvent({
      namespace: "default",
      fieldSelector: "reason=RouteDeleteSucceeded",
    });
    expect(new Set(events.items.map((e) => e.source?.host))).toEqual(new Set(["node-1", "node-2", "node-3"]));
  });

  it("creates the synchronizer Deployment (1 replica) and every restart workload, ready", async () => {
    const apps = sandbox.kubeConfig.makeApiClient(AppsV1Api);
    const sync = await apps.readNamespacedDeployment({ name: "etcd-sync", namespace: "cpaas-system" });
    expect(sync.spec?.replicas).toBe(1);
    expect(sync.status).toMatchObject({ readyReplicas: 1, observedGeneration: 1 });
    expect(
      (await apps.readNamespacedStatefulSet({ name: "elasticsearch", namespace: "cpaas-system" })).status,
    ).toMatchObject({
      readyReplicas: 1,
    });
    expect(
      (await apps.readNamespacedDeployment({ name: "cluster-transformer", namespace: "cpaas-system" })).status,
    ).toMatchObject({ readyReplicas: 1 });
    expect(
      (await apps.readNamespacedDaemonSet({ name: "node-exporter", namespace: "monitoring" })).status,
    ).toMatchObject({
      numberReady: 3,
    });
    expect(scaled).toContain("cpaas-system/etcd-sync=1");
    await apps.patchNamespacedDeploymentScale(
      { name: "etcd-sync", namespace: "cpaas-system", body: { spec: { replicas: 0 } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    await sandbox.workloads.settled();
    expect(scaled).toContain("cpaas-system/etcd-sync=0");
  });
});

describe("sandbox cluster without the operator simulation", () => {
  it("writes the primary route's status as Ready directly", async () => {
    const sandbox = await startSandboxCluster(agentConfig(), { etcdMirror: false, startOperator: false });
    try {
      const route = sandbox.api.store.get(
        { group: "networking.digitalocean.com", resource: "staticroutes" },
        undefined,
        "primary",
      );
      expect(route?.status).toEqual({ create_fn: { "node-1": "Ready", "node-2": "Ready", "node-3": "Ready" } });
    } finally {
      await sandbox.stop();
    }
  });
});

describe("sandbox synchronizer backed by a real etcdctl make-mirror", () => {
  let etcds: EtcdInstance[] = [];
  afterAll(async () => {
    await Promise.all(etcds.map((e) => e.stop()));
  });

  it("mirrors while the Deployment has replicas and stops when it is scaled to zero", async () => {
    etcds = await startEtcds(["sbx-primary", "sbx-standby"]);
    const [primary, standby] = etcds as [EtcdInstance, EtcdInstance];
    const sandbox = await startSandboxCluster(agentConfig({ primary: primary.url, standby: standby.url }), {
      etcdMirror: true,
      startOperator: false,
    });
    const p = new Etcd3({ hosts: primary.url });
    const s = new Etcd3({ hosts: standby.url });
    try {
      expect(sandbox.etcdMirror?.running("cpaas-system", "etcd-sync")).toBe(true);
      await p.put("/registry/a").value("1");
      await eventually(async () => (await s.get("/registry/a").string()) === "1", "key mirrored to the standby");
      const apps = sandbox.kubeConfig.makeApiClient(AppsV1Api);
      await apps.patchNamespacedDeploymentScale(
        { name: "etcd-sync", namespace: "cpaas-system", body: { spec: { replicas: 0 } } },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      );
      await sandbox.workloads.settled();
      await sandbox.etcdMirror?.idle();
      expect(sandbox.etcdMirror?.running("cpaas-system", "etcd-sync")).toBe(false);
      expect(sandbox.etcdMirror?.pids("cpaas-system", "etcd-sync")).toEqual([]);
    } finally {
      p.close();
      s.close();
      await sandbox.stop();
    }
  });
});

describe("connectKube", () => {
  it("uses the sandbox when there is neither a kubeconfig nor a service account", async () => {
    const conn = await connectKube(agentConfig(), {
      tokenPath: "/nonexistent/token",
      sandbox: { etcdMirror: false, startOperator: false },
    });
    try {
      expect(conn.mode).toBe("sandbox");
      expect(conn.sandbox).toBeDefined();
      const ns = await conn.kubeConfig.makeApiClient(CoreV1Api).readNamespace({ name: "turnout" });
      expect(ns.metadata?.name).toBe("turnout");
    } finally {
      await conn.close();
    }
  });

  it("loads the kubeconfig file named in the config", async () => {
    const api = await startFakeKubeApi({ token: "file-token" });
    const dir = mkdtempSync(join(tmpdir(), "turnout-kubeconfig-"));
    try {
      const file = join(dir, "config");
      writeFileSync(
        file,
        [
          "apiVersion: v1",
          "kind: Config",
          `clusters: [{name: c, cluster: {server: "${api.url}", insecure-skip-tls-verify: true}}]`,
          "users: [{name: u, user: {token: file-token}}]",
          "contexts: [{name: x, context: {cluster: c, user: u}}]",
          "current-context: x",
        ].join("\n"),
      );
      const conn = await connectKube({ ...agentConfig(), kubeconfig: file });
      expect(conn.mode).toBe("kubeconfig");
      expect(conn.sandbox).toBeUndefined();
      const list = await conn.kubeConfig.makeApiClient(CoreV1Api).listNamespace();
      expect(list.items.map((n) => n.metadata?.name)).toContain("kube-system");
      expect(api.requests.at(-1)?.authorization).toBe("Bearer file-token");
      await conn.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await api.close();
    }
  });
});
