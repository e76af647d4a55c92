/**
 * Least-privilege RBAC for an agent config (`npm run manifests`, design §11.2, §11.6): the
 * permissions of {@link clusterPermissions} as Roles (one per namespace), a ClusterRole for what
 * cannot be namespaced, and a binding of each to the agent's ServiceAccount, one set per cluster.
 * Permissions on named objects become rules with `resourceNames`; each rule carries a comment
 * naming the targets and steps that need it.
 */
import { Document, isMap, isScalar, isSeq, visit } from "yaml";
import type { AgentConfig } from "../../shared/config.ts";
import { clusterPermissions, OWN_CLUSTER, type Permission } from "./permissions.ts";

/** The agent's ServiceAccount name (agent/deploy/base/serviceaccount.yaml). */
export const AGENT_SERVICE_ACCOUNT = "turnout-agent";
/** The name of every Role, ClusterRole and binding printed. */
export const RBAC_NAME = "turnout-agent";

export interface RbacRule {
  apiGroups: string[];
  resources: string[];
  resourceNames?: string[];
  verbs: string[];
}

/** One printed object with the comment of each of its rules (bindings have none). */
export interface RbacObject {
  object: Record<string, unknown> & { kind: string; metadata: { name: string; namespace?: string } };
  ruleComments: string[];
}

/** The RBAC of one cluster. */
export interface ClusterRbac {
  /** {@link OWN_CLUSTER} or a name of the config's `clusters`. */
  cluster: string;
  objects: RbacObject[];
}

const VERB_ORDER = ["get", "list", "watch", "create", "update", "patch", "delete"];
const byVerb = (a: string, b: string) => VERB_ORDER.indexOf(a) - VERB_ORDER.indexOf(b);

/** Rules from permissions of one scope: same group, resource and verbs share a rule, names merged. */
export function rulesOf(permissions: readonly Permission[]): { rule: RbacRule; why: string[] }[] {
  // First the verbs each object (or each unnamed resource) needs, then objects with equal verbs merged.
  const perObject = new Map<
    string,
    { apiGroup: string; resource: string; name?: string; verbs: Set<string>; why: Set<string> }
  >();
  for (const p of permissions) {
    const key = JSON.stringify([p.apiGroup, p.resource, p.name ?? null]);
    const entry = perObject.get(key) ?? {
      apiGroup: p.apiGroup,
      resource: p.resource,
      ...(p.name !== undefined ? { name: p.name } : {}),
      verbs: new Set<string>(),
      why: new Set<string>(),
    };
    entry.verbs.add(p.verb);
    entry.why.add(p.why);
    perObject.set(key, entry);
  }
  const rules = new Map<string, { rule: RbacRule; why: Set<string> }>();
  for (const o of perObject.values()) {
    const verbs = [...o.verbs].sort(byVerb);
    const key = JSON.stringify([o.apiGroup, o.resource, verbs, o.name !== undefined]);
    const entry = rules.get(key) ?? {
      rule: {
        apiGroups: [o.apiGroup],
        resources: [o.resource],
        ...(o.name !== undefined ? { resourceNames: [] } : {}),
        verbs,
      },
      why: new Set<string>(),
    };
    if (o.name !== undefined && !entry.rule.resourceNames?.includes(o.name)) entry.rule.resourceNames?.push(o.name);
    for (const w of o.why) entry.why.add(w);
    rules.set(key, entry);
  }
  return [...rules.values()]
    .map(({ rule, why }) => ({
      rule: rule.resourceNames ? { ...rule, resourceNames: [...rule.resourceNames].sort() } : rule,
      why: [...why],
    }))
    .sort((a, b) =>
      `${a.rule.apiGroups[0]}/${a.rule.resources[0]}`.localeCompare(`${b.rule.apiGroups[0]}/${b.rule.resources[0]}`),
    );
}

function binding(kind: "RoleBinding" | "ClusterRoleBinding", namespace: string | undefined, subjectNamespace: string) {
  return {
    object: {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind,
      metadata: { name: RBAC_NAME, ...(namespace ? { namespace } : {}) },
      roleRef: {
        apiGroup: "rbac.authorization.k8s.io",
        kind: kind === "RoleBinding" ? "Role" : "ClusterRole",
        name: RBAC_NAME,
      },
      subjects: [{ kind: "ServiceAccount", name: AGENT_SERVICE_ACCOUNT, namespace: subjectNamespace }],
    },
    ruleComments: [],
  };
}

