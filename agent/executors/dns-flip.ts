/**
 * The `dns-flip` executor (runbook B, design §7): preflight → [coredns-check] → update → verify.
 *
 * - preflight: the record must hold `values[from]`; if it already holds `values[to]` the flip is
 *   done (re-delivered or resumed action) and the remaining steps report "already converged".
 *   A mix of the two that an HTTP provider passes through mid-flip (its writes are separate
 *   requests) is an interrupted flip that update finishes; any other value fails, untouched.
 * - update: compare-and-swap replace (RFC 2136 prerequisite / read-compare for HTTP APIs); dry run
 *   sends the prerequisite only.
 * - verify: polls every `verify.servers` entry until all answer the new value, bounded by
 *   `verify.timeoutSeconds`; the detail names the TTL resolvers may still cache.
 * Failback is the same executor with from/to swapped.
 */
import type { KubeConfig } from "@kubernetes/client-node";
import type { DnsFlipTarget, Side } from "../../shared/config.ts";
import type { ActionRequest } from "../../shared/protocol.ts";
import { findCorednsPins } from "../dns/coredns-pins.ts";
import { DnsError } from "../dns/errors.ts";
import { createProvider, type DnsProvider, type DnsRecordRef, type ProviderDeps } from "../dns/provider.ts";
import { canonicalSet, type FlipRecordType, queryRecord, sameSet } from "../dns/rfc2136.ts";
import type { Executor, Step, StepContext, StepOutcome } from "../executor.ts";
import type { Logger } from "../log.ts";

/** Reads a ConfigMap's `data`; undefined when it does not exist. */
export type ReadConfigMap = (namespace: string, name: string) => Promise<Record<string, string> | undefined>;

/** What the executor needs from outside (all optional; tests inject). */
export interface DnsFlipDeps {
  /** Where secrets named by `tokenEnv` / `tsig.secretEnv` come from. @default process.env */
  env?: Record<string, string | undefined>;
  /** For the HTTP providers. @default globalThis.fetch */
  fetch?: typeof fetch;
  /** For `coredns-check`. @default configMapReader() (CoreV1Api with the default kubeconfig) */
  readConfigMap?: ReadConfigMap;
  /** Delay between verify rounds. @default 500 */
  verifyIntervalMs?: number;
  /** Bound on one Cloudflare / DigitalOcean API request. @default DEFAULT_REQUEST_TIMEOUT_MS (10 s) */
  requestTimeoutMs?: number;
}

/** The settings `flipDns` and the executor's steps share. */
type FlipSettings = Pick<DnsFlipDeps, "env" | "fetch" | "verifyIntervalMs" | "requestTimeoutMs">;

/** One run of the flip: the step's clock, signal and progress (or their stand-ins). */
interface FlipRun {
  dryRun: boolean;
  sleep: (ms: number) => Promise<void>;
  now: () => number;
  /** Aborts HTTP API requests in flight (pass the step's signal). */
  signal?: AbortSignal;
  progress?: (detail: string) => void;
}

/** Options for `flipDns`, the flip as one call (used by etcd-sync-teardown). */
export interface FlipDnsOptions extends FlipSettings, FlipRun {
  log: Logger;
}

/** One sub-step's outcome inside `flipDns`. */
export interface FlipStepResult {
  name: "preflight" | "update" | "verify";
  status: "succeeded" | "skipped";
  detail: string;
}

/** What `flipDns` did. */
export interface FlipDnsResult {
  outcome: "flipped" | "already-converged" | "dry-run";
  steps: FlipStepResult[];
  /** The steps' details joined, for a one-line report. */
  detail: string;
}

interface FlipContext {
  target: DnsFlipTarget;
  from: Side;
  to: Side;
  dryRun: boolean;
  sleep: (ms: number) => Promise<void>;
  now: () => number;
  verifyIntervalMs: number;
  provider: () => DnsProvider;
  progress: (detail: string) => void;
}

const ALREADY = "already converged";

function recordOf(target: DnsFlipTarget): DnsRecordRef {
  return { name: target.record.name, type: target.record.type, ttl: target.record.ttl };
}

function show(target: DnsFlipTarget, values: readonly string[]): string {
  const set = canonicalSet(target.record.type, values);
  return set.length === 0 ? "nothing (no such record)" : set.join(", ");
}

