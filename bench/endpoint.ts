/**
 * The worker under a bench, whichever way it runs: `wrangler dev` (its proxy worker in front, as
 * developers run it) or loaded directly into Miniflare (no proxy, so the proxy's cost stops hiding
 * ours). Either way the bench gets a URL and the CPU time of every workerd process serving it.
 */
import { join } from "node:path";
import { freePorts } from "../test/support/free-port.ts";
import { startWorker } from "../test/support/worker-process.ts";
import { startDirectWorker } from "./miniflare-worker.ts";
import { cpuMs, workerdDescendants } from "./workerd-cpu.ts";

const root = join(import.meta.dirname, "..");

/** How the worker runs. */
export type Runtime = "wrangler" | "miniflare";

/**
 * Which worker: turnout's own, the storage floor (bench/storage-floor-worker.ts: routing, one RPC
 * per target, one SQLite transaction each), the parse-only Hono baseline, or turnout's front
 * worker before a no-op Durable Object (bench/front-only-worker.ts).
 */
export type WorkerKind = "turnout" | "storage-floor" | "baseline" | "front-only";

const MINIFLARE: Record<WorkerKind, { entry: string; durableObjects?: Record<string, string> }> = {
  turnout: { entry: "worker/index.ts", durableObjects: { TARGETS: "TargetObject" } },
  "storage-floor": { entry: "bench/storage-floor-worker.ts", durableObjects: { TARGETS: "TargetObject" } },
  baseline: { entry: "bench/baseline-worker.ts" },
  "front-only": { entry: "bench/front-only-worker.ts", durableObjects: { TARGETS: "TargetObject" } },
};

const WRANGLER_CONFIG: Record<WorkerKind, string | undefined> = {
  turnout: undefined,
  "storage-floor": join(root, "bench/storage-floor-wrangler.toml"),
  baseline: join(root, "bench/baseline-wrangler.toml"),
  "front-only": join(root, "bench/front-only-wrangler.toml"),
};

/** A running worker under a bench. */
export interface Endpoint {
  runtime: Runtime;
  url: string;
  /** The wrangler process (runtime `wrangler` only). */
  wrangler?: { pid: number };
  /** The DevTools protocol port: wrangler's inspector proxy, or Miniflare's when asked for. */
  inspectorPort?: number;
  /** The workerd processes that serve it. */
  pids: number[];
  /** user + sys CPU of those processes so far, ms. */
  cpuMs(): number;
  stop(): Promise<void>;
}

/** Starts turnout's worker or the baseline in the chosen runtime. */
export async function startEndpoint(
  runtime: Runtime,
  kind: WorkerKind,
  vars: Record<string, string>,
  options: { inspect?: boolean } = {},
): Promise<Endpoint> {
  if (runtime === "miniflare") {
    const inspectorPort = options.inspect ? (await freePorts(1))[0] : undefined;
    const w = await startDirectWorker({ ...MINIFLARE[kind], vars, ...(inspectorPort ? { inspectorPort } : {}) });
    return {
      runtime,
      url: w.url,
      ...(inspectorPort ? { inspectorPort } : {}),
      pids: w.pids,
      cpuMs: () => cpuMs(w.pids),
      stop: w.stop,
    };
  }
  const config = WRANGLER_CONFIG[kind];
  const w = await startWorker(config ? { vars, config } : { vars });
  const pids = workerdDescendants(w.pid);
  if (pids.length === 0) {
    await w.stop();
    throw new Error(`wrangler dev (pid ${w.pid}) runs no workerd process this bench can see`);
  }
  return {
    runtime,
    url: w.url,
    wrangler: { pid: w.pid },
    inspectorPort: w.inspectorPort,
    pids,
    cpuMs: () => {
      // wrangler dev restarts workerd when a file it watches changes: the old processes' CPU is
      // gone with them, and figures over a restart would be nonsense.
      const now = workerdDescendants(w.pid);
      if (now.join() !== pids.join()) {
        throw new Error(`wrangler dev restarted its workerd (${pids.join(",")} → ${now.join(",")}); measure again`);
      }
      return cpuMs(pids);
    },
    stop: w.stop,
  };
}
