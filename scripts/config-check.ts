/**
 * npm run config:check -- <file> [<file>…] [--worker | --agent] [--wrangler <wrangler.toml>]
 *
 * Validates worker configs (turnout.config.json / TURNOUT_CONFIG) and agent configs (JSON or
 * YAML) with the same schemas the programs use, printing every problem as `path: message`.
 * The kind is guessed from the content (`agent`/`sides` → worker, `reportUrl`/`kind` → agent)
 * unless a flag says. Exits 1 when any file is invalid.
 *
 * A worker config's drills are also checked against the cron triggers of `wrangler.toml` (the one
 * next to the config, or `--wrangler <file>`): a drill whose cron is not a trigger never runs
 * (a problem); a trigger no drill uses is reported as a warning.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parse as parseYaml } from "yaml";
import { type ConfigProblem, validateAgentConfig, validateWorkerConfig, type WorkerConfig } from "../shared/config.ts";
import { normalizeCron } from "../shared/cron.ts";

type Kind = "worker" | "agent";

function guessKind(input: unknown): Kind {
  if (input && typeof input === "object") {
    const o = input as Record<string, unknown>;
    if ("agent" in o) return "worker";
    if ("reportUrl" in o || "listen" in o) return "agent";
    const targets = o.targets && typeof o.targets === "object" ? Object.values(o.targets) : [];
    if (targets.some((t) => t && typeof t === "object" && "kind" in t)) return "agent";
  }
  return "worker";
}

/** Drops a `#` comment that is not inside a quoted string. */
function stripTomlComment(line: string): string {
  let quote: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quote) {
      if (ch === "\\" && quote === '"') i++;
      else if (ch === quote) quote = null;
    } else if (ch === '"' || ch === "'") quote = ch;
    else if (ch === "#") return line.slice(0, i);
  }
  return line;
}

/**
 * The `crons` array of the top-level `[triggers]` table of a wrangler.toml. Deliberately minimal:
 * it reads the one shape wrangler documents (developers.cloudflare.com/workers/wrangler/
 * configuration/#triggers), `[triggers]` then `crons = ["…", …]`, possibly over several lines.
 * Returns null when there is no such table or key.
 */
function wranglerCrons(toml: string): string[] | null {
  const lines = toml.split(/\r?\n/).map(stripTomlComment);
  let inTriggers = false;
  let collecting: string | null = null;
  for (const line of lines) {
    const trimmed = line.trim();
    if (collecting !== null) {
      collecting += ` ${trimmed}`;
    } else if (/^\[.*\]$/.test(trimmed)) {
      inTriggers = trimmed === "[triggers]";
      continue;
    } else if (inTriggers) {
      const m = /^crons\s*=\s*(.*)$/.exec(trimmed);
      if (m) collecting = m[1] ?? "";
    }
    if (collecting?.includes("]")) {
      const body = collecting.slice(collecting.indexOf("[") + 1, collecting.lastIndexOf("]"));
      return [...body.matchAll(/"((?:[^"\\]|\\.)*)"|'([^']*)'/g)].map((x) => x[1] ?? x[2] ?? "");
    }
  }
  return null;
}

/** Drill crons that are not wrangler triggers (problems) and triggers no drill uses (warnings). */
function checkCrons(config: WorkerConfig, wranglerFile: string): { problems: ConfigProblem[]; warnings: string[] } {
  let crons: string[] | null;
  try {
    crons = wranglerCrons(readFileSync(wranglerFile, "utf8"));
  } catch (err) {
    return {
      problems: [{ path: "(wrangler)", message: `cannot read ${wranglerFile}: ${(err as Error).message}` }],
      warnings: [],
    };
  }
  const triggers = new Set((crons ?? []).map(normalizeCron));
  const problems: ConfigProblem[] = [];
  const used = new Set<string>();
  for (const [name, target] of Object.entries(config.targets)) {
    if (!target.drill) continue;
    const cron = normalizeCron(target.drill.cron);
    used.add(cron);
    if (!triggers.has(cron)) {
      problems.push({
        path: `targets.${name}.drill.cron`,
        message: `"${target.drill.cron}" is not among the [triggers] crons of ${wranglerFile}, so this drill never runs`,
      });
    }
  }
  const warnings = [...triggers]
    .filter((c) => !used.has(c))
    .map((c) => `${wranglerFile} [triggers] crons: "${c}" starts no drill (no target's drill.cron is "${c}")`);
  return { problems, warnings };
}

function check(
  file: string,
  forced: Kind | undefined,
  wranglerFlag: string | undefined,
): { kind: Kind | "unreadable"; problems: ConfigProblem[]; warnings: string[] } {
  let input: unknown;
  try {
    const text = readFileSync(file, "utf8");
    input = text.trimStart().startsWith("{") ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    return {
      kind: "unreadable",
      problems: [{ path: "(root)", message: `cannot read or parse: ${(err as Error).message}` }],
      warnings: [],
    };
  }
  const kind = forced ?? guessKind(input);
  if (kind === "agent") {
    const result = validateAgentConfig(input);
    return { kind, problems: result.ok ? [] : result.problems, warnings: [] };
  }
  const result = validateWorkerConfig(input);
  if (!result.ok) return { kind, problems: result.problems, warnings: [] };
  const beside = join(dirname(file), "wrangler.toml");
  const wranglerFile = wranglerFlag ?? (existsSync(beside) ? beside : undefined);
  if (wranglerFile === undefined) {
    const drills = Object.values(result.value.targets).some((t) => t.drill);
    const warnings = drills
      ? [`no wrangler.toml next to ${file}: drill crons not checked (pass --wrangler <file>)`]
      : [];
    return { kind, problems: [], warnings };
  }
  return { kind, ...checkCrons(result.value, wranglerFile) };
}

const args = process.argv.slice(2);
const forced: Kind | undefined = args.includes("--agent") ? "agent" : args.includes("--worker") ? "worker" : undefined;
const wranglerAt = args.indexOf("--wrangler");
const wranglerFlag = wranglerAt >= 0 ? args[wranglerAt + 1] : undefined;
if (wranglerAt >= 0 && (wranglerFlag === undefined || wranglerFlag.startsWith("--"))) {
  process.stderr.write("--wrangler needs a file: --wrangler <wrangler.toml>\n");
  process.exit(2);
}
const files = args.filter((a, i) => !a.startsWith("--") && !(wranglerAt >= 0 && i === wranglerAt + 1));
if (files.length === 0) {
  process.stderr.write(
    "usage: npm run config:check -- <file> [<file>…] [--worker | --agent] [--wrangler <wrangler.toml>]\n",
  );
  process.exit(2);
}

let failed = false;
for (const file of files) {
  const { kind, problems, warnings } = check(file, forced, wranglerFlag);
  if (problems.length === 0) {
    process.stdout.write(`${file}: valid ${kind} config\n`);
    for (const w of warnings) process.stdout.write(`warning: ${w}\n`);
    continue;
  }
  failed = true;
  process.stdout.write(
    `${file}: invalid ${kind} config, ${problems.length} problem${problems.length === 1 ? "" : "s"}\n`,
  );
  for (const p of problems) process.stdout.write(`${p.path}: ${p.message}\n`);
  for (const w of warnings) process.stdout.write(`warning: ${w}\n`);
}
process.exit(failed ? 1 : 0);
