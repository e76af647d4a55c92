/**
 * Heartbeats (design §11.1): every replica, the Lease holder and each standby alike, sends a
 * signed `POST <heartbeatUrl>` every `heartbeatSeconds`, so the worker hears an agent before the
 * incident that needs it instead of discovering a dead one at dispatch. The answer's `serves`
 * (which sides of which targets the worker sends here) is kept for `/healthz`.
 *
 * A refused heartbeat (401: the worker does not know this name or key) is an operator's mistake
 * that silences the agent for the worker, so it is logged at error level on every try and shown
 * in `/readyz` and the metrics; it is retried at the normal cadence, since backing off would only
 * delay noticing the fix. Any other failure (network, 5xx) backs off from 1 s up to the cadence.
 * The agent keeps serving either way: a heartbeat is about being heard, not about executing.
 */
import { createHash } from "node:crypto";
import { type AgentConfig, agentHeartbeatUrl, type Side } from "../shared/config.ts";
import {
  AGENT_HEADER,
  type Heartbeat,
  HeartbeatAnswerSchema,
  HeartbeatSchema,
  type ReadinessReport,
} from "../shared/protocol.ts";
import { SIGNATURE_HEADER, sign } from "../shared/signature.ts";
import { describeFetchError } from "./fetch-error.ts";
import type { Leadership } from "./leadership.ts";
import { podOfIdentity } from "./lease.ts";
import type { Logger } from "./log.ts";
import { abortableSleep } from "./report-sender.ts";

/** `ok`: the last one was acknowledged; `refused`: 401/403; `failing`: anything else; `pending`: none sent yet. */
export type HeartbeatStatus = "pending" | "ok" | "refused" | "failing";

export interface HeartbeatState {
  status: HeartbeatStatus;
  /** When the last acknowledged heartbeat was sent. */
  lastOkAt?: string;
  /** What went wrong with the last one, when it was not acknowledged. */
  error?: string;
  /** The worker's latest answer: the sides of each target it sends this agent. */
  serves?: Record<string, Side[]>;
}

/** The clock heartbeats run on: tests inject a fake one. */
export interface HeartbeatClock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Resolves after `ms`, or rejects when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export interface HeartbeatOptions {
  config: Pick<AgentConfig, "name" | "heartbeatUrl" | "reportUrl" | "heartbeatSeconds" | "targets">;
  mode: Heartbeat["mode"];
  version: string;
  /** This replica's pod name. */
  pod: string;
  /** The Lease holder's pod name, or null while nobody holds it. */
  leader: () => string | null;
  /** TURNOUT_AGENT_SECRET: this agent's own key. */
  secret: string;
  log: Logger;
  clock?: HeartbeatClock;
  fetch?: typeof fetch;
  /** Called after every attempt (metrics). */
  onResult?: (status: Exclude<HeartbeatStatus, "pending">) => void;
  /** Per-attempt timeout, so a hung worker does not stall the cadence. */
  timeoutMs?: number;
  /** The latest readiness results (design §11.3), carried once the worker has said what it serves. */
  readiness?: () => ReadinessReport;
}

export interface Heartbeats {
  state(): HeartbeatState;
  /** Sends one heartbeat; resolves with the delay until the next one (ms). Never throws. */
  beat(signal?: AbortSignal): Promise<number>;
  /** Starts the loop: a heartbeat at once, then one after each delay {@link beat} returns. */
  start(): void;
  /** Stops the loop (an attempt in flight is aborted). */
  stop(): Promise<void>;
}

/** The first delay after a failure that is not a refusal; it doubles up to `heartbeatSeconds`. */
export const HEARTBEAT_RETRY_FIRST_MS = 1000;

/** JSON with object keys sorted at every level, so equal configs hash equally whatever their key order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/**
 * `{"<target>": "<hex sha256 of its canonical JSON>"}` over the validated config (defaults
 * applied), so two agents whose copies of a target differ are told apart (design §11.3).
 */
export function targetDigests(targets: AgentConfig["targets"]): Record<string, string> {
  return Object.fromEntries(
    Object.entries(targets).map(([name, target]) => [
      name,
      createHash("sha256").update(canonicalJson(target)).digest("hex"),
    ]),
  );
}

/**
 * The heartbeat's `leader`: this pod while it holds the Lease, else the holder's pod (its
 * identity without the random suffix), or null while nobody holds it.
 */
export function leaderPod(leadership: Leadership, pod: string): string | null {
  if (leadership.isLeader()) return pod;
  const holder = leadership.state().holder;
  return holder ? podOfIdentity(holder) : null;
}

