/**
 * One Durable Object per target (design §5): persists the target's signals, state and audit log
 * in SQLite and runs its single alarm. Behaviour arrives with the ingest and decision issues.
 */
import { DurableObject } from "cloudflare:workers";
import type { Env } from "./env.ts";

export class TargetObject extends DurableObject<Env> {
  /** Liveness probe used by tests and /healthz diagnostics. */
  async ping(): Promise<string> {
    return "pong";
  }
}
