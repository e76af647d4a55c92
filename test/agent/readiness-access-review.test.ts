/**
 * The fake API's SelfSubjectAccessReview (agent/sandbox/access-review.ts), asked through the real
 * client as readiness asks it: answered from the RBAC objects stored in the fake API, with
 * RoleBindings limited to their namespace and resourceNames to the names they list; with no
 * binding for the agent at all, the fake API allows, as it serves every request.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { kubeAccessReviewer, type WriteAttributes } from "../../agent/readiness/access.ts";
import { type FakeKubeApi, startFakeKubeApi } from "../../agent/sandbox/fake-kube-api.ts";

let api: FakeKubeApi;
const RBAC = "rbac.authorization.k8s.io";
const scale: WriteAttributes = {
  verb: "patch",
  group: "apps",
  resource: "deployments",
  subresource: "scale",
  namespace: "cpaas-system",
  name: "etcd-sync",
};

beforeAll(async () => {
  api = await startFakeKubeApi({ namespaces: ["default", "cpaas-system", "other", "turnout"] });
});
afterAll(async () => {
  await api?.close();
});

const allowed = async (...writes: WriteAttributes[]) =>
  (await kubeAccessReviewer(api.kubeConfig()).review(writes)).map((a) => a.allowed);

it("allows everything while no binding names the agent, and stores nothing", async () => {
  const before = api.store.resourceVersion;
  expect(await allowed(scale)).toEqual([true]);
  expect(api.store.resourceVersion).toBe(before);
});

it("answers from a Role bound in one namespace, by verb, subresource and resourceNames", async () => {
  api.store.create(
    { group: RBAC, resource: "roles" },
    {
      metadata: { name: "sync", namespace: "cpaas-system" },
      rules: [
        { apiGroups: ["apps"], resources: ["deployments/scale"], resourceNames: ["etcd-sync"], verbs: ["patch"] },
      ],
    },
  );
  api.store.create(
    { group: RBAC, resource: "rolebindings" },
    {
      metadata: { name: "sync", namespace: "cpaas-system" },
      roleRef: { apiGroup: RBAC, kind: "Role", name: "sync" },
      subjects: [{ kind: "ServiceAccount", name: "turnout-agent", namespace: "turnout" }],
    },
  );
  expect(
    await allowed(
      scale,
      { ...scale, name: "other-sync" },
      { ...scale, namespace: "other" },
      { ...scale, subresource: undefined },
      { ...scale, verb: "update" },
    ),
  ).toEqual([true, false, false, false, false]);
});
