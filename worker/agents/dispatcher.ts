/**
 * How a TargetObject delivers a `dispatch` effect (design §6, §11.1): to the agent the action is
 * addressed to (`request.agent`, recorded on the action when it was committed), over that agent's
 * transport (`direct`: signed POST; `qstash`: publish with dedupe and flow control), signed with
 * that agent's own key. The outcome is fed back to the decision engine as a `dispatch-result`;
 * retries are the machine's, driven by the object's alarm.
 */
import { agentsOf, DEFAULT_AGENT_NAME, type WorkerConfig } from "../../shared/config.ts";
import type { ActionReport, ActionRequest } from "../../shared/protocol.ts";
import type { Env } from "../env.ts";
import { agentKeys } from "./agent-keys.ts";
import { dispatchDirect, dispatchQstash } from "./transport.ts";

export type DispatchAttempt =
  | { ok: true; detail: string; report?: ActionReport }
  /**
   * `final`: retrying the same request cannot help (a 4xx other than 408/409/429); `code`
   * `wrong-agent`: the agent refused an action addressed to another name (421).
   */
  | { ok: false; error: string; retryAfterSeconds?: number; final?: boolean; code?: "wrong-agent" };

/** Delivers one ActionRequest. Tests swap in a recording implementation. */
export interface Dispatcher {
  dispatch(request: ActionRequest): Promise<DispatchAttempt>;
}

/** The production dispatcher: each request to its own agent, by that agent's transport and key. */
export function transportDispatcher(env: Env, config: WorkerConfig): Dispatcher {
  return {
    async dispatch(request) {
      const name = request.agent ?? DEFAULT_AGENT_NAME;
      // The recorded agent, never one recomputed from the config: an agent since removed from the
      // config is still the only one that may run this id (design §11.6).
      const agent = Object.hasOwn(agentsOf(config), name) ? agentsOf(config)[name] : undefined;
      if (!agent) return { ok: false, error: `agent ${name} is not in the configuration; cannot deliver` };
      const secrets = agentKeys(env).byAgent.get(name) ?? [];
      if (secrets.length === 0) {
        return {
          ok: false,
          error: `agent transport not configured: no key for agent ${name} (TURNOUT_AGENT_SECRETS${name === DEFAULT_AGENT_NAME ? " or TURNOUT_AGENT_SECRET" : ""})`,
        };
      }
      if (agent.transport === "qstash") {
        if (!env.QSTASH_TOKEN) return { ok: false, error: "agent transport not configured: QSTASH_TOKEN is not set" };
        const out = await dispatchQstash(request, {
          token: env.QSTASH_TOKEN,
          baseUrl: agent.qstash.baseUrl,
          agentUrl: agent.url,
          workerUrl: config.publicUrl ?? "",
          retries: agent.qstash.retries,
          secrets,
        });
        if (out.kind === "published") {
          return {
            ok: true,
            detail: `published to QStash for ${name} as ${out.messageId}${out.deduplicated ? " (deduplicated)" : ""}`,
          };
        }
        return {
          ok: false,
          error: `QStash publish failed (${out.kind}): ${out.detail}`,
          ...(out.kind === "fatal" ? { final: true } : {}),
        };
      }
      const out = await dispatchDirect(request, { agentUrl: agent.url, secrets });
      switch (out.kind) {
        case "accepted":
          return { ok: true, detail: `${name} accepted (202)` };
        case "duplicate":
          return {
            ok: true,
            detail: `${name} already has this action (200)`,
            ...(out.report ? { report: out.report } : {}),
          };
        case "conflict":
          return { ok: false, error: `${name} is executing another action for this target (409): ${out.detail}` };
        case "retryable":
          return {
            ok: false,
            error: `${name} unreachable or busy${out.status ? ` (${out.status})` : ""}: ${out.detail}`,
            ...(out.retryAfterSeconds !== undefined ? { retryAfterSeconds: out.retryAfterSeconds } : {}),
          };
        case "wrong-agent":
          return {
            ok: false,
            error: `the agent at ${agent.url} is not ${name} (421 wrong-agent): ${out.detail}`,
            final: true,
            code: "wrong-agent",
          };
        case "fatal":
          return { ok: false, error: `${name} refused the action (${out.status}): ${out.detail}`, final: true };
      }
    },
  };
}
