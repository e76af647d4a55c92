/**
 * Agent liveness as an input of the decision engine (design §11.1 rule 17, §11.6): an agent went
 * silent or was heard again, with its time, like a signal; and the answer to the probe the object
 * sends a silent destination agent before it blocks a failover on its silence.
 */
import { SIDES } from "../../shared/config.ts";
import { audit, type Ctx } from "./machine-ctx.ts";
import type { ParsedMachineInput } from "./machine-types.ts";

type AgentInput = Extract<ParsedMachineInput, { type: "agent" }>;
type ProbeResult = Extract<ParsedMachineInput, { type: "probe-result" }>;

/** The paging and notification key of an agent (design §11.6): one per agent, not per target. */
export const agentNoticeKey = (agent: string): string => `turnout/agent/${agent}`;

/**
 * An agent's liveness changed. A change is audited on this target when the agent serves it, and the
 * one target chosen to `announce` the transition notifies it, so people hear it once per agent.
 */
export function agentInput(ctx: Ctx, input: AgentInput): void {
  const s = ctx.s;
  const prev = s.agentLiveness[input.agent];
  const sides = SIDES.filter((side) => s.sideAgents[side] === input.agent);
  const serves = sides.length > 0 || s.action?.agent === input.agent;
  const changed = (prev?.silent ?? false) !== input.silent;
  // Only news of an agent this target uses, and only a change, is kept: older news than the
  // stored transition is ignored, so a late fan-out cannot undo a newer one.
  if (serves && changed && (prev === undefined || prev.at <= input.at)) {
    s.agentLiveness = { ...s.agentLiveness, [input.agent]: { silent: input.silent, at: input.at } };
    // Heard: a later silence probes again.
    if (!input.silent && s.probe?.agent === input.agent) s.probe = null;
    audit(ctx, input.silent ? "agent.silent" : "agent.returned", {
      agent: input.agent,
      sides,
      at: new Date(input.at).toISOString(),
      lastHeardAt: input.lastHeardAt == null ? null : new Date(input.lastHeardAt).toISOString(),
    });
  }
  if (input.announce) {
    const since =
      input.lastHeardAt == null ? "never heard" : `not heard since ${new Date(input.lastHeardAt).toISOString()}`;
    ctx.effects.push({
      type: "notify",
      kind: "alert",
      key: agentNoticeKey(input.agent),
      text: input.silent
        ? `agent ${input.agent} is SILENT (${since}): no automatic action into the sides it serves until it is heard again`
        : `agent ${input.agent} is heard again: automatic action into its sides resumes`,
    });
  }
}

/** The probe's answer: an answer counts as heard; no answer lets the blocked decision be taken. */
export function probeResult(ctx: Ctx, input: ProbeResult): void {
  const s = ctx.s;
  if (input.ok) {
    agentInput(ctx, { type: "agent", agent: input.agent, silent: false, at: ctx.now });
    audit(ctx, "agent.probe-answered", { agent: input.agent });
    return;
  }
  if (s.probe?.agent !== input.agent || s.probe.answered !== null) return;
  s.probe = { ...s.probe, answered: false };
  audit(ctx, "agent.probe-unanswered", { agent: input.agent });
}
