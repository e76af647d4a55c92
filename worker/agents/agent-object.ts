/**
 * One Durable Object per agent (design §11.1, §11.6): its heartbeats, its liveness and the alarm
 * that notices its silence without any request.
 *
 * Why an object per agent rather than the per-target objects it serves: silence and return are
 * one fact about one agent, notified once per transition (`turnout/agent/<name>`), and a
 * heartbeat every 15 s from every replica should cost one write, not one per target. The object
 * keeps its state in SQLite, so it survives eviction; on each transition it tells every target it
 * serves (an input of that target's `decide()`, with its time), and exactly one of them carries
 * the notification through the target's one notify path.
 */
import { DurableObject } from "cloudflare:workers";
import { z } from "zod";
import { agentsOf, type Side, servedBy, type WorkerConfig } from "../../shared/config.ts";
import type { Heartbeat } from "../../shared/protocol.ts";
import { type LoadedConfig, loadConfig } from "../config.ts";
import { agentNoticeKey } from "../engine/machine-agents.ts";
import type { Env } from "../env.ts";
import type { PageRequest } from "../target/paging.ts";

/** How soon a fan-out that failed (a target object unavailable) is tried again. */
const FANOUT_RETRY_MS = 5_000;

const PodSchema = z.object({
  /** The pod's newest heartbeat `t` (seconds); an older or equal one is a replay. */
  t: z.number(),
  /** When it was heard (the signed time, never later than receipt), epoch ms. */
  at: z.number(),
  leader: z.string().nullable(),
  version: z.string(),
  mode: z.enum(["sandbox", "cluster"]),
});

const AgentStateSchema = z.object({
  name: z.string(),
  /** When this object started watching (silence counts from here when never heard). */
  watchingSince: z.number(),
  /** The leader's newest heartbeat (or an answered probe), epoch ms; null: never heard. */
  lastHeardAt: z.number().nullable(),
  /** `t` of the leader heartbeat that set lastHeardAt (seconds). */
  lastT: z.number().nullable(),
  version: z.string().nullable(),
  mode: z.enum(["sandbox", "cluster"]).nullable(),
  leader: z.string().nullable(),
  silent: z.boolean(),
  /** When `silent` last changed (the transition's time, an input of each target's decide()). */
  since: z.number(),
  /** Every replica heard, standby ones too (shown, not counted). */
  pods: z.record(z.string(), PodSchema),
  /** A transition not yet told to every target it serves. */
  fanoutPending: z.boolean(),
  /**
   * What readiness was last told to the targets it serves (design §11.3): the newest evaluation's
   * time, the mode and the targets' digests. A heartbeat tells them again only when one changed,
   * so a beat every 15 s costs the targets nothing between evaluation rounds.
   */
  readinessTold: z
    .object({ round: z.number().nullable(), mode: z.enum(["sandbox", "cluster"]), digests: z.string() })
    .optional(),
  /**
   * The target whose object holds this agent's open page (design §11.4: paged when silent,
   * resolved when heard again). The resolve goes through that same object, since only it knows
   * the page is open, even if a config edit made another target the announcing one since.
   */
  pagedVia: z.string().nullable().default(null),
});
type AgentState = z.infer<typeof AgentStateSchema>;

/** One agent as `GET /v1/agents`, the status page and `turnout agents` show it (design §11.1). */
export interface AgentInfo {
  name: string;
  url: string;
  configured: boolean;
  lastHeardAt: string | null;
  silent: boolean;
  /** When it went silent (null while heard). */
  silentSince: string | null;
  silentAfterSeconds: number;
  version: string | null;
  mode: string | null;
  /** The mode the config expects (`agents.<name>.mode`); when it differs its sides are not ready. */
  expectedMode: "sandbox" | "cluster";
  /** `agent-mode` when the heartbeat's mode is not the configured one (design §11.6). */
  notReady: "agent-mode" | null;
  leader: string | null;
  /** Replicas heard, the leader's first; standby ones are shown, not counted. */
  pods: { pod: string; lastHeardAt: string; leader: boolean }[];
  /** Which sides of which targets the config sends this agent. */
  serves: Record<string, Side[]>;
  watchingSince: string;
}

/** What a heartbeat did: counted (the leader), shown (a standby), or ignored (a replay). */
export type HeartbeatOutcome = "heard" | "standby" | "replay";

