/**
 * A file-backed ActionStore for restart tests: every `put` rewrites one JSON file atomically
 * (write to a temp file, then rename), so a process killed with SIGKILL leaves either the old or
 * the new state, like a ConfigMap update that did or did not land.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import type { ActionRecord, ActionStore } from "../../agent/action-store.ts";
import { epochOf } from "../../agent/action-store.ts";
import type { DurableMemory } from "../../agent/executor.ts";

interface FileData {
  records: Record<string, ActionRecord>;
  memory: Record<string, Record<string, unknown>>;
}

export class FileActionStore implements ActionStore {
  private readonly path: string;

  constructor(path: string) {
    this.path = path;
  }

  /** The whole file (tests inspect it). */
  read(): FileData {
    if (!existsSync(this.path)) return { records: {}, memory: {} };
    return JSON.parse(readFileSync(this.path, "utf8")) as FileData;
  }

  private write(data: FileData): void {
    const tmp = `${this.path}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(data));
    renameSync(tmp, this.path);
  }

  async get(target: string, actionId: string): Promise<ActionRecord | undefined> {
    const r = this.read().records[actionId];
    return r && r.request.target === target ? r : undefined;
  }

  async latest(target: string): Promise<ActionRecord | undefined> {
    let best: ActionRecord | undefined;
    for (const r of Object.values(this.read().records)) {
      if (r.request.target !== target) continue;
      if (!best || epochOf(r.request.id) > epochOf(best.request.id)) best = r;
    }
    return best;
  }

  async put(record: ActionRecord): Promise<void> {
    const data = this.read();
    data.records[record.request.id] = record;
    this.write(data);
  }

  async unfinished(): Promise<ActionRecord[]> {
    return Object.values(this.read().records).filter((r) => r.report.status === "running" || !r.reportDelivered);
  }

  memory(target: string): DurableMemory {
    return {
      get: async <T>(key: string) => this.read().memory[target]?.[key] as T | undefined,
      set: async (key: string, value: unknown) => {
        const data = this.read();
        data.memory[target] = { ...(data.memory[target] ?? {}), [key]: value };
        this.write(data);
      },
    };
  }
}