function flipContext(target: DnsFlipTarget, from: Side, to: Side, run: FlipRun, settings: FlipSettings): FlipContext {
  const deps: ProviderDeps = {
    env: settings.env ?? process.env,
    fetch: settings.fetch,
    sleep: run.sleep,
    now: run.now,
    requestTimeoutMs: settings.requestTimeoutMs,
    signal: run.signal,
  };
  let provider: DnsProvider | undefined;
  return {
    target,
    from,
    to,
    dryRun: run.dryRun,
    sleep: run.sleep,
    now: run.now,
    verifyIntervalMs: settings.verifyIntervalMs ?? 500,
    // Built on first use: verify needs it (and its secret) only for rfc2136, whose provider signs
    // the queries to its own server; for the HTTP providers verify asks the servers directly.
    provider: () => {
      provider ??= createProvider(target.provider, deps);
      return provider;
    },
    progress: run.progress ?? (() => {}),
  };
}

/**
 * Whether `current` is a state an HTTP provider passes through while turning `from` into `to`
 * (record-plan.ts: rewrite in place, create, delete; each a separate request): only values of the
 * two sides, every value they share still there, and at least one value only `to` has (none
 * needed when `to` adds nothing). An error or crash between those writes leaves such a state; a
 * retry finishes it. A value of neither side, or a shared value gone, is someone else's change.
 */
export function isInterruptedFlip(
  type: FlipRecordType,
  current: readonly string[],
  from: readonly string[],
  to: readonly string[],
): boolean {
  const have = new Set(canonicalSet(type, current));
  const was = new Set(canonicalSet(type, from));
  const will = new Set(canonicalSet(type, to));
  const toOnly = [...will].filter((v) => !was.has(v));
  return (
    have.size > 0 &&
    [...have].every((v) => was.has(v) || will.has(v)) &&
    [...was].every((v) => !will.has(v) || have.has(v)) &&
    (toOnly.length === 0 || toOnly.some((v) => have.has(v)))
  );
}

/** What preflight found, and the values it read. */
interface Preflight {
  state: "ready" | "converged" | "interrupted";
  detail: string;
  current: string[];
}

/**
 * Preflight: "ready" when the record holds values[from], "converged" when values[to],
 * "interrupted" when an earlier attempt stopped half-way between them.
 */
async function preflight(fc: FlipContext): Promise<Preflight> {
  const { target } = fc;
  const current = await fc.provider().read(recordOf(target));
  const type = target.record.type;
  if (sameSet(type, current, target.values[fc.to])) {
    return {
      state: "converged",
      current,
      detail: `${target.record.name} already holds ${show(target, current)} (${fc.to}): ${ALREADY}`,
    };
  }
  if (sameSet(type, current, target.values[fc.from])) {
    return {
      state: "ready",
      current,
      detail: `${target.record.name} ${type} holds ${show(target, current)} (${fc.from}) at ${fc.provider().description}`,
    };
  }
  if (isInterruptedFlip(type, current, target.values[fc.from], target.values[fc.to])) {
    return {
      state: "interrupted",
      current,
      detail: `${target.record.name} ${type} holds ${show(target, current)} at ${fc.provider().description}, part way from ${fc.from} to ${fc.to}: an interrupted flip, which update finishes`,
    };
  }
  throw new DnsError(
    "DNS_VALUE_MISMATCH",
    `${target.record.name} ${type} holds ${show(target, current)}, which is neither ${fc.from} (${show(target, target.values[fc.from])}) nor ${fc.to} (${show(target, target.values[fc.to])}); changed out of band? nothing was touched`,
  );
}

/**
 * Update, starting from `read`: what preflight just read when they run back to back (flipDns);
 * the executor's update step reads afresh, as time may have passed since its preflight.
 */
