/**
 * Reading objects by kubectl JSONPath (design §11.6): each path must select exactly one value, and
 * values compare as JSON (`100` ≠ `"100"`); none or several is a mismatch, never a guess.
 */
import { JSONPath } from "jsonpath-plus";
import { parseKubeJsonPath } from "../../shared/kube-jsonpath.ts";

/** What one path selects: exactly one value, or how many there were. */
export type Selected = { one: true; value: unknown } | { one: false; count: number };

/** Evaluates a kubectl JSONPath against `obj`. Throws on a path the config schema would refuse. */
export function select(obj: unknown, path: string): Selected {
  const parsed = parseKubeJsonPath(path);
  if (!parsed.ok) throw new Error(parsed.message);
  const found = JSONPath({ path: parsed.expression, json: obj as object, wrap: true, eval: "safe" }) as unknown[];
  return found.length === 1 ? { one: true, value: found[0] } : { one: false, count: found.length };
}

/** One path that did not hold: what was expected and what the object had. */
export interface Mismatch {
  path: string;
  expected: unknown;
  actual: string;
}

/** The first path of `values` the object does not match, or undefined when all hold. */
export function firstMismatch(obj: unknown, values: Record<string, unknown>): Mismatch | undefined {
  for (const [path, expected] of Object.entries(values)) {
    const s = select(obj, path);
    if (!s.one)
      return { path, expected, actual: s.count === 0 ? "nothing (the path selects no value)" : `${s.count} values` };
    if (!jsonEqual(s.value, expected)) return { path, expected, actual: JSON.stringify(s.value) };
  }
  return undefined;
}

/** `path is <actual>, expected <expected>`: the words of a precondition-failed or a wait. */
export function describeMismatch(m: Mismatch): string {
  return `${m.path} is ${m.actual}, expected ${JSON.stringify(m.expected)}`;
}

/** Structural equality of JSON values: types matter, key order does not. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== "object") return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((v, i) => jsonEqual(v, b[i]));
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  const ak = Object.keys(ao).filter((k) => ao[k] !== undefined);
  const bk = Object.keys(bo).filter((k) => bo[k] !== undefined);
  return ak.length === bk.length && ak.every((k) => Object.hasOwn(bo, k) && jsonEqual(ao[k], bo[k]));
}
