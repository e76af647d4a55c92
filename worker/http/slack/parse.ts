/**
 * `/turnout <command>` parsing (design §5b): `help`, `status [target]`, `failover <target> [force]
 * [reason…]`, `failback <target> [reason…]`, `pause|resume|drill|approve|cancel|retry <target>`,
 * and `revert <target>`, `clear <target> <key>`.
 * Typos get a suggestion ("did you mean `failover`?"), unknown targets the closest name.
 */

export const MUTATING_COMMANDS = [
  "failover",
  "failback",
  "pause",
  "resume",
  "drill",
  "approve",
  "cancel",
  "retry",
  "revert",
  "clear",
] as const;
export type MutatingCommand = (typeof MUTATING_COMMANDS)[number];
const ALL_COMMANDS = ["help", "status", ...MUTATING_COMMANDS] as const;

export type SlashCommand =
  | { kind: "help" }
  | { kind: "status"; target?: string }
  | {
      kind: "mutate";
      command: MutatingCommand;
      target: string;
      force: boolean;
      reason: string;
      /** `clear` only: the signal key to clear (e.g. `am:<fingerprint>`, `nagios:host!service`). */
      key?: string;
    };

export type ParseResult = { ok: true; command: SlashCommand } | { ok: false; error: string };

/** Levenshtein distance (small strings: command words and target names). */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}

/** The closest candidate within a sensible distance, if any. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const d = c.startsWith(word) && word.length >= 2 ? 0.5 : editDistance(word, c);
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function unknownTarget(name: string, targets: readonly string[]): string {
  const hint = closest(name, targets);
  return hint
    ? `unknown target \`${name}\`; did you mean \`${hint}\`?`
    : `unknown target \`${name}\`; targets are ${targets.map((t) => `\`${t}\``).join(", ") || "(none configured)"}`;
}

/** Parses the slash command's `text` against the configured target names. */
export function parseSlashCommand(text: string, targets: readonly string[]): ParseResult {
  const words = text.trim().split(/\s+/).filter(Boolean);
  const [first, ...rest] = words;
  if (first === undefined) return { ok: true, command: { kind: "help" } };
  const verb = first.toLowerCase();
  if (verb === "help") return { ok: true, command: { kind: "help" } };
  if (verb === "status") {
    const target = rest[0];
    if (target === undefined) return { ok: true, command: { kind: "status" } };
    if (!targets.includes(target)) return { ok: false, error: unknownTarget(target, targets) };
    return { ok: true, command: { kind: "status", target } };
  }
  if (!(MUTATING_COMMANDS as readonly string[]).includes(verb)) {
    const hint = closest(verb, ALL_COMMANDS);
    return {
      ok: false,
      error: hint
        ? `unknown command \`${first}\`; did you mean \`${hint}\`?`
        : `unknown command \`${first}\`; try \`/turnout help\``,
    };
  }
  const command = verb as MutatingCommand;
  const [target, ...tail] = rest;
  if (target === undefined)
    return { ok: false, error: `\`${command}\` needs a target: \`/turnout ${command} <target>\`` };
  if (!targets.includes(target)) return { ok: false, error: unknownTarget(target, targets) };
  if (command === "clear") {
    const [key, ...more] = tail;
    if (key === undefined) {
      return { ok: false, error: "`clear` needs a signal key: `/turnout clear <target> <key>`" };
    }
    return { ok: true, command: { kind: "mutate", command, target, force: false, reason: more.join(" "), key } };
  }
  let force = false;
  let reasonWords = tail;
  if (tail[0]?.toLowerCase() === "force") {
    if (command !== "failover" && command !== "failback") {
      return { ok: false, error: `\`force\` applies only to failover and failback` };
    }
    force = true;
    reasonWords = tail.slice(1);
  }
  if (command !== "failover" && command !== "failback" && reasonWords.length > 0) {
    // pause/resume/… take only a target; keep extra words as the audited reason rather than failing.
  }
  return { ok: true, command: { kind: "mutate", command, target, force, reason: reasonWords.join(" ") } };
}

/** The help text shown by `/turnout help` and on parse errors. */
export const HELP_TEXT = [
  "*turnout* — failover automation",
  "`/turnout status [target]` — active side, phase and health",
  "`/turnout failover <target> [force] [reason…]` — switch to the other side (`force` needs a second person)",
  "`/turnout failback <target> [reason…]` — switch back",
  "`/turnout pause|resume <target>` — stop or restart automatic actions",
  "`/turnout approve|cancel <target>` — answer a pending approval",
  "`/turnout drill <target>` — dry-run every step, change nothing",
  "`/turnout retry <target>` — retry a failed action",
  "`/turnout revert <target>` — switch back to the side active before the last action",
  "`/turnout clear <target> <key>` — forget a stuck signal (its key as shown by `status`)",
].join("\n");
