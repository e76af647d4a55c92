/**
 * The agent's durable action memory in ConfigMaps (design §6, §7): one ConfigMap per target,
 * `turnout-<target>` in the agent's namespace, labelled `app.kubernetes.io/managed-by=turnout-agent`,
 * holding the newest action records (`actions.json`, newest first) and the executors' memory
 * (`memory.json`). Every write is a read-modify-write with the read `resourceVersion`, retried on
 * 409, so two replicas (or two concurrent writes in one) never lose an update. The namespace and
 * the ConfigMap are created when missing.
 *
 * Size: "the data stored in a ConfigMap cannot exceed 1 MiB"
 * (https://kubernetes.io/docs/concepts/configuration/configmap/), so records beyond `keep` per
 * target, and then the oldest finished ones, are dropped to stay under `maxBytes`.
 */
import { CoreV1Api, type KubeConfig, type V1ConfigMap } from "@kubernetes/client-node";
import { z } from "zod";
import { ActionReportSchema, ActionRequestSchema } from "../shared/protocol.ts";
import { type ActionRecord, type ActionStore, epochOf } from "./action-store.ts";
import type { DurableMemory } from "./executor.ts";
import { isApiStatus, unlessNotFound } from "./kube-api.ts";
import { type Logger, silentLogger } from "./log.ts";

export const MANAGED_BY_LABEL = "app.kubernetes.io/managed-by";
export const MANAGED_BY = "turnout-agent";
/** Label naming the target a ConfigMap belongs to. */
export const TARGET_LABEL = "turnout/target";
const ACTIONS_KEY = "actions.json";
const MEMORY_KEY = "memory.json";

const ActionRecordSchema = z.object({
  request: ActionRequestSchema,
  report: ActionReportSchema,
  completedSteps: z.array(z.string()),
  reportDelivered: z.boolean(),
  updatedAt: z.string(),
});

export interface ConfigMapActionStoreOptions {
  kubeConfig: KubeConfig;
  /** The agent's namespace (config `namespace`). */
  namespace: string;
  /** Records kept per target (default 20); unfinished ones are kept regardless. */
  keep?: number;
  /** Upper bound for a ConfigMap's data in bytes (default 900 000, under the 1 MiB limit). */
  maxBytes?: number;
  /** Attempts of one read-modify-write before giving up (default 10). */
  maxAttempts?: number;
  log?: Logger;
  /**
   * The configured targets. Given, {@link ConfigMapActionStore.unfinished} reads their
   * ConfigMaps by name, so the Role needs no `list` of ConfigMaps (which would expose every
   * ConfigMap in the namespace); absent, it lists them by label.
   */
  targets?: readonly string[];
}

interface TargetData {
  records: ActionRecord[];
  memory: Record<string, unknown>;
}

/** The ConfigMap name for a target. */
export function configMapName(target: string): string {
  return `turnout-${target}`;
}

const isUnfinished = (r: ActionRecord) => r.report.status === "running" || !r.reportDelivered;

/** An {@link ActionStore} kept in ConfigMaps through the Kubernetes API. */
export class ConfigMapActionStore implements ActionStore {
  private readonly api: CoreV1Api;
  private readonly namespace: string;
  private readonly keep: number;
  private readonly maxBytes: number;
  private readonly maxAttempts: number;
  private readonly log: Logger;
  private readonly targets: readonly string[] | undefined;

  constructor(options: ConfigMapActionStoreOptions) {
    this.targets = options.targets;
    this.api = options.kubeConfig.makeApiClient(CoreV1Api);
    this.namespace = options.namespace;
    this.keep = options.keep ?? 20;
    this.maxBytes = options.maxBytes ?? 900_000;
    this.maxAttempts = options.maxAttempts ?? 10;
    this.log = options.log ?? silentLogger;
  }

  async get(target: string, actionId: string): Promise<ActionRecord | undefined> {
    const { data } = await this.read(target);
    return data.records.find((r) => r.request.id === actionId);
  }

  async latest(target: string): Promise<ActionRecord | undefined> {
    const { data } = await this.read(target);
    let best: ActionRecord | undefined;
    for (const r of data.records) if (!best || epochOf(r.request.id) > epochOf(best.request.id)) best = r;
    return best;
  }

  async put(record: ActionRecord): Promise<void> {
    const parsed = ActionRecordSchema.safeParse(record);
    if (!parsed.success) throw new Error(`refusing to store an invalid action record: ${parsed.error.message}`);
    await this.modify(record.request.target, (data) => {
      data.records = [record, ...data.records.filter((r) => r.request.id !== record.request.id)];
    });
  }

  async unfinished(): Promise<ActionRecord[]> {
    if (this.targets) {
      const reads = await Promise.all(this.targets.map((t) => this.read(t)));
      return reads.flatMap(({ data }) => data.records.filter(isUnfinished));
    }
    const list = await this.api.listNamespacedConfigMap({
      namespace: this.namespace,
      labelSelector: `${MANAGED_BY_LABEL}=${MANAGED_BY}`,
    });
    return list.items.flatMap((cm) => this.decode(cm).records.filter(isUnfinished));
  }

