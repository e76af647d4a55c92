/**
 * `approval` (design §11.2, §11.6): the step reports `waiting` with `{message, deadline}` and the
 * plan goes on once an operator approves it (the worker forwards it to `POST
 * /v1/actions/:id/approvals`; the runner records it durably before answering). A running report
 * is re-sent every 60 s meanwhile, so the worker never times the action out. Not approved by the
 * deadline (`timeoutSeconds` [900]): `approval-timeout`. A drill asks nobody: skipped.
 */
import { type DurableMemory, type StepContext, StepError, type StepOutcome } from "../executor.ts";
import { KEEPALIVE_MS } from "./wait-until.ts";

export const APPROVAL_TIMEOUT_SECONDS = 900;

/** Runs an `approval` step. */
export async function runApprovalStep(
  ctx: StepContext,
  message: string,
  timeoutMs: number,
  memory: DurableMemory,
  dryRun: boolean,
): Promise<StepOutcome> {
  if (dryRun) return { status: "skipped", detail: `dry run: nobody asked to approve "${message}"` };
  if (!ctx.waiting || !ctx.approved) throw new StepError("internal", "this runner cannot wait for approvals");
  // Kept, so a resumed step keeps the deadline people were shown.
  let deadline = await memory.get<number>("deadline");
  if (deadline === undefined) {
    deadline = ctx.now() + timeoutMs;
    await memory.set("deadline", deadline);
  }
  let approved: { by: string; at: string } | undefined;
  const approval = ctx.approved().then((a) => {
    approved = a;
    return a;
  });
  ctx.waiting({ message, deadline: new Date(deadline).toISOString() });
  while (!approved) {
    const left = deadline - ctx.now();
    if (left <= 0) {
      throw new StepError("approval-timeout", `"${message}" was not approved within ${timeoutMs / 1000} s`);
    }
    await Promise.race([approval, ctx.sleep(Math.min(KEEPALIVE_MS, left))]);
    if (!approved) ctx.keepAlive?.();
  }
  return { detail: `approved by ${approved.by} at ${approved.at}` };
}
