/**
 * Consistency between a primary etcd and the standby its synchronizer feeds (runbook C step 2,
 * design §7): missed keys (on the primary, absent on the standby), surplus keys (only on the
 * standby), differing keys (same key, different value) under `prefixes` minus `excludePrefixes`,
 * and the sync lag measured from a heartbeat key.
 *
 * How it reads:
 * - Streaming: each side is read in pages (keys with values) and the two sorted streams are
 *   merge-walked, so memory is a few pages whatever the key count. Page size adapts to the bytes
 *   received (aiming at ~4 MB per page, 200 to 10,000 keys): etcd 3.4 scans the whole rest of
 *   the range on every limited range request (mvcc treeIndex.Revisions collects every revision
 *   before the limit is applied; 3.5 added a limit to it), so small pages make the walk
 *   quadratic, while Kubernetes objects of several KB make big pages big in bytes. etcd returns a
 *   range in ascending byte order of keys when no sort is asked for (etcd API: RangeRequest
 *   sort_order NONE), which is the order the walk needs.
 * - Snapshot per side: the first request's header revision pins every later page of that side
 *   (RangeRequest.revision), so a key space changing during the walk cannot produce phantom
 *   differences within one side. The two sides are read at their own revisions, primary first.
 * - The heartbeat key is compared as lag, never as a differing key: while the mirror is live the
 *   primary's value is always slightly ahead.
 * - Differing values count against `maxMissedKeys` together with missed keys: a key whose newest
 *   primary value has not reached the standby is data the standby would lose, exactly like a
 *   missing key. Surplus keys are reported, never deleted (make-mirror never removes them either).
 */
import { type Etcd3, type IKeyValue, Range } from "etcd3";
import type { EtcdSyncTeardownTarget } from "../../shared/config.ts";
import { createEtcdClient, type EtcdTls } from "./client.ts";

type EtcdSettings = EtcdSyncTeardownTarget["etcd"];

export interface ConsistencyOptions {
  primaryEndpoints: readonly string[];
  standbyEndpoints: readonly string[];
  prefixes: readonly string[];
  excludePrefixes?: readonly string[];
  heartbeat?: { key: string; maxLagSeconds: number };
  maxMissedKeys: number;
  tls?: EtcdTls;
  /** The clock (unix ms); used for lag when the primary is unreachable. */
  now: () => number;
  /** Keys per range request: a fixed number, or `auto` to adapt to value sizes. @default "auto" */
  pageSize?: number | "auto";
  /** Example keys kept per category. @default 10 */
  examples?: number;
  /** Deadline of each etcd call in ms; bounds how long an unreachable primary takes. @default 3000 */
  callTimeoutMs?: number;
  /** Called after each page a side reads (progress reports, tests); awaited. */
  onPage?: (side: "primary" | "standby", keysRead: number) => void | Promise<void>;
}

/** A count and the first few keys of one category. */
export interface KeyDiff {
  count: number;
  examples: string[];
}

/**
 * One side's read. `reachable: false` only when the side gave no answer at all (its first
 * request failed): the disaster case `allowUnverified` is for. A side that answered and then
 * failed a later page (a deadline exceeded on a slow etcd 3.4 page, a compaction) is reachable
 * with `readError`: its figures are incomplete, which is not the disaster case.
 */
export type SideRead =
  | {
      reachable: true;
      endpoints: string[];
      revision: string;
      /** Keys compared; with `readError`, the keys read before the failure. */
      keys: number;
      /** Why a page read failed part-way through the walk. */
      readError?: string;
    }
  | { reachable: false; endpoints: string[]; error: string };

export interface HeartbeatLag {
  key: string;
  primaryMs: number | null;
  standbyMs: number | null;
  /** Seconds the standby is behind; null when it cannot be computed. */
  lagSeconds: number | null;
  /** `primary`: primary value − standby value; `now`: now − standby value (primary unreachable). */
  basis: "primary" | "now";
  maxLagSeconds: number;
}

