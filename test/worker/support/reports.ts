/** Agent reports the worker tests feed to a TargetObject. */
import type { ActionReport, ActionRequest, StepReport } from "../../../shared/protocol.ts";

/** The agent's final `succeeded` report for `req` at `atMs`: the action's `to` side is now active. */
export function succeededReport(
  req: ActionRequest,
  atMs: number,
  steps: StepReport[] = [{ name: "switch", status: "succeeded" }],
): ActionReport {
  return {
    actionId: req.id,
    target: req.target,
    status: "succeeded",
    activeSide: req.dryRun ? req.from : req.to,
    dryRun: req.dryRun,
    steps,
    at: new Date(atMs).toISOString(),
  };
}
