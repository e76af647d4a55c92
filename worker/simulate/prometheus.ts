/**
 * History from Prometheus (design §10): `ALERTS` through `query_range` (`--query`), or any
 * expression with an alerting rule's `for` applied the way Prometheus applies it (`--expr … --for
 * …`), turned into firing intervals. Uses only `fetch` (passed in), so it runs anywhere.
 *
 * Prometheus refuses a range query of more than 11,000 points per series
 * (web/api/v1/api.go: "exceeded maximum resolution of 11,000 points per timeseries"), so long
 * ranges are split into requests of at most that many steps.
 */
import type { FiringInterval } from "./inputs.ts";
import { stableJson } from "./inputs.ts";

/** Prometheus's own limit on points per series in one range query. */
export const MAX_POINTS = 11_000;

const UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
  y: 31_536_000_000,
};

/** A Prometheus duration (`90s`, `1m`, `1h30m`, `30d`) in ms, or null. */
export function parseDuration(text: string): number | null {
  const t = text.trim();
  if (!/^(\d+(ms|s|m|h|d|w|y))+$/.test(t)) return null;
  let total = 0;
  for (const m of t.matchAll(/(\d+)(ms|s|m|h|d|w|y)/g)) total += Number(m[1]) * (UNITS[m[2] ?? "s"] ?? 0);
  return total;
}

/** `--from` / `--to`: an ISO time, `now`, or `-30d` (a duration before `now`); null when unreadable. */
export function parseTime(text: string, now: number): number | null {
  const t = text.trim();
  if (t === "now") return now;
  if (t.startsWith("-")) {
    const d = parseDuration(t.slice(1));
    return d === null ? null : now - d;
  }
  if (!/^\d{4}-\d{2}-\d{2}/.test(t)) return null;
  const ms = Date.parse(t);
  return Number.isFinite(ms) ? ms : null;
}

/** [start, end] pieces of at most {@link MAX_POINTS} steps each, end inclusive. */
export function splitRange(start: number, end: number, step: number, maxPoints = MAX_POINTS): [number, number][] {
  const out: [number, number][] = [];
  for (let from = start; from <= end; from += maxPoints * step) {
    out.push([from, Math.min(end, from + (maxPoints - 1) * step)]);
  }
  return out;
}

/** One series of a range query: labels and sample times (ms) with values. */
export interface Series {
  metric: Record<string, string>;
  values: [number, string][];
}

/** Prometheus answered with an error, or could not be reached after retries. */
export class PrometheusError extends Error {
  readonly code = "prometheus";
}

export interface QueryOptions {
  fetch: typeof fetch;
  /** Retries after a network error or a 5xx/429 answer. */
  retries?: number;
  /** Waits between retries (tests pass a no-op). */
  sleep?: (ms: number) => Promise<void>;
  onProgress?: (done: number, total: number) => void;
}

interface MatrixAnswer {
  status: "success" | "error";
  errorType?: string;
  error?: string;
  data?: { resultType: string; result: { metric: Record<string, string>; values: [number, string][] }[] };
}

async function requestOnce(url: string, opts: QueryOptions): Promise<Series[]> {
  const retries = opts.retries ?? 3;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  let lastError = "";
  for (let attempt = 0; attempt <= retries; attempt++) {
    if (attempt > 0) await sleep(500 * 2 ** (attempt - 1));
    let res: Response;
    try {
      res = await opts.fetch(url);
    } catch (err) {
      lastError = `cannot reach Prometheus: ${err instanceof Error ? err.message : String(err)}`;
      continue;
    }
    const text = await res.text();
    let body: MatrixAnswer | undefined;
    try {
      body = JSON.parse(text) as MatrixAnswer;
    } catch {
      body = undefined;
    }
    if (res.status >= 500 || res.status === 429) {
      lastError = `Prometheus answered ${res.status}${body?.error ? `: ${body.error}` : ""}`;
      continue;
    }
    if (body?.status !== "success" || !body.data) {
      // 4xx (a bad query, a bad range): retrying cannot fix it.
      throw new PrometheusError(
        `Prometheus error${body?.errorType ? ` (${body.errorType})` : ""}: ${body?.error ?? `HTTP ${res.status}: ${text.slice(0, 200)}`}`,
      );
    }
    if (body.data.resultType !== "matrix") {
      throw new PrometheusError(`Prometheus answered a ${body.data.resultType}, expected a range (matrix) result`);
    }
    return body.data.result.map((r) => ({
      metric: r.metric,
      values: r.values.map(([t, v]): [number, string] => [Math.round(t * 1000), v]),
    }));
  }
  throw new PrometheusError(`${lastError} (after ${retries} retries)`);
}