export interface ConsistencyResult {
  primary: SideRead;
  standby: SideRead;
  missed: KeyDiff;
  surplus: KeyDiff;
  differing: KeyDiff;
  heartbeat?: HeartbeatLag;
  maxMissedKeys: number;
  /**
   * Both sides were read in full, so the figures are a measurement, not a guess. When both
   * answered but a page read failed, the figures are those found before the failure (a lower bound).
   */
  verified: boolean;
  /** Verified and within limits (missed + differing ≤ maxMissedKeys, lag ≤ maxLagSeconds). */
  ok: boolean;
  /** Why `ok` is false, one sentence each. */
  problems: string[];
  durationMs: number;
  /** 2 when the first read hit a compacted revision and both sides were read again. */
  attempts: number;
}

/** Builds consistency options from a target's `etcd` settings. */
export function consistencyOptionsFor(etcd: EtcdSettings, now: () => number): ConsistencyOptions {
  return {
    primaryEndpoints: etcd.primary.endpoints,
    standbyEndpoints: etcd.standby.endpoints,
    prefixes: etcd.prefixes,
    excludePrefixes: etcd.excludePrefixes,
    heartbeat: etcd.heartbeat ? { key: etcd.heartbeat.key, maxLagSeconds: etcd.heartbeat.maxLagSeconds } : undefined,
    maxMissedKeys: etcd.maxMissedKeys,
    tls: etcd.tls,
    now,
  };
}

/** Measures consistency and lag between the primary and the standby (read-only). */
export async function checkConsistency(options: ConsistencyOptions): Promise<ConsistencyResult> {
  const first = await checkOnce(options);
  // A compaction between the pinning request and a later page makes the pinned revision
  // unreadable ("mvcc: required revision has been compacted"); that says nothing about
  // reachability, so read both sides again at fresh revisions, once.
  const compacted = (s: SideRead) => /compacted/i.test((s.reachable ? s.readError : s.error) ?? "");
  if (compacted(first.primary) || compacted(first.standby)) return { ...(await checkOnce(options)), attempts: 2 };
  return first;
}

