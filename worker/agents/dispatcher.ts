/**
 * How a TargetObject delivers a `dispatch` effect (design §6): `direct` (signed POST to the agent)
 * or `qstash` (publish with dedupe and flow control). The outcome is fed back to the decision
 * engine as a `dispatch-result`; retries are the machine's, driven by the object's alarm.
 */
import type { WorkerConfig } from "../../shared/config.ts";
import type { ActionReport, ActionRequest } from "../../shared/protocol.ts";
import { agentSecrets } from "../../shared/secrets.ts";
import type { Env } from "../env.ts";
import { dispatchDirect, dispatchQstash } from "./transport.ts";

export type DispatchAttempt =
  | { ok: true; detail: string; report?: ActionReport }
  /** `final`: retrying the same request cannot help (a 4xx other than 408/409/429). */
  | { ok: false; error: string; retryAfterSeconds?: number; final?: boolean };

/** Delivers one ActionRequest. Tests swap in a recording implementation. */
export interface Dispatcher {
  dispatch(request: ActionRequest): Promise<DispatchAttempt>;
}

/** The production dispatcher for the configured transport. */
export function transportDispatcher(env: Env, config: WorkerConfig): Dispatcher {
  return {
    async dispatch(request) {
      if (!env.TURNOUT_AGENT_SECRET) {
        return { ok: false, error: "agent transport not configured: TURNOUT_AGENT_SECRET is not set" };
      }
      const secrets = agentSecrets(env);
      if (config.agent.transport === "qstash") {
        if (!env.QSTASH_TOKEN) return { ok: false, error: "agent transport not configured: QSTASH_TOKEN is not set" };
        const out = await dispatchQstash(request, {
          token: env.QSTASH_TOKEN,
          baseUrl: config.agent.qstash.baseUrl,
          agentUrl: config.agent.url,
          workerUrl: config.publicUrl ?? "",
          retries: config.agent.qstash.retries,
          secrets,
        });
        if (out.kind === "published") {
          return {
            ok: true,
            detail: `published to QStash as ${out.messageId}${out.deduplicated ? " (deduplicated)" : ""}`,
          };
        }
        return {
          ok: false,
          error: `QStash publish failed (${out.kind}): ${out.detail}`,
          ...(out.kind === "fatal" ? { final: true } : {}),
        };
      }
      const out = await dispatchDirect(request, { agentUrl: config.agent.url, secrets });
      switch (out.kind) {
        case "accepted":
          return { ok: true, detail: "agent accepted (202)" };
        case "duplicate":
          return {
            ok: true,
            detail: "agent already has this action (200)",
            ...(out.report ? { report: out.report } : {}),
          };
        case "conflict":
          return { ok: false, error: `agent is executing another action for this target (409): ${out.detail}` };
        case "retryable":
          return {
            ok: false,
            error: `agent unreachable or busy${out.status ? ` (${out.status})` : ""}: ${out.detail}`,
            ...(out.retryAfterSeconds !== undefined ? { retryAfterSeconds: out.retryAfterSeconds } : {}),
          };
        case "fatal":
          return { ok: false, error: `agent refused the action (${out.status}): ${out.detail}`, final: true };
      }
    },
  };
}
