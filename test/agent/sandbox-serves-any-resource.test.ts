/**
 * The fake API serves any resource a plan names (design §11.2), through the real
 * `@kubernetes/client-node` over HTTP: a CRD applied to it is served (each served version, one
 * storage, namespaced or cluster scope) with discovery (legacy and aggregated) and OpenAPI from
 * its schema, pruned and validated; deleting it stops serving it. Gateway API kinds are served and
 * validated by @kubernetes-models/gateway-api. Status subresources, generation, merge/JSON/apply
 * patches, dryRun=All, resourceVersion conflicts, watch and the write log behave as the real
 * API's do.
 */

import { readFileSync } from "node:fs";
import {
  ApiException,
  ApiextensionsV1Api,
  AppsV1Api,
  CustomObjectsApi,
  KubernetesObjectApi,
  PatchStrategy,
  setHeaderOptions,
  Watch,
} from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { type CnpgController, startCnpgController } from "../../agent/sandbox/cnpg-controller.ts";
import { type FakeKubeApi, type KubeObject, startFakeKubeApi } from "../../agent/sandbox/fake-kube-api.ts";

const WIDGETS = { group: "example.turnout.dev", version: "v1", plural: "widgets" };
const ROUTES = { group: "gateway.networking.k8s.io", version: "v1", plural: "httproutes" };
const CNPG = { group: "postgresql.cnpg.io", version: "v1", plural: "clusters" };

let api: FakeKubeApi;
let custom: CustomObjectsApi;
let crds: ApiextensionsV1Api;
let apps: AppsV1Api;
let cnpg: CnpgController;

function widgetCrd(scope: "Namespaced" | "Cluster" = "Namespaced", plural = "widgets", kind = "Widget") {
  const schema = {
    openAPIV3Schema: {
      type: "object",
      properties: {
        spec: {
          type: "object",
          properties: { size: { type: "integer", minimum: 0 }, color: { type: "string", enum: ["red", "blue"] } },
        },
        status: { type: "object", properties: { phase: { type: "string" } } },
      },
    },
  };
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `${plural}.example.turnout.dev` },
    spec: {
      group: "example.turnout.dev",
      scope,
      names: { plural, singular: kind.toLowerCase(), kind, shortNames: [kind.toLowerCase().slice(0, 2)] },
      versions: [
        { name: "v1", served: true, storage: true, schema, subresources: { status: {} } },
        { name: "v1beta1", served: true, storage: false, schema, subresources: { status: {} } },
      ],
    },
  };
}

async function failure(p: Promise<unknown>): Promise<{ code: number; reason: string; message: string }> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ApiException);
    const ex = e as ApiException<string>;
    const body = JSON.parse(ex.body) as { reason: string; message: string };
    return { code: ex.code, reason: body.reason, message: body.message };
  }
  throw new Error("expected the call to fail");
}

async function getJson(path: string, accept?: string): Promise<{ status: number; type: string; body: unknown }> {
  const res = await fetch(`${api.url}${path}`, {
    headers: { authorization: `Bearer ${api.token}`, ...(accept ? { accept } : {}) },
  });
  return { status: res.status, type: res.headers.get("content-type") ?? "", body: await res.json() };
}

/**
 * Creates a CRD from plain JSON. Not through ApiextensionsV1Api: client-node's serializer knows
 * JSONSchemaProps' `enum` only as `_enum` and would silently drop it.
 */
