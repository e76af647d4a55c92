/**
 * Forwards a plan step's approval to the agent that runs the action (design §11.2, §11.6):
 * a signed `POST <agent>/v1/actions/:id/approvals {actionId, step, by}`. The agent's 409 (the
 * step was approved already) counts as done: the approval reached it before.
 */
import { type ApprovalRequest, ApprovalRequestSchema } from "../../shared/protocol.ts";
import type { AgentAddress } from "./agent-for.ts";
import { answerDetail, postSigned } from "./signed-post.ts";

/** The path of an action's approvals on its agent (ids are `<target>:<epoch>`, safe in a path). */
export function approvalsPath(actionId: string): string {
  return `/v1/actions/${actionId}/approvals`;
}

/** How a forwarded approval ended. */
export type ApprovalForward =
  /** 2xx: the agent took the approval; the plan goes on. */
  | { kind: "approved"; status: number }
  /** 409: the agent had this step approved already; counts as done. */
  | { kind: "already"; status: 409; detail: string }
  /** Anything else: the approval did not reach the agent, so nothing is recorded. */
  | { kind: "failed"; status?: number; detail: string };

export interface ForwardApprovalOptions {
  /** The destination agent's secrets; the first signs. */
  secrets: readonly string[];
  fetch?: typeof fetch;
  /** Milliseconds since the epoch, for the signature's `t`. */
  now: number;
  timeoutMs?: number;
}

/** Sends one signed approval to `agent` and classifies its answer. */
export async function forwardApproval(
  agent: AgentAddress,
  approval: ApprovalRequest,
  options: ForwardApprovalOptions,
): Promise<ApprovalForward> {
  const secret = options.secrets.find((s) => s.length > 0);
  if (!secret)
    return {
      kind: "failed",
      detail: `no key for agent ${agent.name} (TURNOUT_AGENT_SECRETS); cannot sign the approval`,
    };
  let res: Response;
  try {
    res = await postSigned({
      url: `${agent.url.replace(/\/+$/, "")}${approvalsPath(approval.actionId)}`,
      body: JSON.stringify(ApprovalRequestSchema.parse(approval)),
      secret,
      now: options.now,
      timeoutMs: options.timeoutMs ?? 10_000,
      what: `agent ${agent.name}`,
      fetch: options.fetch,
    });
  } catch (err) {
    return {
      kind: "failed",
      detail: `agent ${agent.name} unreachable: ${err instanceof Error ? err.message : String(err)}`,
    };
  }
  if (res.status >= 200 && res.status < 300) {
    await res.body?.cancel();
    return { kind: "approved", status: res.status };
  }
  if (res.status === 409) return { kind: "already", status: 409, detail: await answerDetail(res) };
  return {
    kind: "failed",
    status: res.status,
    detail: `agent ${agent.name} answered ${res.status}: ${await answerDetail(res)}`,
  };
}
