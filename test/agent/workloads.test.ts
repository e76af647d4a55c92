import { AppsV1Api, CoreV1Api, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FakeKubeApi, startFakeKubeApi } from "../../agent/sandbox/fake-kube-api.ts";
import { startWorkloadControllers, type WorkloadControllers, type WorkloadKey } from "../../agent/sandbox/workloads.ts";

let api: FakeKubeApi;
let controllers: WorkloadControllers;
let apps: AppsV1Api;
let core: CoreV1Api;
const scaled: string[] = [];

beforeAll(async () => {
  api = await startFakeKubeApi();
  controllers = startWorkloadControllers(api.store, {
    rolloutDelayMs: 150,
    onScale: (key: WorkloadKey, replicas: number) => {
      scaled.push(`${key.kind}/${key.namespace}/${key.name}=${replicas}`);
    },
  });
  apps = api.kubeConfig().makeApiClient(AppsV1Api);
  core = api.kubeConfig().makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: "w" } } });
});

afterAll(async () => {
  controllers.stop();
  await api.close();
});

function workload(name: string, replicas: number) {
  return {
    metadata: { name },
    spec: {
      replicas,
      serviceName: name,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: "main", image: "busybox" }] } },
    },
  };
}

const podNames = async (selector: string) =>
  (await core.listNamespacedPod({ namespace: "w", labelSelector: selector })).items
    .map((p) => p.metadata?.name ?? "")
    .sort();

