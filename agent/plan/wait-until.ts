/**
 * The poll loop of plan steps (waitFor, scale, restart, check): test, sleep through the step's
 * clock, give up at a deadline; progress and a keep-alive report every 60 s on the way (design
 * §11.6), so a long wait never looks dead to the worker.
 */
import { type StepContext, StepError } from "../executor.ts";

/** A keep-alive report at least this often while a step waits (design §11.6). */
export const KEEPALIVE_MS = 60_000;

export interface WaitUntilOptions {
  /** Milliseconds between two tests. */
  pollMs: number;
  timeoutMs: number;
  /** The code of the StepError thrown at the deadline. */
  code: string;
  /** What is awaited, for the message: "HTTPRoute default/web: {.status…} is 0, expected 100". */
  what: string;
}

/** Polls `test` until it returns `{done: true}`; throws StepError(`code`) at the deadline with the last detail. */
export async function waitUntil(
  ctx: StepContext,
  options: WaitUntilOptions,
  test: () => Promise<{ done: boolean; detail: string }>,
): Promise<string> {
  const deadline = ctx.now() + options.timeoutMs;
  let lastAlive = ctx.now();
  for (;;) {
    const r = await test();
    if (r.done) return r.detail;
    if (ctx.now() >= deadline) {
      throw new StepError(options.code, `${options.what}: not so after ${options.timeoutMs / 1000} s (${r.detail})`);
    }
    ctx.progress(`waiting: ${r.detail}`);
    if (ctx.now() - lastAlive >= KEEPALIVE_MS) {
      lastAlive = ctx.now();
      ctx.keepAlive?.();
    }
    await ctx.sleep(Math.min(options.pollMs, Math.max(1, deadline - ctx.now())));
  }
}
