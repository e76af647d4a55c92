/**
 * The agent's durable memory of actions (design §6, §7): action ids, step progress and the latest
 * report, so a restarted agent neither repeats completed steps nor forgets an action. In a cluster
 * it is backed by ConfigMaps (agent/memory.ts); tests may use {@link InMemoryActionStore}.
 */
import type { ActionReport, ActionRequest } from "../shared/protocol.ts";
import type { DurableMemory } from "./executor.ts";

export interface ActionRecord {
  request: ActionRequest;
  /** The latest report (status, steps with timestamps and details). */
  report: ActionReport;
  /** Names of the steps that completed (succeeded or skipped); a resumed action starts after them. */
  completedSteps: string[];
  /** True once the worker acknowledged the latest report (2xx); false → re-send. */
  reportDelivered: boolean;
  updatedAt: string;
}

export interface ActionStore {
  /** The record for an action id, if known. */
  get(target: string, actionId: string): Promise<ActionRecord | undefined>;
  /** The newest action of a target (the one in progress, if any). */
  latest(target: string): Promise<ActionRecord | undefined>;
  /** Creates or replaces a record. */
  put(record: ActionRecord): Promise<void>;
  /** Records whose action is not finished, or whose latest report is not yet delivered. */
  unfinished(): Promise<ActionRecord[]>;
  /** Executor memory for a target (e.g. the outgoing StaticRoute spec saved for failback). */
  memory(target: string): DurableMemory;
}

/** Process-local store for tests and single-shot tools. */
export class InMemoryActionStore implements ActionStore {
  private readonly records = new Map<string, ActionRecord>();
  private readonly memories = new Map<string, Map<string, unknown>>();

  async get(target: string, actionId: string): Promise<ActionRecord | undefined> {
    const r = this.records.get(actionId);
    return r && r.request.target === target ? structuredClone(r) : undefined;
  }

  async latest(target: string): Promise<ActionRecord | undefined> {
    let best: ActionRecord | undefined;
    for (const r of this.records.values()) {
      if (r.request.target !== target) continue;
      if (!best || epochOf(r.request.id) > epochOf(best.request.id)) best = r;
    }
    return best ? structuredClone(best) : undefined;
  }

  async put(record: ActionRecord): Promise<void> {
    this.records.set(record.request.id, structuredClone(record));
  }

  async unfinished(): Promise<ActionRecord[]> {
    return [...this.records.values()]
      .filter((r) => r.report.status === "running" || !r.reportDelivered)
      .map((r) => structuredClone(r));
  }

  memory(target: string): DurableMemory {
    let m = this.memories.get(target);
    if (!m) {
      m = new Map();
      this.memories.set(target, m);
    }
    const mem = m;
    return {
      get: async <T>(key: string) => structuredClone(mem.get(key)) as T | undefined,
      set: async (key: string, value: unknown) => {
        mem.set(key, structuredClone(value));
      },
    };
  }
}

/** The epoch part of `<target>:<epoch>`. */
export function epochOf(actionId: string): number {
  return Number(actionId.slice(actionId.lastIndexOf(":") + 1));
}
