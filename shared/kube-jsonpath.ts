/**
 * JSONPath as kubectl spells it (`{.spec.rules[0].backendRefs[0].weight}`, design §11.2), checked
 * and translated to the bracket form jsonpath-plus evaluates. Kept free of zod and of jsonpath-plus
 * so the config schema (bundled into the worker too) can check the syntax without either.
 *
 * Accepted: one `{…}` template holding `.field` (a `\.` inside a field name is a literal dot, as in
 * kubectl: `{.metadata.annotations.kubectl\.kubernetes\.io/restartedAt}`), `['field']`, `[n]`,
 * `[*]` and filters `[?(@.type=="Ready")]`. Not accepted: several templates, `range`, recursive
 * descent, text around the braces: each path must name one value.
 */

/** The translation of a kubectl JSONPath, or why it is not one. */
export type KubeJsonPath = { ok: true; expression: string } | { ok: false; message: string };

const FIELD = /^(?:[A-Za-z0-9_$/-]|\\\.)+/;

/** Checks `text` and translates it to a jsonpath-plus expression (`$['spec']['rules'][0]`). */
export function parseKubeJsonPath(text: string): KubeJsonPath {
  const bad = (why: string): KubeJsonPath => ({
    ok: false,
    message: `${JSON.stringify(text)} is not a kubectl JSONPath (${why}); e.g. {.spec.rules[0].backendRefs[0].weight}`,
  });
  if (!text.startsWith("{") || !text.endsWith("}")) return bad("it must be one {…} template");
  let rest = text.slice(1, -1).trim();
  if (rest.startsWith("$")) rest = rest.slice(1);
  if (rest === "") return bad("it names no field");
  let out = "$";
  while (rest.length > 0) {
    if (rest.startsWith("..")) return bad("recursive descent selects many values");
    if (rest.startsWith(".")) {
      const m = FIELD.exec(rest.slice(1));
      if (!m) return bad(`a field name is expected after "." at ${JSON.stringify(rest)}`);
      out += `[${JSON.stringify(m[0].replaceAll("\\.", "."))}]`;
      rest = rest.slice(1 + m[0].length);
      continue;
    }
    if (rest.startsWith("[")) {
      const close = closingBracket(rest);
      if (close < 0) return bad("a [ is never closed");
      const inner = rest.slice(1, close).trim();
      rest = rest.slice(close + 1);
      if (/^-?\d+$/.test(inner) || inner === "*") out += `[${inner}]`;
      else if (/^'[^']*'$/.test(inner) || /^"[^"]*"$/.test(inner)) out += `[${JSON.stringify(inner.slice(1, -1))}]`;
      else if (/^\?\(.+\)$/.test(inner)) out += `[${inner}]`;
      else return bad(`[${inner}] is not an index, '*', a quoted name or a ?(…) filter`);
      continue;
    }
    return bad(`unexpected ${JSON.stringify(rest[0])}`);
  }
  return { ok: true, expression: out };
}

/** The index of the `]` closing the `[` at 0, skipping quoted text and nested brackets; -1 if none. */
function closingBracket(text: string): number {
  let depth = 0;
  let quote: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === quote) quote = undefined;
      continue;
    }
    if (c === "'" || c === '"') quote = c;
    else if (c === "[") depth += 1;
    else if (c === "]") {
      depth -= 1;
      if (depth === 0) return i;
    }
  }
  return -1;
}
