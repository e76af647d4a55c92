/**
 * `check` (design §11.2, §11.6): a read-only gate, a `kube` read with `waitFor` or an HTTP probe,
 * polled every 2 s until it holds; `check-failed` at `timeoutSeconds` [60]. It writes nothing, so
 * a drill runs it too, unless it reads an object that an earlier step only dry-ran a write to
 * (the plan executor decides that and skips it).
 */
import type { KubeConfig } from "@kubernetes/client-node";
import type { PlanStep } from "../../shared/config.ts";
import type { StepContext, StepOutcome } from "../executor.ts";
import { KubeObjects, refText } from "./kube-object.ts";
import { waitForHolds } from "./wait-for.ts";
import { waitUntil } from "./wait-until.ts";

export type CheckStep = NonNullable<PlanStep["check"]>;

/** design §11.6: a check polls every 2 s. */
export const CHECK_POLL_MS = 2000;
/** design §11.6: a check fails at 60 s unless its step says otherwise. */
export const CHECK_TIMEOUT_SECONDS = 60;

export interface CheckStepRun {
  ctx: StepContext;
  step: CheckStep;
  kubeConfig: KubeConfig;
  timeoutMs: number;
  fetch?: typeof fetch;
}

/** Runs a `check` step. */
export async function runCheckStep(run: CheckStepRun): Promise<StepOutcome> {
  const { ctx, step } = run;
  const options = { pollMs: CHECK_POLL_MS, timeoutMs: run.timeoutMs, code: "check-failed" };
  if (step.kube) {
    const ref = step.kube;
    const objects = new KubeObjects(run.kubeConfig);
    const seen = await waitUntil(ctx, { ...options, what: `${refText(ref)} check` }, async () =>
      waitForHolds(await objects.read(ref), ref.waitFor, undefined),
    );
    return { detail: `${refText(ref)}: ${seen}` };
  }
  const http = step.http;
  if (!http) return { status: "skipped", detail: "nothing to check" };
  const doFetch = run.fetch ?? fetch;
  const seen = await waitUntil(ctx, { ...options, what: `GET ${http.url}` }, async () => {
    try {
      const res = await doFetch(http.url, { signal: AbortSignal.any([ctx.signal, AbortSignal.timeout(10_000)]) });
      const text = await res.text();
      if (res.status !== http.expectStatus)
        return { done: false, detail: `answered ${res.status}, expected ${http.expectStatus}` };
      if (http.expectBody !== undefined && !text.includes(http.expectBody)) {
        return { done: false, detail: `answered ${res.status} without ${JSON.stringify(http.expectBody)}` };
      }
      return {
        done: true,
        detail: `answered ${res.status}${http.expectBody !== undefined ? ` with ${JSON.stringify(http.expectBody)}` : ""}`,
      };
    } catch (err) {
      if (ctx.signal.aborted) throw err;
      return { done: false, detail: `no answer (${err instanceof Error ? err.message : String(err)})` };
    }
  });
  return { detail: `GET ${http.url} ${seen}` };
}
