/**
 * Approvals of waiting plan steps (design §11.2, §11.6): an approval is written to the target's
 * durable memory before anyone is told, so an agent that crashes after answering 200 still knows
 * the step was approved when it resumes; then the waiting step (if this process runs it) wakes.
 */
import type { ActionRequest, ApprovalRequest } from "../../shared/protocol.ts";
import type { Approved, DurableMemory } from "../executor.ts";

const key = (actionId: string, step: string) => `approval:${actionId}:${step}`;

/** Approvals recorded in memory, and the steps of this process waiting for one. */
export class Approvals {
  private readonly waiters = new Map<string, Set<(a: Approved) => void>>();
  private readonly memoryOf: (target: string) => DurableMemory;
  constructor(memoryOf: (target: string) => DurableMemory) {
    this.memoryOf = memoryOf;
  }

  /** The approval of a step, if one was recorded. */
  recorded(actionId: string, target: string, step: string): Promise<Approved | undefined> {
    return this.memoryOf(target).get<Approved>(key(actionId, step));
  }

  /** Records an approval durably, then wakes the step waiting for it. */
  async record(request: ApprovalRequest, target: string, at: string): Promise<Approved> {
    const approved: Approved = { by: request.by, at };
    await this.memoryOf(target).set(key(request.actionId, request.step), approved);
    for (const wake of this.waiters.get(key(request.actionId, request.step)) ?? []) wake(approved);
    return approved;
  }

  /** Resolves once the step is approved (at once if it already was); rejects when `signal` aborts. */
  wait(action: ActionRequest, step: string, signal: AbortSignal): Promise<Approved> {
    const k = key(action.id, step);
    return new Promise<Approved>((resolve, reject) => {
      let set = this.waiters.get(k);
      if (!set) {
        set = new Set();
        this.waiters.set(k, set);
      }
      const waiters = set;
      const done = (a: Approved) => {
        waiters.delete(done);
        if (waiters.size === 0) this.waiters.delete(k);
        signal.removeEventListener("abort", onAbort);
        resolve(a);
      };
      const onAbort = () => {
        waiters.delete(done);
        reject(signal.reason);
      };
      // Registered before reading memory: an approval recorded in between still wakes us.
      waiters.add(done);
      signal.addEventListener("abort", onAbort, { once: true });
      this.recorded(action.id, action.target, step).then(
        (a) => {
          if (a) done(a);
        },
        (err: unknown) => {
          waiters.delete(done);
          reject(err);
        },
      );
    });
  }
}
