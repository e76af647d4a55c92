/**
 * Delivers signed ActionReports to the worker (`POST <reportUrl>`, design §6) and keeps trying
 * until one is acknowledged with a 2xx. A report lost in transit (5xx, 4xx, reset connection)
 * is re-sent with capped exponential backoff; the runner only marks a report delivered once the
 * worker said so, and a restarted agent re-sends what was never acknowledged.
 */
import { type ActionReport, ActionReportSchema, AGENT_HEADER, DEFAULT_AGENT } from "../shared/protocol.ts";
import { SIGNATURE_HEADER, sign } from "../shared/signature.ts";
import { describeFetchError } from "./fetch-error.ts";
import type { Logger } from "./log.ts";

export interface ReportSenderOptions {
  reportUrl: string;
  /** Signing secret (TURNOUT_AGENT_SECRET); the first entry signs. */
  secret: string;
  /** This agent's name, sent as `Turnout-Agent` so the worker verifies with its key (default `default`). */
  agent?: string;
  fetch?: typeof fetch;
  /** Milliseconds since the epoch. */
  now?: () => number;
  /** Resolves after `ms`, or rejects when `signal` aborts. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  log: Logger;
  /** Called once per failed attempt (metrics). */
  onFailure?: (reason: string) => void;
  /** First retry delay; doubles per attempt up to {@link maxDelayMs}. */
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** Per-attempt timeout, so a hung receiver does not stall delivery forever. */
  timeoutMs?: number;
}

export interface ReportSender {
  /** Sends one report once; true when acknowledged (2xx). Never throws. */
  sendOnce(report: ActionReport, signal?: AbortSignal): Promise<boolean>;
  /**
   * Sends until acknowledged or `signal` aborts; `latest` is read before every attempt so a
   * newer report supersedes an older one still being retried. Resolves with the report that was
   * acknowledged, or undefined when aborted.
   */
  deliver(latest: () => ActionReport, signal: AbortSignal): Promise<ActionReport | undefined>;
}

/**
 * The agent's retry backoff (report delivery here; store writes and delivery restarts in the
 * runner): doubles from the first delay up to the cap.
 */
export const RETRY_FIRST_MS = 500;
export const RETRY_MAX_MS = 30_000;

/** Sleep that rejects with the signal's reason when aborted. */
export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Builds a report sender. */
export function createReportSender(options: ReportSenderOptions): ReportSender {
  const doFetch = options.fetch ?? fetch;
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? abortableSleep;
  const initial = options.initialDelayMs ?? RETRY_FIRST_MS;
  const max = options.maxDelayMs ?? RETRY_MAX_MS;
  const timeoutMs = options.timeoutMs ?? 10_000;

  async function sendOnce(report: ActionReport, signal?: AbortSignal): Promise<boolean> {
    const timeout = AbortSignal.timeout(timeoutMs);
    try {
      // Validate what we send: a malformed report would be rejected (400) forever. A report that
      // cannot be built or signed (no secret) is a failed attempt like any other: the caller
      // backs off, where a throw once made it retry at once, forever.
      const body = JSON.stringify(ActionReportSchema.parse(report));
      const signature = await sign(options.secret, body, Math.floor(now() / 1000));
      const res = await doFetch(options.reportUrl, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          [SIGNATURE_HEADER]: signature,
          [AGENT_HEADER]: options.agent ?? DEFAULT_AGENT,
        },
        body,
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
      // Drain the body so the connection can be reused.
      await res.arrayBuffer().catch(() => undefined);
      if (res.ok) return true;
      const reason = `HTTP ${res.status}`;
      options.onFailure?.(reason);
      options.log.warn("report not acknowledged", { action: report.actionId, status: res.status });
      return false;
    } catch (err) {
      if (signal?.aborted) return false;
      const reason = describeFetchError(err);
      options.onFailure?.(reason);
      options.log.warn("report delivery failed", { action: report.actionId, error: reason });
      return false;
    }
  }

  async function deliver(latest: () => ActionReport, signal: AbortSignal): Promise<ActionReport | undefined> {
    let delay = initial;
    for (;;) {
      if (signal.aborted) return undefined;
      const report = latest();
      if (await sendOnce(report, signal)) return report;
      try {
        await sleep(delay, signal);
      } catch {
        return undefined;
      }
      delay = Math.min(max, delay * 2);
    }
  }

  return { sendOnce, deliver };
}
