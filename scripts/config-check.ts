/**
 * npm run config:check -- <file> [<file>…] [--worker | --agent]
 *
 * Validates worker configs (turnout.config.json / TURNOUT_CONFIG) and agent configs (JSON or
 * YAML) with the same schemas the programs use, printing every problem as `path: message`.
 * The kind is guessed from the content (`agent`/`sides` → worker, `reportUrl`/`kind` → agent)
 * unless a flag says. Exits 1 when any file is invalid.
 */
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { type ConfigProblem, validateAgentConfig, validateWorkerConfig } from "../shared/config.ts";

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

function check(file: string, forced: Kind | undefined): { kind: Kind | "unreadable"; problems: ConfigProblem[] } {
  let input: unknown;
  try {
    const text = readFileSync(file, "utf8");
    input = text.trimStart().startsWith("{") ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    return {
      kind: "unreadable",
      problems: [{ path: "(root)", message: `cannot read or parse: ${(err as Error).message}` }],
    };
  }
  const kind = forced ?? guessKind(input);
  const result = kind === "worker" ? validateWorkerConfig(input) : validateAgentConfig(input);
  return { kind, problems: result.ok ? [] : result.problems };
}

const args = process.argv.slice(2);
const forced: Kind | undefined = args.includes("--agent") ? "agent" : args.includes("--worker") ? "worker" : undefined;
const files = args.filter((a) => !a.startsWith("--"));
if (files.length === 0) {
  process.stderr.write("usage: npm run config:check -- <file> [<file>…] [--worker | --agent]\n");
  process.exit(2);
}

let failed = false;
for (const file of files) {
  const { kind, problems } = check(file, forced);
  if (problems.length === 0) {
    process.stdout.write(`${file}: valid ${kind} config\n`);
    continue;
  }
  failed = true;
  process.stdout.write(
    `${file}: invalid ${kind} config, ${problems.length} problem${problems.length === 1 ? "" : "s"}\n`,
  );
  for (const p of problems) process.stdout.write(`${p.path}: ${p.message}\n`);
}
process.exit(failed ? 1 : 0);
