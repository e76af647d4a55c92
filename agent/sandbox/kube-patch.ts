/**
 * The three patch formats the Kubernetes API accepts (plus apply's merge), as pure functions on
 * JSON values, for the fake API server (agent/sandbox/fake-kube-api.ts).
 *
 * - JSON Patch, RFC 6902 (`application/json-patch+json`).
 * - JSON Merge Patch, RFC 7386 (`application/merge-patch+json`).
 * - Strategic merge patch (`application/strategic-merge-patch+json`): merge patch, except that
 *   lists of objects keyed by `name` (containers, env, volumes, ports…) merge element-wise and an
 *   element `{"$patch": "delete"}` removes its match. Real Kubernetes takes the merge key per field
 *   from the OpenAPI schema; keying on `name` covers the fields the agent patches.
 */

/** A patch that cannot be applied (bad operation, failed `test`, missing path). */
export class PatchError extends Error {
  override readonly name = "PatchError";
}

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Decodes an RFC 6901 JSON pointer into reference tokens. */
function pointerTokens(pointer: string): string[] {
  if (pointer === "") return [];
  if (!pointer.startsWith("/")) throw new PatchError(`invalid JSON pointer ${JSON.stringify(pointer)}`);
  return pointer
    .slice(1)
    .split("/")
    .map((t) => t.replace(/~1/g, "/").replace(/~0/g, "~"));
}

function getAt(doc: Json, tokens: string[]): Json | undefined {
  let cur: Json | undefined = doc;
  for (const t of tokens) {
    if (Array.isArray(cur)) {
      const i = Number(t);
      if (!/^\d+$/.test(t) || i >= cur.length) return undefined;
      cur = cur[i];
    } else if (isJsonObject(cur)) {
      if (!Object.hasOwn(cur, t)) return undefined;
      cur = cur[t];
    } else return undefined;
  }
  return cur;
}

function parentOf(doc: Json, tokens: string[], op: string): { parent: Json; key: string } {
  const key = tokens[tokens.length - 1];
  if (key === undefined) throw new PatchError(`${op}: the root cannot be the target`);
  const parent = getAt(doc, tokens.slice(0, -1));
  if (parent === undefined || typeof parent !== "object" || parent === null) {
    throw new PatchError(`${op}: parent of /${tokens.join("/")} does not exist`);
  }
  return { parent, key };
}

function addAt(doc: Json, tokens: string[], value: Json): Json {
  if (tokens.length === 0) return value;
  const { parent, key } = parentOf(doc, tokens, "add");
  if (Array.isArray(parent)) {
    const i = key === "-" ? parent.length : Number(key);
    if (!(key === "-" || /^\d+$/.test(key)) || i > parent.length) throw new PatchError(`add: bad array index ${key}`);
    parent.splice(i, 0, value);
  } else if (isJsonObject(parent)) parent[key] = value;
  return doc;
}

function removeAt(doc: Json, tokens: string[]): Json {
  const { parent, key } = parentOf(doc, tokens, "remove");
  if (Array.isArray(parent)) {
    const i = Number(key);
    if (!/^\d+$/.test(key) || i >= parent.length) throw new PatchError(`remove: no element /${tokens.join("/")}`);
    parent.splice(i, 1);
  } else if (isJsonObject(parent)) {
    if (!Object.hasOwn(parent, key)) throw new PatchError(`remove: no member /${tokens.join("/")}`);
    delete parent[key];
  }
  return doc;
}