async function checkOnce(options: ConsistencyOptions): Promise<ConsistencyResult> {
  const started = performance.now();
  const pageSize: PageSizing =
    options.pageSize === undefined || options.pageSize === "auto"
      ? { initial: 1000, min: 200, max: 10_000, targetBytes: 4 * 1024 * 1024 }
      : { initial: options.pageSize, min: options.pageSize, max: options.pageSize, targetBytes: 0 };
  const exampleLimit = options.examples ?? 10;
  const ranges = normalizeRanges(options.prefixes);
  const excludes = normalizePrefixes(options.excludePrefixes ?? []).map((p) => Buffer.from(p));
  const skip = options.heartbeat ? Buffer.from(options.heartbeat.key) : undefined;
  const pinKey = options.heartbeat?.key ?? options.prefixes[0] ?? "";

  const client = (endpoints: readonly string[]) =>
    createEtcdClient({ endpoints, tls: options.tls, callTimeoutMs: options.callTimeoutMs });
  const primaryClient = client(options.primaryEndpoints);
  const standbyClient = client(options.standbyEndpoints);
  const onPage = options.onPage;
  /** Walks one side at its pinned revision, telling onPage how many keys it has read so far. */
  const cursor = (side: "primary" | "standby", etcd: Etcd3, revision: string) => {
    let keysRead = 0;
    return new Cursor(etcd, revision, ranges, excludes, skip, pageSize, async (n: number) => {
      keysRead += n;
      await onPage?.(side, keysRead);
    });
  };
  const missed = newDiff();
  const surplus = newDiff();
  const differing = newDiff();
  try {
    // Primary first: the standby, read a moment later, has had that moment to catch up.
    const primaryPin = await pin(primaryClient, pinKey);
    const standbyPin = await pin(standbyClient, pinKey);
    const primaryEndpoints = [...options.primaryEndpoints];
    const standbyEndpoints = [...options.standbyEndpoints];
    let primary = pinned(primaryEndpoints, primaryPin);
    let standby = pinned(standbyEndpoints, standbyPin);

    if (primaryPin.ok && standbyPin.ok) {
      const p = cursor("primary", primaryClient, primaryPin.revision);
      const s = cursor("standby", standbyClient, standbyPin.revision);
      try {
        await mergeWalk(p, s, { missed, surplus, differing }, exampleLimit);
      } catch (err) {
        // A side that answered its first request but failed a later page is reachable, not down:
        // the figures found so far are kept (a lower bound) and decideConsistency treats the
        // failure as its own outcome, never as the unreachable-primary case.
        if (p.readError === undefined && s.readError === undefined) throw err;
      }
      primary = read(primaryEndpoints, primaryPin.revision, p);
      standby = read(standbyEndpoints, standbyPin.revision, s);
    } else if (standbyPin.ok) {
      // Primary down: still count what the standby holds, so the report shows what it will serve.
      const s = cursor("standby", standbyClient, standbyPin.revision);
      try {
        while (await s.peek()) s.advance();
      } catch (err) {
        if (s.readError === undefined) throw err;
      }
      standby = read(standbyEndpoints, standbyPin.revision, s);
    }

    const heartbeat = options.heartbeat
      ? heartbeatLag(options.heartbeat, primary.reachable ? primaryPin : undefined, standbyPin, options.now())
      : undefined;
    // Both answered, so the key sets were compared (in full unless a page read failed).
    const compared = primary.reachable && standby.reachable;
    const verified =
      primary.reachable && standby.reachable && primary.readError === undefined && standby.readError === undefined;
    const problems: string[] = [];
    for (const [name, side] of [
      ["primary", primary],
      ["standby", standby],
    ] as const) {
      if (!side.reachable) problems.push(`${name} unreachable (${side.error})`);
      else if (side.readError !== undefined)
        problems.push(`${name} read failed after ${side.keys} keys (${side.readError})`);
    }
    if (compared) {
      const unsynced = missed.count + differing.count;
      if (unsynced > options.maxMissedKeys) {
        problems.push(
          `${verified ? "" : "at least "}${missed.count} missed + ${differing.count} differing keys exceed maxMissedKeys ${options.maxMissedKeys}`,
        );
      }
      if (heartbeat) {
        if (heartbeat.primaryMs === null) problems.push(`heartbeat key ${heartbeat.key} absent or invalid on primary`);
        else if (heartbeat.standbyMs === null)
          problems.push(`heartbeat key ${heartbeat.key} absent or invalid on standby`);
        else if (heartbeat.lagSeconds !== null && heartbeat.lagSeconds > heartbeat.maxLagSeconds) {
          problems.push(
            `sync lag ${heartbeat.lagSeconds.toFixed(1)} s exceeds maxLagSeconds ${heartbeat.maxLagSeconds}`,
          );
        }
      }
    }
    return {
      primary,
      standby,
      missed,
      surplus,
      differing,
      heartbeat,
      maxMissedKeys: options.maxMissedKeys,
      verified,
      ok: verified && problems.length === 0,
      problems,
      durationMs: Math.round(performance.now() - started),
      attempts: 1,
    };
  } finally {
    primaryClient.close();
    standbyClient.close();
  }
}

/** What the consistency step does with a result (pure; design §6 `force`, §7 `allowUnverified`). */
export type ConsistencyDecision =
  | { proceed: true; detail: string; overridden?: "force" | "allowUnverified" }
  | {
      proceed: false;
      code: "etcd-inconsistent" | "etcd-read-failed" | "primary-unreachable" | "standby-unreachable";
      message: string;
    };

/**
 * Decides whether a failover may pass the consistency step: a clean result passes; a primary
 * that gave no answer at all (the disaster case, design §7) with a fully read standby passes only
 * with `allowUnverified` or `force`; any other problem (figures over the limits, an unreachable
 * standby, a page read that failed part-way on a side that did answer) passes only with `force`.
 * A failed page is not the disaster case: the primary is there, and the keys it had already
 * shown missing are data the standby would lose. The detail says which override applied.
 */
