import {
  ApiException,
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  V1MicroTime,
  Watch,
} from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FakeKubeApi, type KubeObject, startFakeKubeApi } from "../../agent/sandbox/fake-kube-api.ts";

const SR = { group: "networking.digitalocean.com", version: "v1", plural: "staticroutes" };

let api: FakeKubeApi;
let core: CoreV1Api;
let apps: AppsV1Api;
let coord: CoordinationV1Api;
let custom: CustomObjectsApi;

beforeAll(async () => {
  api = await startFakeKubeApi({ bookmarkIntervalMs: 100, historyLimit: 50 });
  const kc = api.kubeConfig();
  core = kc.makeApiClient(CoreV1Api);
  apps = kc.makeApiClient(AppsV1Api);
  coord = kc.makeApiClient(CoordinationV1Api);
  custom = kc.makeApiClient(CustomObjectsApi);
  await core.createNamespace({ body: { metadata: { name: "t" } } });
});

afterAll(async () => {
  await api.close();
});

/** The Status body of a failed call (client-node's ApiException carries it as a JSON string). */
async function failure(p: Promise<unknown>): Promise<{ code: number; reason: string; kind: string }> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ApiException);
    const ex = e as ApiException<string>;
    const body = JSON.parse(ex.body) as { reason: string; kind: string; code: number };
    expect(body.code).toBe(ex.code);
    return { code: ex.code, reason: body.reason, kind: body.kind };
  }
  throw new Error("expected the call to fail");
}

function deployment(name: string, replicas = 1) {
  return {
    metadata: { name, labels: { app: name } },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [{ name: "main", image: "nginx:1", env: [{ name: "A", value: "1" }] }] },
      },
    },
  };
}

