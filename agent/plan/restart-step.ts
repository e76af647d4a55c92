/**
 * `restart` (design §11.2): a rollout restart of each listed workload (kubectl's
 * `restartedAt` template annotation), then waiting until each rollout is complete. The annotation
 * also names the action, so a resumed step does not restart again what it already restarted.
 */
import type { KubeConfig } from "@kubernetes/client-node";
import type { PlanStep } from "../../shared/config.ts";
import { type StepContext, StepError, type StepOutcome } from "../executor.ts";
import { RESTARTED_AT, RESTARTED_BY, rolloutState } from "../executors/etcd-sync-teardown.ts";
import { KubeObjects, refText } from "./kube-object.ts";
import { waitUntil } from "./wait-until.ts";

export type RestartStep = NonNullable<PlanStep["restart"]>;

export interface RestartStepRun {
  ctx: StepContext;
  step: RestartStep;
  kubeConfig: KubeConfig;
  dryRun: boolean;
  timeoutMs: number;
  pollMs: number;
}

/** Runs a `restart` step. */
export async function runRestartStep(run: RestartStepRun): Promise<StepOutcome> {
  const { ctx, step, dryRun } = run;
  const objects = new KubeObjects(run.kubeConfig);
  const refs = step.workloads.map((w) => ({ ...w, apiVersion: "apps/v1" }));
  const notes: string[] = [];
  for (const ref of refs) {
    const obj = await objects.read(ref);
    if (!obj) throw new StepError("workload-not-found", `${refText(ref)} does not exist; nothing restarted after it`);
    const template = (obj.spec as { template?: { metadata?: { annotations?: Record<string, string> } } } | undefined)
      ?.template;
    if (template?.metadata?.annotations?.[RESTARTED_BY] === ctx.action.id) {
      notes.push(`${refText(ref)} already restarted by ${ctx.action.id}`);
      continue;
    }
    const annotations = { [RESTARTED_AT]: new Date(ctx.now()).toISOString(), [RESTARTED_BY]: ctx.action.id };
    const result = await objects.patch(ref, { spec: { template: { metadata: { annotations } } } }, "merge", dryRun);
    if (!result.ok) throw new StepError("kubernetes", `restart ${refText(ref)}: ${result.conflict}`);
    notes.push(`${refText(ref)} ${dryRun ? "restart accepted with dryRun=All" : "restarted"}`);
  }
  if (dryRun) return { detail: `dry run: ${notes.join("; ")}; rollout wait skipped (dry run)` };
  const pending = new Map(refs.map((r) => [refText(r), r]));
  const seen = await waitUntil(
    ctx,
    { pollMs: run.pollMs, timeoutMs: run.timeoutMs, code: "restart-timeout", what: "rollouts" },
    async () => {
      const states: string[] = [];
      for (const [key, ref] of pending) {
        const obj = await objects.read(ref);
        if (!obj) throw new StepError("workload-not-found", `${key} disappeared during its restart`);
        const state = rolloutState(ref.kind, obj as never);
        if (state.done) pending.delete(key);
        else states.push(`${key}: ${state.detail}`);
      }
      return { done: pending.size === 0, detail: states.length ? states.join("; ") : "every rollout complete" };
    },
  );
  return { detail: `${notes.join("; ")}; ${seen}` };
}
