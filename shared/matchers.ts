/**
 * Alertmanager-syntax label matchers (design §4): `name="v"`, `name!="v"`, `name=~"re"`,
 * `name!~"re"`. Regexes are fully anchored, and a label that is absent matches as the empty
 * string, exactly as Alertmanager's `labels.Matcher` does.
 */

export type MatchOp = "=" | "!=" | "=~" | "!~";

export interface Matcher {
  readonly name: string;
  readonly op: MatchOp;
  readonly value: string;
  /** Present for `=~` and `!~`: the anchored regex. */
  readonly regex?: RegExp;
}

const MATCHER = /^\s*([A-Za-z_][A-Za-z0-9_.:-]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$/s;

/**
 * The matcher's value as Alertmanager's parser reads it (`pkg/labels/parse.go`): optional
 * surrounding double quotes; `\n`, `\"` and `\\` are escapes, and any other backslash is kept
 * as it is (a "spurious escape"), so `gateway=~"10\.116\..*"` means the regex `10\.116\..*`.
 * An unescaped `"` inside the value is an error.
 */
function unquote(raw: string): string {
  const quoted = raw.startsWith('"');
  const body = quoted ? raw.slice(1) : raw;
  let out = "";
  let closed = !quoted;
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (c === "\\" && i < body.length - 1) {
      const next = body[++i];
      out += next === "n" ? "\n" : next === '"' || next === "\\" ? next : `\\${next}`;
    } else if (c === '"') {
      if (!quoted || i < body.length - 1) throw new Error("unescaped double quote in the value");
      closed = true;
    } else {
      out += c;
    }
  }
  if (!closed) throw new Error("missing closing double quote");
  return out;
}

/**
 * An anchored RegExp for an RE2 pattern: a leading `(?i)`, `(?s)` or `(?is)` becomes JS flags;
 * patterns that are valid RE2 but not valid in JS's unicode mode (`\-` outside a class) are
 * compiled without it.
 */
function anchored(pattern: string): RegExp {
  const inline = /^\(\?([is]+)\)/.exec(pattern);
  const flags = inline?.[1] ?? "";
  const source = `^(?:${inline ? pattern.slice(inline[0].length) : pattern})$`;
  try {
    return new RegExp(source, `${flags}u`);
  } catch {
    return new RegExp(source, flags);
  }
}

/** Parses one matcher; throws an Error whose message says what is wrong. */
export function parseMatcher(text: string): Matcher {
  const m = MATCHER.exec(text);
  if (!m)
    throw new Error(
      `not a matcher: ${JSON.stringify(text)} (expected name="value", name!="value", name=~"re" or name!~"re")`,
    );
  const [, name = "", op = "=", rawValue = ""] = m;
  let value: string;
  try {
    value = unquote(rawValue);
  } catch (err) {
    throw new Error(`bad quoting in matcher ${JSON.stringify(text)}: ${(err as Error).message}`);
  }
  if (op === "=~" || op === "!~") {
    try {
      return { name, op, value, regex: anchored(value) };
    } catch (err) {
      throw new Error(`invalid regex in matcher ${JSON.stringify(text)}: ${(err as Error).message}`);
    }
  }
  return { name, op: op as MatchOp, value };
}

/** True when the matcher accepts the labels (absent labels match as ""). */
export function matches(matcher: Matcher, labels: Readonly<Record<string, string>>): boolean {
  const actual = labels[matcher.name] ?? "";
  switch (matcher.op) {
    case "=":
      return actual === matcher.value;
    case "!=":
      return actual !== matcher.value;
    case "=~":
      return matcher.regex?.test(actual) ?? false;
    case "!~":
      return !(matcher.regex?.test(actual) ?? false);
  }
}

/** True when every matcher in the list accepts the labels. An empty list matches nothing. */
export function matchesAll(list: readonly Matcher[], labels: Readonly<Record<string, string>>): boolean {
  return list.length > 0 && list.every((m) => matches(m, labels));
}
