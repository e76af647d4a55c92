/**
 * Benchmark: the etcd consistency check over 100,000 keys on two real etcd 3.4 servers
 * (goal ≤ 2 s and ≤ 200 MB). Run with `node bench/etcd-consistency.ts`; `run()` returns the
 * figures. Keys are loaded with batched txn puts; the standby gets the same keys except a few
 * missed, differing and surplus ones so the walk does real work on both sides.
 */
import { pathToFileURL } from "node:url";
import { createEtcdClient } from "../agent/etcd/client.ts";
import { checkConsistency } from "../agent/etcd/consistency.ts";
import { loadKeys, startEtcds } from "../test/support/etcd.ts";

export interface BenchFigures {
  keys: number;
  valueBytes: number;
  pageSize: number | "auto";
  loadMs: number;
  checkMs: number;
  /** Highest RSS seen during the check minus RSS just before it, MB. */
  peakRssDeltaMb: number;
  /** Highest V8 heap used during the check minus heap used just before it, MB. */
  peakHeapDeltaMb: number;
  rssBeforeMb: number;
  missed: number;
  differing: number;
  surplus: number;
  goalsMet: { time: boolean; memory: boolean };
}

const mb = (bytes: number) => Math.round((bytes / 1024 / 1024) * 10) / 10;

/** Loads `keys` keys on both sides, runs the check, returns time and memory figures. */
export async function run(keys = 100_000, pageSize: number | "auto" = "auto", valueBytes = 100): Promise<BenchFigures> {
  const [primary, standby] = await startEtcds(["bench-primary", "bench-standby"]);
  if (!primary || !standby) throw new Error("etcd did not start");
  const p = createEtcdClient({ endpoints: [primary.url], callTimeoutMs: 30_000 });
  const s = createEtcdClient({ endpoints: [standby.url], callTimeoutMs: 30_000 });
  try {
    // Kubernetes objects are KBs; 100 bytes by default keeps loading fast (VALUE_BYTES to change).
    const filler = "x".repeat(Math.max(0, valueBytes - 16));
    const value = (i: number) => `value-${String(i).padStart(9, "0")}${filler}`;
    const key = (i: number) => `/registry/bench/k${String(i).padStart(7, "0")}`;
    function* entries(side: "p" | "s"): Generator<[string, string]> {
      for (let i = 0; i < keys; i++) {
        if (side === "s" && i % 10_000 === 1) continue; // missed
        yield [key(i), side === "s" && i % 10_000 === 2 ? "stale" : value(i)]; // differing
      }
      if (side === "s") yield ["/registry/bench/surplus", "s"];
    }
    const loadStart = performance.now();
    await Promise.all([loadKeys(p, entries("p")), loadKeys(s, entries("s"))]);
    const loadMs = Math.round(performance.now() - loadStart);

    globalThis.gc?.();
    const rssBefore = process.memoryUsage.rss();
    const heapBefore = process.memoryUsage().heapUsed;
    let peakRss = rssBefore;
    let peakHeap = heapBefore;
    const sampler = setInterval(() => {
      peakRss = Math.max(peakRss, process.memoryUsage.rss());
      peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
    }, 5);
    const started = performance.now();
    const result = await checkConsistency({
      primaryEndpoints: [primary.url],
      standbyEndpoints: [standby.url],
      prefixes: ["/registry/"],
      maxMissedKeys: 0,
      now: Date.now,
      pageSize,
      callTimeoutMs: 30_000,
    });
    const checkMs = Math.round(performance.now() - started);
    clearInterval(sampler);
    peakRss = Math.max(peakRss, process.memoryUsage.rss());
    peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
    const figures: BenchFigures = {
      keys,
      valueBytes,
      pageSize,
      loadMs,
      checkMs,
      peakRssDeltaMb: mb(peakRss - rssBefore),
      peakHeapDeltaMb: mb(peakHeap - heapBefore),
      rssBeforeMb: mb(rssBefore),
      missed: result.missed.count,
      differing: result.differing.count,
      surplus: result.surplus.count,
      goalsMet: { time: checkMs <= 2000, memory: mb(peakRss - rssBefore) <= 200 },
    };
    return figures;
  } finally {
    p.close();
    s.close();
    await Promise.all([primary.stop(), standby.stop()]);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const pageSize = process.env.PAGE_SIZE ? Number(process.env.PAGE_SIZE) : "auto";
  run(100_000, pageSize, Number(process.env.VALUE_BYTES ?? 100)).then(
    (figures) => console.log(JSON.stringify(figures, null, 2)),
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
