/**
 * The heartbeat writer (design §7): on the primary, write the current unix time in ms as a
 * decimal string to `heartbeat.key` every few seconds. The synchronizer copies the key to the
 * standby, so the standby's lag is primary value − standby value. Runs in the agent of the
 * primary cluster when the target says `heartbeat.write: true`; any cron job could do the same.
 */
import type { Etcd3 } from "etcd3";
import type { AgentConfig } from "../../shared/config.ts";
import type { Logger } from "../log.ts";
import { createEtcdClient } from "./client.ts";

export interface HeartbeatTimer {
  /** Schedules `fn` after `ms`; returns a cancel function. */
  schedule(fn: () => void, ms: number): () => void;
}

/** setTimeout-backed timer. */
export const realTimer: HeartbeatTimer = {
  schedule(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return () => clearTimeout(t);
  },
};

export interface HeartbeatWriterOptions {
  client: Etcd3;
  key: string;
  /** @default 5000 */
  intervalMs?: number;
  now: () => number;
  timer?: HeartbeatTimer;
  log?: Logger;
}

export interface HeartbeatWriter {
  /** Writes one beat now (also used by tests to drive the writer without waiting). */
  beat(): Promise<void>;
  /** Stops scheduling; resolves after an in-flight write settles. */
  stop(): Promise<void>;
  /** Number of successful writes. */
  readonly writes: number;
}

/** Starts writing heartbeats: one immediately, then every `intervalMs`. Write errors are logged and retried next tick. */
export function startHeartbeatWriter(options: HeartbeatWriterOptions): HeartbeatWriter {
  const interval = options.intervalMs ?? 5000;
  const timer = options.timer ?? realTimer;
  let stopped = false;
  let cancel: (() => void) | undefined;
  let inflight: Promise<void> = Promise.resolve();
  let writes = 0;

  const beat = async () => {
    try {
      await options.client
        .put(options.key)
        .value(String(Math.trunc(options.now())))
        .exec();
      writes += 1;
    } catch (err) {
      // The primary being down is exactly when nobody needs a heartbeat; keep trying quietly.
      options.log?.warn("heartbeat write failed", { key: options.key, error: (err as Error).message });
    }
  };
  const tick = () => {
    if (stopped) return;
    inflight = beat().finally(() => {
      if (!stopped) cancel = timer.schedule(tick, interval);
    });
  };
  tick();
  return {
    beat,
    async stop() {
      stopped = true;
      cancel?.();
      await inflight;
    },
    get writes() {
      return writes;
    },
  };
}

/** Heartbeat writers for every etcd-sync-teardown target whose config says `heartbeat.write: true`. */
export interface ConfiguredHeartbeats {
  /** Target names with a running writer. */
  readonly targets: readonly string[];
  stop(): Promise<void>;
}

/**
 * Starts one writer per target with `etcd.heartbeat.write: true`, on that target's primary
 * endpoints (with its TLS files). Called by the agent at startup; `stop()` at shutdown.
 */
export function startConfiguredHeartbeats(
  config: Pick<AgentConfig, "targets">,
  options: { now: () => number; intervalMs?: number; timer?: HeartbeatTimer; log?: Logger },
): ConfiguredHeartbeats {
  const running: { name: string; writer: HeartbeatWriter; client: Etcd3 }[] = [];
  for (const [name, target] of Object.entries(config.targets)) {
    if (target.kind !== "etcd-sync-teardown" || !target.etcd.heartbeat?.write) continue;
    const client = createEtcdClient({ endpoints: target.etcd.primary.endpoints, tls: target.etcd.tls });
    const writer = startHeartbeatWriter({
      client,
      key: target.etcd.heartbeat.key,
      intervalMs: options.intervalMs,
      now: options.now,
      timer: options.timer,
      log: options.log?.child({ target: name }),
    });
    running.push({ name, writer, client });
  }
  return {
    targets: running.map((r) => r.name),
    async stop() {
      await Promise.all(running.map((r) => r.writer.stop()));
      for (const r of running) r.client.close();
    },
  };
}
