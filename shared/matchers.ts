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

function unquote(raw: string): string {
  if (raw.length >= 2 && raw.startsWith('"') && raw.endsWith('"')) {
    // JSON string rules match Alertmanager's Go-style escapes for the common cases (\" \\ \n).
    return JSON.parse(raw) as string;
  }
  return raw;
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
  } catch {
    throw new Error(`bad quoting in matcher ${JSON.stringify(text)}`);
  }
  if (op === "=~" || op === "!~") {
    try {
      return { name, op, value, regex: new RegExp(`^(?:${value})$`, "u") };
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