export function decideConsistency(
  result: ConsistencyResult,
  flags: { force: boolean; allowUnverified: boolean },
): ConsistencyDecision {
  const summary = describeConsistency(result);
  if (result.ok) return { proceed: true, detail: summary };
  const primaryDown = !result.primary.reachable;
  const standbyDown = !result.standby.reachable;
  const readFailed = [result.primary, result.standby].some((s) => s.reachable && s.readError !== undefined);
  if (primaryDown && !standbyDown && !readFailed && flags.allowUnverified && !flags.force) {
    return {
      proceed: true,
      overridden: "allowUnverified",
      detail: `UNVERIFIED: proceeding because allowUnverified is set; ${summary}`,
    };
  }
  if (flags.force) {
    return {
      proceed: true,
      overridden: "force",
      detail: `FORCED: proceeding past ${result.problems.join("; ")}; ${summary}`,
    };
  }
  if (standbyDown) return { proceed: false, code: "standby-unreachable", message: summary };
  if (readFailed) return { proceed: false, code: "etcd-read-failed", message: summary };
  if (primaryDown) return { proceed: false, code: "primary-unreachable", message: summary };
  return { proceed: false, code: "etcd-inconsistent", message: summary };
}

/** One line a person reads: verdict, counts, examples, lag. */
export function describeConsistency(r: ConsistencyResult): string {
  const parts: string[] = [];
  parts.push(r.ok ? "consistent" : r.problems.join("; "));
  const side = (name: string, s: SideRead) => {
    if (!s.reachable) return `${name} unreachable`;
    return `${name} ${s.keys} keys @rev ${s.revision}${s.readError === undefined ? "" : " before its read failed"}`;
  };
  parts.push(`${side("primary", r.primary)}, ${side("standby", r.standby)}`);
  if (r.primary.reachable && r.standby.reachable) {
    const cat = (name: string, d: KeyDiff) =>
      d.count === 0 ? `${name} 0` : `${name} ${d.count} (e.g. ${d.examples.join(", ")})`;
    // A walk cut short by a failed page still shows what it found: a lower bound.
    const found = `${cat("missed", r.missed)}, ${cat("differing", r.differing)}, ${cat("surplus", r.surplus)}`;
    parts.push(r.verified ? found : `found before the failure: ${found}`);
  }
  if (r.heartbeat) {
    const h = r.heartbeat;
    const basis = h.basis === "primary" ? "primary − standby heartbeat" : "now − standby heartbeat";
    parts.push(
      h.lagSeconds === null
        ? `lag unknown (${h.key}: primary ${h.primaryMs ?? "absent"}, standby ${h.standbyMs ?? "absent"})`
        : `lag ${h.lagSeconds.toFixed(1)} s (${basis}; max ${h.maxLagSeconds} s)`,
    );
  }
  parts.push(`${r.durationMs} ms`);
  return parts.join("; ");
}

// ---------------------------------------------------------------------------------------------

function newDiff(): KeyDiff {
  return { count: 0, examples: [] };
}