function role(kind: "Role" | "ClusterRole", namespace: string | undefined, permissions: Permission[]): RbacObject {
  const rules = rulesOf(permissions);
  return {
    object: {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind,
      metadata: { name: RBAC_NAME, ...(namespace ? { namespace } : {}) },
      rules: rules.map((r) => r.rule),
    },
    ruleComments: rules.map((r) => r.why.join("\n")),
  };
}

/** The RBAC objects of every cluster the config acts on, the agent's own first. */
export function agentRbac(config: AgentConfig): ClusterRbac[] {
  const out: ClusterRbac[] = [];
  for (const [cluster, permissions] of clusterPermissions(config)) {
    const objects: RbacObject[] = [];
    const clusterWide = permissions.filter((p) => p.namespace === undefined);
    if (clusterWide.length) {
      objects.push(role("ClusterRole", undefined, clusterWide));
      objects.push(binding("ClusterRoleBinding", undefined, config.namespace));
    }
    const namespaces = [...new Set(permissions.flatMap((p) => (p.namespace === undefined ? [] : [p.namespace])))];
    // The agent's namespace first, then alphabetical, so the output is stable as targets are added.
    namespaces.sort((a, b) => (a === config.namespace ? -1 : b === config.namespace ? 1 : a.localeCompare(b)));
    for (const ns of namespaces) {
      objects.push(
        role(
          "Role",
          ns,
          permissions.filter((p) => p.namespace === ns),
        ),
      );
      objects.push(binding("RoleBinding", ns, config.namespace));
    }
    out.push({ cluster, objects });
  }
  return out;
}

function header(cluster: string, config: AgentConfig): string {
  if (cluster === OWN_CLUSTER) {
    return [
      ` RBAC for the agent's own cluster: ServiceAccount ${config.namespace}/${AGENT_SERVICE_ACCOUNT}.`,
      " Generated by `npm run manifests` from the agent config; least privilege for its targets.",
    ].join("\n");
  }
  const kubeconfig = config.clusters[cluster]?.kubeconfig ?? "";
  return [
    ` RBAC for cluster ${cluster} (kubeconfig ${kubeconfig}): apply it in that cluster, for the identity`,
    ` that kubeconfig authenticates as (here ServiceAccount ${config.namespace}/${AGENT_SERVICE_ACCOUNT}).`,
    " That kubeconfig widens what this agent's key can do: whoever holds the agent's key can make",
    " these requests in that cluster too (docs/security.md).",
  ].join("\n");
}

/** The YAML of one cluster's objects, `---` between them, with a comment above each rule. */
export function renderClusterRbac(rbac: ClusterRbac, config: AgentConfig): string {
  return rbac.objects
    .map(({ object, ruleComments }, i) => {
      const doc = new Document(object);
      if (i === 0) doc.commentBefore = header(rbac.cluster, config);
      const rules = doc.get("rules", true);
      if (isSeq(rules)) {
        rules.items.forEach((item, j) => {
          const text = ruleComments[j];
          if (isMap(item) && text)
            item.commentBefore = text
              .split("\n")
              .map((l) => ` ${l}`)
              .join("\n");
        });
      }
      // Lists of plain values on one line (`verbs: [get, patch]`), as RBAC is usually written.
      visit(doc, {
        Seq(_, seq) {
          if (seq.items.every(isScalar)) seq.flow = true;
        },
      });
      return doc.toString({ lineWidth: 0, flowCollectionPadding: false });
    })
    .join("---\n");
}

/** The whole output of `npm run manifests`: each cluster's YAML, or only `cluster`'s when given. */
export function renderAgentRbac(config: AgentConfig, cluster?: string): string {
  const all = agentRbac(config);
  const chosen = cluster === undefined ? all : all.filter((c) => c.cluster === cluster);
  if (cluster !== undefined && chosen.length === 0) {
    const known = all.map((c) => (c.cluster === OWN_CLUSTER ? "own" : c.cluster)).join(", ");
    throw new Error(`no step acts on cluster ${JSON.stringify(cluster)} (clusters with RBAC: ${known})`);
  }
  return chosen.map((c) => renderClusterRbac(c, config)).join("---\n");
}
