/**
 * Benchmark: what one committed SQLite transaction costs a Durable Object in workerd, by shape
 * (bench/sqlite-commit-worker.ts under Miniflare direct). It separates the statements' share of
 * the ingest bench's gap to its storage floor from the rest: per target batch the floor reads a
 * key and upserts one signal, one table; turnout updates the signal, appends its audit events and
 * writes the state row, three tables.
 *
 * Each shape is sent as {@link CALLS} RPC calls (20 in flight) to its own object, in
 * {@link ROUNDS} rounds that alternate the shapes (the machine may be shared); CPU is workerd's
 * user + sys over all rounds ÷ calls.
 *
 * Run with `node bench/sqlite-commit.ts`; `run()` returns the figures.
 */
import { pathToFileURL } from "node:url";
import { startDirectWorker } from "./miniflare-worker.ts";
import { SHAPES, type Shape } from "./sqlite-commit-shapes.ts";
import { cpuMs } from "./workerd-cpu.ts";

const CALLS = 2000;
const ROUNDS = 5;

export interface SqliteCommitFigures {
  calls: number;
  rounds: number;
  /** CPU µs per committed call, by shape. */
  cpuMicrosPerCall: Record<Shape, number>;
}

export async function run(options: { calls?: number; rounds?: number } = {}): Promise<SqliteCommitFigures> {
  const { calls = CALLS, rounds = ROUNDS } = options;
  const w = await startDirectWorker({
    entry: "bench/sqlite-commit-worker.ts",
    vars: {},
    durableObjects: { COMMITS: "CommitObject" },
  });
  try {
    const send = async (shape: Shape, calls: number) => {
      const res = await fetch(`${w.url}/?shape=${encodeURIComponent(shape)}&calls=${calls}`);
      if (!res.ok) throw new Error(`shape ${shape} answered ${res.status}: ${await res.text()}`);
      await res.text();
    };
    // Warm up every object and the isolate's code before measuring.
    for (const shape of SHAPES) await send(shape, 200);
    const spent = Object.fromEntries(SHAPES.map((s) => [s, 0])) as Record<Shape, number>;
    for (let r = 0; r < rounds; r++) {
      for (const shape of SHAPES) {
        const before = cpuMs(w.pids);
        await send(shape, calls);
        spent[shape] += cpuMs(w.pids) - before;
      }
    }
    const perCall = (shape: Shape) => Math.round((spent[shape] * 1000) / (calls * rounds));
    return {
      calls,
      rounds,
      cpuMicrosPerCall: Object.fromEntries(SHAPES.map((s) => [s, perCall(s)])) as Record<Shape, number>,
    };
  } finally {
    await w.stop();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(JSON.stringify(await run(), null, 2));
}
