/**
 * The runner when things around it fail: store writes that fail (or fail yet land), report
 * delivery that throws, leadership that flips back while steps are still stopping, and steps
 * that report progress in tight loops. Each case once left an action stranded ("running" with
 * nothing executing) or the agent spinning, so each is pinned here with in-process fakes and an
 * injected sleep that records its waits instead of waiting.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { type ActionRecord, InMemoryActionStore } from "../../agent/action-store.ts";
import type { Executor, StepContext, StepOutcome } from "../../agent/executor.ts";
import { createLogger, type Logger } from "../../agent/log.ts";
import type { ReportSender } from "../../agent/report-sender.ts";
import { ActionRunner, type ExecutorRegistry } from "../../agent/runner.ts";
import { type ActionReport, type ActionRequest, ActionRequestSchema } from "../../shared/protocol.ts";
import { actionRequest, type CountingOptions, countingExecutor, testAgentConfig } from "../support/test-executors.ts";

/** A promise and the function that resolves it. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve: () => void = () => {};
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/**
 * What one write does: succeed, fail, fail after landing (a timeout after the commit), or hang
 * until {@link FlakyStore.release} (an API server that stopped answering).
 */
type WriteOutcome = "ok" | "fail" | "landed" | "hold";

/** An in-memory store whose writes follow a script (then succeed), counting those that landed. */
class FlakyStore extends InMemoryActionStore {
  puts: ActionRecord[] = [];
  private readonly outcomes: WriteOutcome[] = [];
  private readonly held = deferred();
  private readonly holding = deferred();
  /** Resolves when a "hold" write is hanging. */
  readonly hanging = this.holding.promise;
  /** Lets the hanging write land. */
  release(): void {
    this.held.resolve();
  }

  /** The outcomes of the next writes, in order. */
  script(...outcomes: WriteOutcome[]): void {
    this.outcomes.push(...outcomes);
  }

  override async put(record: ActionRecord): Promise<void> {
    const outcome = this.outcomes.shift() ?? "ok";
    if (outcome === "hold") {
      this.holding.resolve();
      await this.held.promise;
    }
    if (outcome === "fail") throw new Error("HTTP-Code: 500 Message: etcdserver: request timed out");
    await super.put(record);
    this.puts.push(structuredClone(record));
    if (outcome === "landed") throw new Error("HTTP-Code: 504 Message: the write timed out (it may have landed)");
  }
}

function recordingSender(sent: ActionReport[]): ReportSender {
  return {
    sendOnce: async (report) => {
      sent.push(report);
      return true;
    },
    deliver: async (latest) => {
      const report = latest();
      sent.push(report);
      return report;
    },
  };
}

/** A sleep that records each wait and returns at once (or rejects when aborted). */
function recordingSleep() {
  const slept: number[] = [];
  return {
    slept,
    sleep: async (ms: number, signal?: AbortSignal) => {
      slept.push(ms);
      signal?.throwIfAborted();
    },
  };
}

function capturingLogger(): { log: Logger; lines: { level: string; msg: string }[] } {
  const lines: { level: string; msg: string }[] = [];
  return { log: createLogger({}, { write: (line) => lines.push(JSON.parse(line)) }), lines };
}

interface SetupOptions {
  store?: InMemoryActionStore;
  executor?: Executor;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  reports?: ReportSender;
}

function setup(counting: CountingOptions, options: SetupOptions = {}) {
  const executor = countingExecutor(counting);
  const store = options.store ?? new FlakyStore();
  const sent: ActionReport[] = [];
  const { log, lines } = capturingLogger();
  const sleep = recordingSleep();
  const executors: ExecutorRegistry = new Map([["dns-flip", options.executor ?? executor.executor]]);
  const runner = new ActionRunner({
    config: testAgentConfig(["app"], "http://127.0.0.1:1/v1/agent/reports"),
    executors,
    store,
    reports: options.reports ?? recordingSender(sent),
    log,
    sleep: options.sleep ?? sleep.sleep,
  });
  return { runner, counting: executor, store, sent, lines, slept: sleep.slept };
}

const req = (epoch: number): ActionRequest => ActionRequestSchema.parse(actionRequest("app", epoch));

