/**
 * `authorization.k8s.io/v1` SelfSubjectAccessReview for the fake API (design §11.3: readiness asks
 * whether each write a step would make is allowed). The answer is computed from the RBAC objects
 * stored in the fake API (Roles, ClusterRoles and their bindings, served here as
 * `rbac.authorization.k8s.io/v1`) for the one identity the fake API's token stands for, following
 * the authorizer in kubernetes/plugin/pkg/auth/authorizer/rbac (rule matching in
 * pkg/apis/rbac/v1/evaluation_helpers.go):
 * - a rule allows when its verbs, apiGroups and resources each hold the request's value or `*`;
 *   a subresource is matched as `<resource>/<sub>` (or `*\/<sub>`); `resourceNames` allow only
 *   requests naming one of them;
 * - a ClusterRoleBinding grants everywhere; a RoleBinding only in its namespace;
 * - ServiceAccount subjects match by name and namespace, Groups by the groups every service account
 *   is in, Users by `system:serviceaccount:<ns>:<name>`.
 *
 * The fake API serves every request whatever RBAC says (it enforces only its token). So that a
 * sandbox without any RBAC objects stays usable, an identity no binding names is answered as the
 * fake API treats it: allowed, with a reason that says so. Once a binding names the identity, only
 * its rules count, as in a real cluster.
 */
import { z } from "zod";
import type { FakeStore, KubeObject, ResourceType } from "./fake-kube-api.ts";

/** The RBAC kinds the fake API stores, so a Role can be applied and edited like any object. */
export const RBAC_RESOURCES: readonly ResourceType[] = [
  { group: "rbac.authorization.k8s.io", version: "v1", resource: "roles", kind: "Role", namespaced: true },
  {
    group: "rbac.authorization.k8s.io",
    version: "v1",
    resource: "rolebindings",
    kind: "RoleBinding",
    namespaced: true,
  },
  {
    group: "rbac.authorization.k8s.io",
    version: "v1",
    resource: "clusterroles",
    kind: "ClusterRole",
    namespaced: false,
  },
  {
    group: "rbac.authorization.k8s.io",
    version: "v1",
    resource: "clusterrolebindings",
    kind: "ClusterRoleBinding",
    namespaced: false,
  },
];

/** The service account the fake API's token authenticates as (the agent's, as agent/deploy/ names it). */
export interface ReviewIdentity {
  namespace: string;
  name: string;
}

export const DEFAULT_IDENTITY: ReviewIdentity = { namespace: "turnout", name: "turnout-agent" };

/** The path kube-apiserver serves SelfSubjectAccessReviews on (create only). */
export const ACCESS_REVIEW_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";

const ResourceAttributesSchema = z.object({
  verb: z.string().default(""),
  group: z.string().default(""),
  resource: z.string().default(""),
  subresource: z.string().default(""),
  namespace: z.string().default(""),
  name: z.string().default(""),
});
export type ResourceAttributes = z.infer<typeof ResourceAttributesSchema>;

const ReviewSchema = z.object({
  spec: z.object({ resourceAttributes: ResourceAttributesSchema.optional() }),
});

const RuleSchema = z.object({
  apiGroups: z.array(z.string()).default([]),
  resources: z.array(z.string()).default([]),
  resourceNames: z.array(z.string()).optional(),
  verbs: z.array(z.string()).default([]),
});
type Rule = z.infer<typeof RuleSchema>;
const RoleSchema = z.object({ rules: z.array(RuleSchema).nullish() });
const SubjectSchema = z.object({ kind: z.string(), name: z.string(), namespace: z.string().optional() });
const BindingSchema = z.object({
  metadata: z.object({ namespace: z.string().optional() }).loose(),
  roleRef: z.object({ kind: z.string(), name: z.string() }),
  subjects: z.array(SubjectSchema).nullish(),
});

const RBAC = "rbac.authorization.k8s.io";

function subjectMatches(s: z.infer<typeof SubjectSchema>, who: ReviewIdentity): boolean {
  if (s.kind === "ServiceAccount") return s.name === who.name && (s.namespace ?? "") === who.namespace;
  if (s.kind === "User") return s.name === `system:serviceaccount:${who.namespace}:${who.name}`;
  if (s.kind === "Group") {
    return ["system:serviceaccounts", `system:serviceaccounts:${who.namespace}`, "system:authenticated"].includes(
      s.name,
    );
  }
  return false;
}

