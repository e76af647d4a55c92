/**
 * turnout's front worker (auth, validation, routing, the RPC fan-out) in front of a Durable Object
 * that does nothing: `ingest` only counts the deliveries. `bench/ingest.ts` runs it beside the
 * real worker so the CPU per webhook splits into the front worker's share (with the RPC calls) and
 * the TargetObjects' share, without a profiler's overhead.
 */
import { DurableObject } from "cloudflare:workers";
import type { IngestBatch, IngestResult } from "../worker/engine/signals.ts";
import type { Env } from "../worker/env.ts";
import { app } from "../worker/http/app.ts";

/** Named as turnout's class, so the same `TARGETS` binding (and the worker's types) apply. */
export class TargetObject extends DurableObject<Env> {
  /** Accepts every delivery and stores nothing. */
  async ingest(batch: IngestBatch): Promise<IngestResult> {
    return { accepted: batch.deliveries.length, duplicates: 0, ignored: 0 };
  }
}

export default { fetch: app.fetch };
