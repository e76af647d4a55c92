/**
 * Durable memory (the executor's per-action store) in a Map, for tests and benchmarks that run
 * steps without the runner. Values are copied in and out, as the ConfigMap-backed one serialises.
 */
import type { DurableMemory } from "../../agent/executor.ts";

/** Durable memory in a Map, with a count of writes. */
export class MapMemory implements DurableMemory {
  readonly values = new Map<string, unknown>();
  sets = 0;
  async get<T = unknown>(key: string): Promise<T | undefined> {
    return structuredClone(this.values.get(key)) as T | undefined;
  }
  async set(key: string, value: unknown): Promise<void> {
    this.sets++;
    this.values.set(key, structuredClone(value));
  }
}