describe("runner: a store write that fails", () => {
  it("is retried with backoff until it lands, and the action goes on without repeating a step", async () => {
    const store = new FlakyStore();
    const { runner, counting, lines, slept, sent } = setup({ steps: ["one", "two"] }, { store });
    store.script("ok", "fail", "fail", "fail"); // accepted; then "one" starts: three writes in a row fail
    expect(await runner.submit(req(1))).toEqual({ outcome: "accepted", id: "app:1" });
    await runner.idle();
    expect(slept).toEqual([500, 1000, 2000]);
    expect(lines.filter((l) => l.msg === "could not store the action record; retrying")).toHaveLength(3);
    expect(counting.calls.map((c) => c.step)).toEqual(["one", "two"]);
    expect((await store.get("app", "app:1"))?.report.status).toBe("succeeded");
    expect(sent.at(-1)?.status).toBe("succeeded");
    expect(runner.executing()).toEqual([]);
  });

  it("when it is the first one, lets the sender's retry of the same id start the action", async () => {
    const store = new FlakyStore();
    const { runner, counting } = setup({ steps: ["one"] }, { store });
    store.script("fail");
    await expect(runner.submit(req(2))).rejects.toThrow(/500/);
    expect(await runner.report("app:2")).toBeUndefined();
    expect(await runner.submit(req(2))).toEqual({ outcome: "accepted", id: "app:2" });
    await runner.idle();
    expect(counting.count("one")).toBe(1);
    expect((await store.get("app", "app:2"))?.report.status).toBe("succeeded");
  });

  it("when it is the first one and landed anyway, runs the action on the retry of the same id", async () => {
    const store = new FlakyStore();
    const { runner, counting } = setup({ steps: ["one"] }, { store });
    store.script("landed");
    await expect(runner.submit(req(3))).rejects.toThrow(/504/);
    const again = await runner.submit(req(3));
    expect(again.outcome === "duplicate" && again.report.status).toBe("running");
    await runner.idle();
    expect(counting.count("one")).toBe(1);
    expect((await store.get("app", "app:3"))?.report.status).toBe("succeeded");
  });

  it("when it is the first one and landed anyway, runs that action when another id arrives", async () => {
    const store = new FlakyStore();
    const { runner, counting } = setup({ steps: ["one"] }, { store });
    store.script("landed");
    await expect(runner.submit(req(4))).rejects.toThrow(/504/);
    expect(await runner.submit(req(5))).toEqual({ outcome: "conflict", runningId: "app:4" });
    await runner.idle();
    expect(counting.calls).toEqual([{ action: "app:4", step: "one", dryRun: false }]);
    expect((await store.get("app", "app:4"))?.report.status).toBe("succeeded");
    expect(await runner.submit(req(5))).toEqual({ outcome: "accepted", id: "app:5" });
    await runner.idle();
  });

  it("stops being retried when the runner aborts, leaving the action to resume on the next leader", async () => {
    const store = new FlakyStore();
    const retrying = deferred();
    // A retry wait that only ends with the abort.
    const sleep = (_ms: number, signal?: AbortSignal) =>
      new Promise<void>((_, reject) => {
        retrying.resolve();
        signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
      });
    const { runner, counting } = setup({ steps: ["one"] }, { store, sleep });
    store.script("ok", ...Array<WriteOutcome>(1_000).fill("fail"));
    await runner.submit(req(6));
    await retrying.promise;
    await runner.abortAll("lost leadership");
    expect(runner.executing()).toEqual([]);
    expect(counting.count()).toBe(0);
    const stored = await store.get("app", "app:6");
    expect(stored?.report.status).toBe("running");
    expect(stored?.completedSteps).toEqual([]);
  });
});

/** An executor of one step, "work", that runs `run`. */
function oneStep(run: (ctx: StepContext) => Promise<StepOutcome | undefined>): Executor {
  return { kind: "dns-flip", steps: () => [{ name: "work", run }] };
}

/**
 * One step whose first run ignores an abort until the test releases it (a step busy in an API
 * call when leadership goes), then fails with the abort; later runs succeed at once.
 */
function slowToStopExecutor() {
  let runs = 0;
  const started = deferred();
  const released = deferred();
  const executor = oneStep(async (ctx) => {
    runs += 1;
    if (runs === 1) {
      started.resolve();
      await released.promise;
      ctx.signal.throwIfAborted();
    }
    return { detail: "done" };
  });
  return { executor, firstStarted: started.promise, release: released.resolve, runs: () => runs };
}

describe("runner: leadership regained while the abort is still stopping steps", () => {
  it("resumes the action once the abort is done, instead of skipping it as still active", async () => {
    const slow = slowToStopExecutor();
    const { runner, store } = setup({ steps: [] }, { executor: slow.executor });
    await runner.submit(req(7));
    await slow.firstStarted;
    const aborting = runner.abortAll("lost leadership");
    const resuming = runner.resumeUnfinished();
    slow.release();
    await aborting;
    expect(await resuming).toEqual(["app:7"]);
    await runner.idle();
    expect(slow.runs()).toBe(2);
    expect((await store.get("app", "app:7"))?.report.status).toBe("succeeded");
  });

  it("resumes nothing when leadership went again while it waited; the next gain resumes", async () => {
    const slow = slowToStopExecutor();
    const { runner, store } = setup({ steps: [] }, { executor: slow.executor });
    await runner.submit(req(8));
    await slow.firstStarted;
    const aborting = runner.abortAll("lost leadership");
    const resuming = runner.resumeUnfinished();
    const abortingAgain = runner.abortAll("lost leadership again");
    slow.release();
    await Promise.all([aborting, abortingAgain]);
    expect(await resuming).toEqual([]);
    expect(runner.isAccepting()).toBe(false);
    expect(runner.executing()).toEqual([]);
    expect(slow.runs()).toBe(1);
    expect(await runner.resumeUnfinished()).toEqual(["app:8"]);
    await runner.idle();
    expect((await store.get("app", "app:8"))?.report.status).toBe("succeeded");
  });
});

