/**
 * Leader election on a `coordination.k8s.io/v1` Lease (design §7): only the replica holding the
 * Lease executes actions. client-node 2.0.1 has no leader-election helper (real-components.md §3),
 * so this follows client-go's leaderelection loop:
 * - acquire when the Lease is absent, has no holder, or expired; `leaseTransitions` goes up when
 *   the holder changes. Expiry is judged as client-go does, by this replica's own clock only: the
 *   Lease is expired when its record (resourceVersion) has not changed for `leaseDurationSeconds`
 *   since this replica first saw it as it is. The `renewTime` written by another node's clock is
 *   never compared with ours, so clock skew between nodes cannot make a standby steal a live
 *   Lease; the price is that a freshly started replica waits one full duration before taking
 *   over a Lease whose holder died earlier;
 * - renew every `renewSeconds` with optimistic concurrency (PUT with the read `resourceVersion`;
 *   a 409 means another replica wrote first, so re-read and re-decide);
 * - stop leading when no renewal succeeded within the renew deadline (shorter than the lease, so
 *   the old leader stops before a new one can take over);
 * - release on stop (holder cleared, so a standby takes over at once instead of after expiry).
 * Times are `V1MicroTime` (6 fractional digits): apimachinery's MicroTime rejects the 3-digit form
 * a plain Date serializes to (real-components.md §3).
 */
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { CoordinationV1Api, type KubeConfig, type V1Lease, V1MicroTime } from "@kubernetes/client-node";
import { isApiStatus, unlessNotFound } from "./kube-api.ts";
import type { Leadership, LeadershipState } from "./leadership.ts";
import { type Logger, silentLogger } from "./log.ts";

export interface LeaseElectorOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  /** Lease name (config `lease.name`). */
  name: string;
  /** `leaseDurationSeconds` written to the Lease (config `lease.durationSeconds`). */
  durationSeconds: number;
  /** Interval between renewals and acquisition attempts (config `lease.renewSeconds`). */
  renewSeconds: number;
  /** Holder identity (default: `$POD_NAME` or the hostname, plus a random suffix). */
  identity?: string;
  /** The clock (default Date.now); tests drive it and call `tick()`. */
  now?: () => number;
  /** Start the renew loop at once (default true); false leaves it to `tick()` calls. */
  autoStart?: boolean;
  log?: Logger;
}

/** A {@link Leadership} backed by a Lease, plus the hooks tests and the runner use. */
export interface LeaseElector extends Leadership {
  readonly identity: string;
  /** One acquire-or-renew attempt (the loop calls it every `renewSeconds`). */
  tick(): Promise<void>;
  /** Stops renewing; releases the Lease when held unless `release: false` (simulates a crash). */
  stop(options?: { release?: boolean }): Promise<void>;
}

/** This replica's pod name: `$POD_NAME` (the Downward API), else the hostname (a pod's hostname is its name). */
export function podName(env: Record<string, string | undefined> = process.env): string {
  return env.POD_NAME || hostname();
}

/** The default holder identity: pod name (or hostname) plus a random suffix. */
export function defaultIdentity(): string {
  return `${podName()}-${randomBytes(3).toString("hex")}`;
}

/**
 * The pod behind a holder identity of {@link defaultIdentity}'s form (the random suffix removed),
 * so a heartbeat's `leader` compares with another replica's `pod` (design §11.1).
 */
export function podOfIdentity(identity: string): string {
  return identity.replace(/-[0-9a-f]{6}$/, "");
}

function timeOf(value: unknown): number | undefined {
  if (value instanceof Date) return value.getTime();
  if (typeof value === "string") {
    const ms = Date.parse(value);
    return Number.isNaN(ms) ? undefined : ms;
  }
  return undefined;
}

function micro(ms: number | undefined): V1MicroTime | undefined {
  return ms === undefined ? undefined : new V1MicroTime(ms);
}

