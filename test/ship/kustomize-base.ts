/**
 * Reads agent/deploy the way `kustomize build` would see it (no kustomize binary is installable
 * here): the kustomization's resources, each file's YAML documents, and each document checked
 * against the Kubernetes object schemas shipped by `kubernetes-models` (its classes' validate()).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Deployment } from "kubernetes-models/apps/v1";
import { Ingress, NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import { ClusterRole, ClusterRoleBinding, Role, RoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1";
import { ConfigMap, Namespace, Service, ServiceAccount } from "kubernetes-models/v1";
import { parseAllDocuments, parse as parseYaml } from "yaml";
import { z } from "zod";
import { type AgentConfig, AgentConfigSchema } from "../../shared/config.ts";

export const DEPLOY_DIR = join(import.meta.dirname, "../../agent/deploy/base");

/** What kustomization.yaml may contain (anything else is a key this test does not understand). */
export const KustomizationSchema = z
  .object({
    apiVersion: z.literal("kustomize.config.k8s.io/v1beta1"),
    kind: z.literal("Kustomization"),
    resources: z.array(z.string().min(1)).min(1),
    labels: z
      .array(z.object({ pairs: z.record(z.string(), z.string()), includeSelectors: z.boolean().optional() }).strict())
      .optional(),
    images: z
      .array(z.object({ name: z.string(), newName: z.string().optional(), newTag: z.string().optional() }).strict())
      .optional(),
  })
  .strict();
export type Kustomization = z.infer<typeof KustomizationSchema>;

/** A model class from kubernetes-models: built from a plain object, validate() throws on a schema error. */
type ModelClass = new (data: never) => { validate(): void };

/** apiVersion/kind → the kubernetes-models class holding that object's schema. */
const MODELS: Record<string, ModelClass> = {
  "v1/Namespace": Namespace,
  "v1/ServiceAccount": ServiceAccount,
  "v1/ConfigMap": ConfigMap,
  "v1/Service": Service,
  "apps/v1/Deployment": Deployment,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
  "networking.k8s.io/v1/NetworkPolicy": NetworkPolicy,
  "networking.k8s.io/v1/Ingress": Ingress,
  "rbac.authorization.k8s.io/v1/Role": Role,
  "rbac.authorization.k8s.io/v1/RoleBinding": RoleBinding,
  "rbac.authorization.k8s.io/v1/ClusterRole": ClusterRole,
  "rbac.authorization.k8s.io/v1/ClusterRoleBinding": ClusterRoleBinding,
};

const ObjectHead = z.object({
  apiVersion: z.string(),
  kind: z.string(),
  metadata: z.object({
    name: z.string(),
    namespace: z.string().optional(),
    labels: z.record(z.string(), z.string()).optional(),
  }),
});

/** One object of the base, with the file it came from. */
export interface BaseObject {
  file: string;
  apiVersion: string;
  kind: string;
  name: string;
  namespace: string | undefined;
  raw: Record<string, unknown>;
}

export function readKustomization(): Kustomization {
  return KustomizationSchema.parse(parseSingle(join(DEPLOY_DIR, "kustomization.yaml")));
}

function parseSingle(path: string): unknown {
  const docs = parseAllDocuments(readFileSync(path, "utf8"));
  const [doc] = docs;
  if (docs.length !== 1 || !doc) throw new Error(`${path}: expected one YAML document`);
  if (doc.errors.length) throw new Error(`${path}: ${doc.errors.map((e) => e.message).join("; ")}`);
  return doc.toJS();
}

/** Every object of every resource file, in kustomization order; throws naming the file on a YAML error. */
export function readBase(k: Kustomization = readKustomization()): BaseObject[] {
  const out: BaseObject[] = [];
  for (const file of k.resources) {
    const docs = parseAllDocuments(readFileSync(join(DEPLOY_DIR, file), "utf8"));
    for (const doc of docs) {
      if (doc.errors.length) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join("; ")}`);
      const raw: unknown = doc.toJS();
      if (raw === null) continue; // an empty document (e.g. a trailing ---)
      const head = ObjectHead.parse(raw);
      out.push({
        file,
        apiVersion: head.apiVersion,
        kind: head.kind,
        name: head.metadata.name,
        namespace: head.metadata.namespace,
        raw: raw as Record<string, unknown>,
      });
    }
  }
  return out;
}

/** Validates one object against its Kubernetes schema; returns the problem text, or undefined when valid. */
export function schemaProblem(o: BaseObject): string | undefined {
  const Model = MODELS[`${o.apiVersion}/${o.kind}`];
  if (!Model) return `${o.file}: ${o.apiVersion} ${o.kind} has no schema in this test (add it to MODELS)`;
  try {
    new Model(o.raw as never).validate();
    return undefined;
  } catch (err) {
    return `${o.file}: ${o.kind} ${o.name}: ${err instanceof Error ? err.message : String(err)}`;
  }
}

/** The agent config (agent.yaml) that agent/deploy/base/configmap.yaml ships, as YAML text. */
export function shippedAgentYaml(): string {
  const cm = z
    .object({ data: z.object({ "agent.yaml": z.string() }) })
    .parse(parseYaml(readFileSync(join(DEPLOY_DIR, "configmap.yaml"), "utf8")));
  return cm.data["agent.yaml"];
}

/** The agent config that agent/deploy/base/configmap.yaml ships, parsed with the agent's schema. */
export function shippedAgentConfig(): AgentConfig {
  return AgentConfigSchema.parse(parseYaml(shippedAgentYaml()));
}
