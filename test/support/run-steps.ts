/**
 * Runs an executor's steps the way the agent's runner does (in order, stopping at the first
 * failure, a crash as an abort), for executor tests against the sandbox clusters. One runner for
 * the route-swap and node-fence helpers, so what counts as a failed or aborted step is the same.
 */
import {
  type DurableMemory,
  type Executor,
  type StepContext,
  StepError,
  type StepOutcome,
} from "../../agent/executor.ts";
import { silentLogger } from "../../agent/log.ts";
import { abortableSleep } from "../../agent/report-sender.ts";
import type { AgentTarget } from "../../shared/config.ts";
import type { ActionRequest } from "../../shared/protocol.ts";

export interface StepRun {
  name: string;
  outcome?: StepOutcome;
  error?: StepError;
  /** The run was aborted (a simulated crash or lost leadership) during this step. */
  aborted?: boolean;
}

export interface RunOptions {
  /** The steps `[from, to)` run; default all. */
  from?: number;
  to?: number;
  /** Aborting it is a simulated crash: the step running is recorded as aborted. */
  signal?: AbortSignal;
  /** Milliseconds added to the real clock (the API's lastTransitionTime is real time). */
  skewMs?: number;
  /** Milliseconds the clock jumps at each sleep (waits on the returning nodes' notReadySeconds). */
  jumpMsPerSleep?: number;
  /** The longest a step's sleep really waits; default: as long as it asks. */
  maxSleepMs?: number;
  /** Collects the steps' progress details. */
  progress?: string[];
}

/** Runs an executor's steps for one action in order, stopping at the first failure. */
export async function runSteps<T extends AgentTarget>(
  executor: Executor<T>,
  action: ActionRequest,
  target: T,
  memory: DurableMemory,
  options: RunOptions = {},
): Promise<StepRun[]> {
  const controller = new AbortController();
  options.signal?.addEventListener("abort", () => controller.abort(new Error("simulated crash")));
  let skew = options.skewMs ?? 0;
  const ctx: StepContext<T> = {
    action,
    targetName: action.target,
    target,
    log: silentLogger,
    memory,
    signal: controller.signal,
    now: () => Date.now() + skew,
    sleep: async (ms) => {
      skew += options.jumpMsPerSleep ?? 0;
      await abortableSleep(Math.min(ms, options.maxSleepMs ?? ms), controller.signal);
    },
    progress: (d) => options.progress?.push(d),
  };
  const out: StepRun[] = [];
  for (const s of executor.steps(action, target).slice(options.from ?? 0, options.to)) {
    try {
      out.push({ name: s.name, outcome: (await s.run(ctx)) ?? {} });
    } catch (err) {
      if (controller.signal.aborted) {
        out.push({ name: s.name, aborted: true });
        break;
      }
      if (!(err instanceof StepError)) throw err;
      out.push({ name: s.name, error: err });
      break;
    }
  }
  return out;
}