function note(d: KeyDiff, key: Buffer, limit: number): void {
  d.count += 1;
  if (d.examples.length < limit) d.examples.push(key.toString());
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A side as its pin found it: reachable with nothing read yet, or unreachable. */
function pinned(endpoints: string[], pin: Pin): SideRead {
  return pin.ok
    ? { reachable: true, endpoints, revision: pin.revision, keys: 0 }
    : { reachable: false, endpoints, error: pin.error };
}

/** What a cursor read: its keys so far and, when a page failed, why. */
function read(endpoints: string[], revision: string, cursor: Cursor): SideRead {
  const side: SideRead = { reachable: true, endpoints, revision, keys: cursor.count };
  if (cursor.readError !== undefined) side.readError = cursor.readError;
  return side;
}

type Pin = { ok: true; revision: string; value: Buffer | null } | { ok: false; error: string };

/** The first request of a side: reads `key` and fixes the revision every later page reads at. */
async function pin(client: Etcd3, key: string): Promise<Pin> {
  try {
    const res = await client.get(key).exec();
    return { ok: true, revision: String(res.header.revision), value: res.kvs[0]?.value ?? null };
  } catch (err) {
    return { ok: false, error: errorText(err) };
  }
}

function parseMs(value: Buffer | null | undefined): number | null {
  if (!value) return null;
  const text = value.toString().trim();
  if (!/^\d{1,16}$/.test(text)) return null;
  return Number(text);
}

function heartbeatLag(
  hb: { key: string; maxLagSeconds: number },
  primary: Pin | undefined,
  standby: Pin,
  now: number,
): HeartbeatLag {
  const primaryMs = primary?.ok ? parseMs(primary.value) : null;
  const standbyMs = standby.ok ? parseMs(standby.value) : null;
  const basis = primary?.ok ? "primary" : "now";
  const reference = basis === "primary" ? primaryMs : now;
  // The standby is read after the primary, so a heartbeat written in between can put it ahead;
  // that is zero lag, not negative lag.
  const lagSeconds =
    reference === null || standbyMs === null ? null : Math.max(0, Math.round(reference - standbyMs) / 1000);
  return { key: hb.key, primaryMs, standbyMs, lagSeconds, basis, maxLagSeconds: hb.maxLagSeconds };
}

/** How many keys each range request asks for. */
interface PageSizing {
  initial: number;
  min: number;
  max: number;
  /** 0: fixed size. */
  targetBytes: number;
}

/** Sorted, with prefixes covered by a shorter one dropped, so the ranges are disjoint. */
function normalizePrefixes(prefixes: readonly string[]): string[] {
  const sorted = [...new Set(prefixes)].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const out: string[] = [];
  for (const p of sorted) {
    if (!out.some((q) => p.startsWith(q))) out.push(p);
  }
  return out;
}

function normalizeRanges(prefixes: readonly string[]): Range[] {
  return normalizePrefixes(prefixes).map((p) => Range.prefix(p));
}

function startsWith(key: Buffer, prefix: Buffer): boolean {
  return key.length >= prefix.length && key.subarray(0, prefix.length).equals(prefix);
}

/** The smallest key after `key`: key + "\0". */
function keyAfter(key: Buffer): Buffer {
  return Buffer.concat([key, Buffer.from([0])]);
}

/** etcd's "to the end of the key space" range_end. */
function isOpenEnd(end: Buffer): boolean {
  return end.length === 1 && end[0] === 0;
}

/**
 * One side's sorted key stream, fetched a page at a time at a pinned revision, with the next
 * page requested while the current one is compared.
 */
class Cursor {
  count = 0;
  /** Set when a page read failed; the cursor is then unusable. */
  readError: string | undefined;
  private readonly client: Etcd3;
  private readonly revision: string;
  private readonly ranges: Range[];
  private readonly excludes: Buffer[];
  private readonly skip: Buffer | undefined;
  private readonly sizing: PageSizing;
  private readonly onPage: (keys: number) => Promise<void>;
  private limit: number;
  private rangeIndex = 0;
  private nextStart: Buffer | undefined;
  private page: IKeyValue[] = [];
  private index = 0;
  private pending: Promise<IKeyValue[] | null> | undefined;
  private exhausted = false;

  constructor(
    client: Etcd3,
    revision: string,
    ranges: Range[],
    excludes: Buffer[],
    skip: Buffer | undefined,
    sizing: PageSizing,
    onPage: (keys: number) => Promise<void>,
  ) {
    this.onPage = onPage;
    this.client = client;
    this.revision = revision;
    this.ranges = ranges;
    this.excludes = excludes;
    this.skip = skip;
    this.sizing = sizing;
    this.limit = sizing.initial;
    this.nextStart = ranges[0]?.start;
  }

  /** The current entry, fetching pages as needed; undefined at the end. */
  async peek(): Promise<IKeyValue | undefined> {
    while (this.index >= this.page.length) {
      if (this.exhausted && !this.pending) return undefined;
      const next = await (this.pending ?? this.fetch());
      this.pending = undefined;
      if (next === null) {
        this.exhausted = true;
        return undefined;
      }
      this.page = next;
      this.index = 0;
      // Read ahead: the next page travels while this one is compared.
      if (!this.exhausted) {
        const ahead = this.fetch();
        // Rejections surface when the page is awaited; this only keeps Node from calling them unhandled.
        ahead.catch(() => {});
        this.pending = ahead;
      }
    }
    return this.page[this.index];
  }

  advance(): void {
    this.index += 1;
    this.count += 1;
  }

  /** Fetches the next non-empty page after filtering, or null at the end of every range. */
  private async fetch(): Promise<IKeyValue[] | null> {
    while (this.rangeIndex < this.ranges.length) {
      const range = this.ranges[this.rangeIndex];
      const start = this.nextStart;
      if (range === undefined || start === undefined) break;
      let res: Awaited<ReturnType<ReturnType<Etcd3["getAll"]>["exec"]>>;
      try {
        res = await this.client
          .getAll()
          .inRange({ start, end: range.end })
          .limit(this.limit)
          .revision(this.revision)
          .exec();
      } catch (err) {
        this.readError = errorText(err);
        throw err;
      }
      this.resize(res.kvs);
      await this.onPage(res.kvs.length);
      const out: IKeyValue[] = [];
      let resumeAt: Buffer | undefined;
      let restExcluded = false;
      for (const kv of res.kvs) {
        const excluded = this.excludes.find((e) => startsWith(kv.key, e));
        if (excluded) {
          // Jump over the whole excluded subtree rather than paging through it.
          const end = Range.prefix(excluded).end;
          if (isOpenEnd(end)) {
            restExcluded = true;
            break;
          }
          resumeAt = end;
          continue;
        }
        resumeAt = undefined;
        if (this.skip?.equals(kv.key)) continue;
        out.push(kv);
      }
      const last = res.kvs[res.kvs.length - 1];
      if (res.more && last && !restExcluded) {
        const candidate = keyAfter(last.key);
        this.nextStart = resumeAt && Buffer.compare(resumeAt, candidate) > 0 ? resumeAt : candidate;
        if (!isOpenEnd(range.end) && Buffer.compare(this.nextStart, range.end) >= 0) this.nextRange();
      } else {
        this.nextRange();
      }
      if (out.length > 0) return out;
    }
    this.exhausted = true;
    return null;
  }

  /** Next page's key limit from this page's bytes (see the module comment). */
  private resize(kvs: IKeyValue[]): void {
    const { min, max, targetBytes } = this.sizing;
    if (targetBytes === 0 || kvs.length === 0) return;
    let bytes = 0;
    for (const kv of kvs) bytes += kv.key.length + kv.value.length;
    const perKey = Math.max(1, bytes / kvs.length);
    this.limit = Math.min(max, Math.max(min, Math.floor(targetBytes / perKey)));
  }

  private nextRange(): void {
    this.rangeIndex += 1;
    this.nextStart = this.ranges[this.rangeIndex]?.start;
  }
}

async function mergeWalk(
  p: Cursor,
  s: Cursor,
  out: { missed: KeyDiff; surplus: KeyDiff; differing: KeyDiff },
  limit: number,
): Promise<void> {
  for (;;) {
    // Both sides fetch concurrently when both pages ran out together (the common in-sync case).
    const [a, b] = await Promise.all([p.peek(), s.peek()]);
    if (!a && !b) return;
    if (a && (!b || Buffer.compare(a.key, b.key) < 0)) {
      note(out.missed, a.key, limit);
      p.advance();
    } else if (b && (!a || Buffer.compare(a.key, b.key) > 0)) {
      note(out.surplus, b.key, limit);
      s.advance();
    } else if (a && b) {
      if (!a.value.equals(b.value)) note(out.differing, a.key, limit);
      p.advance();
      s.advance();
    }
  }
}