/** `query_range` over [start, end] at `step`, split into allowed pieces and merged per series. */
export async function queryRange(
  baseUrl: string,
  query: string,
  start: number,
  end: number,
  step: number,
  opts: QueryOptions,
): Promise<Series[]> {
  const pieces = splitRange(start, end, step);
  const merged = new Map<string, Series>();
  let done = 0;
  opts.onProgress?.(0, pieces.length);
  for (const [from, to] of pieces) {
    const url = new URL("api/v1/query_range", baseUrl.endsWith("/") ? baseUrl : `${baseUrl}/`);
    url.searchParams.set("query", query);
    url.searchParams.set("start", String(from / 1000));
    url.searchParams.set("end", String(to / 1000));
    url.searchParams.set("step", `${step / 1000}s`);
    for (const s of await requestOnce(url.toString(), opts)) {
      const key = stableJson(s.metric);
      const cur = merged.get(key);
      if (cur) cur.values.push(...s.values);
      else merged.set(key, { metric: s.metric, values: [...s.values] });
    }
    done += 1;
    opts.onProgress?.(done, pieces.length);
  }
  return [...merged.values()]
    .map((s) => ({ ...s, values: s.values.sort((a, b) => a[0] - b[0]) }))
    .sort((a, b) => (stableJson(a.metric) < stableJson(b.metric) ? -1 : 1));
}

/** Runs of consecutive steps at which a series has a sample: [first, last] sample times. */
function runs(times: readonly number[], step: number): [number, number][] {
  const out: [number, number][] = [];
  for (const t of times) {
    const cur = out.at(-1);
    if (cur && t - cur[1] <= step) cur[1] = t;
    else out.push([t, t]);
  }
  return out;
}

function without(labels: Record<string, string>, ...names: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(labels).sort()) if (!names.includes(k)) out[k] = labels[k] ?? "";
  return out;
}

/**
 * `--query` on `ALERTS`: each run of `alertstate="firing"` samples is one firing interval, from
 * its first sample to the first step without one (null while still firing at `rangeEnd`);
 * labels are the series' less `__name__` and `alertstate` (design §10).
 */
export function alertIntervals(series: readonly Series[], step: number, rangeEnd: number): FiringInterval[] {
  const out: FiringInterval[] = [];
  for (const s of series) {
    if (s.metric.alertstate !== undefined && s.metric.alertstate !== "firing") continue;
    const labels = without(s.metric, "__name__", "alertstate");
    for (const [first, last] of runs(
      s.values.map(([t]) => t),
      step,
    )) {
      const end = last + step;
      out.push({ labels, start: first, end: end > rangeEnd ? null : end });
    }
  }
  return out;
}

/**
 * `--expr … --for …`: what an alerting rule with that expression and `for` would have fired,
 * evaluated at every step. As Prometheus's rules/alerting.go does: the alert is pending from the
 * first evaluation that returns the series (`ActiveAt`), fires at the first evaluation at least
 * `for` later (`FiredAt`, the `startsAt` Alertmanager receives), and resolves at the first
 * evaluation that no longer returns it (`ResolvedAt`). Runs shorter than `for` never fire.
 * Labels are the series' less `__name__`, plus `alertname` when given.
 */
export function exprIntervals(
  series: readonly Series[],
  step: number,
  forMs: number,
  alertname: string | undefined,
  rangeEnd: number,
): FiringInterval[] {
  const out: FiringInterval[] = [];
  for (const s of series) {
    const labels = { ...without(s.metric, "__name__"), ...(alertname === undefined ? {} : { alertname }) };
    const times = s.values.map(([t]) => t);
    for (const [first, last] of runs(times, step)) {
      const firedAt = times.find((t) => t >= first + forMs && t <= last);
      if (firedAt === undefined) continue;
      const end = last + step;
      out.push({ labels, start: firedAt, end: end > rangeEnd ? null : end });
    }
  }
  return out;
}