/** Builds the heartbeat sender; `start()` runs it on its cadence. */
export function createHeartbeats(options: HeartbeatOptions): Heartbeats {
  const clock = options.clock ?? { now: Date.now, sleep: abortableSleep };
  const doFetch = options.fetch ?? fetch;
  const url = agentHeartbeatUrl(options.config);
  const cadenceMs = options.config.heartbeatSeconds * 1000;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const digests = targetDigests(options.config.targets);
  const log = options.log.child({ agent: options.config.name, pod: options.pod });
  let state: HeartbeatState = { status: "pending" };
  let retryMs = HEARTBEAT_RETRY_FIRST_MS;
  const controller = new AbortController();
  let loop: Promise<void> | undefined;

  const settle = (next: HeartbeatState): number => {
    state = next;
    if (next.status === "ok" || next.status === "refused" || next.status === "failing") options.onResult?.(next.status);
    if (next.status === "failing") {
      const delay = Math.min(retryMs, cadenceMs);
      retryMs = Math.min(retryMs * 2, cadenceMs);
      return delay;
    }
    retryMs = HEARTBEAT_RETRY_FIRST_MS;
    return cadenceMs;
  };

  async function beat(signal?: AbortSignal): Promise<number> {
    const kept: Pick<HeartbeatState, "lastOkAt" | "serves"> = {
      ...(state.lastOkAt ? { lastOkAt: state.lastOkAt } : {}),
      ...(state.serves ? { serves: state.serves } : {}),
    };
    const refused = (error: string): number => {
      log.error("heartbeat refused by the worker: it does not know this agent's name or key", { url, error });
      return settle({ ...kept, status: "refused", error });
    };
    if (!options.secret) return refused("TURNOUT_AGENT_SECRET is not set, so no heartbeat can be signed");
    const nowMs = clock.now();
    const heartbeat: Heartbeat = HeartbeatSchema.parse({
      agent: options.config.name,
      version: options.version,
      mode: options.mode,
      pod: options.pod,
      leader: options.leader(),
      at: new Date(nowMs).toISOString(),
      targets: digests,
      // Only once `serves` is known: before it, readiness covers both sides, and a side the worker
      // sends another agent is refused (403), so nothing is sent that the worker did not assign.
      ...(options.readiness && state.serves ? { readiness: options.readiness() } : {}),
    });
    const body = JSON.stringify(heartbeat);
    const timeout = AbortSignal.timeout(timeoutMs);
    try {
      const res = await doFetch(url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          [SIGNATURE_HEADER]: await sign(options.secret, body, Math.floor(nowMs / 1000)),
          [AGENT_HEADER]: options.config.name,
        },
        body,
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
      const text = await res.text().catch(() => "");
      if (res.status === 403) {
        // Readiness for a side no longer served (the worker's config moved it): the refusal says
        // what is served now, so the next heartbeat carries only that.
        const now = HeartbeatAnswerSchema.safeParse(parseJson(text));
        if (now.success) kept.serves = now.data.serves;
      }
      if (res.status === 401 || res.status === 403) return refused(`HTTP ${res.status}`);
      if (!res.ok) {
        log.warn("heartbeat not acknowledged", { url, status: res.status });
        return settle({ ...kept, status: "failing", error: `HTTP ${res.status}` });
      }
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      const answer = HeartbeatAnswerSchema.safeParse(json);
      // An older worker may answer without `serves` (rollout order, design §11.6): still heard.
      if (!answer.success) log.warn("heartbeat answer has no valid serves; keeping the previous one", { url });
      const serves = answer.success ? answer.data.serves : state.serves;
      if (state.status !== "ok") log.info("heartbeat acknowledged", { url, serves });
      return settle({ status: "ok", lastOkAt: heartbeat.at, ...(serves ? { serves } : {}) });
    } catch (err) {
      const error = describeFetchError(err);
      log.warn("heartbeat delivery failed", { url, error });
      return settle({ ...kept, status: "failing", error });
    }
  }

  return {
    state: () => state,
    beat,
    start: () => {
      loop ??= (async () => {
        while (!controller.signal.aborted) {
          const delay = await beat(controller.signal);
          try {
            await clock.sleep(delay, controller.signal);
          } catch {
            return;
          }
        }
      })();
    },
    stop: async () => {
      controller.abort(new Error("heartbeats stopped"));
      await loop;
    },
  };
}

/** JSON text as a value; undefined when it is not JSON. */
function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