/** Test seams (a clock and the config in force), static so they survive evictions. */
export interface AgentObjectTesting {
  now?: () => number;
  config?: () => WorkerConfig;
}

const iso = (ms: number) => new Date(ms).toISOString();

export class AgentObject extends DurableObject<Env> {
  static testing: AgentObjectTesting | undefined;
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec("CREATE TABLE IF NOT EXISTS agent (id INTEGER PRIMARY KEY CHECK (id = 1), json TEXT NOT NULL)");
  }

  private now(): number {
    return AgentObject.testing?.now?.() ?? Date.now();
  }

  private config(): LoadedConfig {
    const testing = AgentObject.testing?.config;
    return testing ? { ok: true, value: testing(), source: "TURNOUT_CONFIG" } : loadConfig(this.env);
  }

  private read(name: string, now: number): AgentState {
    const row = this.sql.exec("SELECT json FROM agent WHERE id = 1").toArray()[0];
    if (row) return AgentStateSchema.parse(JSON.parse(String(row.json)));
    return {
      name,
      watchingSince: now,
      lastHeardAt: null,
      lastT: null,
      version: null,
      mode: null,
      leader: null,
      silent: false,
      since: now,
      pods: {},
      fanoutPending: false,
      pagedVia: null,
    };
  }

  private write(state: AgentState): void {
    this.sql.exec(
      "INSERT INTO agent (id, json) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET json = excluded.json",
      JSON.stringify(state),
    );
  }

  /**
   * How long until unheard means silent; null: not counted. A single-agent config (`agent`, no
   * `agents`) counts only once the agent was heard: its agent may predate heartbeats (rollout
   * order is worker first, then agents, design §11.6), and calling it silent would stop every
   * automatic failover of a config that worked unchanged before.
   */
  private silentAfterMs(state: AgentState, loaded = this.config()): number | null {
    if (!loaded.ok) return null;
    const agents = agentsOf(loaded.value);
    const entry = Object.hasOwn(agents, state.name) ? agents[state.name] : undefined;
    if (!entry) return null;
    if (!loaded.value.agents && state.lastHeardAt === null) return null;
    return entry.silentAfterSeconds * 1000;
  }

  /** When the agent becomes silent unless heard: `silentAfterSeconds` after max(lastHeardAt, watchingSince). */
  private silentAt(state: AgentState, silentAfterMs: number): number {
    return Math.max(state.lastHeardAt ?? 0, state.watchingSince) + silentAfterMs;
  }

  /** Starts watching (idempotent): silence counts from the first call, and the alarm is armed. */
  async watch(name: string): Promise<AgentInfo> {
    const now = this.now();
    const state = this.read(name, now);
    this.write(state);
    await this.arm(state);
    return this.describe(state);
  }

  /**
   * One verified heartbeat (design §11.1, §11.6). `t` is its signed time in seconds, `receivedAt`
   * its receipt in ms: the agent is heard at `min(t, receipt)`, only by its leader's heartbeat,
   * and only when `t` is newer than the stored one, so a replay cannot keep a dead agent heard.
   */
  async heartbeat(name: string, hb: Heartbeat, t: number, receivedAt: number): Promise<HeartbeatOutcome> {
    const state = this.read(name, receivedAt);
    const at = Math.min(t * 1000, receivedAt);
    const pod = state.pods[hb.pod];
    if (pod !== undefined && t <= pod.t) return "replay";
    state.pods[hb.pod] = { t, at, leader: hb.leader, version: hb.version, mode: hb.mode };
    const isLeader = hb.leader !== null && hb.pod === hb.leader;
    if (!isLeader || (state.lastT !== null && t <= state.lastT)) {
      this.write(state);
      return isLeader ? "replay" : "standby";
    }
    state.lastT = t;
    state.lastHeardAt = Math.max(state.lastHeardAt ?? 0, at);
    state.version = hb.version;
    state.mode = hb.mode;
    state.leader = hb.leader;
    await this.heardNow(state, at);
    await this.tellReadiness(name, hb, at);
    return "heard";
  }

  /**
   * Tells each target this agent serves what its leader's heartbeat says of the target's
   * readiness: its evaluations (only of the sides it serves: the route refused the rest), its
   * mode, and whether it lists the target at all. Only a new round, mode or config is told; a
   * target that could not be told is told again at the next heartbeat.
   */
  private async tellReadiness(name: string, hb: Heartbeat, at: number): Promise<void> {
    const loaded = this.config();
    if (!loaded.ok) return;
    const serves = servedBy(loaded.value, name);
    const times = Object.values(hb.readiness ?? {}).flatMap((sides) =>
      Object.values(sides).map((side) => Date.parse(side.at)),
    );
    const round = times.length === 0 ? null : Math.max(...times);
    const digests = JSON.stringify(Object.entries(hb.targets).sort(([a], [b]) => a.localeCompare(b)));
    const told = this.read(name, at).readinessTold;
    const news =
      told === undefined || told.mode !== hb.mode || told.digests !== digests || (round ?? 0) > (told.round ?? 0);
    if (!news) return;
    const results = await Promise.allSettled(
      Object.entries(serves).map(([target, sides]) => {
        const entries = Object.fromEntries(
          sides.flatMap((side) => {
            const entry = hb.readiness?.[target]?.[side];
            return entry ? [[side, entry]] : [];
          }),
        );
        return this.env.TARGETS.getByName(target).readiness(target, {
          agent: name,
          at,
          mode: hb.mode,
          digest: Object.hasOwn(hb.targets, target) ? (hb.targets[target] ?? null) : null,
          sides: entries,
        });
      }),
    );
    if (results.some((r) => r.status === "rejected")) return;
    const current = this.read(name, at);
    current.readinessTold = { round, mode: hb.mode, digests };
    this.write(current);
  }

  /** The agent answered a probe (rule 17) at `at`: it counts as heard. */
  async heard(name: string, at: number, _via: "probe"): Promise<void> {
    const state = this.read(name, at);
    state.lastHeardAt = Math.max(state.lastHeardAt ?? 0, at);
    await this.heardNow(state, at);
  }

  private async heardNow(state: AgentState, at: number): Promise<void> {
    if (state.silent) {
      state.silent = false;
      state.since = at;
      state.fanoutPending = true;
    }
    this.write(state);
    await this.arm(state);
    if (state.fanoutPending) await this.fanout(state);
  }

  /** Notices silence without any request (design §11.1), and retries an unfinished fan-out. */
  override async alarm(): Promise<void> {
    const row = this.sql.exec("SELECT json FROM agent WHERE id = 1").toArray()[0];
    if (!row) return;
    const now = this.now();
    const state = AgentStateSchema.parse(JSON.parse(String(row.json)));
    const after = this.silentAfterMs(state);
    if (after !== null && !state.silent && now >= this.silentAt(state, after)) {
      state.silent = true;
      state.since = now;
      state.fanoutPending = true;
      this.write(state);
    }
    if (state.fanoutPending) await this.fanout(state);
    await this.arm(state);
  }

  /** Tells every target the agent serves; exactly one of them carries the notification. */
  private async fanout(state: AgentState): Promise<void> {
    const loaded = this.config();
    const serves = loaded.ok ? Object.keys(servedBy(loaded.value, state.name)) : [];
    const liveness = { agent: state.name, silent: state.silent, at: state.since, lastHeardAt: state.lastHeardAt };
    const results = await Promise.allSettled(
      serves.map((target, i) =>
        this.env.TARGETS.getByName(target).agentLiveness(target, { ...liveness, announce: i === 0 }),
      ),
    );
    const pagedVia = await this.pageTransition(state, serves).catch((err: unknown) => {
      console.error(
        JSON.stringify({ level: "error", msg: "agent page not queued", agent: state.name, error: String(err) }),
      );
      return undefined;
    });
    const failed = results.some((r) => r.status === "rejected") || pagedVia === undefined;
    // A transition told twice is harmless (each target ignores news it already holds, a page is
    // opened once per key), but the announcing target then notifies again; so only a failed
    // fan-out is repeated.
    const current = this.read(state.name, this.now());
    if (current.since === state.since && current.silent === state.silent) {
      current.fanoutPending = failed;
      if (pagedVia !== undefined) current.pagedVia = pagedVia;
      this.write(current);
      if (failed) await this.ctx.storage.setAlarm(this.now() + FANOUT_RETRY_MS);
    }
    console.log(
      JSON.stringify({
        level: state.silent ? "warn" : "info",
        msg: state.silent ? "agent silent" : "agent heard again",
        agent: state.name,
        targets: serves,
        failed,
      }),
    );
  }

  /**
   * Pages the transition once per agent (design §11.4, §11.6: key `turnout/agent/<name>`, kind
   * `agent-silent`, not once per target): the announcing target's object queues the trigger in its
   * durable outbox; the return resolves it through the object that holds it. Returns the target
   * now holding the page (null: none open).
   */
  private async pageTransition(state: AgentState, serves: readonly string[]): Promise<string | null> {
    const key = agentNoticeKey(state.name);
    if (!state.silent) {
      if (state.pagedVia === null) return null;
      const resolve: PageRequest = {
        action: "resolve",
        key,
        kind: "agent-silent",
        summary: `agent ${state.name} is heard again: automatic action into the sides it serves resumes`,
      };
      await this.env.TARGETS.getByName(state.pagedVia).page(state.pagedVia, resolve);
      return null;
    }
    const via = state.pagedVia ?? serves[0];
    if (via === undefined) return null;
    const loaded = this.config();
    const served = loaded.ok ? servedBy(loaded.value, state.name) : {};
    const sides = Object.entries(served).map(([target, s]) => `${target} ${s.join(" and ")}`);
    const since =
      state.lastHeardAt === null ? "never heard" : `not heard since ${new Date(state.lastHeardAt).toISOString()}`;
    const trigger: PageRequest = {
      action: "trigger",
      key,
      kind: "agent-silent",
      summary: `agent ${state.name} is silent (${since}): no automatic failover into ${sides.join(", ") || "its sides"} until it is heard again`,
      todo: `Find out why agent ${state.name} stopped sending heartbeats: its pods and their logs in its cluster (kubectl -n turnout get pods,leases; kubectl -n turnout logs deploy/turnout-agent), whether its cluster is reachable at all, and whether it can reach the worker. While it is silent a manual command still dispatches to it, with a warning; the status page's Agents section shows when it was last heard. See docs/operations.md, "An agent is silent".`,
      details: {
        agent: state.name,
        lastHeardAt: state.lastHeardAt === null ? null : new Date(state.lastHeardAt).toISOString(),
        silentSince: new Date(state.since).toISOString(),
        serves: served,
      },
    };
    await this.env.TARGETS.getByName(via).page(via, trigger);
    return via;
  }

  private async arm(state: AgentState): Promise<void> {
    const after = this.silentAfterMs(state);
    const at = state.fanoutPending ? this.now() + FANOUT_RETRY_MS : null;
    const silence = after === null || state.silent ? null : this.silentAt(state, after);
    const next = [at, silence].filter((x): x is number => x !== null);
    if (next.length === 0) await this.ctx.storage.deleteAlarm();
    else await this.ctx.storage.setAlarm(Math.min(...next));
  }

  /** The agent as shown (design §11.1); starts watching it if nothing did yet. */
  async info(name: string): Promise<AgentInfo> {
    return this.watch(name);
  }

  private describe(state: AgentState): AgentInfo {
    const loaded = this.config();
    const entry =
      loaded.ok && Object.hasOwn(agentsOf(loaded.value), state.name) ? agentsOf(loaded.value)[state.name] : undefined;
    const expectedMode = entry?.mode ?? "cluster";
    const pods = Object.entries(state.pods)
      .map(([pod, p]) => ({ pod, lastHeardAt: iso(p.at), leader: p.leader === pod }))
      .sort((a, b) => Number(b.leader) - Number(a.leader) || a.pod.localeCompare(b.pod));
    return {
      name: state.name,
      url: entry?.url ?? "",
      configured: entry !== undefined,
      lastHeardAt: state.lastHeardAt === null ? null : iso(state.lastHeardAt),
      silent: state.silent,
      silentSince: state.silent ? iso(state.since) : null,
      silentAfterSeconds: entry?.silentAfterSeconds ?? 60,
      version: state.version,
      mode: state.mode,
      expectedMode,
      notReady: state.mode !== null && state.mode !== expectedMode ? "agent-mode" : null,
      leader: state.leader,
      pods,
      serves: loaded.ok ? servedBy(loaded.value, state.name) : {},
      watchingSince: iso(state.watchingSince),
    };
  }
}