async function update(fc: FlipContext, read?: string[]): Promise<FlipStepResult> {
  const { target } = fc;
  const record = recordOf(target);
  const provider = fc.provider();
  const current = read ?? (await provider.read(record));
  if (sameSet(target.record.type, current, target.values[fc.to])) {
    return { name: "update", status: "skipped", detail: `${ALREADY}: ${record.name} holds ${show(target, current)}` };
  }
  // Compare-and-swap against what an interrupted flip left, so the retry finishes the job;
  // otherwise against values[from], which the provider refuses if the record holds anything else.
  const interrupted = isInterruptedFlip(record.type, current, target.values[fc.from], target.values[fc.to]);
  const expected = interrupted ? current : target.values[fc.from];
  const resumed = interrupted ? `finishing an interrupted flip (it held ${show(target, current)}): ` : "";
  try {
    const result = await provider.replace(record, expected, target.values[fc.to], { dryRun: fc.dryRun });
    return {
      name: "update",
      status: "succeeded",
      detail: fc.dryRun
        ? `dry run: ${resumed}${result.detail}; would set ${show(target, target.values[fc.to])}`
        : `${resumed}${result.detail}`,
    };
  } catch (err) {
    if (err instanceof DnsError && (err.code === "DNS_NXRRSET" || err.code === "DNS_VALUE_MISMATCH")) {
      // Name what the record holds now so the person reading the report sees the concurrent change.
      const now = await provider.read(record).catch(() => undefined);
      if (now && !fc.dryRun && sameSet(record.type, now, target.values[fc.to])) {
        // An earlier attempt whose answer was lost (or a concurrent writer) already set our values.
        return { name: "update", status: "succeeded", detail: `${record.name} holds ${show(target, now)}: ${ALREADY}` };
      }
      const found = now ? `; it now holds ${show(target, now)}` : "";
      throw new DnsError(
        err.code,
        `${record.name} ${record.type} no longer holds the expected ${show(target, expected)}${found}; not changed (${err.message})`,
      );
    }
    throw err;
  }
}

function verifyServers(fc: FlipContext): string[] {
  if (fc.target.verify.servers.length > 0) return fc.target.verify.servers;
  return fc.target.provider.type === "rfc2136" ? [fc.target.provider.server] : [];
}

async function verify(fc: FlipContext): Promise<FlipStepResult> {
  const { target } = fc;
  const want = target.values[fc.to];
  const servers = verifyServers(fc);
  const ttlNote = `resolvers may serve the old value for up to ${target.record.ttl} s`;
  if (fc.dryRun) {
    return {
      name: "verify",
      status: "skipped",
      detail: `dry run: would wait up to ${target.verify.timeoutSeconds} s for ${servers.length} server(s) to answer ${show(target, want)}`,
    };
  }
  if (servers.length === 0) {
    return { name: "verify", status: "skipped", detail: `no verify.servers configured; ${ttlNote}` };
  }
  const deadline = fc.now() + target.verify.timeoutSeconds * 1000;
  const last = new Map<string, string>();
  const pending = new Set(servers);
  for (let round = 1; ; round++) {
    for (const server of [...pending]) {
      const timeoutMs = Math.max(200, Math.min(2000, deadline - fc.now()));
      try {
        // rfc2136: the provider signs what goes to its own server (other servers have no key).
        const provider = target.provider.type === "rfc2136" ? fc.provider() : undefined;
        const values = provider?.query
          ? await provider.query(server, recordOf(target), timeoutMs)
          : await queryRecord(server, target.record.name, target.record.type, { timeoutMs });
        if (sameSet(target.record.type, values, want)) pending.delete(server);
        else last.set(server, `answers ${show(target, values)}`);
      } catch (err) {
        last.set(server, err instanceof DnsError ? `${err.code}: ${err.message}` : String(err));
      }
    }
    if (pending.size === 0) {
      return {
        name: "verify",
        status: "succeeded",
        detail: `${servers.length}/${servers.length} authoritative server(s) answer ${show(target, want)}; ${ttlNote}`,
      };
    }
    if (fc.now() >= deadline) {
      const lagging = [...pending].map((s) => `${s} ${last.get(s) ?? "did not answer"}`).join("; ");
      throw new DnsError(
        "DNS_VERIFY_TIMEOUT",
        `after ${target.verify.timeoutSeconds} s, ${pending.size}/${servers.length} server(s) still do not answer ${show(target, want)}: ${lagging}`,
      );
    }
    fc.progress(
      `round ${round}: ${servers.length - pending.size}/${servers.length} server(s) answer ${show(target, want)}`,
    );
    await fc.sleep(Math.min(fc.verifyIntervalMs, Math.max(0, deadline - fc.now())));
  }
}

/**
 * Runs a whole flip of `target` from side `from` to side `to` (preflight, update, verify) and
 * returns what happened; throws DnsError (a StepError) with a stable code on failure.
 */
