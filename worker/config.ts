/**
 * The worker's configuration: `TURNOUT_CONFIG` (JSON) wins over the bundled turnout.config.json
 * (design §8). The result is cached per isolate, keyed by the raw text, so a bad config is
 * reported on every request (through /healthz and 503s) without ever crashing the worker.
 */

import { type ConfigProblem, type Validated, validateWorkerConfig, type WorkerConfig } from "../shared/config.ts";
import bundled from "../turnout.config.json" with { type: "json" };
import type { Env } from "./env.ts";
import { Problem } from "./problem.ts";

export type LoadedConfig = Validated<WorkerConfig> & { source: "TURNOUT_CONFIG" | "turnout.config.json" };

let cache: { raw: string | undefined; loaded: LoadedConfig } | undefined;

/** Parses and validates the config in force for this environment. */
export function loadConfig(env: Pick<Env, "TURNOUT_CONFIG">): LoadedConfig {
  const raw = env.TURNOUT_CONFIG && env.TURNOUT_CONFIG.trim() !== "" ? env.TURNOUT_CONFIG : undefined;
  if (cache && cache.raw === raw) return cache.loaded;
  let loaded: LoadedConfig;
  if (raw === undefined) {
    loaded = { ...validateWorkerConfig(bundled), source: "turnout.config.json" };
  } else {
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
      loaded = { ...validateWorkerConfig(parsed), source: "TURNOUT_CONFIG" };
    } catch (err) {
      const problems: ConfigProblem[] = [
        { path: "(root)", message: `TURNOUT_CONFIG is not JSON: ${(err as Error).message}` },
      ];
      loaded = { ok: false, problems, source: "TURNOUT_CONFIG" };
    }
  }
  cache = { raw, loaded };
  return loaded;
}

/** The valid config, or a 503 problem naming every config error. */
export function requireConfig(env: Pick<Env, "TURNOUT_CONFIG">): WorkerConfig {
  const loaded = loadConfig(env);
  if (!loaded.ok) {
    throw new Problem("config-invalid", `the worker configuration (${loaded.source}) is invalid; see errors`, {
      errors: loaded.problems,
    });
  }
  return loaded.value;
}
