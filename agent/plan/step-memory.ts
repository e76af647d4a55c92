/**
 * Durable memory scoped to one plan step (design §11.6): what a step wrote, an http step's
 * answer, an approval's deadline. Kept per action and step, so a resumed step goes on where it
 * was and a later action starts afresh.
 */
import type { DurableMemory, StepContext } from "../executor.ts";

/** The memory of step `step` of the context's action: `plan:<action id>:<step>:<key>`. */
export function stepMemory(ctx: Pick<StepContext, "memory" | "action">, step: string): DurableMemory {
  return prefixed(ctx.memory, `plan:${ctx.action.id}:${step}:`);
}

/** `memory` with every key prefixed: two embedded executors never share a key. */
export function prefixed(memory: DurableMemory, prefix: string): DurableMemory {
  return {
    get: <T>(key: string) => memory.get<T>(`${prefix}${key}`),
    set: (key, value) => memory.set(`${prefix}${key}`, value),
  };
}
