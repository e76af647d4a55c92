/**
 * The Turnout-Signature secrets of one side during a rotation (design §6, docs/operations.md):
 * `TURNOUT_AGENT_SECRET` first, because the first entry signs, then `TURNOUT_AGENT_SECRET_NEXT`
 * while a rotation is under way. Both sides verify with the whole list (shared/signature.ts
 * `verify`), so a request or report signed with either secret is accepted during the rotation.
 */

/** The two secret variables, as the worker's Env and the agent's process environment carry them. */
export interface AgentSecretEnv {
  TURNOUT_AGENT_SECRET?: string | undefined;
  TURNOUT_AGENT_SECRET_NEXT?: string | undefined;
}

/** `[current, next]` without unset or empty entries: sign with `[0]`, verify with all. */
export function agentSecrets(env: AgentSecretEnv): string[] {
  return [env.TURNOUT_AGENT_SECRET, env.TURNOUT_AGENT_SECRET_NEXT].filter((s): s is string => !!s);
}
