/**
 * The `TargetObject.testing` setup worker tests share: a settable clock, a dispatcher that records
 * every ActionRequest and answers `nextAttempt`, and a notifier that records every Notification
 * (or a caller's own notifier). Lives under test/worker so it runs in workerd; the worker project
 * only collects `*.test.ts`, so this file is never run as a test itself.
 */
import { reset, runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeEach } from "vitest";
import type { ActionRequest } from "../../../shared/protocol.ts";
import type { DispatchAttempt } from "../../../worker/agents/dispatcher.ts";
import type { Notification, Notifier } from "../../../worker/target/notifier.ts";
import { TargetObject } from "../../../worker/target/target-object.ts";

/** What a test reads and steers; every field starts afresh before each test. */
export interface RecordingObject {
  /** The object's "now" in epoch ms (only used when `start` was given). */
  clock: number;
  /** Every ActionRequest the object dispatched, in order; a test may assign `[]` to forget them. */
  dispatched: ActionRequest[];
  /** Every Notification sent through the recording notifier, in order. */
  notes: Notification[];
  /** What the next dispatch answers; `{ ok: true, detail: "recorded" }` unless a test sets it. */
  nextAttempt: DispatchAttempt;
  /** Advances the clock to `atMs` and fires `target`'s alarm, as workerd would at that time; true if one ran. */
  fireAlarm(target: string, atMs: number): Promise<boolean>;
}

/** Options of {@link useRecordingObject}. */
export interface RecordingObjectOptions {
  /** The clock each test starts at; without it the object keeps the real clock (Date.now). */
  start?: number;
  /** A notifier to use instead of the recording one (e.g. the real slackNotifier). */
  notifier?: Notifier;
}

const RECORDED: DispatchAttempt = { ok: true, detail: "recorded" };

/**
 * Installs beforeEach/afterEach hooks: before each test a fresh recording `TargetObject.testing`;
 * after it `TargetObject.testing = undefined` and `reset()` (empty storage, objects and alarms).
 * Call it before the file's own hooks so its afterEach runs after theirs (vitest runs after-hooks
 * in reverse order of registration).
 */
export function useRecordingObject(options: RecordingObjectOptions = {}): RecordingObject {
  let clock = options.start ?? 0;
  let dispatched: ActionRequest[] = [];
  let notes: Notification[] = [];
  let nextAttempt: DispatchAttempt = { ...RECORDED };

  beforeEach(() => {
    clock = options.start ?? 0;
    dispatched = [];
    notes = [];
    nextAttempt = { ...RECORDED };
    TargetObject.testing = {
      ...(options.start === undefined ? {} : { now: () => clock }),
      dispatcher: {
        async dispatch(request) {
          dispatched.push(request);
          return nextAttempt;
        },
      },
      notifier: options.notifier ?? {
        async notify(n) {
          notes.push(n);
        },
      },
    };
  });
  afterEach(async () => {
    TargetObject.testing = undefined;
    // Every test starts from empty storage (objects and their alarms included).
    await reset();
  });

  return {
    get clock() {
      return clock;
    },
    set clock(ms: number) {
      clock = ms;
    },
    get dispatched() {
      return dispatched;
    },
    set dispatched(requests: ActionRequest[]) {
      dispatched = requests;
    },
    get notes() {
      return notes;
    },
    set notes(list: Notification[]) {
      notes = list;
    },
    get nextAttempt() {
      return nextAttempt;
    },
    set nextAttempt(attempt: DispatchAttempt) {
      nextAttempt = attempt;
    },
    async fireAlarm(target, atMs) {
      clock = atMs;
      const stub = env.TARGETS.getByName(target);
      const ran = await runDurableObjectAlarm(stub);
      await stub.settle();
      return ran;
    },
  };
}
