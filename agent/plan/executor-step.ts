/**
 * The four executors as plan steps (design §11.2): `routeSwap`, `dnsFlip`, `etcdSyncTeardown`,
 * `nodeFence`, with their settings inline. The executor's own steps run in order inside the plan
 * step; each one finished is recorded in durable memory, so a resumed plan step goes on after
 * the last one (the executors' steps are idempotent too, but a verified step buys nothing twice).
 * Their memory (a route's spec saved for failback) is keyed by the settings, not the step name,
 * so the failover step and the failback step of one route find the same spec.
 */
import { createHash } from "node:crypto";
import type { AgentTarget } from "../../shared/config.ts";
import type { DurableMemory, Executor, StepContext, StepOutcome } from "../executor.ts";
import { prefixed } from "./step-memory.ts";

/** One finished sub-step, as the plan step's detail shows it. */
interface SubResult {
  name: string;
  status: "succeeded" | "skipped";
  detail?: string;
}

/** The prefix of an embedded executor's memory keys: its kind and a hash of its settings. */
export function executorMemoryPrefix(target: AgentTarget): string {
  const hash = createHash("sha256").update(JSON.stringify(target)).digest("hex").slice(0, 12);
  return `${target.kind}:${hash}:`;
}

/** The memory an embedded executor uses: keyed by its kind and settings. */
export function executorMemory(memory: DurableMemory, target: AgentTarget): DurableMemory {
  return prefixed(memory, executorMemoryPrefix(target));
}

/** Runs `executor`'s steps for `target` inside one plan step; `skip` names sub-steps left out. */
export async function runExecutorStep(
  ctx: StepContext,
  executor: Executor,
  target: AgentTarget,
  stepMem: DurableMemory,
  action: StepContext["action"],
  skip: readonly string[] = [],
): Promise<StepOutcome> {
  const done = (await stepMem.get<SubResult[]>("done")) ?? [];
  const memory = executorMemory(ctx.memory, target);
  for (const sub of executor.steps(action, target)) {
    if (skip.includes(sub.name) || done.some((d) => d.name === sub.name)) continue;
    const subCtx: StepContext = {
      ...ctx,
      action,
      target,
      memory,
      log: ctx.log.child({ subStep: sub.name }),
      progress: (d) => ctx.progress(`${sub.name}: ${d}`),
    };
    ctx.progress(`${sub.name}: running`);
    const outcome = await sub.run(subCtx);
    done.push({
      name: sub.name,
      status: outcome?.status ?? "succeeded",
      ...(outcome?.detail === undefined ? {} : { detail: outcome.detail }),
    });
    // Drills leave nothing behind: each drill measures every sub-step again.
    if (!action.dryRun) await stepMem.set("done", done);
  }
  return {
    detail: done
      .map((d) => `${d.name}${d.status === "skipped" ? " (skipped)" : ""}${d.detail ? `: ${d.detail}` : ""}`)
      .join("; "),
  };
}