describe("fake Kubernetes API with the real client-node", () => {
  it("creates, reads and lists ConfigMaps with server-set metadata and label/field selectors", async () => {
    const created = await core.createNamespacedConfigMap({
      namespace: "t",
      body: { metadata: { name: "cm-a", labels: { role: "x", tier: "a" } }, data: { k: "v" } },
    });
    expect(created.metadata?.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(created.metadata?.resourceVersion).toMatch(/^\d+$/);
    expect(created.metadata?.creationTimestamp).toBeInstanceOf(Date);
    await core.createNamespacedConfigMap({
      namespace: "t",
      body: { metadata: { name: "cm-b", labels: { role: "x", tier: "b" } } },
    });
    const read = await core.readNamespacedConfigMap({ name: "cm-a", namespace: "t" });
    expect(read.data).toEqual({ k: "v" });
    const byLabel = await core.listNamespacedConfigMap({ namespace: "t", labelSelector: "role=x,tier!=a" });
    expect(byLabel.items.map((i) => i.metadata?.name)).toEqual(["cm-b"]);
    const setBased = await core.listNamespacedConfigMap({ namespace: "t", labelSelector: "tier in (a,b),role" });
    expect(setBased.items).toHaveLength(2);
    const byField = await core.listNamespacedConfigMap({ namespace: "t", fieldSelector: "metadata.name=cm-a" });
    expect(byField.items.map((i) => i.metadata?.name)).toEqual(["cm-a"]);
    expect(Number(byField.metadata?.resourceVersion)).toBeGreaterThanOrEqual(Number(created.metadata?.resourceVersion));
  });

  it("answers 409 AlreadyExists, 404 NotFound (object, namespace, resource type) with Status bodies", async () => {
    await core.createNamespacedConfigMap({ namespace: "t", body: { metadata: { name: "dup" } } });
    expect(
      await failure(core.createNamespacedConfigMap({ namespace: "t", body: { metadata: { name: "dup" } } })),
    ).toEqual({
      code: 409,
      reason: "AlreadyExists",
      kind: "Status",
    });
    expect(await failure(core.readNamespacedConfigMap({ name: "nope", namespace: "t" }))).toMatchObject({
      code: 404,
      reason: "NotFound",
    });
    expect(
      await failure(core.createNamespacedConfigMap({ namespace: "absent", body: { metadata: { name: "x" } } })),
    ).toMatchObject({ code: 404, reason: "NotFound" });
    expect(await failure(core.deleteNamespacedConfigMap({ name: "nope", namespace: "t" }))).toMatchObject({
      code: 404,
    });
    const res = await fetch(`${api.url}/apis/example.com/v1/widgets`, {
      headers: { authorization: `Bearer ${api.token}` },
    });
    expect(res.status).toBe(404);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(await res.json()).toMatchObject({ kind: "Status", code: 404, reason: "NotFound" });
  });

  it("refuses a create or replace whose body names another namespace (400), and fills in the request's", async () => {
    const other = { metadata: { name: "elsewhere", namespace: "kube-system" } };
    expect(await failure(core.createNamespacedConfigMap({ namespace: "t", body: other }))).toMatchObject({
      code: 400,
      reason: "BadRequest",
    });
    const made = await core.createNamespacedConfigMap({ namespace: "t", body: { metadata: { name: "placed" } } });
    expect(made.metadata?.namespace).toBe("t");
    expect(
      await failure(
        core.replaceNamespacedConfigMap({
          name: "placed",
          namespace: "t",
          body: { metadata: { name: "placed", namespace: "kube-system" } },
        }),
      ),
    ).toMatchObject({ code: 400, reason: "BadRequest" });
  });

  it("rejects a PUT with a stale resourceVersion (409 Conflict) and accepts the current one", async () => {
    const v1 = await core.createNamespacedConfigMap({
      namespace: "t",
      body: { metadata: { name: "occ" }, data: { n: "1" } },
    });
    const v2 = await core.replaceNamespacedConfigMap({
      name: "occ",
      namespace: "t",
      body: { ...v1, data: { n: "2" } },
    });
    expect(Number(v2.metadata?.resourceVersion)).toBeGreaterThan(Number(v1.metadata?.resourceVersion));
    expect(v2.metadata?.uid).toBe(v1.metadata?.uid);
    expect(
      await failure(
        core.replaceNamespacedConfigMap({ name: "occ", namespace: "t", body: { ...v1, data: { n: "3" } } }),
      ),
    ).toMatchObject({ code: 409, reason: "Conflict" });
    expect((await core.readNamespacedConfigMap({ name: "occ", namespace: "t" })).data).toEqual({ n: "2" });
    // A replaced object (same name, new uid) is not the one the writer read.
    expect(
      await failure(
        core.replaceNamespacedConfigMap({
          name: "occ",
          namespace: "t",
          body: { metadata: { name: "occ", uid: "0000" } },
        }),
      ),
    ).toMatchObject({ code: 409, reason: "Conflict" });
    expect(
      await failure(
        core.patchNamespacedConfigMap(
          { name: "gone", namespace: "t", body: { data: {} } },
          setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
        ),
      ),
    ).toMatchObject({ code: 404, reason: "NotFound" });
    expect(
      await failure(
        core.replaceNamespacedConfigMap({ name: "gone", namespace: "t", body: { metadata: { name: "gone" } } }),
      ),
    ).toMatchObject({ code: 404 });
  });

  it("answers 401 without the bearer token", async () => {
    const res = await fetch(`${api.url}/api/v1/namespaces`);
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ kind: "Status", reason: "Unauthorized", code: 401 });
  });

  it("dryRun=All validates and returns the would-be object but stores nothing and emits no event", async () => {
    const rvBefore = api.store.resourceVersion;
    const would = await core.createNamespacedConfigMap({
      namespace: "t",
      dryRun: "All",
      body: { metadata: { name: "dry" } },
    });
    expect(would.metadata?.name).toBe("dry");
    expect(api.store.get({ resource: "configmaps" }, "t", "dry")).toBeUndefined();
    await core.createNamespacedConfigMap({ namespace: "t", body: { metadata: { name: "dry2" }, data: { a: "1" } } });
    const rvAfterCreate = api.store.resourceVersion;
    const patched = await core.patchNamespacedConfigMap(
      { name: "dry2", namespace: "t", dryRun: "All", body: { data: { a: "2" } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    expect(patched.data).toEqual({ a: "2" });
    await core.deleteNamespacedConfigMap({ name: "dry2", namespace: "t", dryRun: "All" });
    expect(api.store.get({ resource: "configmaps" }, "t", "dry2")?.data).toEqual({ a: "1" });
    expect(api.store.resourceVersion).toBe(rvAfterCreate);
    expect(Number(rvAfterCreate)).toBe(Number(rvBefore) + 1);
    expect(api.requests.filter((r) => r.query.dryRun === "All")).toHaveLength(3);
    // An invalid object fails validation in dry run too.
    expect(
      await failure(
        core.createNamespacedConfigMap({ namespace: "t", dryRun: "All", body: { metadata: { name: "Bad_Name" } } }),
      ),
    ).toMatchObject({ code: 422, reason: "Invalid" });
  });

  it("patches Deployments: JSON patch by default, merge, strategic (containers by name), 415 otherwise; generation bumps on spec change", async () => {
    const d = await apps.createNamespacedDeployment({ namespace: "t", body: deployment("web") });
    expect(d.metadata?.generation).toBe(1);
    const p1 = await apps.patchNamespacedDeployment({
      name: "web",
      namespace: "t",
      body: [{ op: "replace", path: "/spec/replicas", value: 3 }],
    });
    expect(p1.spec?.replicas).toBe(3);
    expect(p1.metadata?.generation).toBe(2);
    expect(api.requests.at(-1)?.contentType).toBe("application/json-patch+json");
    const p2 = await apps.patchNamespacedDeployment(
      { name: "web", namespace: "t", body: { metadata: { labels: { extra: "yes" } } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    expect(p2.metadata?.labels).toEqual({ app: "web", extra: "yes" });
    expect(p2.metadata?.generation).toBe(2);
    const restartedAt = "2026-11-22T04:00:00Z";
    const p3 = await apps.patchNamespacedDeployment(
      {
        name: "web",
        namespace: "t",
        body: {
          spec: {
            template: {
              metadata: { annotations: { "kubectl.kubernetes.io/restartedAt": restartedAt } },
              spec: { containers: [{ name: "main", image: "nginx:2" }] },
            },
          },
        },
      },
      setHeaderOptions("Content-Type", PatchStrategy.StrategicMergePatch),
    );
    const container = p3.spec?.template.spec?.containers[0];
    expect(container?.image).toBe("nginx:2");
    expect(container?.env).toEqual([{ name: "A", value: "1" }]);
    expect(p3.spec?.template.metadata?.annotations).toEqual({ "kubectl.kubernetes.io/restartedAt": restartedAt });
    expect(p3.metadata?.generation).toBe(3);
    const res = await fetch(`${api.url}/apis/apps/v1/namespaces/t/deployments/web`, {
      method: "PATCH",
      headers: { authorization: `Bearer ${api.token}`, "content-type": "text/plain" },
      body: "{}",
    });
    expect(res.status).toBe(415);
    expect(await res.json()).toMatchObject({ kind: "Status", code: 415 });
    expect(
      await failure(
        apps.patchNamespacedDeployment({
          name: "web",
          namespace: "t",
          body: [{ op: "test", path: "/spec/replicas", value: 9 }],
        }),
      ),
    ).toMatchObject({ code: 422 });
  });

  it("scales a Deployment through the scale subresource; status writes go only through /status", async () => {
    await apps.createNamespacedDeployment({ namespace: "t", body: deployment("scaled", 2) });
    const scale = await apps.readNamespacedDeploymentScale({ name: "scaled", namespace: "t" });
    expect(scale.spec?.replicas).toBe(2);
    expect(scale.status?.selector).toBe("app=scaled");
    await apps.patchNamespacedDeploymentScale(
      { name: "scaled", namespace: "t", body: { spec: { replicas: 0 } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    expect((await apps.readNamespacedDeployment({ name: "scaled", namespace: "t" })).spec?.replicas).toBe(0);
    const withStatus = await apps.patchNamespacedDeployment(
      { name: "scaled", namespace: "t", body: { status: { replicas: 7 } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    expect(withStatus.status?.replicas).toBeUndefined();
    const viaStatus = await apps.patchNamespacedDeploymentStatus(
      { name: "scaled", namespace: "t", body: { status: { replicas: 7 } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    expect(viaStatus.status?.replicas).toBe(7);
  });

  it("server-side apply creates when absent, then updates, and requires a fieldManager", async () => {
    const body = { apiVersion: "apps/v1", kind: "Deployment", ...deployment("applied", 1) };
    const opts = setHeaderOptions("Content-Type", PatchStrategy.ServerSideApply);
    const created = await apps.patchNamespacedDeployment(
      { name: "applied", namespace: "t", body, fieldManager: "turnout-agent", force: true },
      opts,
    );
    expect(created.spec?.replicas).toBe(1);
    expect(created.metadata?.managedFields?.[0]).toMatchObject({ manager: "turnout-agent", operation: "Apply" });
    const updated = await apps.patchNamespacedDeployment(
      {
        name: "applied",
        namespace: "t",
        body: { ...body, spec: { ...body.spec, replicas: 4 } },
        fieldManager: "turnout-agent",
        force: true,
      },
      opts,
    );
    expect(updated.spec?.replicas).toBe(4);
    expect(updated.metadata?.uid).toBe(created.metadata?.uid);
    expect(updated.metadata?.managedFields).toHaveLength(1);
    expect(api.requests.at(-1)).toMatchObject({
      method: "PATCH",
      contentType: "application/apply-patch+yaml",
      query: { fieldManager: "turnout-agent", force: "true" },
    });
    expect(
      await failure(apps.patchNamespacedDeployment({ name: "applied", namespace: "t", body }, opts)),
    ).toMatchObject({
      code: 400,
      reason: "BadRequest",
    });
    // YAML bodies are accepted too (kubectl sends YAML).
    const res = await fetch(`${api.url}/api/v1/namespaces/t/configmaps/yaml-cm?fieldManager=kubectl`, {
      method: "PATCH",
      headers: { authorization: `Bearer ${api.token}`, "content-type": "application/apply-patch+yaml" },
      body: "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: yaml-cm\ndata:\n  k: v\n",
    });
    expect(res.status).toBe(201);
    expect(api.store.get({ resource: "configmaps" }, "t", "yaml-cm")?.data).toEqual({ k: "v" });
  });

  it("keeps an object with finalizers until the last finalizer is removed, then deletes it", async () => {
    await custom.createClusterCustomObject({
      ...SR,
      body: {
        apiVersion: "networking.digitalocean.com/v1",
        kind: "StaticRoute",
        metadata: { name: "fin", finalizers: ["kopf.zalando.org/KopfFinalizerMarker"] },
        spec: { destinations: ["34.160.111.145"], gateway: "10.116.0.4" },
      },
    });
    await custom.deleteClusterCustomObject({ ...SR, name: "fin", propagationPolicy: "Foreground" });
    const terminating = (await custom.getClusterCustomObject({ ...SR, name: "fin" })) as KubeObject;
    expect(terminating.metadata.deletionTimestamp).toMatch(/Z$/);
    await custom.patchClusterCustomObject(
      { ...SR, name: "fin", body: { metadata: { finalizers: null } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    expect(await failure(custom.getClusterCustomObject({ ...SR, name: "fin" }))).toMatchObject({ code: 404 });
  });

  it("serves StaticRoute /status separately from the spec (cluster-scoped custom resource)", async () => {
    await custom.createClusterCustomObject({
      ...SR,
      body: {
        apiVersion: "networking.digitalocean.com/v1",
        kind: "StaticRoute",
        metadata: { name: "st" },
        spec: { destinations: ["1.2.3.4"], gateway: "10.0.0.1" },
      },
    });
    await custom.patchClusterCustomObjectStatus(
      { ...SR, name: "st", body: { status: { create_fn: { status: "Ready" } } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    const listed = (await custom.listClusterCustomObject({ ...SR, fieldSelector: "metadata.name=st" })) as {
      items: KubeObject[];
    };
    expect(listed.items[0]?.status).toEqual({ create_fn: { status: "Ready" } });
    expect(listed.items[0]?.metadata.generation).toBe(1);
  });

  it("holds Leases with V1MicroTime and 409 on a concurrent renew", async () => {
    const lease = await coord.createNamespacedLease({
      namespace: "t",
      body: {
        metadata: { name: "agent" },
        spec: {
          holderIdentity: "a",
          leaseDurationSeconds: 15,
          renewTime: new V1MicroTime(),
          acquireTime: new V1MicroTime(),
        },
      },
    });
    const raw = api.requests.at(-1)?.body ?? "";
    expect(JSON.parse(raw).spec.renewTime).toMatch(/\.\d{6}Z$/);
    const renewedByA = await coord.replaceNamespacedLease({
      name: "agent",
      namespace: "t",
      body: { ...lease, spec: { ...lease.spec, renewTime: new V1MicroTime() } },
    });
    expect(renewedByA.spec?.holderIdentity).toBe("a");
    expect(
      await failure(
        coord.replaceNamespacedLease({
          name: "agent",
          namespace: "t",
          body: { ...lease, spec: { ...lease.spec, holderIdentity: "b" } },
        }),
      ),
    ).toMatchObject({ code: 409, reason: "Conflict" });
  });

  it("records Events and filters them by involvedObject.name", async () => {
    for (const [name, obj] of [
      ["e1", "primary"],
      ["e2", "secondary"],
    ]) {
      await core.createNamespacedEvent({
        namespace: "t",
        body: {
          metadata: { name },
          involvedObject: { kind: "StaticRoute", name: obj },
          reason: "RouteDeleteSucceeded",
          message: "ok",
        },
      });
    }
    const events = await core.listNamespacedEvent({ namespace: "t", fieldSelector: "involvedObject.name=primary" });
    expect(events.items.map((e) => e.metadata.name)).toEqual(["e1"]);
    expect((await core.listEventForAllNamespaces({ fieldSelector: "reason=RouteDeleteSucceeded" })).items).toHaveLength(
      2,
    );
  });

  it("streams watch events after a resourceVersion, with bookmarks, and reports a too-old version as 410", async () => {
    const start = (await core.listNamespacedConfigMap({ namespace: "t" })).metadata?.resourceVersion ?? "";
    const seen: { type: string; name: string | undefined; rv: string | undefined }[] = [];
    const watch = new Watch(api.kubeConfig());
    let doneErr: unknown = "not done";
    const controller = await watch.watch(
      "/api/v1/namespaces/t/configmaps",
      { allowWatchBookmarks: true, resourceVersion: start, labelSelector: "w=1" },
      (type, obj: KubeObject) => seen.push({ type, name: obj.metadata.name, rv: obj.metadata.resourceVersion }),
      (err) => {
        doneErr = err;
      },
    );
    // Written before and after the watch connected: both arrive, in order, exactly once.
    await core.createNamespacedConfigMap({ namespace: "t", body: { metadata: { name: "w1", labels: { w: "1" } } } });
    await core.createNamespacedConfigMap({ namespace: "t", body: { metadata: { name: "other" } } });
    await core.patchNamespacedConfigMap(
      { name: "w1", namespace: "t", body: { data: { x: "1" } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    await core.deleteNamespacedConfigMap({ name: "w1", namespace: "t" });
    await expect.poll(() => seen.filter((e) => e.type === "BOOKMARK").length, { timeout: 3000 }).toBeGreaterThan(0);
    expect(seen.filter((e) => e.type !== "BOOKMARK").map((e) => `${e.type} ${e.name}`)).toEqual([
      "ADDED w1",
      "MODIFIED w1",
      "DELETED w1",
    ]);
    const rvs = seen.filter((e) => e.type !== "BOOKMARK").map((e) => Number(e.rv));
    expect(rvs).toEqual([...rvs].sort((a, b) => a - b));
    controller.abort();
    await expect.poll(() => doneErr !== "not done").toBe(true);

    // Push the start version out of the bounded history (50 events).
    for (let i = 0; i < 60; i++)
      api.store.create({ resource: "configmaps" }, { metadata: { name: `fill-${i}`, namespace: "t" } });
    const expired: { type: string; code?: number; reason?: string }[] = [];
    await new Promise<void>((resolve) => {
      void watch.watch(
        "/api/v1/namespaces/t/configmaps",
        { resourceVersion: start },
        (type, obj: { code?: number; reason?: string }) => expired.push({ type, code: obj.code, reason: obj.reason }),
        () => resolve(),
      );
    });
    expect(expired).toEqual([{ type: "ERROR", code: 410, reason: "Expired" }]);
  });

  it("sends current objects as ADDED to a watch without a resourceVersion (in-process store watch)", async () => {
    const events: string[] = [];
    const stop = api.store.watch({ group: "apps", resource: "deployments" }, "t", (e) =>
      events.push(`${e.type} ${e.object.metadata.name}`),
    );
    await expect.poll(() => events.length).toBeGreaterThan(0);
    expect(events).toContain("ADDED web");
    api.store.delete({ group: "apps", resource: "deployments" }, "t", "web");
    await expect.poll(() => events).toContain("DELETED web");
    stop();
  });

  it("can answer an expired watch with HTTP 410 Gone instead", async () => {
    const strict = await startFakeKubeApi({ historyLimit: 2, watchExpiredAs: "http" });
    try {
      for (let i = 0; i < 5; i++)
        strict.store.create({ resource: "configmaps" }, { metadata: { name: `c${i}`, namespace: "default" } });
      const err = await new Promise<unknown>((resolve) => {
        void new Watch(strict.kubeConfig()).watch("/api/v1/configmaps", { resourceVersion: "1" }, () => {}, resolve);
      });
      expect((err as { statusCode?: number }).statusCode).toBe(410);
    } finally {
      await strict.close();
    }
  });
});
