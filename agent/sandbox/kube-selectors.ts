/**
 * Kubernetes label and field selectors as the API server parses them, for the fake API server.
 * Label syntax (k8s.io/apimachinery/pkg/labels): `a=b`, `a==b`, `a!=b`, `a`, `!a`,
 * `a in (x,y)`, `a notin (x,y)`, comma = AND. Field selectors: `path=value`, `path==value`,
 * `path!=value` on dotted paths such as `metadata.name` or `involvedObject.name`.
 */

/** A selector the server cannot parse (the API answers 400 BadRequest). */
export class SelectorError extends Error {
  override readonly name = "SelectorError";
}

type Requirement = (labels: Record<string, string>) => boolean;

/** Splits on commas that are not inside parentheses. */
function splitTerms(selector: string): string[] {
  const terms: string[] = [];
  let depth = 0;
  let cur = "";
  for (const ch of selector) {
    if (ch === "(") depth++;
    if (ch === ")") depth--;
    if (ch === "," && depth === 0) {
      terms.push(cur.trim());
      cur = "";
    } else cur += ch;
  }
  if (cur.trim() !== "" || terms.length > 0) terms.push(cur.trim());
  return terms.filter((t) => t !== "");
}

/** Parses a label selector into a predicate; throws {@link SelectorError} when malformed. */
export function parseLabelSelector(
  selector: string | undefined,
): (labels: Record<string, string> | undefined) => boolean {
  if (!selector || selector.trim() === "") return () => true;
  const reqs: Requirement[] = splitTerms(selector).map((term) => {
    let m = /^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(term);
    if (m) {
      const [, key = "", op, list = ""] = m;
      const values = new Set(list.split(",").map((v) => v.trim()));
      return op === "in"
        ? (l) => key in l && values.has(l[key] ?? "")
        : (l) => !(key in l) || !values.has(l[key] ?? "");
    }
    m = /^([\w./-]+)\s*(==|=|!=)\s*([\w.-]*)$/.exec(term);
    if (m) {
      const [, key = "", op, value = ""] = m;
      return op === "!=" ? (l) => l[key] !== value : (l) => l[key] === value;
    }
    m = /^(!?)([\w./-]+)$/.exec(term);
    if (m) {
      const [, not, key = ""] = m;
      return not ? (l) => !(key in l) : (l) => key in l;
    }
    throw new SelectorError(`unable to parse requirement: ${JSON.stringify(term)}`);
  });
  return (labels) => reqs.every((r) => r(labels ?? {}));
}

function valueAt(obj: unknown, path: string): string | undefined {
  let cur: unknown = obj;
  for (const part of path.split(".")) {
    if (typeof cur !== "object" || cur === null) return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  if (cur === undefined || cur === null) return undefined;
  return typeof cur === "string" ? cur : String(cur);
}

/** Parses a field selector into a predicate on whole objects; throws {@link SelectorError}. */
export function parseFieldSelector(selector: string | undefined): (obj: unknown) => boolean {
  if (!selector || selector.trim() === "") return () => true;
  const reqs = splitTerms(selector).map((term) => {
    const m = /^([\w.]+)\s*(==|=|!=)\s*(.*)$/.exec(term);
    if (!m) throw new SelectorError(`invalid field selector: ${JSON.stringify(term)}`);
    const [, path = "", op, value = ""] = m;
    // An absent field compares as the empty string, as apiserver field sets do.
    return op === "!="
      ? (o: unknown) => (valueAt(o, path) ?? "") !== value
      : (o: unknown) => (valueAt(o, path) ?? "") === value;
  });
  return (obj) => reqs.every((r) => r(obj));
}
