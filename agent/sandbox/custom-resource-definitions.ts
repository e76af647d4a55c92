/**
 * `apiextensions.k8s.io/v1` CustomResourceDefinitions in the fake API: the checks kube-apiserver
 * makes on a CRD (name is `<plural>.<group>`, a scope, at least one served version, exactly one
 * storage version), the status it publishes once the names are accepted (`NamesAccepted` and
 * `Established` True, `acceptedNames`, `storedVersions`), and the resource types a CRD serves: one
 * per served version, with its `openAPIV3Schema` and its `status`/`scale` subresources.
 */
import type { KubeObject, ResourceType } from "./fake-kube-api.ts";
import { isJsonObject, type Json, type JsonObject } from "./kube-patch.ts";

/** The CustomResourceDefinition type itself. */
export const CRD_TYPE: ResourceType = {
  group: "apiextensions.k8s.io",
  version: "v1",
  resource: "customresourcedefinitions",
  kind: "CustomResourceDefinition",
  namespaced: false,
  subresources: ["status"],
  singular: "customresourcedefinition",
  shortNames: ["crd", "crds"],
};

interface CrdNames {
  plural: string;
  singular: string;
  kind: string;
  listKind: string;
  shortNames: string[];
  categories: string[];
}

function strings(v: Json | undefined): string[] {
  return Array.isArray(v) ? v.filter((s): s is string => typeof s === "string") : [];
}

function namesOf(spec: JsonObject): CrdNames | undefined {
  const n = isJsonObject(spec.names) ? spec.names : undefined;
  if (!n || typeof n.plural !== "string" || typeof n.kind !== "string") return undefined;
  return {
    plural: n.plural,
    kind: n.kind,
    singular: typeof n.singular === "string" && n.singular !== "" ? n.singular : n.kind.toLowerCase(),
    listKind: typeof n.listKind === "string" && n.listKind !== "" ? n.listKind : `${n.kind}List`,
    shortNames: strings(n.shortNames),
    categories: strings(n.categories),
  };
}

function versionsOf(spec: JsonObject): JsonObject[] {
  return Array.isArray(spec.versions) ? spec.versions.filter(isJsonObject) : [];
}

/** What is wrong with a CRD (messages in kube-apiserver's form); empty when it is valid. */
export function crdProblems(crd: KubeObject): string[] {
  const spec = isJsonObject(crd.spec) ? crd.spec : undefined;
  if (!spec) return ["spec: Required value"];
  const problems: string[] = [];
  const group = spec.group;
  if (typeof group !== "string" || !group.includes(".")) {
    problems.push(
      `spec.group: Invalid value: ${JSON.stringify(group ?? "")}: should be a domain with at least one dot`,
    );
  }
  const names = namesOf(spec);
  if (!names) problems.push("spec.names.plural: Required value", "spec.names.kind: Required value");
  else if (crd.metadata.name !== `${names.plural}.${String(group)}`) {
    problems.push(
      `metadata.name: Invalid value: ${JSON.stringify(crd.metadata.name)}: must be spec.names.plural+"."+spec.group`,
    );
  }
  if (spec.scope !== "Namespaced" && spec.scope !== "Cluster") {
    problems.push(
      `spec.scope: Unsupported value: ${JSON.stringify(spec.scope ?? "")}: supported values: "Cluster", "Namespaced"`,
    );
  }
  const versions = versionsOf(spec);
  if (versions.length === 0)
    problems.push("spec.versions: Invalid value: null: must have exactly one version marked as storage version");
  else if (versions.filter((v) => v.storage === true).length !== 1) {
    problems.push("spec.versions: Invalid value: must have exactly one version marked as storage version");
  }
  if (versions.length > 0 && !versions.some((v) => v.served === true)) {
    problems.push("spec.versions: Invalid value: must have at least one version marked as served");
  }
  versions.forEach((v, i) => {
    if (typeof v.name !== "string" || v.name === "") problems.push(`spec.versions[${i}].name: Required value`);
    const schema = isJsonObject(v.schema) ? v.schema.openAPIV3Schema : undefined;
    if (!isJsonObject(schema))
      problems.push(`spec.versions[${i}].schema.openAPIV3Schema: Required value: schemas are required`);
  });
  return problems;
}

/** The status kube-apiserver gives an accepted CRD (`now`: RFC 3339 timestamp of the transition). */
export function crdStatus(crd: KubeObject, previous: Json | undefined, now: string): JsonObject {
  const spec = isJsonObject(crd.spec) ? crd.spec : {};
  const names = namesOf(spec);
  const storage = versionsOf(spec).find((v) => v.storage === true)?.name;
  const old = isJsonObject(previous) ? previous : {};
  const stored = new Set([...strings(old.storedVersions), ...(typeof storage === "string" ? [storage] : [])]);
  const condition = (type: string, reason: string, message: string) => {
    const before = Array.isArray(old.conditions)
      ? old.conditions.find((c) => isJsonObject(c) && c.type === type && c.status === "True")
      : undefined;
    const since =
      isJsonObject(before) && typeof before.lastTransitionTime === "string" ? before.lastTransitionTime : now;
    return { type, status: "True", lastTransitionTime: since, reason, message };
  };
  return {
    acceptedNames: names
      ? {
          plural: names.plural,
          singular: names.singular,
          kind: names.kind,
          listKind: names.listKind,
          ...(names.shortNames.length ? { shortNames: names.shortNames } : {}),
          ...(names.categories.length ? { categories: names.categories } : {}),
        }
      : {},
    conditions: [
      condition("NamesAccepted", "NoConflicts", "no conflicts found"),
      condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
    ],
    storedVersions: [...stored],
  };
}

/** The resource types a valid CRD serves: one per served version. */
export function crdResourceTypes(crd: KubeObject): ResourceType[] {
  const spec = isJsonObject(crd.spec) ? crd.spec : {};
  const names = namesOf(spec);
  if (!names || typeof spec.group !== "string") return [];
  const group = spec.group;
  return versionsOf(spec)
    .filter((v) => v.served === true && typeof v.name === "string")
    .map((v): ResourceType => {
      const sub = isJsonObject(v.subresources) ? v.subresources : {};
      const scale = isJsonObject(sub.scale) ? sub.scale : undefined;
      const schema =
        isJsonObject(v.schema) && isJsonObject(v.schema.openAPIV3Schema) ? v.schema.openAPIV3Schema : undefined;
      return {
        group,
        version: String(v.name),
        resource: names.plural,
        kind: names.kind,
        namespaced: spec.scope === "Namespaced",
        subresources: [...(isJsonObject(sub.status) ? ["status" as const] : []), ...(scale ? ["scale" as const] : [])],
        singular: names.singular,
        shortNames: names.shortNames,
        categories: names.categories,
        custom: true,
        definedBy: crd.metadata.name,
        ...(schema ? { schema } : {}),
        ...(scale && typeof scale.specReplicasPath === "string" && typeof scale.statusReplicasPath === "string"
          ? {
              scale: {
                specReplicasPath: scale.specReplicasPath,
                statusReplicasPath: scale.statusReplicasPath,
                ...(typeof scale.labelSelectorPath === "string" ? { labelSelectorPath: scale.labelSelectorPath } : {}),
              },
            }
          : {}),
      };
    });
}
