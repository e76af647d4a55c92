/**
 * Owed plan steps (design §11.6): a step skipped by `ifUnreachable: "skip"` is owed by the agent
 * until it runs it, once that cluster answers. The engine keeps them per target from the reports,
 * so the view shows them, paging opens one page each, and an automatic failback waits for them.
 */
import type { ActionReport } from "../../shared/protocol.ts";
import { audit, type Ctx } from "./machine-ctx.ts";
import type { MachineState, OwedStep } from "./machine-types.ts";

/** The steps owed on this target, oldest first. */
export function owedSteps(state: MachineState): readonly OwedStep[] {
  return state.owed ?? [];
}

/**
 * Takes what a report says of owed steps: the current action's newly owed steps are added, and a
 * step of any listed action that its agent now reports not owed is done. Reports of an earlier
 * action count only from the agent that ran it (the caller checked the current action's agent).
 */
export function noteOwed(ctx: Ctx, r: ActionReport, agent: string | undefined): void {
  const s = ctx.s;
  const a = s.action;
  let owed = [...owedSteps(s)];
  const current = a !== null && a.id === r.actionId;
  const listed = owed.filter((o) => o.action === r.actionId);
  if (!current && listed.length === 0) return;
  if (!current && agent !== undefined && listed.some((o) => o.agent !== agent)) return;
  for (const st of r.steps) {
    const known = listed.find((o) => o.step === st.name);
    if (st.owed === true && !known && current && a !== null) {
      owed.push({
        action: r.actionId,
        step: st.name,
        since: ctx.now,
        agent: a.agent,
        ...(st.detail === undefined ? {} : { detail: st.detail }),
      });
      audit(ctx, "step.owed", { id: r.actionId, step: st.name, detail: st.detail ?? "" }, ctx.root ?? a.cause);
    } else if (st.owed !== true && known && (st.status === "succeeded" || st.status === "failed")) {
      owed = owed.filter((o) => o !== known);
      audit(ctx, "step.owed-done", { id: r.actionId, step: st.name, status: st.status, detail: st.detail ?? "" });
    }
  }
  s.owed = owed;
}