  memory(target: string): DurableMemory {
    return {
      get: async <T>(key: string) => {
        const { data } = await this.read(target);
        return data.memory[key] as T | undefined;
      },
      set: async (key: string, value: unknown) => {
        // Round-trip through JSON now, so a non-serializable value fails here, not in a later write.
        const json = JSON.stringify(value);
        await this.modify(target, (data) => {
          if (json === undefined) delete data.memory[key];
          else data.memory[key] = JSON.parse(json);
        });
      },
    };
  }

  private async read(target: string): Promise<{ cm: V1ConfigMap | undefined; data: TargetData }> {
    const cm = await unlessNotFound(
      this.api.readNamespacedConfigMap({ name: configMapName(target), namespace: this.namespace }),
    );
    return { cm, data: cm ? this.decode(cm) : { records: [], memory: {} } };
  }

  /** Parses a ConfigMap's data; malformed entries are logged and skipped, never fatal. */
  private decode(cm: V1ConfigMap): TargetData {
    const records: ActionRecord[] = [];
    let memory: Record<string, unknown> = {};
    const name = cm.metadata?.name;
    try {
      const raw: unknown = JSON.parse(cm.data?.[ACTIONS_KEY] ?? "[]");
      for (const item of Array.isArray(raw) ? raw : []) {
        const r = ActionRecordSchema.safeParse(item);
        if (r.success) records.push(r.data);
        else this.log.warn("skipping a malformed action record", { configMap: name, problem: r.error.message });
      }
    } catch {
      this.log.warn("unreadable action records", { configMap: name });
    }
    try {
      const raw: unknown = JSON.parse(cm.data?.[MEMORY_KEY] ?? "{}");
      if (typeof raw === "object" && raw !== null && !Array.isArray(raw)) memory = raw as Record<string, unknown>;
    } catch {
      this.log.warn("unreadable executor memory", { configMap: name });
    }
    return { records, memory };
  }

  private encode(data: TargetData): Record<string, string> {
    // Newest first; keep `keep` records plus any unfinished ones, then shrink to fit maxBytes.
    const sorted = [...data.records].sort((a, b) => epochOf(b.request.id) - epochOf(a.request.id));
    let kept = sorted.filter((r, i) => i < this.keep || isUnfinished(r));
    const memory = JSON.stringify(data.memory);
    const size = (records: ActionRecord[]) => Buffer.byteLength(JSON.stringify(records)) + Buffer.byteLength(memory);
    while (size(kept) > this.maxBytes && kept.length > 1) {
      const victim = kept.findLastIndex((r) => !isUnfinished(r));
      kept = kept.filter((_, i) => i !== (victim >= 1 ? victim : kept.length - 1));
    }
    if (size(kept) > this.maxBytes) throw new Error(`the action memory of this target exceeds ${this.maxBytes} bytes`);
    return { [ACTIONS_KEY]: JSON.stringify(kept), [MEMORY_KEY]: memory };
  }

  /** Writes of one target from this process run one at a time; other replicas are handled by 409s. */
  private readonly chains = new Map<string, Promise<unknown>>();

  private modify(target: string, change: (data: TargetData) => void): Promise<void> {
    const previous = this.chains.get(target) ?? Promise.resolve();
    const next = previous.catch(() => {}).then(() => this.modifyNow(target, change));
    this.chains.set(target, next);
    void next
      .finally(() => {
        if (this.chains.get(target) === next) this.chains.delete(target);
      })
      .catch(() => {});
    return next;
  }

  private async modifyNow(target: string, change: (data: TargetData) => void): Promise<void> {
    const name = configMapName(target);
    for (let attempt = 1; attempt <= this.maxAttempts; attempt++) {
      const { cm, data } = await this.read(target);
      change(data);
      const body: V1ConfigMap = {
        metadata: {
          ...cm?.metadata,
          name,
          namespace: this.namespace,
          labels: { ...cm?.metadata?.labels, [MANAGED_BY_LABEL]: MANAGED_BY, [TARGET_LABEL]: target },
        },
        data: { ...cm?.data, ...this.encode(data) },
      };
      try {
        if (cm) await this.api.replaceNamespacedConfigMap({ name, namespace: this.namespace, body });
        else await this.createConfigMap(body);
        return;
      } catch (e) {
        // 409: another writer changed (or created) it since our read. Re-read and re-apply.
        if (!isApiStatus(e, 409)) throw e;
        this.log.debug("action memory write conflict; retrying", { configMap: name, attempt });
        // Jittered exponential backoff, so racing writers stop colliding.
        await new Promise((r) => setTimeout(r, Math.random() * Math.min(200, 5 * 2 ** attempt)));
      }
    }
    throw new Error(
      `could not update ConfigMap ${this.namespace}/${name} after ${this.maxAttempts} conflicting attempts`,
    );
  }

  private async createConfigMap(body: V1ConfigMap): Promise<void> {
    try {
      await this.api.createNamespacedConfigMap({ namespace: this.namespace, body });
    } catch (e) {
      if (!isApiStatus(e, 404)) throw e;
      // The namespace is missing: create it (409 means another replica just did), then retry.
      try {
        await this.api.createNamespace({
          body: { metadata: { name: this.namespace, labels: { [MANAGED_BY_LABEL]: MANAGED_BY } } },
        });
      } catch (ne) {
        if (!isApiStatus(ne, 409)) throw ne;
      }
      await this.api.createNamespacedConfigMap({ namespace: this.namespace, body });
    }
  }
}
