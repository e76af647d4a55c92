/** `wait` (design §11.2): `{seconds}`, through the step's clock, alive to the worker meanwhile. */
import type { DurableMemory, StepContext, StepOutcome } from "../executor.ts";
import { KEEPALIVE_MS } from "./wait-until.ts";

/** Waits until `seconds` after the step first started (a resumed wait does not start over). */
export async function runWaitStep(ctx: StepContext, seconds: number, memory: DurableMemory): Promise<StepOutcome> {
  let until = await memory.get<number>("until");
  if (until === undefined) {
    until = ctx.now() + seconds * 1000;
    await memory.set("until", until);
  }
  while (ctx.now() < until) {
    ctx.progress(`waiting ${Math.ceil((until - ctx.now()) / 1000)} s more`);
    await ctx.sleep(Math.min(KEEPALIVE_MS, until - ctx.now()));
    ctx.keepAlive?.();
  }
  return { detail: `waited ${seconds} s` };
}
