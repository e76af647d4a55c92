/**
 * The fake API's OpenAPI v3 documents (`/openapi/v3` and `/openapi/v3/<api|apis/group>/<version>`),
 * which kubectl reads for `explain` and client-side validation. The schemas are derived from the
 * real resource definitions as `@kubernetes/client-node` models them (each generated model's
 * `attributeTypeMap`: JSON field name, TypeScript type, OpenAPI format), never written by hand.
 * Descriptions are absent: the generated models do not carry them. A CRD's kinds get the
 * CRD's own `openAPIV3Schema`, as kube-apiserver publishes it; kinds with neither (StaticRoute,
 * the Gateway API kinds, whose package ships compiled validators rather than schemas) get
 * kube-apiserver's schema for a CRD without one: any fields.
 *
 * Every kind's path also has a `patch` operation listing the `fieldValidation` and `dryRun`
 * query parameters: kubectl looks for them there (cli-runtime's query_param_verifier_v3.go)
 * before it sends `fieldValidation=Strict` or `dryRun=All`.
 */
import * as k8s from "@kubernetes/client-node";
import type { ResourceType } from "./fake-kube-api.ts";
import { isJsonObject, type JsonObject } from "./kube-patch.ts";

interface Attribute {
  baseName: string;
  type: string;
  format: string;
}

interface Model {
  getAttributeTypeMap(): Attribute[];
}

function model(name: string): Model | undefined {
  const found: unknown = (k8s as Record<string, unknown>)[name];
  return typeof found === "function" && "getAttributeTypeMap" in found ? (found as unknown as Model) : undefined;
}

/** The client-node model class for a served type: V1Node, V1Deployment, EventsV1Event, … */
function modelName(t: ResourceType): string | undefined {
  if (t.custom) return undefined;
  const version = `${t.version.charAt(0).toUpperCase()}${t.version.slice(1)}`;
  const candidates = t.group === "events.k8s.io" ? [`Events${version}${t.kind}`] : [`${version}${t.kind}`];
  return candidates.find((c) => model(c) !== undefined);
}

function schemaOf(type: string, format: string, defs: Map<string, JsonObject>): JsonObject {
  const array = /^Array<(.+)>$/.exec(type);
  if (array) return { type: "array", items: schemaOf(array[1] ?? "any", "", defs) };
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) return { type: "object", additionalProperties: schemaOf(map[1] ?? "any", "", defs) };
  switch (type) {
    case "string":
      return format ? { type: "string", format } : { type: "string" };
    case "number":
      return format.startsWith("int") ? { type: "integer", format } : { type: "number", ...(format ? { format } : {}) };
    case "boolean":
      return { type: "boolean" };
    case "Date":
      return { type: "string", format: "date-time" };
    case "IntOrString":
      return { "x-kubernetes-int-or-string": true };
    case "any":
      return { type: "object", "x-kubernetes-preserve-unknown-fields": true };
  }
  if (!model(type)) return { type: "object", "x-kubernetes-preserve-unknown-fields": true };
  define(type, defs);
  return { allOf: [{ $ref: `#/components/schemas/${type}` }] };
}

function define(name: string, defs: Map<string, JsonObject>): JsonObject {
  const existing = defs.get(name);
  if (existing) return existing;
  const schema: JsonObject = { type: "object", properties: {} };
  defs.set(name, schema);
  const properties: JsonObject = {};
  for (const a of model(name)?.getAttributeTypeMap() ?? []) properties[a.baseName] = schemaOf(a.type, a.format, defs);
  schema.properties = properties;
  return schema;
}

/** `api/v1`, `apis/apps/v1`: the OpenAPI v3 path of a group-version. */
export function groupVersionPath(group: string, version: string): string {
  return group === "" ? `api/${version}` : `apis/${group}/${version}`;
}

/** The `/openapi/v3` discovery document: one entry per served group-version. */
export function openApiIndex(types: readonly ResourceType[]): JsonObject {
  const paths: JsonObject = {};
  for (const t of types) {
    const p = groupVersionPath(t.group, t.version);
    paths[p] = { serverRelativeURL: `/openapi/v3/${p}` };
  }
  return { paths };
}

/** The OpenAPI v3 document of one group-version, or undefined when none of its types is served. */
export function openApiDocument(
  types: readonly ResourceType[],
  group: string,
  version: string,
): JsonObject | undefined {
  const served = types.filter((t) => t.group === group && t.version === version);
  if (served.length === 0) return undefined;
  const defs = new Map<string, JsonObject>();
  const paths: JsonObject = {};
  for (const t of served) {
    const gvk = [{ group: t.group, version: t.version, kind: t.kind }];
    // A custom kind is named as kube-apiserver names it (io.cnpg.postgresql.v1.Cluster), never
    // colliding with a built-in model of the same kind.
    const name = modelName(t) ?? `${t.group.split(".").reverse().join(".")}.${t.version}.${t.kind}`;
    // kubectl explain finds a resource's kind through its read operation's GVK (explain's template).
    const path = `/${groupVersionPath(t.group, t.version)}/${t.namespaced ? "namespaces/{namespace}/" : ""}${t.resource}/{name}`;
    const query = (param: string) => ({ name: param, in: "query", schema: { type: "string", uniqueItems: true } });
    paths[path] = {
      patch: {
        operationId: `patch${t.kind}`,
        "x-kubernetes-action": "patch",
        "x-kubernetes-group-version-kind": { group: t.group, version: t.version, kind: t.kind },
        parameters: [query("dryRun"), query("fieldManager"), query("fieldValidation"), query("force")],
        responses: { "200": { description: "OK" } },
      },
      get: {
        operationId: `read${t.kind}`,
        "x-kubernetes-action": "get",
        "x-kubernetes-group-version-kind": { group: t.group, version: t.version, kind: t.kind },
        responses: {
          "200": {
            description: "OK",
            content: { "application/json": { schema: { $ref: `#/components/schemas/${name}` } } },
          },
        },
      },
    };
    if (modelName(t)) {
      define(name, defs)["x-kubernetes-group-version-kind"] = gvk;
      continue;
    }
    define("V1ObjectMeta", defs);
    if (t.schema) {
      const properties = isJsonObject(t.schema.properties) ? t.schema.properties : {};
      defs.set(name, {
        ...t.schema,
        type: "object",
        properties: {
          ...properties,
          apiVersion: { type: "string" },
          kind: { type: "string" },
          metadata: { allOf: [{ $ref: "#/components/schemas/V1ObjectMeta" }] },
        },
        "x-kubernetes-group-version-kind": gvk,
      });
      continue;
    }
    defs.set(name, {
      type: "object",
      "x-kubernetes-preserve-unknown-fields": true,
      properties: {
        apiVersion: { type: "string" },
        kind: { type: "string" },
        metadata: { allOf: [{ $ref: "#/components/schemas/V1ObjectMeta" }] },
      },
      "x-kubernetes-group-version-kind": gvk,
    });
  }
  return {
    openapi: "3.0.0",
    info: { title: "Kubernetes (turnout fake API)", version: "v1.31.0" },
    paths,
    components: { schemas: Object.fromEntries(defs) },
  };
}
