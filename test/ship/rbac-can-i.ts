/**
 * `kubectl auth can-i` for the manifests suite: Kubernetes RBAC rule matching, evaluated over the
 * Roles, ClusterRoles and bindings of the kustomize base. It follows the authorizer in
 * kubernetes/plugin/pkg/auth/authorizer/rbac (rbac.go, and rule matching in
 * pkg/apis/rbac/v1/evaluation_helpers.go):
 *
 * - a rule allows a resource request when its `verbs`, `apiGroups` and `resources` each contain
 *   the request's value or `*`; the resource of a subresource request is `<resource>/<sub>`
 *   (or `*\/<sub>`); a rule with `resourceNames` allows only requests naming one of them, so never
 *   `list`, `watch`, `deletecollection` or a `create` by POST, whose URL names no object;
 * - a ClusterRoleBinding grants its ClusterRole's rules everywhere; a RoleBinding grants its Role's
 *   (or ClusterRole's) rules in the binding's namespace only;
 * - a ServiceAccount subject matches by name and namespace; Group subjects match the groups every
 *   service account is in (`system:serviceaccounts`, `system:serviceaccounts:<ns>`,
 *   `system:authenticated`); a User subject matches `system:serviceaccount:<ns>:<name>`.
 *
 * Deny rules do not exist in RBAC, so "allowed by some rule of some matching binding" is all.
 */
import { z } from "zod";
import type { ApiTarget, ProxiedRequest } from "../support/route-swap-cluster.ts";
import { apiTargetOf } from "../support/route-swap-cluster.ts";
import type { BaseObject } from "./kustomize-base.ts";

/** What the authorizer sees of one request (authorizer.Attributes). */
export interface RequestAttributes {
  verb: string;
  /** "" for the core group. */
  apiGroup: string;
  resource: string;
  subresource?: string;
  /** Absent for cluster-scoped objects. */
  namespace?: string;
  /** Absent for collections and for POST creates. */
  name?: string;
}

export interface ServiceAccountRef {
  namespace: string;
  name: string;
}

const Rule = z.object({
  apiGroups: z.array(z.string()).default([]),
  resources: z.array(z.string()).default([]),
  resourceNames: z.array(z.string()).optional(),
  verbs: z.array(z.string()),
  nonResourceURLs: z.array(z.string()).optional(),
});
type Rule = z.infer<typeof Rule>;
const RoleSchema = z.object({ rules: z.array(Rule).default([]) });
const Subject = z.object({ kind: z.string(), name: z.string(), namespace: z.string().optional() });
const BindingSchema = z.object({
  roleRef: z.object({ kind: z.enum(["Role", "ClusterRole"]), name: z.string() }),
  subjects: z.array(Subject).default([]),
});

function subjectMatches(s: z.infer<typeof Subject>, sa: ServiceAccountRef): boolean {
  if (s.kind === "ServiceAccount") return s.name === sa.name && (s.namespace ?? "") === sa.namespace;
  if (s.kind === "User") return s.name === `system:serviceaccount:${sa.namespace}:${sa.name}`;
  if (s.kind === "Group")
    return ["system:serviceaccounts", `system:serviceaccounts:${sa.namespace}`, "system:authenticated"].includes(
      s.name,
    );
  return false;
}

function ruleAllows(rule: Rule, req: RequestAttributes): boolean {
  if (!rule.verbs.includes("*") && !rule.verbs.includes(req.verb)) return false;
  if (!rule.apiGroups.includes("*") && !rule.apiGroups.includes(req.apiGroup)) return false;
  const combined = req.subresource ? `${req.resource}/${req.subresource}` : req.resource;
  const resourceOk = rule.resources.some(
    (r) => r === "*" || r === combined || (req.subresource !== undefined && r === `*/${req.subresource}`),
  );
  if (!resourceOk) return false;
  if (rule.resourceNames && rule.resourceNames.length > 0) {
    return req.name !== undefined && req.name !== "" && rule.resourceNames.includes(req.name);
  }
  return true;
}

/** The rules that apply to `sa` for a request in `namespace` (undefined: cluster-scoped). */
function rulesFor(objects: readonly BaseObject[], sa: ServiceAccountRef, namespace: string | undefined): Rule[] {
  const roleRules = (kind: "Role" | "ClusterRole", name: string, ns: string | undefined): Rule[] => {
    const role = objects.find(
      (o) => o.kind === kind && o.name === name && (kind === "ClusterRole" || o.namespace === ns),
    );
    return role ? RoleSchema.parse(role.raw).rules : [];
  };
  const out: Rule[] = [];
  for (const o of objects) {
    if (o.kind !== "ClusterRoleBinding" && o.kind !== "RoleBinding") continue;
    const b = BindingSchema.parse(o.raw);
    if (!b.subjects.some((s) => subjectMatches(s, sa))) continue;
    if (o.kind === "ClusterRoleBinding") {
      // A ClusterRoleBinding may only reference a ClusterRole.
      if (b.roleRef.kind === "ClusterRole") out.push(...roleRules("ClusterRole", b.roleRef.name, undefined));
    } else if (namespace !== undefined && o.namespace === namespace) {
      out.push(...roleRules(b.roleRef.kind, b.roleRef.name, o.namespace));
    }
  }
  return out;
}

/** Whether `sa` may make the request, by the RBAC objects of the base. */
export function canI(objects: readonly BaseObject[], sa: ServiceAccountRef, req: RequestAttributes): boolean {
  return rulesFor(objects, sa, req.namespace).some((r) => ruleAllows(r, req));
}

/**
 * The authorization checks kube-apiserver makes for one HTTP request: its verb from method and
 * URL (GET by name get, else list or watch; DELETE of a collection deletecollection), plus
 * `create` for a server-side apply, which creates the object when missing
 * (apiserver endpoints/handlers/patch.go authorizes that create with the object's name).
 */
export function attributesOf(r: ProxiedRequest): RequestAttributes[] {
  const t: ApiTarget = apiTargetOf(r.path);
  const attributes = (verb: string, name: string | undefined): RequestAttributes => ({
    verb,
    apiGroup: t.group,
    resource: t.resource,
    ...(t.subresource ? { subresource: t.subresource } : {}),
    ...(t.namespace !== "*" ? { namespace: t.namespace } : {}),
    ...(name ? { name } : {}),
  });
  switch (r.method) {
    case "GET":
      return [attributes(t.name ? "get" : r.query.watch === "true" ? "watch" : "list", t.name)];
    case "POST":
      // The URL of a create names no object, so RBAC sees no name.
      return [attributes("create", undefined)];
    case "PUT":
      return [attributes("update", t.name)];
    case "DELETE":
      return [attributes(t.name ? "delete" : "deletecollection", t.name)];
    case "PATCH":
      return (r.contentType ?? "").startsWith("application/apply-patch")
        ? [attributes("patch", t.name), attributes("create", t.name)]
        : [attributes("patch", t.name)];
    default:
      return [attributes(r.method.toLowerCase(), t.name)];
  }
}

/** `kubectl auth can-i`'s way of writing a request, for assertion messages. */
export function describe(req: RequestAttributes): string {
  const res = req.subresource ? `${req.resource}/${req.subresource}` : req.resource;
  const group = req.apiGroup ? `.${req.apiGroup}` : "";
  return `${req.verb} ${res}${group}${req.name ? `/${req.name}` : ""}${req.namespace ? ` -n ${req.namespace}` : ""}`;
}
