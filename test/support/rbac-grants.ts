/**
 * Kubernetes API requests and RBAC rules as comparable strings
 * `group|resource|namespace|verb|name`, for the tests that hold a shipped RBAC manifest against
 * the requests an executor really sends (recorded by the fake API or a recording proxy).
 * Subresources count as `resource/subresource` and collections as name `*`, as the RBAC
 * authorizer sees them; a ClusterRole's namespace is `*`.
 */
import { parseAllDocuments } from "yaml";
import { z } from "zod";
import { apiTargetOf } from "./route-swap-cluster.ts";

/** What the permission of a request is read from (fake API and proxy records both carry it). */
export interface ApiRequestRecord {
  method: string;
  path: string;
  query: Record<string, string>;
  contentType: string | undefined;
}

/** The permissions one request needs; a server-side apply is also authorized as `create`. */
export function permissionsOf(r: ApiRequestRecord): string[] {
  const { group, namespace, resource: main, name, subresource } = apiTargetOf(r.path);
  const resource = subresource ? `${main}/${subresource}` : main;
  const verbs: string[] = [];
  if (r.method === "GET") verbs.push(name ? "get" : r.query.watch === "true" ? "watch" : "list");
  else if (r.method === "PATCH") {
    verbs.push("patch");
    // An apply that creates the object is also authorized as `create`.
    if ((r.contentType ?? "").startsWith("application/apply-patch")) verbs.push("create");
  } else verbs.push({ POST: "create", PUT: "update", DELETE: "delete" }[r.method] ?? r.method);
  return verbs.map((v) => `${group}|${resource}|${namespace}|${v}|${name ?? "*"}`);
}

/** The distinct permissions a list of requests needs. */
export function permissionsUsed(requests: readonly ApiRequestRecord[]): Set<string> {
  return new Set(requests.flatMap(permissionsOf));
}

const Rule = z.object({
  apiGroups: z.array(z.string()),
  resources: z.array(z.string()),
  resourceNames: z.array(z.string()).optional(),
  verbs: z.array(z.string()),
});
const RbacDoc = z.object({
  kind: z.string(),
  metadata: z.object({ name: z.string(), namespace: z.string().optional() }),
  rules: z.array(Rule).optional(),
});
export type RbacDoc = z.infer<typeof RbacDoc>;

/** The documents of an RBAC manifest (Roles, ClusterRoles, their bindings). */
export function rbacDocs(yamlText: string): RbacDoc[] {
  return parseAllDocuments(yamlText).map((d) => RbacDoc.parse(d.toJS()));
}

/** What the rules of `docs` grant, one string per group, resource, verb and name. */
export function grantsOf(docs: readonly RbacDoc[]): string[] {
  const out: string[] = [];
  for (const d of docs) {
    const ns = d.kind === "ClusterRole" ? "*" : (d.metadata.namespace ?? "");
    for (const r of d.rules ?? [])
      for (const g of r.apiGroups)
        for (const res of r.resources)
          for (const v of r.verbs) for (const n of r.resourceNames ?? ["*"]) out.push(`${g}|${res}|${ns}|${v}|${n}`);
  }
  return out;
}

/** True when `grant` allows the permission `used` (`*` namespace or name matches any). */
export function covers(grant: string, used: string): boolean {
  const [g, res, ns, v, n] = grant.split("|");
  const [ug, ures, uns, uv, un] = used.split("|");
  return g === ug && res === ures && v === uv && (ns === "*" || ns === uns) && (n === "*" || n === un);
}