/** `p`, or a rejection after `ms` (the call itself is left to finish or fail on its own). */
function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer from the Kubernetes API within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Starts electing; the returned elector renews until `stop()`. */
export function startLeaseElector(options: LeaseElectorOptions): LeaseElector {
  const api = options.kubeConfig.makeApiClient(CoordinationV1Api);
  const now = options.now ?? Date.now;
  const log = (options.log ?? silentLogger).child({ lease: `${options.namespace}/${options.name}` });
  const identity = options.identity ?? defaultIdentity();
  const durationMs = options.durationSeconds * 1000;
  // client-go's defaults are 15 s lease / 10 s renew deadline: give up leading well before expiry.
  const renewDeadlineMs = Math.max(durationMs - options.renewSeconds * 1000, durationMs / 2);
  const { namespace, name } = options;
  const listeners = new Set<(s: LeadershipState) => void>();
  let state: LeadershipState = { leader: false, detail: "starting" };
  let lastRenew: number | undefined;
  /** The Lease record as last seen (its resourceVersion) and when, by our clock, it was first seen so. */
  let observed: { version: string; at: number } | undefined;
  const observe = (lease: V1Lease | undefined, at: number) => {
    const version = lease?.metadata?.resourceVersion ?? "";
    if (observed?.version !== version) observed = { version, at };
  };
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let inFlight: Promise<void> | undefined;

  function setState(next: LeadershipState): void {
    const changed = next.leader !== state.leader || next.holder !== state.holder;
    state = next;
    if (!changed) return;
    log.info(next.leader ? "leading" : "not leading", { holder: next.holder, identity });
    for (const l of listeners) {
      try {
        l(next);
      } catch (e) {
        log.error("leadership listener failed", { error: String(e) });
      }
    }
  }

  function spec(lease: V1Lease | undefined, at: number, takeover: boolean): V1Lease["spec"] {
    const old = lease?.spec ?? {};
    const holderChanged = (old.holderIdentity ?? "") !== identity;
    return {
      ...old,
      holderIdentity: identity,
      leaseDurationSeconds: options.durationSeconds,
      acquireTime: takeover ? new V1MicroTime(at) : micro(timeOf(old.acquireTime)),
      renewTime: new V1MicroTime(at),
      // As client-go: every change of holder counts as a transition.
      leaseTransitions: (old.leaseTransitions ?? 0) + (takeover && holderChanged ? 1 : 0),
    };
  }

  async function attempt(): Promise<void> {
    const at = now();
    const lease = await unlessNotFound(api.readNamespacedLease({ name, namespace }));
    if (!lease) {
      try {
        const created = await api.createNamespacedLease({
          namespace,
          body: { metadata: { name, namespace }, spec: { ...spec(undefined, at, true), leaseTransitions: 0 } },
        });
        observe(created, at);
        lastRenew = at;
        setState({ leader: true, holder: identity, detail: "acquired a new Lease" });
      } catch (e) {
        if (!isApiStatus(e, 409)) throw e;
        setState({ leader: false, holder: state.holder, detail: "another replica created the Lease first" });
      }
      return;
    }
    observe(lease, at);
    const holder = lease.spec?.holderIdentity ?? "";
    const duration = (lease.spec?.leaseDurationSeconds ?? options.durationSeconds) * 1000;
    const unchangedFor = at - (observed?.at ?? at);
    const expired = holder === "" || unchangedFor > duration;
    if (holder !== identity && !expired) {
      const left = Math.ceil((duration - unchangedFor) / 1000);
      setState({
        leader: false,
        holder,
        detail: `standing by; ${holder} holds the Lease (takes over if it is not renewed within ${left} s)`,
      });
      return;
    }
    const takeover = holder !== identity;
    try {
      const written = await api.replaceNamespacedLease({
        name,
        namespace,
        body: { ...lease, metadata: { ...lease.metadata, name, namespace }, spec: spec(lease, at, takeover) },
      });
      observe(written, at);
      lastRenew = at;
      setState({
        leader: true,
        holder: identity,
        detail: takeover ? `took over the Lease${holder ? ` from ${holder}` : ""}` : "renewed the Lease",
      });
    } catch (e) {
      // Someone else wrote (409) or deleted (404) the Lease between our read and write: re-read and re-decide now.
      if (!isApiStatus(e, 409, 404)) throw e;
      const fresh = await api.readNamespacedLease({ name, namespace }).catch(() => undefined);
      const freshHolder = fresh?.spec?.holderIdentity ?? "";
      if (freshHolder === identity) setState({ ...state, detail: "renewed the Lease" });
      else
        setState({
          leader: false,
          holder: freshHolder || undefined,
          detail: `lost the Lease to ${freshHolder || "nobody"}`,
        });
    }
  }

  /** Stops leading once no renewal succeeded within the renew deadline, whatever the calls do. */
  function checkRenewDeadline(): void {
    if (state.leader && (lastRenew === undefined || now() - lastRenew > renewDeadlineMs)) {
      setState({ leader: false, holder: undefined, detail: "could not renew the Lease within the renew deadline" });
    }
  }

  async function tick(): Promise<void> {
    if (stopped) return;
    if (inFlight) return inFlight;
    inFlight = (async () => {
      try {
        await withTimeout(attempt(), renewDeadlineMs);
      } catch (e) {
        log.warn("lease attempt failed", { error: e instanceof Error ? e.message : String(e) });
        checkRenewDeadline();
        if (!state.leader) setState({ ...state, detail: `cannot reach the Lease: ${String(e)}` });
      }
    })().finally(() => {
      inFlight = undefined;
    });
    return inFlight;
  }

  function schedule(): void {
    if (stopped) return;
    timer = setTimeout(() => {
      void tick().finally(schedule);
    }, options.renewSeconds * 1000);
    timer.unref();
  }

  // A watchdog beside the loop: an API call that hangs (a dead kept-alive connection can hold one
  // for minutes) must not keep this replica acting as leader after a standby may have taken over.
  let watchdog: NodeJS.Timeout | undefined;
  if (options.autoStart !== false) {
    void tick().finally(schedule);
    watchdog = setInterval(checkRenewDeadline, Math.min(options.renewSeconds * 1000, 1000));
    watchdog.unref();
  }

  return {
    identity,
    tick,
    // Also bounded by time: a stalled loop must not keep acting on a Lease that has expired.
    isLeader: () => state.leader && !stopped && lastRenew !== undefined && now() - lastRenew < durationMs,
    state: () => ({ ...state }),
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async stop(stopOptions: { release?: boolean } = {}) {
      if (stopped) return;
      stopped = true;
      if (timer) clearTimeout(timer);
      if (watchdog) clearInterval(watchdog);
      await inFlight;
      if (!state.leader || stopOptions.release === false) {
        setState({ leader: false, holder: state.holder, detail: "stopped" });
        return;
      }
      try {
        const lease = await api.readNamespacedLease({ name, namespace });
        if (lease.spec?.holderIdentity === identity) {
          const at = now();
          await api.replaceNamespacedLease({
            name,
            namespace,
            body: {
              ...lease,
              spec: {
                ...lease.spec,
                holderIdentity: undefined,
                // client-go's release: a 1 s lease renewed now, so any reader treats it as free.
                leaseDurationSeconds: 1,
                renewTime: new V1MicroTime(at),
                acquireTime: micro(timeOf(lease.spec.acquireTime)),
              },
            },
          });
        }
      } catch (e) {
        log.warn("could not release the Lease", { error: e instanceof Error ? e.message : String(e) });
      }
      setState({ leader: false, holder: undefined, detail: "released the Lease" });
    },
  };
}