export async function flipDns(
  target: DnsFlipTarget,
  from: Side,
  to: Side,
  options: FlipDnsOptions,
): Promise<FlipDnsResult> {
  const fc = flipContext(target, from, to, options, options);
  const pre = await preflight(fc);
  const steps: FlipStepResult[] = [{ name: "preflight", status: "succeeded", detail: pre.detail }];
  if (pre.state === "converged") {
    steps.push(
      { name: "update", status: "skipped", detail: ALREADY },
      { name: "verify", status: "skipped", detail: ALREADY },
    );
  } else {
    steps.push(await update(fc, pre.current));
    steps.push(await verify(fc));
  }
  const outcome = pre.state === "converged" ? "already-converged" : options.dryRun ? "dry-run" : "flipped";
  options.log.info("dns flip finished", { outcome, record: target.record.name, from, to });
  return { outcome, steps, detail: steps.map((s) => `${s.name}: ${s.detail}`).join("; ") };
}

/**
 * A `readConfigMap` over CoreV1Api with `kubeConfig`'s credentials (the agent's own), or the
 * default kubeconfig (in-cluster or ~/.kube/config) when none is given. The client library is
 * loaded on first read, so flips without `coredns` never load it.
 */
export function configMapReader(kubeConfig?: KubeConfig): ReadConfigMap {
  return async (namespace, name) => {
    const [k8s, { unlessNotFound }] = await Promise.all([import("@kubernetes/client-node"), import("../kube-api.ts")]);
    let kc = kubeConfig;
    if (!kc) {
      kc = new k8s.KubeConfig();
      kc.loadFromDefault();
    }
    const cm = await unlessNotFound(kc.makeApiClient(k8s.CoreV1Api).readNamespacedConfigMap({ namespace, name }));
    return cm && (cm.data ?? {});
  };
}

function convergedKey(action: ActionRequest): string {
  return `dns-flip/${action.id}/converged-at-preflight`;
}

function toOutcome(r: FlipStepResult): StepOutcome {
  return { status: r.status, detail: r.detail };
}

/** Builds the dns-flip executor with injected dependencies. */
export function createDnsFlipExecutor(deps: DnsFlipDeps = {}): Executor<DnsFlipTarget> {
  const context = (ctx: StepContext<DnsFlipTarget>): FlipContext =>
    flipContext(
      ctx.target,
      ctx.action.from,
      ctx.action.to,
      {
        dryRun: ctx.action.dryRun,
        sleep: (ms) => ctx.sleep(ms),
        now: () => ctx.now(),
        signal: ctx.signal,
        progress: (d) => ctx.progress(d),
      },
      deps,
    );
  const skippedIfConverged = async (ctx: StepContext<DnsFlipTarget>): Promise<StepOutcome | undefined> =>
    (await ctx.memory.get<boolean>(convergedKey(ctx.action)))
      ? { status: "skipped", detail: `${ALREADY} at preflight` }
      : undefined;

  return {
    kind: "dns-flip",
    steps(_action, target): Step<DnsFlipTarget>[] {
      const steps: Step<DnsFlipTarget>[] = [
        {
          name: "preflight",
          async run(ctx) {
            const pre = await preflight(context(ctx));
            await ctx.memory.set(convergedKey(ctx.action), pre.state === "converged");
            return { status: "succeeded", detail: pre.detail };
          },
        },
      ];
      const coredns = target.coredns;
      if (coredns) {
        steps.push({
          name: "coredns-check",
          async run(ctx) {
            const read = deps.readConfigMap ?? configMapReader();
            const where = `ConfigMap ${coredns.namespace}/${coredns.configMap}`;
            let data: Record<string, string> | undefined;
            try {
              data = await read(coredns.namespace, coredns.configMap);
            } catch (err) {
              return { status: "succeeded", detail: `warning: could not read ${where}: ${(err as Error).message}` };
            }
            if (!data) return { status: "succeeded", detail: `warning: ${where} not found; pins not checked` };
            const pins = findCorednsPins(data, ctx.target.record.name);
            if (pins.length === 0)
              return { status: "succeeded", detail: `${where} does not pin ${ctx.target.record.name}` };
            const list = pins.map((p) => `${p.key}:${p.line} ${p.plugin} "${p.text}"`).join("; ");
            ctx.log.warn("CoreDNS pins the flipped name", { record: ctx.target.record.name, pins: list });
            return {
              status: "succeeded",
              detail: `warning: ${where} pins ${ctx.target.record.name}, in-cluster clients will not follow the flip: ${list}`,
            };
          },
        });
      }
      steps.push(
        {
          name: "update",
          async run(ctx) {
            return (await skippedIfConverged(ctx)) ?? toOutcome(await update(context(ctx)));
          },
        },
        {
          name: "verify",
          async run(ctx) {
            return (await skippedIfConverged(ctx)) ?? toOutcome(await verify(context(ctx)));
          },
        },
      );
      return steps;
    },
  };
}
