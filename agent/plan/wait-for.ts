/**
 * `waitFor` (design §11.2, §11.6): JSONPath values, or a condition that holds only once the
 * controller observed the generation our write produced (`status.observedGeneration`, and the
 * condition's own `observedGeneration`, where the kind has them).
 */

import type { z } from "zod";
import type { KubeStepSchema } from "../../shared/config.ts";
import { describeMismatch, firstMismatch } from "./jsonpath.ts";
import type { PlainObject } from "./kube-object.ts";

export type WaitFor = NonNullable<z.infer<typeof KubeStepSchema>["waitFor"]>;

/** Whether `waitFor` holds on `obj`, and what it saw. `generation`: the one our write returned, if any. */
export function waitForHolds(
  obj: PlainObject | undefined,
  waitFor: WaitFor,
  generation: number | undefined,
): { done: boolean; detail: string } {
  if (!obj) return { done: false, detail: "the object does not exist" };
  if (isCondition(waitFor)) {
    const { type, status } = waitFor.condition;
    const st = (obj.status ?? {}) as { observedGeneration?: unknown; conditions?: unknown };
    if (generation !== undefined && typeof st.observedGeneration === "number" && st.observedGeneration < generation) {
      return { done: false, detail: `status.observedGeneration ${st.observedGeneration} < generation ${generation}` };
    }
    const conditions = Array.isArray(st.conditions) ? (st.conditions as Record<string, unknown>[]) : [];
    const c = conditions.find((x) => x.type === type);
    if (!c) return { done: false, detail: `no ${type} condition yet` };
    if (generation !== undefined && typeof c.observedGeneration === "number" && c.observedGeneration < generation) {
      return {
        done: false,
        detail: `condition ${type} observedGeneration ${c.observedGeneration} < generation ${generation}`,
      };
    }
    const text = `condition ${type}=${String(c.status)}${c.reason ? ` (${String(c.reason)})` : ""}`;
    return { done: c.status === status, detail: text };
  }
  const m = firstMismatch(obj, waitFor);
  return m ? { done: false, detail: describeMismatch(m) } : { done: true, detail: "waitFor holds" };
}

function isCondition(w: WaitFor): w is { condition: { type: string; status: "True" | "False" | "Unknown" } } {
  return (
    Object.keys(w).length === 1 &&
    "condition" in w &&
    typeof w.condition === "object" &&
    w.condition !== null &&
    !Array.isArray(w.condition)
  );
}
