/**
 * `kube` (design §11.2, §11.6): any object, CRDs included. Toward side S from F: already at
 * `expect[S]` → done without writing; else `expect[F]` must hold (compare-and-swap: the write
 * carries the resourceVersion read) or the step fails `precondition-failed` naming the JSONPath,
 * the expected and the actual value, and writes nothing. Then `patch[S]`, then `waitFor`.
 * Without `expect` the patch is applied as is, unless the object already is what it would make.
 * After a real write the returned resourceVersion and generation are stored, so a resumed step
 * goes on at `waitFor` without testing `expect` again (the object is no longer at F).
 */
import type { z } from "zod";
import type { KubeStepSchema } from "../../shared/config.ts";
import type { DurableMemory } from "../executor.ts";
import { type StepContext, StepError, type StepOutcome } from "../executor.ts";
import { applyJsonPatch, applyMergePatch, deepEqual, type Json, PatchError } from "../sandbox/kube-patch.ts";
import { describeMismatch, firstMismatch } from "./jsonpath.ts";
import { type KubeObjects, type PlainObject, refText } from "./kube-object.ts";
import { waitForHolds } from "./wait-for.ts";
import { waitUntil } from "./wait-until.ts";

export type KubeStep = z.infer<typeof KubeStepSchema>;

/** Reads and writes tried when the object changes in between, before the step gives up. */
const CAS_ATTEMPTS = 5;

/** What a real write returned, kept in the step's durable memory. */
export interface StoredWrite {
  resourceVersion: string;
  generation: number | undefined;
}

export interface KubeStepRun {
  ctx: StepContext;
  step: KubeStep;
  objects: KubeObjects;
  memory: DurableMemory;
  /** Writes go with dryRun=All (a drill, or a step marked dryRun). */
  dryRun: boolean;
  timeoutMs: number;
  pollMs: number;
}

/** Whether applying `patch` to `obj` would change nothing (so no write is needed). */
function wouldChangeNothing(obj: PlainObject, step: KubeStep, patch: unknown): boolean {
  try {
    const next =
      step.patchType === "json" ? applyJsonPatch(obj as Json, patch) : applyMergePatch(obj as Json, patch as Json);
    return deepEqual(next, obj as Json);
  } catch (err) {
    if (err instanceof PatchError) return false; // e.g. a `test` op fails: the write decides
    throw err;
  }
}

/** The patch with the compare-and-swap: the resourceVersion read, in the form the patch type takes. */
function withResourceVersion(step: KubeStep, patch: unknown, resourceVersion: string): unknown {
  if (step.patchType === "json") {
    return [{ op: "test", path: "/metadata/resourceVersion", value: resourceVersion }, ...(patch as unknown[])];
  }
  const p = patch as Record<string, unknown>;
  const metadata = (p.metadata ?? {}) as Record<string, unknown>;
  return { ...p, metadata: { ...metadata, resourceVersion } };
}

/** Runs a `kube` step toward `ctx.action.to`. */
export async function runKubeStep(run: KubeStepRun): Promise<StepOutcome> {
  const { ctx, step, objects, memory, dryRun } = run;
  const { from, to } = ctx.action;
  const what = refText(step);
  let stored = await memory.get<StoredWrite>("write");
  let did: string;
  if (stored) {
    did = `patched earlier (resourceVersion ${stored.resourceVersion})`;
  } else {
    let result: Awaited<ReturnType<KubeObjects["patch"]>> | undefined;
    // A lost compare-and-swap (a controller's status write, say) reads again and decides again:
    // the write only ever lands on an object that was just seen at the side it leaves.
    for (let attempt = 1; ; attempt++) {
      const obj = await objects.read(step);
      if (!obj) throw new StepError("not-found", `${what} does not exist`);
      const rv = obj.metadata?.resourceVersion ?? "";
      const patch = step.patch[to];
      if (step.expect) {
        if (!firstMismatch(obj, step.expect[to])) return { detail: `${what} is already at ${to}; nothing written` };
        const m = firstMismatch(obj, step.expect[from]);
        if (m) {
          throw new StepError(
            "precondition-failed",
            `${what} is at neither side: ${describeMismatch(m)} (the ${from} state); nothing written`,
          );
        }
      } else if (wouldChangeNothing(obj, step, patch)) {
        return { detail: `${what} already holds the ${to} patch; nothing written` };
      }
      result = await objects.patch(step, withResourceVersion(step, patch, rv), step.patchType, dryRun);
      if (result.ok) break;
      if (attempt >= CAS_ATTEMPTS) {
        throw new StepError(
          "precondition-failed",
          `${what} kept changing between read and write (${attempt} tries, last at resourceVersion ${rv}: ${result.conflict}); nothing written`,
        );
      }
    }
    if (dryRun) {
      return {
        detail: `dry run: ${step.patchType} patch of ${what} accepted with dryRun=All${step.waitFor ? "; waitFor skipped (dry run)" : ""}`,
      };
    }
    stored = {
      resourceVersion: result.object.metadata?.resourceVersion ?? "",
      generation: result.object.metadata?.generation,
    };
    await memory.set("write", stored);
    did = `patched to ${to} (resourceVersion ${stored.resourceVersion})`;
  }
  if (!step.waitFor) return { detail: `${what} ${did}` };
  const waitFor = step.waitFor;
  const generation = stored.generation;
  const seen = await waitUntil(
    ctx,
    { pollMs: run.pollMs, timeoutMs: run.timeoutMs, code: "wait-timeout", what: `${what} waitFor` },
    async () => waitForHolds(await objects.read(step), waitFor, generation),
  );
  return { detail: `${what} ${did}; ${seen}` };
}
