/**
 * Loading the agent's config: `--config <file>` or `TURNOUT_AGENT_CONFIG` (a path, or the
 * config itself as JSON/YAML text), validated by the shared schema.
 */
import { readFile } from "node:fs/promises";
import { parse as parseYaml } from "yaml";
import { type AgentConfig, type ConfigProblem, validateAgentConfig } from "../shared/config.ts";

export class ConfigError extends Error {
  readonly problems: ConfigProblem[];
  constructor(source: string, problems: ConfigProblem[]) {
    super(`invalid agent config (${source}):\n${problems.map((p) => `  ${p.path}: ${p.message}`).join("\n")}`);
    this.name = "ConfigError";
    this.problems = problems;
  }
}

/** Parses JSON or YAML text (YAML is a superset of JSON, but JSON errors read better from JSON.parse). */
export function parseConfigText(text: string, source: string): unknown {
  const trimmed = text.trimStart();
  try {
    return trimmed.startsWith("{") ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new ConfigError(source, [{ path: "(root)", message: `cannot parse: ${(err as Error).message}` }]);
  }
}

/** Reads and validates an agent config file; throws {@link ConfigError} listing every problem. */
export async function loadAgentConfigFile(path: string): Promise<AgentConfig> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new ConfigError(path, [
      { path: "(root)", message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}` },
    ]);
  }
  return validateOrThrow(parseConfigText(text, path), path);
}

/** Validates a parsed config object; throws {@link ConfigError} listing every problem. */
export function validateOrThrow(input: unknown, source: string): AgentConfig {
  const result = validateAgentConfig(input);
  if (!result.ok) throw new ConfigError(source, result.problems);
  return result.value;
}

/** Where the config comes from: `--config <file>` beats `TURNOUT_AGENT_CONFIG`. */
export function configSource(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
): { kind: "file"; path: string } | { kind: "inline"; text: string } | undefined {
  const i = argv.indexOf("--config");
  if (i >= 0 && argv[i + 1]) return { kind: "file", path: argv[i + 1] as string };
  const eq = argv.find((a) => a.startsWith("--config="));
  if (eq) return { kind: "file", path: eq.slice("--config=".length) };
  const fromEnv = env.TURNOUT_AGENT_CONFIG;
  if (!fromEnv) return undefined;
  return /^\s*[{]|\n/.test(fromEnv) ? { kind: "inline", text: fromEnv } : { kind: "file", path: fromEnv };
}
