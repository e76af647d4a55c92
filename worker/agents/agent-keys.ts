/**
 * Keys per agent (design §11.1): `TURNOUT_AGENT_SECRETS` = JSON `{"<agent>": "<secret>" |
 * ["<current>", "<next>"]}`; the legacy `TURNOUT_AGENT_SECRET` (+ `TURNOUT_AGENT_SECRET_NEXT`) is
 * the `default` agent's. The first secret of an agent signs, all of them verify. A stolen key of
 * one cluster can therefore sign only as that cluster's agent.
 */
import { z } from "zod";
import { DEFAULT_AGENT_NAME } from "../../shared/config.ts";
import { AGENT_HEADER, AgentNameSchema } from "../../shared/protocol.ts";
import { agentSecrets } from "../../shared/secrets.ts";
import type { Env } from "../env.ts";

export { AGENT_HEADER } from "../../shared/protocol.ts";

/** A per-agent secret: long enough that it cannot be guessed offline from one signed request. */
export const MIN_AGENT_SECRET_LENGTH = 32;

const Secret = z.string().min(MIN_AGENT_SECRET_LENGTH, `a secret of at least ${MIN_AGENT_SECRET_LENGTH} characters`);
const AgentSecretsSchema = z.record(
  AgentNameSchema,
  z.union([Secret, z.tuple([Secret, Secret])], { error: "a secret, or [current, next] during a rotation" }),
);

export interface AgentKeys {
  /** `[current, next?]` per agent name: sign with `[0]`, verify with all. */
  byAgent: Map<string, string[]>;
  /** Config problems (`path: message`), naming the agent, never the key. */
  problems: { path: string; message: string }[];
}

let cache: { raw: string | undefined; legacy: string; keys: AgentKeys } | undefined;

/** The agents' keys from the environment, cached per isolate by the secrets' text. */
export function agentKeys(
  env: Pick<Env, "TURNOUT_AGENT_SECRETS" | "TURNOUT_AGENT_SECRET" | "TURNOUT_AGENT_SECRET_NEXT">,
): AgentKeys {
  const legacy = agentSecrets(env);
  const legacyText = legacy.join("\n");
  const raw = env.TURNOUT_AGENT_SECRETS?.trim() ? env.TURNOUT_AGENT_SECRETS : undefined;
  if (cache && cache.raw === raw && cache.legacy === legacyText) return cache.keys;
  const byAgent = new Map<string, string[]>();
  const problems: AgentKeys["problems"] = [];
  if (legacy.length > 0) byAgent.set(DEFAULT_AGENT_NAME, legacy);
  if (raw !== undefined) {
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      // The text is a secret: never quote it, not even in part.
      problems.push({ path: "TURNOUT_AGENT_SECRETS", message: "is not JSON" });
    }
    if (json !== undefined) {
      const parsed = AgentSecretsSchema.safeParse(json);
      if (!parsed.success) {
        for (const issue of parsed.error.issues) {
          // zod messages never contain the value; the path names the agent.
          problems.push({ path: ["TURNOUT_AGENT_SECRETS", ...issue.path].join("."), message: issue.message });
        }
      } else {
        for (const [name, value] of Object.entries(parsed.data)) {
          if (byAgent.has(name)) {
            problems.push({
              path: `TURNOUT_AGENT_SECRETS.${name}`,
              message: "the default agent's key is given twice (here and in TURNOUT_AGENT_SECRET); keep one",
            });
            continue;
          }
          byAgent.set(name, typeof value === "string" ? [value] : [...value]);
        }
      }
    }
  }
  // Two agents sharing a key could report for each other's actions: the per-agent guarantee is gone.
  const owner = new Map<string, string>();
  for (const [name, secrets] of byAgent) {
    for (const secret of secrets) {
      const other = owner.get(secret);
      if (other !== undefined && other !== name) {
        problems.push({
          path: `TURNOUT_AGENT_SECRETS.${name}`,
          message: `shares a key with agent ${other}; every agent needs its own`,
        });
      }
      owner.set(secret, name);
    }
  }
  const keys = { byAgent, problems };
  cache = { raw, legacy: legacyText, keys };
  return keys;
}

/**
 * The agent a request names (`Turnout-Agent`, absent = `default`), or undefined when the header is
 * not an agent name at all.
 */
export function agentOfHeader(headers: Headers): string | undefined {
  const raw = headers.get(AGENT_HEADER);
  if (raw === null || raw.trim() === "") return DEFAULT_AGENT_NAME;
  const parsed = AgentNameSchema.safeParse(raw.trim());
  return parsed.success ? parsed.data : undefined;
}