async function createCrd(body: unknown): Promise<void> {
  const res = await fetch(`${api.url}/apis/apiextensions.k8s.io/v1/customresourcedefinitions`, {
    method: "POST",
    headers: { authorization: `Bearer ${api.token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(201);
}

const merge = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);

beforeAll(async () => {
  api = await startFakeKubeApi({ bookmarkIntervalMs: 100 });
  const kc = api.kubeConfig();
  custom = kc.makeApiClient(CustomObjectsApi);
  crds = kc.makeApiClient(ApiextensionsV1Api);
  apps = kc.makeApiClient(AppsV1Api);
  cnpg = startCnpgController(api.store, { delayMs: 20 });
  await createCrd(widgetCrd());
});

afterAll(async () => {
  cnpg?.stop();
  await api?.close();
});

describe("a CustomResourceDefinition applied to the API", () => {
  it("is accepted and established, and its kind is served in each served version from one storage", async () => {
    const crd = await crds.readCustomResourceDefinition({ name: "widgets.example.turnout.dev" });
    expect(crd.status?.conditions?.map((c) => `${c.type}=${c.status}`)).toEqual([
      "NamesAccepted=True",
      "Established=True",
    ]);
    expect(crd.status?.storedVersions).toEqual(["v1"]);
    await custom.createNamespacedCustomObject({
      ...WIDGETS,
      namespace: "default",
      body: { apiVersion: "example.turnout.dev/v1", kind: "Widget", metadata: { name: "w1" }, spec: { size: 1 } },
    });
    const old = (await custom.getNamespacedCustomObject({
      ...WIDGETS,
      version: "v1beta1",
      namespace: "default",
      name: "w1",
    })) as KubeObject;
    expect(old.apiVersion).toBe("example.turnout.dev/v1beta1");
    expect(old.spec).toEqual({ size: 1 });
  });

  it("prunes undeclared fields, refuses them under fieldValidation=Strict, and validates types and enums (422)", async () => {
    const body = {
      apiVersion: "example.turnout.dev/v1",
      kind: "Widget",
      metadata: { name: "w2" },
      spec: { size: 2, extra: true },
    };
    const created = (await custom.createNamespacedCustomObject({
      ...WIDGETS,
      namespace: "default",
      body,
    })) as KubeObject;
    expect(created.spec).toEqual({ size: 2 });
    const strict = await failure(
      custom.createNamespacedCustomObject({
        ...WIDGETS,
        namespace: "default",
        body: { ...body, metadata: { name: "w3" } },
        fieldValidation: "Strict",
      }),
    );
    expect(strict).toMatchObject({ code: 400, reason: "BadRequest" });
    expect(strict.message).toContain('unknown field "spec.extra"');
    const invalid = await failure(
      custom.createNamespacedCustomObject({
        ...WIDGETS,
        namespace: "default",
        body: { ...body, metadata: { name: "w4" }, spec: { size: "big", color: "green" } },
      }),
    );
    expect(invalid).toMatchObject({ code: 422, reason: "Invalid" });
    expect(invalid.message).toContain("spec.size in body must be of type integer");
    expect(invalid.message).toContain('spec.color: Unsupported value: "green"');
  });

  it("is in legacy and aggregated discovery and in OpenAPI v3 with its own schema", async () => {
    const groups = (await getJson("/apis")).body as {
      groups: { name: string; preferredVersion: { version: string } }[];
    };
    expect(groups.groups.find((g) => g.name === "example.turnout.dev")?.preferredVersion.version).toBe("v1");
    const list = (await getJson("/apis/example.turnout.dev/v1")).body as {
      resources: { name: string; namespaced: boolean; shortNames?: string[] }[];
    };
    expect(list.resources.map((r) => r.name)).toEqual(["widgets", "widgets/status"]);
    expect(list.resources[0]).toMatchObject({ namespaced: true, shortNames: ["wi"] });
    const aggregated = await getJson(
      "/apis",
      "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
    );
    expect(aggregated.type).toContain("as=APIGroupDiscoveryList");
    const items = (
      aggregated.body as {
        items: {
          metadata: { name: string };
          versions: { version: string; resources: { resource: string; scope: string }[] }[];
        }[];
      }
    ).items;
    const group = items.find((i) => i.metadata.name === "example.turnout.dev");
    expect(group?.versions.map((v) => v.version)).toEqual(["v1", "v1beta1"]);
    expect(group?.versions[0]?.resources[0]).toMatchObject({ resource: "widgets", scope: "Namespaced" });
    const doc = (await getJson("/openapi/v3/apis/example.turnout.dev/v1")).body as {
      components: { schemas: Record<string, { properties: Record<string, { properties?: Record<string, unknown> }> }> };
    };
    expect(doc.components.schemas["dev.turnout.example.v1.Widget"]?.properties.spec?.properties).toHaveProperty(
      "color",
    );
  });

  it("serves cluster-scoped kinds, and client-node's discovery-driven KubernetesObjectApi finds them", async () => {
    await createCrd(widgetCrd("Cluster", "gadgets", "Gadget"));
    const objects = KubernetesObjectApi.makeApiClient(api.kubeConfig());
    await objects.create({
      apiVersion: "example.turnout.dev/v1",
      kind: "Gadget",
      metadata: { name: "g1" },
      spec: { size: 5 },
    });
    const read = (await custom.getClusterCustomObject({ ...WIDGETS, plural: "gadgets", name: "g1" })) as KubeObject;
    expect(read.metadata.namespace).toBeUndefined();
    expect(read.spec).toEqual({ size: 5 });
  });

  it("stops being served, its objects gone, when the CRD is deleted", async () => {
    await crds.deleteCustomResourceDefinition({ name: "gadgets.example.turnout.dev" });
    expect((await failure(custom.getClusterCustomObject({ ...WIDGETS, plural: "gadgets", name: "g1" }))).code).toBe(
      404,
    );
    expect((await getJson("/apis/example.turnout.dev/v1")).body).toMatchObject({
      resources: [{ name: "widgets" }, { name: "widgets/status" }],
    });
    await createCrd(widgetCrd("Cluster", "gadgets", "Gadget"));
    expect(
      ((await custom.listClusterCustomObject({ ...WIDGETS, plural: "gadgets" })) as { items: unknown[] }).items,
    ).toEqual([]);
  });

  it("refuses a CRD whose name is not <plural>.<group> or that has no storage version", async () => {
    const bad = widgetCrd();
    bad.metadata.name = "wrong.example.turnout.dev";
    bad.spec.versions = bad.spec.versions.map((v) => ({ ...v, storage: false }));
    const f = await failure(crds.createCustomResourceDefinition({ body: bad }));
    expect(f.code).toBe(422);
    expect(f.message).toContain('must be spec.names.plural+"."+spec.group');
    expect(f.message).toContain("exactly one version marked as storage version");
  });
});

describe("the real API's write semantics, for a custom resource", () => {
  const ns = { ...WIDGETS, namespace: "default" };

  it("keeps status out of main writes and spec out of /status writes; generation moves on spec only", async () => {
    await custom.createNamespacedCustomObject({
      ...ns,
      body: {
        apiVersion: "example.turnout.dev/v1",
        kind: "Widget",
        metadata: { name: "s1" },
        spec: { size: 1 },
        status: { phase: "ignored" },
      },
    });
    const created = (await custom.getNamespacedCustomObject({ ...ns, name: "s1" })) as KubeObject;
    expect(created.status).toBeUndefined();
    expect(created.metadata.generation).toBe(1);
    await custom.patchNamespacedCustomObjectStatus(
      { ...ns, name: "s1", body: { status: { phase: "Ready" }, spec: { size: 9 } } },
      merge,
    );
    const afterStatus = (await custom.getNamespacedCustomObject({ ...ns, name: "s1" })) as KubeObject;
    expect(afterStatus).toMatchObject({ spec: { size: 1 }, status: { phase: "Ready" }, metadata: { generation: 1 } });
    await custom.patchNamespacedCustomObject(
      { ...ns, name: "s1", body: { spec: { size: 2 }, status: { phase: "lost" } } },
      merge,
    );
    const afterSpec = (await custom.getNamespacedCustomObject({ ...ns, name: "s1" })) as KubeObject;
    expect(afterSpec).toMatchObject({ spec: { size: 2 }, status: { phase: "Ready" }, metadata: { generation: 2 } });
    await custom.patchNamespacedCustomObject({ ...ns, name: "s1", body: { metadata: { labels: { a: "b" } } } }, merge);
    expect(((await custom.getNamespacedCustomObject({ ...ns, name: "s1" })) as KubeObject).metadata.generation).toBe(2);
  });

  it("applies JSON patches with test, and refuses (422) one whose test fails without writing", async () => {
    await custom.patchNamespacedCustomObject({
      ...ns,
      name: "s1",
      body: [
        { op: "test", path: "/spec/size", value: 2 },
        { op: "replace", path: "/spec/size", value: 3 },
      ],
    });
    const before = (await custom.getNamespacedCustomObject({ ...ns, name: "s1" })) as KubeObject;
    expect(before.spec).toEqual({ size: 3 });
    const f = await failure(
      custom.patchNamespacedCustomObject({
        ...ns,
        name: "s1",
        body: [
          { op: "test", path: "/spec/size", value: "3" },
          { op: "replace", path: "/spec/size", value: 4 },
        ],
      }),
    );
    expect(f.code).toBe(422);
    const after = (await custom.getNamespacedCustomObject({ ...ns, name: "s1" })) as KubeObject;
    expect(after.metadata.resourceVersion).toBe(before.metadata.resourceVersion);
  });

  it("answers 409 to a PUT or a patch carrying a stale resourceVersion", async () => {
    const current = (await custom.getNamespacedCustomObject({ ...ns, name: "s1" })) as KubeObject;
    const stale = String(Number(current.metadata.resourceVersion) - 1);
    const put = await failure(
      custom.replaceNamespacedCustomObject({
        ...ns,
        name: "s1",
        body: { ...current, metadata: { ...current.metadata, resourceVersion: stale } },
      }),
    );
    expect(put).toMatchObject({ code: 409, reason: "Conflict" });
    const patch = await failure(
      custom.patchNamespacedCustomObject(
        { ...ns, name: "s1", body: { metadata: { resourceVersion: stale }, spec: { size: 7 } } },
        merge,
      ),
    );
    expect(patch).toMatchObject({ code: 409, reason: "Conflict" });
    const ok = (await custom.patchNamespacedCustomObject(
      {
        ...ns,
        name: "s1",
        body: { metadata: { resourceVersion: current.metadata.resourceVersion }, spec: { size: 7 } },
      },
      merge,
    )) as KubeObject;
    expect(ok.spec).toEqual({ size: 7 });
  });

  it("server-side applies (creating, then updating) with a fieldManager", async () => {
    const apply = setHeaderOptions("Content-Type", PatchStrategy.ServerSideApply);
    const body = {
      apiVersion: "example.turnout.dev/v1",
      kind: "Widget",
      metadata: { name: "a1", namespace: "default" },
      spec: { size: 1 },
    };
    const created = (await custom.patchNamespacedCustomObject(
      { ...ns, name: "a1", body, fieldManager: "plan", force: true },
      apply,
    )) as KubeObject;
    expect(created.metadata.managedFields?.[0]).toMatchObject({ manager: "plan", operation: "Apply" });
    const updated = (await custom.patchNamespacedCustomObject(
      { ...ns, name: "a1", body: { ...body, spec: { size: 2, color: "red" } }, fieldManager: "plan", force: true },
      apply,
    )) as KubeObject;
    expect(updated.spec).toEqual({ size: 2, color: "red" });
  });

  it("stores nothing on dryRun=All (create, patch, PUT, delete) and the write log says so", async () => {
    const mark = api.writes.length;
    const rvBefore = api.store.resourceVersion;
    const body = { apiVersion: "example.turnout.dev/v1", kind: "Widget", metadata: { name: "d1" }, spec: { size: 1 } };
    const wouldBe = (await custom.createNamespacedCustomObject({ ...ns, body, dryRun: "All" })) as KubeObject;
    expect(wouldBe.metadata.uid).toBeDefined();
    const patched = (await custom.patchNamespacedCustomObject(
      { ...ns, name: "s1", body: { spec: { size: 99 } }, dryRun: "All" },
      merge,
    )) as KubeObject;
    expect(patched.spec).toEqual({ size: 99 });
    const current = (await custom.getNamespacedCustomObject({ ...ns, name: "s1" })) as KubeObject;
    await custom.replaceNamespacedCustomObject({
      ...ns,
      name: "s1",
      body: { ...current, spec: { size: 98 } },
      dryRun: "All",
    });
    await custom.deleteNamespacedCustomObject({ ...ns, name: "s1", dryRun: "All" });
    expect(api.store.resourceVersion).toBe(rvBefore);
    expect(((await custom.getNamespacedCustomObject({ ...ns, name: "s1" })) as KubeObject).spec).toEqual({ size: 7 });
    expect(api.writes.slice(mark).map((w) => `${w.verb} ${w.kind} ${w.name} dryRun=${w.dryRun} ${w.code}`)).toEqual([
      "create Widget d1 dryRun=true 201",
      "patch Widget s1 dryRun=true 200",
      "update Widget s1 dryRun=true 200",
      "delete Widget s1 dryRun=true 200",
    ]);
    expect(api.writes.slice(mark)[1]?.patchType).toBe("merge");
  });

  it("watches a custom resource from a resourceVersion", async () => {
    const from = api.store.resourceVersion;
    const events: string[] = [];
    const watch = new Watch(api.kubeConfig());
    const seen = new Promise<void>((resolve) => {
      void watch
        .watch(
          "/apis/example.turnout.dev/v1/namespaces/default/widgets",
          { resourceVersion: from, allowWatchBookmarks: true },
          (type, obj: KubeObject) => {
            if (type === "BOOKMARK") return;
            events.push(`${type} ${obj.metadata.name} ${obj.apiVersion}`);
            if (events.length === 2) resolve();
          },
          () => {},
        )
        .then((req) => seen.then(() => req.abort()));
    });
    await custom.patchNamespacedCustomObject({ ...ns, name: "s1", body: { spec: { size: 8 } } }, merge);
    await custom.deleteNamespacedCustomObject({ ...ns, name: "a1" });
    await seen;
    expect(events).toEqual(["MODIFIED s1 example.turnout.dev/v1", "DELETED a1 example.turnout.dev/v1"]);
  });
});

describe("Gateway API kinds and built-in workloads", () => {
  it("serves HTTPRoute and cluster-scoped GatewayClass, validated by the Gateway API models", async () => {
    const route = {
      apiVersion: "gateway.networking.k8s.io/v1",
      kind: "HTTPRoute",
      metadata: { name: "web" },
      spec: { rules: [{ backendRefs: [{ name: "blue", port: 80, weight: 100 }] }] },
    };
    await custom.createNamespacedCustomObject({ ...ROUTES, namespace: "default", body: route });
    const shifted = (await custom.patchNamespacedCustomObject({
      ...ROUTES,
      namespace: "default",
      name: "web",
      body: [{ op: "replace", path: "/spec/rules/0/backendRefs/0/weight", value: 0 }],
    })) as { spec: { rules: { backendRefs: { weight: number }[] }[] } };
    expect(shifted.spec.rules[0]?.backendRefs[0]?.weight).toBe(0);
    const bad = await failure(
      custom.patchNamespacedCustomObject(
        {
          ...ROUTES,
          namespace: "default",
          name: "web",
          body: { spec: { rules: [{ backendRefs: [{ name: "blue", weight: "half" }] }] } },
        },
        merge,
      ),
    );
    expect(bad.code).toBe(422);
    expect(bad.message).toContain("spec.rules.0.backendRefs.0.weight");
    await custom.createClusterCustomObject({
      group: "gateway.networking.k8s.io",
      version: "v1",
      plural: "gatewayclasses",
      body: {
        apiVersion: "gateway.networking.k8s.io/v1",
        kind: "GatewayClass",
        metadata: { name: "sandbox" },
        spec: { controllerName: "example.com/gw" },
      },
    });
    const list = (await getJson("/apis/gateway.networking.k8s.io/v1")).body as {
      resources: { name: string; namespaced: boolean }[];
    };
    for (const r of ["httproutes", "gateways", "grpcroutes", "referencegrants", "gatewayclasses"]) {
      expect(list.resources.map((x) => x.name)).toContain(r);
    }
    expect(list.resources.find((r) => r.name === "gatewayclasses")?.namespaced).toBe(false);
  });

  it("scales a Deployment through its scale subresource", async () => {
    await apps.createNamespacedDeployment({
      namespace: "default",
      body: {
        metadata: { name: "standby" },
        spec: {
          replicas: 0,
          selector: { matchLabels: { app: "s" } },
          template: { metadata: { labels: { app: "s" } }, spec: { containers: [{ name: "m", image: "x" }] } },
        },
      },
    });
    const scaled = await apps.patchNamespacedDeploymentScale(
      { namespace: "default", name: "standby", body: { spec: { replicas: 3 } } },
      merge,
    );
    expect(scaled.spec?.replicas).toBe(3);
    expect((await apps.readNamespacedDeployment({ namespace: "default", name: "standby" })).spec?.replicas).toBe(3);
  });
});

describe("the playground CloudNativePG Cluster (examples/plans/cnpg-cluster-crd.yaml)", () => {
  it("is promoted by spec.replica.enabled: false and reports Ready for that generation", async () => {
    await crds.createCustomResourceDefinition({
      body: parse(readFileSync("examples/plans/cnpg-cluster-crd.yaml", "utf8")),
    });
    await custom.createNamespacedCustomObject({
      ...CNPG,
      namespace: "default",
      body: {
        apiVersion: "postgresql.cnpg.io/v1",
        kind: "Cluster",
        metadata: { name: "pg" },
        spec: { instances: 3, replica: { enabled: true, source: "pg-east" } },
      },
    });
    await cnpg.settled();
    const promoted = (await custom.patchNamespacedCustomObject(
      { ...CNPG, namespace: "default", name: "pg", body: { spec: { replica: { enabled: false } } } },
      merge,
    )) as KubeObject;
    expect(promoted.metadata.generation).toBe(2);
    const stale = promoted.status as { conditions: { type: string; observedGeneration: number }[] };
    expect(stale.conditions.find((c) => c.type === "Ready")?.observedGeneration).toBe(1);
    await cnpg.settled();
    const ready = (await custom.getNamespacedCustomObject({ ...CNPG, namespace: "default", name: "pg" })) as KubeObject;
    expect(ready.status).toMatchObject({
      phase: "Cluster in healthy state",
      currentPrimary: "pg-1",
      conditions: [{ type: "Ready", status: "True", observedGeneration: 2 }],
    });
  });
});
