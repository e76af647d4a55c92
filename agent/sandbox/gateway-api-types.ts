/**
 * Every kind of `@kubernetes-models/gateway-api` as a resource type of the fake API, found in the
 * package itself (a model class with static `apiVersion` and `kind` beside its `<Kind>List` is a
 * top-level resource), and each write validated by that model's schema (`validate()`), so the
 * shapes are the Gateway API's, never hand-written here.
 *
 * Two facts the models do not carry come from the Gateway API CRDs (config/crd in
 * kubernetes-sigs/gateway-api): GatewayClass and XMesh are cluster-scoped, every other kind is
 * namespaced; the plural is the lower-cased kind plus "s" ("es" after s/x, "ies" after a
 * consonant and y: backendtlspolicies).
 */
import * as gatewayApi from "@kubernetes-models/gateway-api";
import type { KubeObject, ResourceType } from "./fake-kube-api.ts";

const CLUSTER_SCOPED = new Set(["GatewayClass", "XMesh"]);

interface ModelClass {
  apiVersion: string;
  kind: string;
  new (data: unknown): { validate(): void };
}

interface ValidationIssue {
  instancePath?: string;
  message?: string;
}

function isModelClass(v: unknown): v is ModelClass {
  return (
    typeof v === "function" &&
    typeof (v as { apiVersion?: unknown }).apiVersion === "string" &&
    typeof (v as { kind?: unknown }).kind === "string"
  );
}

/** The plural resource name of a kind, as the Gateway API CRDs spell it. */
export function pluralOf(kind: string): string {
  const lower = kind.toLowerCase();
  if (/[^aeiou]y$/.test(lower)) return `${lower.slice(0, -1)}ies`;
  if (/(s|x|ch|sh)$/.test(lower)) return `${lower}es`;
  return `${lower}s`;
}

/** The model's schema problems with `obj`, as `<field path>: <message>` (none when valid). */
function problemsOf(model: ModelClass, obj: KubeObject): string[] {
  try {
    new model(obj).validate();
    return [];
  } catch (e) {
    const issues = (e as { errors?: ValidationIssue[] }).errors;
    if (!Array.isArray(issues)) return [e instanceof Error ? e.message : String(e)];
    const lines = issues.map((i) => {
      const path = (i.instancePath ?? "").split("/").filter(Boolean).join(".");
      return `${path || "<root>"}: Invalid value: ${i.message ?? "does not match the schema"}`;
    });
    return [...new Set(lines)];
  }
}

function modelsOf(groupModule: Record<string, unknown>): ModelClass[] {
  const out: ModelClass[] = [];
  for (const versionModule of Object.values(groupModule)) {
    if (typeof versionModule !== "object" || versionModule === null) continue;
    const exports = versionModule as Record<string, unknown>;
    for (const [name, value] of Object.entries(exports)) {
      if (isModelClass(value) && value.kind === name && isModelClass(exports[`${name}List`])) out.push(value);
    }
  }
  return out;
}

/** The resource types of every Gateway API kind and version the package ships. */
export function gatewayApiResourceTypes(): ResourceType[] {
  const groups = [gatewayApi.gatewayNetworkingK8sIo, gatewayApi.gatewayNetworkingXK8sIo] as unknown as Record<
    string,
    unknown
  >[];
  return groups.flatMap(modelsOf).map((model): ResourceType => {
    const [group = "", version = ""] = model.apiVersion.split("/");
    return {
      group,
      version,
      resource: pluralOf(model.kind),
      kind: model.kind,
      namespaced: !CLUSTER_SCOPED.has(model.kind),
      subresources: ["status"],
      singular: model.kind.toLowerCase(),
      categories: group === "gateway.networking.k8s.io" ? ["gateway-api"] : [],
      custom: true,
      check: (obj) => problemsOf(model, obj),
    };
  });
}