describe("runner: report delivery that throws", () => {
  it("is restarted after a capped backoff, not at once, until the report is acknowledged", async () => {
    const sent: ActionReport[] = [];
    let throws = 3;
    const reports: ReportSender = {
      sendOnce: async () => true,
      deliver: async (latest) => {
        if (throws > 0) {
          throws -= 1;
          throw new Error("DataError: Zero-length key is not supported");
        }
        const report = latest();
        sent.push(report);
        return report;
      },
    };
    const { runner, store, slept, lines } = setup({ steps: ["one"] }, { reports });
    await runner.submit(req(9));
    await runner.idle();
    expect(slept).toEqual([500, 1000, 2000]);
    expect(lines.filter((l) => l.level === "error" && l.msg === "report delivery failed; retrying")).toHaveLength(3);
    expect(sent.at(-1)?.status).toBe("succeeded");
    expect((await store.get("app", "app:9"))?.reportDelivered).toBe(true);
  });
});

describe("runner: progress from a step's poll loop", () => {
  afterEach(() => {
    vi.useRealTimers();
  });
  // The step's sleep moves the (fake) clock and fires the timers that fell due.
  const fakeTime = () => vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
  const passTime = async (ms: number) => {
    vi.advanceTimersByTime(ms);
  };
  const progressWrites = (store: FlakyStore, prefix: string) =>
    store.puts.filter((r) => r.report.steps[0]?.status === "running" && r.report.steps[0].detail?.startsWith(prefix));

  it("is written (and reported) at most every 2 s, not at every call", async () => {
    fakeTime();
    const store = new FlakyStore();
    const executor = oneStep(async (ctx) => {
      for (let i = 0; i < 1000; i++) {
        ctx.progress(`poll ${i}`);
        await ctx.sleep(50); // 50 s of polling in all
      }
      return { detail: "settled" };
    });
    const { runner, sent } = setup({ steps: [] }, { store, executor, sleep: passTime });
    await runner.submit(req(10));
    await runner.idle();
    const writes = progressWrites(store, "poll ");
    expect(writes.length).toBeGreaterThanOrEqual(24);
    expect(writes.length).toBeLessThanOrEqual(25);
    const times = writes.map((r) => Date.parse(r.updatedAt));
    expect(times.every((t, i) => i === 0 || t - (times[i - 1] ?? 0) >= 2000)).toBe(true);
    expect(store.puts.length).toBeLessThanOrEqual(writes.length + 5);
    expect(sent.length).toBeLessThanOrEqual(writes.length + 4);
    expect(sent.at(-1)?.steps[0]?.detail).toBe("settled");
  });

  it("writes the latest text once the 2 s are up, and a step change carries the latest text at once", async () => {
    fakeTime();
    const store = new FlakyStore();
    const gate = deferred();
    const executor = oneStep(async (ctx) => {
      ctx.progress("deleting the route");
      ctx.progress("waiting for 3 nodes");
      await gate.promise;
      ctx.progress("3/3 nodes reported");
      return undefined;
    });
    const { runner, sent } = setup({ steps: [] }, { store, executor, sleep: passTime });
    await runner.submit(req(11));
    await vi.advanceTimersByTimeAsync(1999);
    expect(progressWrites(store, "")).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(progressWrites(store, "").map((r) => r.report.steps[0]?.detail)).toEqual(["waiting for 3 nodes"]);
    gate.resolve();
    await runner.idle();
    expect(progressWrites(store, "").map((r) => r.report.steps[0]?.detail)).toEqual(["waiting for 3 nodes"]);
    expect((await store.get("app", "app:11"))?.report.steps[0]).toMatchObject({
      status: "succeeded",
      detail: "3/3 nodes reported",
    });
    expect(sent.at(-1)?.steps[0]?.detail).toBe("3/3 nodes reported");
    expect(vi.getTimerCount()).toBe(0);
  });

  it("queues at most one write behind a hanging one, carrying every change since", async () => {
    fakeTime();
    const store = new FlakyStore();
    store.script("ok", "ok", "hold"); // accepted, step started, then the first progress write hangs
    const polled = deferred();
    const executor = oneStep(async (ctx) => {
      for (let i = 0; i < 1000; i++) {
        ctx.progress(`poll ${i}`);
        await ctx.sleep(2000); // each call is due for a write
      }
      polled.resolve();
      return { detail: "settled" };
    });
    const { runner } = setup({ steps: [] }, { store, executor, sleep: passTime });
    await runner.submit(req(12));
    await store.hanging;
    await polled.promise;
    store.release();
    await runner.idle();
    // Accepted, started, the hanging progress write; the one queued behind it started after the
    // step ended, so it carries the step's outcome; then succeeded, then delivered.
    expect(store.puts.map((r) => r.report.steps[0]?.detail)).toEqual([
      undefined,
      undefined,
      expect.stringMatching(/^poll \d+$/),
      "settled",
      "settled",
      "settled",
    ]);
    expect(store.puts.map((r) => r.report.status).at(-1)).toBe("succeeded");
  });
});