function ruleAllows(rule: Rule, a: ResourceAttributes): boolean {
  if (!rule.verbs.includes("*") && !rule.verbs.includes(a.verb)) return false;
  if (!rule.apiGroups.includes("*") && !rule.apiGroups.includes(a.group)) return false;
  const combined = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  const resourceOk = rule.resources.some(
    (r) => r === "*" || r === combined || (a.subresource !== "" && r === `*/${a.subresource}`),
  );
  if (!resourceOk) return false;
  if (rule.resourceNames && rule.resourceNames.length > 0) return a.name !== "" && rule.resourceNames.includes(a.name);
  return true;
}

function rulesOf(store: FakeStore, kind: string, name: string, namespace: string | undefined): Rule[] {
  const resource = kind === "ClusterRole" ? "clusterroles" : "roles";
  const role = store.get({ group: RBAC, resource }, kind === "ClusterRole" ? undefined : namespace, name);
  return role ? (RoleSchema.parse(role).rules ?? []) : [];
}

/** The bindings that name `who`, as `{binding, rules}`. */
function bindingsFor(store: FakeStore, who: ReviewIdentity): { namespace: string | undefined; rules: Rule[] }[] {
  const out: { namespace: string | undefined; rules: Rule[] }[] = [];
  const read = (o: KubeObject, clusterWide: boolean) => {
    const b = BindingSchema.safeParse(o);
    if (!b.success || !(b.data.subjects ?? []).some((s) => subjectMatches(s, who))) return;
    const ns = clusterWide ? undefined : b.data.metadata.namespace;
    // A ClusterRoleBinding may reference only a ClusterRole.
    if (clusterWide && b.data.roleRef.kind !== "ClusterRole") return;
    out.push({ namespace: ns, rules: rulesOf(store, b.data.roleRef.kind, b.data.roleRef.name, ns) });
  };
  for (const o of store.list({ group: RBAC, resource: "clusterrolebindings" }, undefined)) read(o, true);
  for (const o of store.list({ group: RBAC, resource: "rolebindings" }, undefined)) read(o, false);
  return out;
}

/** Whether `who` may make the request described by `attributes`, and why. */
export function reviewAccess(
  store: FakeStore,
  attributes: ResourceAttributes,
  who: ReviewIdentity = DEFAULT_IDENTITY,
): { allowed: boolean; reason: string } {
  const bindings = bindingsFor(store, who);
  const subject = `system:serviceaccount:${who.namespace}:${who.name}`;
  if (bindings.length === 0) {
    return { allowed: true, reason: `no RBAC binding names ${subject}; the fake API serves it every request` };
  }
  const match = bindings.find(
    (b) =>
      (b.namespace === undefined || (attributes.namespace !== "" && b.namespace === attributes.namespace)) &&
      b.rules.some((r) => ruleAllows(r, attributes)),
  );
  return match
    ? {
        allowed: true,
        reason: `RBAC: allowed by a ${match.namespace === undefined ? "ClusterRoleBinding" : "RoleBinding"}`,
      }
    : { allowed: false, reason: "" };
}

/**
 * The answer to `POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews`: the review with
 * its `status` filled in, or undefined when the body is not a review (the caller answers 400).
 * Nothing is stored: a review is a question, as in kube-apiserver.
 */
export function answerAccessReview(store: FakeStore, body: unknown, who: ReviewIdentity = DEFAULT_IDENTITY) {
  const review = ReviewSchema.safeParse(body);
  if (!review.success) return undefined;
  const attributes = review.data.spec.resourceAttributes;
  const status = attributes
    ? reviewAccess(store, attributes, who)
    : { allowed: false, reason: "only resourceAttributes are reviewed by the fake API" };
  return {
    kind: "SelfSubjectAccessReview",
    apiVersion: "authorization.k8s.io/v1",
    metadata: { creationTimestamp: null },
    spec: review.data.spec,
    status,
  };
}
