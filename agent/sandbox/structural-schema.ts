/**
 * What kube-apiserver does with a custom resource's structural schema (a CRD version's
 * `schema.openAPIV3Schema`) on every write: prune the fields the schema does not declare, then
 * validate what is left (`type`, `required`, `enum`, `minimum`/`maximum`, `minItems`/`maxItems`,
 * `pattern`). Pruning follows "Specifying a structural schema" in the Kubernetes docs:
 * `x-kubernetes-preserve-unknown-fields: true` keeps a subtree, `additionalProperties` types a map,
 * `x-kubernetes-embedded-resource` keeps apiVersion/kind/metadata. `apiVersion`, `kind` and
 * `metadata` at the root are never pruned.
 */
import { isJsonObject, type Json, type JsonObject } from "./kube-patch.ts";

/** The outcome of {@link pruneAndValidate}: the pruned object, the dropped paths, the problems. */
export interface SchemaResult {
  value: Json;
  /** Dotted paths of the fields pruned (`spec.foo`), for `fieldValidation=Strict|Warn`. */
  unknown: string[];
  /** kube-apiserver-style messages (`spec.instances: Invalid value: "3": … must be of type integer`). */
  problems: string[];
}

const ROOT_KEPT = new Set(["apiVersion", "kind", "metadata"]);

function typeName(v: Json): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  return typeof v;
}

function typeMatches(expected: string, v: Json): boolean {
  const actual = typeName(v);
  return actual === expected || (expected === "number" && actual === "integer");
}

function walk(value: Json, schema: JsonObject, path: string, out: SchemaResult, root: boolean): Json {
  if (value === null && schema.nullable === true) return value;
  const intOrString = schema["x-kubernetes-int-or-string"] === true;
  const expected = typeof schema.type === "string" ? schema.type : undefined;
  if (intOrString) {
    if (typeof value !== "string" && !(typeof value === "number" && Number.isInteger(value))) {
      out.problems.push(
        `${path}: Invalid value: ${JSON.stringify(value)}: ${path} in body must be an integer or a string`,
      );
    }
  } else if (expected && !typeMatches(expected, value)) {
    out.problems.push(
      `${path}: Invalid value: "${typeName(value)}": ${path} in body must be of type ${expected}: "${typeName(value)}"`,
    );
    return value;
  }
  if (Array.isArray(schema.enum) && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(value))) {
    out.problems.push(
      `${path}: Unsupported value: ${JSON.stringify(value)}: supported values: ${schema.enum.map((e) => JSON.stringify(e)).join(", ")}`,
    );
  }
  if (typeof value === "number") {
    if (typeof schema.minimum === "number" && value < schema.minimum) {
      out.problems.push(
        `${path}: Invalid value: ${value}: ${path} in body should be greater than or equal to ${schema.minimum}`,
      );
    }
    if (typeof schema.maximum === "number" && value > schema.maximum) {
      out.problems.push(
        `${path}: Invalid value: ${value}: ${path} in body should be less than or equal to ${schema.maximum}`,
      );
    }
  }
  if (typeof value === "string" && typeof schema.pattern === "string" && !new RegExp(schema.pattern, "u").test(value)) {
    out.problems.push(
      `${path}: Invalid value: ${JSON.stringify(value)}: ${path} in body should match '${schema.pattern}'`,
    );
  }
  if (Array.isArray(value)) {
    if (typeof schema.minItems === "number" && value.length < schema.minItems) {
      out.problems.push(
        `${path}: Invalid value: ${value.length}: ${path} in body should have at least ${schema.minItems} items`,
      );
    }
    if (typeof schema.maxItems === "number" && value.length > schema.maxItems) {
      out.problems.push(`${path}: Too many: ${value.length}: must have at most ${schema.maxItems} items`);
    }
    const items = isJsonObject(schema.items) ? schema.items : undefined;
    return items ? value.map((v, i) => walk(v, items, `${path}[${i}]`, out, false)) : value;
  }
  if (!isJsonObject(value)) return value;
  const properties = isJsonObject(schema.properties) ? schema.properties : undefined;
  const additional = schema.additionalProperties;
  const preserve = schema["x-kubernetes-preserve-unknown-fields"] === true;
  const embedded = schema["x-kubernetes-embedded-resource"] === true;
  const result: JsonObject = {};
  for (const [key, v] of Object.entries(value)) {
    const childPath = path === "" ? key : `${path}.${key}`;
    const declared = properties?.[key];
    // The root's (and an embedded resource's) type meta and metadata are the server's, whatever the schema says.
    if ((root || embedded) && ROOT_KEPT.has(key)) result[key] = v;
    else if (isJsonObject(declared)) result[key] = walk(v, declared, childPath, out, false);
    else if (isJsonObject(additional)) result[key] = walk(v, additional, childPath, out, false);
    else if (preserve || additional === true) result[key] = v;
    else out.unknown.push(childPath);
  }
  for (const key of Array.isArray(schema.required) ? schema.required : []) {
    if (typeof key === "string" && !(key in result)) {
      out.problems.push(`${path === "" ? key : `${path}.${key}`}: Required value`);
    }
  }
  return result;
}

/** Prunes `value` to `schema` and validates it, as kube-apiserver does for a custom resource. */
export function pruneAndValidate(value: Json, schema: JsonObject): SchemaResult {
  const out: SchemaResult = { value, unknown: [], problems: [] };
  out.value = walk(value, schema, "", out, true);
  return out;
}