describe("simulated workload controllers", () => {
  it("keeps a Deployment's replicas as labelled pods with status, and scaling to zero deletes them", async () => {
    await apps.createNamespacedDeployment({ namespace: "w", body: workload("sync", 2) });
    await controllers.settled();
    expect(await podNames("app=sync")).toHaveLength(2);
    const d = await apps.readNamespacedDeployment({ name: "sync", namespace: "w" });
    expect(d.status).toMatchObject({
      replicas: 2,
      readyReplicas: 2,
      updatedReplicas: 2,
      availableReplicas: 2,
      observedGeneration: 1,
    });
    await apps.patchNamespacedDeploymentScale(
      { name: "sync", namespace: "w", body: { spec: { replicas: 0 } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    await controllers.settled();
    expect(await podNames("app=sync")).toEqual([]);
    const after = await apps.readNamespacedDeployment({ name: "sync", namespace: "w" });
    expect(after.status).toMatchObject({ replicas: 0, readyReplicas: 0, observedGeneration: 2 });
    expect(scaled.filter((s) => s.startsWith("Deployment/w/sync"))).toEqual([
      "Deployment/w/sync=2",
      "Deployment/w/sync=0",
    ]);
  });

  it("completes a rollout restart after the delay: status shows the rollout in progress, then new pods", async () => {
    await apps.createNamespacedDeployment({ namespace: "w", body: workload("web", 2) });
    await controllers.settled();
    const before = await podNames("app=web");
    const patched = await apps.patchNamespacedDeployment(
      {
        name: "web",
        namespace: "w",
        body: {
          spec: {
            template: { metadata: { annotations: { "kubectl.kubernetes.io/restartedAt": "2026-11-22T04:00:00Z" } } },
          },
        },
      },
      setHeaderOptions("Content-Type", PatchStrategy.StrategicMergePatch),
    );
    expect(patched.metadata?.generation).toBe(2);
    // In progress: observed, but no pod runs the new template yet.
    await expect
      .poll(async () => (await apps.readNamespacedDeployment({ name: "web", namespace: "w" })).status)
      .toMatchObject({ observedGeneration: 2, updatedReplicas: 0, replicas: 2 });
    await controllers.settled();
    const after = await podNames("app=web");
    expect(after).toHaveLength(2);
    expect(after.some((n) => before.includes(n))).toBe(false);
    const pods = (await core.listNamespacedPod({ namespace: "w", labelSelector: "app=web" })).items;
    expect(
      pods.every((p) => p.metadata?.annotations?.["kubectl.kubernetes.io/restartedAt"] === "2026-11-22T04:00:00Z"),
    ).toBe(true);
    const d = await apps.readNamespacedDeployment({ name: "web", namespace: "w" });
    expect(d.status).toMatchObject({ replicas: 2, readyReplicas: 2, updatedReplicas: 2, observedGeneration: 2 });
  });

  it("names StatefulSet pods by ordinal and restarts them", async () => {
    await apps.createNamespacedStatefulSet({ namespace: "w", body: workload("elasticsearch", 3) });
    await controllers.settled();
    expect(await podNames("app=elasticsearch")).toEqual(["elasticsearch-0", "elasticsearch-1", "elasticsearch-2"]);
    const uids = (await core.listNamespacedPod({ namespace: "w", labelSelector: "app=elasticsearch" })).items.map(
      (p) => p.metadata?.uid,
    );
    await apps.patchNamespacedStatefulSet(
      {
        name: "elasticsearch",
        namespace: "w",
        body: { spec: { template: { metadata: { annotations: { r: "1" } } } } },
      },
      setHeaderOptions("Content-Type", PatchStrategy.StrategicMergePatch),
    );
    await controllers.settled();
    const pods = (await core.listNamespacedPod({ namespace: "w", labelSelector: "app=elasticsearch" })).items;
    expect(pods.map((p) => p.metadata?.name).sort()).toEqual(["elasticsearch-0", "elasticsearch-1", "elasticsearch-2"]);
    expect(pods.some((p) => uids.includes(p.metadata?.uid))).toBe(false);
    const s = await apps.readNamespacedStatefulSet({ name: "elasticsearch", namespace: "w" });
    expect(s.status).toMatchObject({ replicas: 3, readyReplicas: 3, updatedReplicas: 3, observedGeneration: 2 });
  });

  it("runs one DaemonSet pod per node and reports a NotReady node's pod in numberReady", async () => {
    await apps.createNamespacedDaemonSet({
      namespace: "w",
      body: {
        metadata: { name: "op" },
        spec: {
          selector: { matchLabels: { app: "op" } },
          template: { metadata: { labels: { app: "op" } }, spec: { containers: [{ name: "op", image: "op" }] } },
        },
      },
    });
    await controllers.settled();
    const pods = (await core.listNamespacedPod({ namespace: "w", labelSelector: "app=op" })).items;
    expect(pods.map((p) => p.spec?.nodeName).sort()).toEqual(["node-1", "node-2", "node-3"]);
    const ds = async () => (await apps.readNamespacedDaemonSet({ name: "op", namespace: "w" })).status;
    expect(await ds()).toMatchObject({ desiredNumberScheduled: 3, currentNumberScheduled: 3, numberReady: 3 });
    controllers.setNodeReady("node-2", false);
    await controllers.settled();
    expect(await ds()).toMatchObject({ desiredNumberScheduled: 3, numberReady: 2, numberUnavailable: 1 });
    expect((await core.readNode({ name: "node-2" })).status?.conditions?.[0]?.status).toBe("False");
    controllers.setNodeReady("node-2", true);
    await controllers.settled();
    expect(await ds()).toMatchObject({ numberReady: 3, numberUnavailable: 0 });
  });

  it("deletes a deleted workload's pods and reports zero replicas to the backing hook", async () => {
    await apps.createNamespacedDeployment({ namespace: "w", body: workload("gone", 1) });
    await controllers.settled();
    expect(await podNames("app=gone")).toHaveLength(1);
    await apps.deleteNamespacedDeployment({ name: "gone", namespace: "w" });
    await controllers.settled();
    expect(await podNames("app=gone")).toEqual([]);
    expect(scaled.filter((s) => s.startsWith("Deployment/w/gone"))).toEqual([
      "Deployment/w/gone=1",
      "Deployment/w/gone=0",
    ]);
  });
});