/** Applies an RFC 6902 JSON Patch; throws {@link PatchError} on any failed operation. */
export function applyJsonPatch(target: Json, patch: unknown): Json {
  if (!Array.isArray(patch)) throw new PatchError("a JSON patch must be an array of operations");
  let doc = structuredClone(target);
  for (const raw of patch) {
    if (!isJsonObject(raw) || typeof raw.op !== "string" || typeof raw.path !== "string") {
      throw new PatchError(`invalid JSON patch operation ${JSON.stringify(raw)}`);
    }
    const tokens = pointerTokens(raw.path);
    switch (raw.op) {
      case "add":
        if (!("value" in raw)) throw new PatchError("add: missing value");
        doc = addAt(doc, tokens, structuredClone(raw.value as Json));
        break;
      case "remove":
        doc = removeAt(doc, tokens);
        break;
      case "replace":
        if (getAt(doc, tokens) === undefined) throw new PatchError(`replace: ${raw.path} does not exist`);
        if (!("value" in raw)) throw new PatchError("replace: missing value");
        doc =
          tokens.length === 0
            ? structuredClone(raw.value as Json)
            : addAt(removeAt(doc, tokens), tokens, structuredClone(raw.value as Json));
        break;
      case "move":
      case "copy": {
        if (typeof raw.from !== "string") throw new PatchError(`${raw.op}: missing from`);
        const fromTokens = pointerTokens(raw.from);
        const value = getAt(doc, fromTokens);
        if (value === undefined) throw new PatchError(`${raw.op}: ${raw.from} does not exist`);
        if (raw.op === "move") doc = removeAt(doc, fromTokens);
        doc = addAt(doc, tokens, structuredClone(value));
        break;
      }
      case "test": {
        const actual = getAt(doc, tokens);
        if (actual === undefined || !deepEqual(actual, raw.value as Json)) {
          throw new PatchError(`test failed: ${raw.path} is not ${JSON.stringify(raw.value)}`);
        }
        break;
      }
      default:
        throw new PatchError(`unknown JSON patch operation ${JSON.stringify(raw.op)}`);
    }
  }
  return doc;
}

/** Applies an RFC 7386 JSON Merge Patch (null deletes, objects merge, everything else replaces). */
export function applyMergePatch(target: Json | undefined, patch: Json): Json {
  if (!isJsonObject(patch)) return structuredClone(patch);
  const out: JsonObject = isJsonObject(target) ? structuredClone(target) : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else out[key] = applyMergePatch(out[key], value);
  }
  return out;
}

function isNamedList(list: Json[]): list is JsonObject[] {
  return list.length > 0 && list.every((e) => isJsonObject(e) && typeof e.name === "string");
}

/** Applies a strategic merge patch (merge patch + lists of `name`-keyed objects merged by name). */
export function applyStrategicMergePatch(target: Json | undefined, patch: Json): Json {
  if (Array.isArray(patch)) {
    if (Array.isArray(target) && isNamedList(patch) && (target.length === 0 || isNamedList(target))) {
      const out = structuredClone(target) as JsonObject[];
      for (const item of patch) {
        const i = out.findIndex((e) => e.name === item.name);
        if (item.$patch === "delete") {
          if (i >= 0) out.splice(i, 1);
        } else if (i >= 0) out[i] = applyStrategicMergePatch(out[i], item) as JsonObject;
        else out.push(applyStrategicMergePatch(undefined, item) as JsonObject);
      }
      return out;
    }
    return structuredClone(patch).filter((e) => !(isJsonObject(e) && e.$patch === "delete"));
  }
  if (!isJsonObject(patch)) return structuredClone(patch);
  if (patch.$patch === "replace") {
    const { $patch: _, ...rest } = patch;
    return structuredClone(rest);
  }
  const out: JsonObject = isJsonObject(target) ? structuredClone(target) : {};
  for (const [key, value] of Object.entries(patch)) {
    if (key.startsWith("$")) continue;
    if (value === null) delete out[key];
    else out[key] = applyStrategicMergePatch(out[key], value);
  }
  return out;
}

/** Structural equality of JSON values (object key order ignored). */
export function deepEqual(a: Json | undefined, b: Json | undefined): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((v, i) => deepEqual(v, b[i]));
  if (isJsonObject(a) && isJsonObject(b)) {
    const ka = Object.keys(a);
    if (ka.length !== Object.keys(b).length) return false;
    return ka.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k]));
  }
  return false;
}
