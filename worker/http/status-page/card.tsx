/**
 * One target's card on the status page (design §5b): the sentence saying what happens and what
 * happens next, sides, operator actions, the incident timeline as bars on a time axis, the
 * incident history and drill results. Pure rendering: the route reads the data.
 */
import { stepDurationMs } from "../../../shared/protocol.ts";
import { readinessNotes, readinessSentence } from "../../../shared/readiness-sentences.ts";
import type { DrillSummary } from "../../engine/drill-summary.ts";
import {
  type BreakGlassRequest,
  type DrillRun,
  drillsOf,
  type Execution,
  type Incident,
  incidentsOf,
  sentenceFacts,
  type TimelineRow,
  timelineOf,
} from "../../target/incidents.ts";
import type { ReadinessView } from "../../target/readiness-view.ts";
import {
  formatSpan,
  liveText,
  owedSentence,
  type Segment,
  type SentencePolicy,
  type TargetSentence,
  targetSentence,
} from "../../target/target-sentences.ts";
import type { AuditEvent, SignalView, TargetView } from "../../target/target-view.ts";

/** Everything one card shows: the view, the policy, the newest audit events, who is looking. */
export interface CardData {
  view: TargetView;
  policy: SentencePolicy;
  /** The newest audit events (a bounded window), oldest first. */
  window: AuditEvent[];
  now: number;
  /** Set for an operator's session or Access visit: the page then offers actions with this CSRF token. */
  operator: { name: string; csrf: string } | null;
  /** The break-glass requests a second operator could confirm now (read for operators only). */
  breakGlass: BreakGlassRequest[];
}

/** The commands the page offers; the same object methods as the API run them. */
export const PAGE_COMMANDS = ["approve", "cancel", "pause", "resume", "drill", "retry", "revert", "confirm"] as const;
export type PageCommand = (typeof PAGE_COMMANDS)[number];

export const PHASE_TEXT: Record<TargetView["phase"], string> = {
  steady: "steady",
  pending: "pending (side down, holding)",
  awaiting_approval: "awaiting approval",
  executing: "executing",
  failed: "failed (needs retry, revert or cancel)",
};

// Status is always spelled out in words; the symbol and colour only repeat it.
const HEALTH_SYMBOL: Record<string, string> = { up: "▲", down: "▼", unknown: "?" };
export const STEP_SYMBOL: Record<string, string> = {
  pending: "○",
  running: "◔",
  waiting: "◆",
  succeeded: "✓",
  failed: "✗",
  skipped: "–",
};
const STATE_SYMBOL: Record<string, string> = {
  steady: "●",
  pending: "◔",
  blocked: "⊘",
  paused: "‖",
  cooldown: "◷",
  "awaiting approval": "◆",
  executing: "▶",
  failed: "✗",
  unconfigured: "–",
};

/**
 * What the page's script compares to decide a card needs re-rendering: the same fields, joined the
 * same way, as `sig()` in the script computes from `/v1/targets`.
 */
export function cardSignature(
  view: Pick<
    TargetView,
    | "phase"
    | "activeSide"
    | "action"
    | "sides"
    | "paused"
    | "flapping"
    | "blocked"
    | "cooldownUntil"
    | "approvalDeadline"
    | "configured"
    | "readiness"
    | "agents"
    | "owed"
  >,
): string {
  const a = view.action;
  const agent = (side: "primary" | "secondary") => {
    const x = view.agents?.[side];
    return x ? `${x.name}:${x.silent}` : "";
  };
  return [
    view.phase,
    view.activeSide,
    view.paused,
    view.flapping,
    view.blocked ?? "",
    view.cooldownUntil ?? "",
    view.approvalDeadline ?? "",
    view.configured,
    a ? `${a.id}:${a.status}:${a.steps.map((st) => st.status).join(",")}:${(a.approvals ?? []).length}` : "",
    view.sides.primary.health,
    view.sides.secondary.health,
    view.sides.primary.firing.length,
    view.sides.secondary.firing.length,
    view.readiness
      ? `${view.readiness.state}:${(view.readiness.failing ?? []).join(",")}:${view.readiness.drift ? view.readiness.drift.ok : ""}`
      : "",
    agent("primary"),
    agent("secondary"),
    (view.owed ?? []).length,
  ].join("|");
}

/** "1.5 s", "2 min 3 s"; null durations as "–". */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "–";
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)} min ${s % 60} s`;
}

const stamp = (iso: string) => `${iso.slice(0, 10)} ${iso.slice(11, 19)}`;
const slug = (s: string) => s.replace(/[^a-z]+/g, "-");

/** The target's sentence for this card's data (also used by tests). */
export function cardSentence(data: CardData): TargetSentence {
  return targetSentence(data.view, { now: data.now, policy: data.policy, ...sentenceFacts(data.window) });
}

export function TargetCard({ data }: { data: CardData }) {
  const { view } = data;
  const id = `t-${view.name}`;
  const sentence = cardSentence(data);
  // Design §11.6: owed plan steps are shown whatever the phase (the steady sentence says them itself).
  const owed = owedSentence(view);
  const incidents = incidentsOf(data.window);
  const drills = drillsOf(data.window);
  const latest = incidents[0];
  const live = view.phase !== "steady" || (latest !== undefined && latest.end === null);
  return (
    <article
      class="card"
      data-target={view.name}
      data-phase={view.phase}
      data-sig={cardSignature(view)}
      data-live={live ? "1" : undefined}
      aria-labelledby={id}
    >
      <h2 id={id}>{view.name}</h2>
      <Sentence sentence={sentence} now={data.now} />
      {owed !== null && !sentence.segments.some((seg) => typeof seg === "string" && seg.includes(owed)) ? (
        <p class="owed" data-field="owed">
          {owed}
        </p>
      ) : null}
      {view.readiness ? <Readiness readiness={view.readiness} /> : null}
      <dl class="summary">
        <div>
          <dt>Phase</dt>
          <dd>
            <span class={`badge phase-${view.phase}`} data-field="phase">
              {PHASE_TEXT[view.phase]}
            </span>
          </dd>
        </div>
        <div>
          <dt>Active side</dt>
          <dd>
            <strong data-field="activeSide">{view.activeSide}</strong>
          </dd>
        </div>
        <div>
          <dt>Automatic actions (24 h)</dt>
          <dd>
            {view.autoActionsLast24h} of {data.policy.maxAutoActionsPerDay}
          </dd>
        </div>
      </dl>
      <h3>Sides</h3>
      <ul class="sides">
        {(["primary", "secondary"] as const).map((side) => (
          <li class={`side health-${view.sides[side].health}`} data-side={side}>
            <span class="side-name">
              {side}
              {side === view.activeSide ? " (active)" : ""}
            </span>{" "}
            <span class="badge" data-field={`health-${side}`}>
              <span aria-hidden="true">{HEALTH_SYMBOL[view.sides[side].health] ?? ""} </span>
              {view.sides[side].health}
            </span>
            <SideAgent agent={view.agents?.[side]} />
            <Firing signals={view.sides[side].firing} />
          </li>
        ))}
      </ul>
      {data.operator ? <Actions data={data} requests={data.breakGlass} /> : null}
      <Action action={view.action} target={view.name} operator={data.operator} />
      {latest ? <Timeline incident={latest} view={view} now={data.now} /> : null}
      <History incidents={incidents} />
      <Drills drills={drills} last={view.lastDrill} />
      <p class="raw">
        <a href={`/audit/${encodeURIComponent(view.name)}`}>Raw audit log of {view.name}</a>
      </p>
    </article>
  );
}

/** Whether a failover could work now (design §11.3), in words, with what to do when not; drift and differing configs. */
function Readiness({ readiness }: { readiness: ReadinessView }) {
  const notes = readinessNotes(readiness);
  return (
    <div class={`readiness readiness-${readiness.state}`} data-field="readiness" data-state={readiness.state}>
      <p data-field="readiness-sentence">{readinessSentence(readiness)}</p>
      {notes.length > 0 ? (
        <ul class="readiness-notes">
          {notes.map((n) => (
            <li>{n}</li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}

/** The sentence, with live times as `<time>` elements the script keeps ticking. */
function Sentence({ sentence, now }: { sentence: TargetSentence; now: number }) {
  return (
    <p class={`sentence state-${slug(sentence.state)}`} data-field="sentence" data-state={sentence.state}>
      <span aria-hidden="true" class="state-symbol">
        {STATE_SYMBOL[sentence.state] ?? "●"}{" "}
      </span>
      {sentence.segments.map((seg: Segment) =>
        typeof seg === "string" ? (
          seg
        ) : "until" in seg ? (
          <time datetime={seg.until} data-until={seg.until}>
            {liveText(seg, now)}
          </time>
        ) : (
          <time datetime={seg.since} data-since={seg.since}>
            {liveText(seg, now)}
          </time>
        ),
      )}
    </p>
  );
}

/** The agent that executes failovers into this side (design §11.1), marked when it is silent. */
function SideAgent({ agent }: { agent: { name: string; silent: boolean } | undefined }) {
  if (!agent) return null;
  return agent.silent ? (
    <p class="side-agent agent-silent" data-field="side-agent" data-agent={agent.name}>
      <span aria-hidden="true">⊘ </span>Agent <strong>{agent.name}</strong> is SILENT: nothing fails over into this side
      automatically until it is heard again (see Agents).
    </p>
  ) : (
    <p class="side-agent muted" data-field="side-agent" data-agent={agent.name}>
      Agent: {agent.name}
    </p>
  );
}

function Firing({ signals }: { signals: SignalView[] }) {
  if (signals.length === 0) return <p class="muted">Nothing firing.</p>;
  return (
    <ul class="firing" aria-label="Firing signals">
      {signals.map((s) => (
        <li>
          <strong>{s.labels.alertname ?? s.key}</strong> from {s.source} since{" "}
          <time datetime={s.firstSeen}>{s.firstSeen}</time>
          {s.soft ? " (soft)" : ""}
          {s.held ? " (held by a notice)" : ""}
          {s.stale ? " (stale: not seen recently, no longer counted)" : ""}
        </li>
      ))}
    </ul>
  );
}

/** Which commands apply now; the object still has the last word (it refuses what does not apply). */
export function offeredCommands(
  view: TargetView,
  approval: { kind: string; from: string; to: string } | null = null,
): { command: PageCommand; label: string; question: string }[] {
  const a = view.action;
  const move = a ? `${a.kind} ${a.from} → ${a.to}` : "";
  const out: { command: PageCommand; label: string; question: string }[] = [];
  const add = (command: PageCommand, label: string, question: string) => out.push({ command, label, question });
  if (view.phase === "awaiting_approval") {
    const ap = approval ?? {
      kind: "failover",
      from: view.activeSide,
      to: view.activeSide === "primary" ? "secondary" : "primary",
    };
    add(
      "approve",
      `Approve ${ap.kind}`,
      `Approve the ${ap.kind} ${ap.from} → ${ap.to} of ${view.name}? It executes at once.`,
    );
    add("cancel", "Cancel", `Cancel (dismiss) the pending approval of ${view.name}? Nothing switches.`);
  }
  if (view.phase === "pending") add("cancel", "Cancel", `Dismiss this incident's failover on ${view.name}?`);
  if (view.phase === "executing") add("cancel", "Cancel", `Stop waiting for ${a?.id ?? "the action"} on ${view.name}?`);
  if (view.phase === "failed") {
    add("retry", "Retry", `Retry ${move} (${a?.id ?? ""}) on ${view.name}?`);
    if (a && !a.dryRun)
      add("revert", `Revert to ${a.from}`, `Revert ${view.name} to ${a.from}, undoing half-done steps?`);
    add(
      "cancel",
      "Cancel",
      `Give up on ${a?.id ?? "the action"} and return ${view.name} to steady on ${view.activeSide}?`,
    );
  }
  if (view.phase === "steady" && !view.paused) add("drill", "Dry-run drill", `Start a dry-run drill on ${view.name}?`);
  if (view.paused) add("resume", "Resume", `Resume automatic action on ${view.name}? A down side starts a fresh hold.`);
  else add("pause", "Pause", `Pause automatic action on ${view.name}? Manual commands still work.`);
  return out;
}

function CommandForm(props: {
  target: string;
  csrf: string;
  command: PageCommand;
  label: string;
  question: string;
  request?: string;
  /** `approve` of a plan step: the step's name. */
  step?: string;
}) {
  return (
    <form method="post" action={`/ui/targets/${encodeURIComponent(props.target)}/commands`} class="command">
      <input type="hidden" name="csrf" value={props.csrf} />
      <input type="hidden" name="command" value={props.command} />
      {props.request ? <input type="hidden" name="request" value={props.request} /> : null}
      {props.step ? <input type="hidden" name="step" value={props.step} /> : null}
      <button type="submit" data-question={props.question} aria-label={`${props.label}: ${props.target}`}>
        {props.label}
      </button>
    </form>
  );
}

function Actions({ data, requests }: { data: CardData; requests: BreakGlassRequest[] }) {
  const { view, operator } = data;
  if (!operator) return null;
  return (
    <section class="actions" aria-label={`Actions for ${view.name}`}>
      <h3>Actions</h3>
      <div class="buttons">
        {offeredCommands(view, sentenceFacts(data.window).approval).map((o) => (
          <CommandForm target={view.name} csrf={operator.csrf} {...o} />
        ))}
      </div>
      {requests.length > 0 ? (
        <ul class="breakglass" aria-label="Break-glass requests">
          {requests.map((r) => (
            <li>
              <p>
                <strong>Break-glass request:</strong> forced {r.command} by {r.requester}
                {r.reason ? ` (${r.reason})` : ""}; expires at{" "}
                <time datetime={r.expiresAt}>{r.expiresAt.slice(11, 19)} UTC</time>.
              </p>
              {r.requester === operator.name ? (
                <p class="muted">You requested this; a different operator must confirm it.</p>
              ) : (
                <CommandForm
                  target={view.name}
                  csrf={operator.csrf}
                  command="confirm"
                  label={`Confirm forced ${r.command}`}
                  question={`Confirm ${r.requester}'s forced ${r.command} on ${view.name}? It executes at once.`}
                  request={r.id}
                />
              )}
            </li>
          ))}
        </ul>
      ) : null}
      <p class="result" data-field="result" role="status" aria-live="polite" />
    </section>
  );
}

function Action(props: { action: TargetView["action"]; target: string; operator: CardData["operator"] }) {
  const { action } = props;
  if (action === null) {
    return (
      <section class="action" aria-label="Action">
        <h3>Action</h3>
        <p class="muted" data-field="action">
          No action yet.
        </p>
      </section>
    );
  }
  return (
    <section class="action" aria-label="Action">
      <h3>{action.status === "running" || action.status === "dispatching" ? "Current action" : "Last action"}</h3>
      <p data-field="action">
        {action.dryRun ? "dry-run " : ""}
        {action.kind} <code>{action.id}</code> {action.from} → {action.to}: <strong>{action.status}</strong>
        {action.error ? ` (${action.error.code}: ${action.error.message})` : ""}
      </p>
      {action.steps.length > 0 ? (
        <ol class="steps" aria-label="Steps" data-field="steps">
          {stepRows(action.steps).map((row) =>
            row.group === undefined ? (
              <Step step={row.steps[0] as Step} {...props} />
            ) : (
              <li class="step-group" data-group={row.group}>
                <span class="group-name">in parallel ({row.group}):</span>
                <ol class="parallel" aria-label={`Parallel group ${row.group}`}>
                  {row.steps.map((st) => (
                    <Step step={st} {...props} />
                  ))}
                </ol>
              </li>
            ),
          )}
        </ol>
      ) : null}
    </section>
  );
}

type Step = NonNullable<TargetView["action"]>["steps"][number];

/**
 * The steps as the page lays them out: consecutive steps of one parallel `group` share a row
 * (side by side), every other step is a row of its own, in the plan's order.
 */
export function stepRows(steps: readonly Step[]): { group?: string; steps: Step[] }[] {
  const rows: { group?: string; steps: Step[] }[] = [];
  for (const st of steps) {
    const last = rows.at(-1);
    if (st.group !== undefined && last?.group === st.group) last.steps.push(st);
    else rows.push(st.group === undefined ? { steps: [st] } : { group: st.group, steps: [st] });
  }
  return rows;
}

/** One step: status, duration, detail; a waiting approval step with its message, deadline and button. */
function Step(props: { step: Step; action: TargetView["action"]; target: string; operator: CardData["operator"] }) {
  const { step: st, operator } = props;
  const approved = props.action?.approvals?.find((x) => x.step === st.name);
  return (
    <li class={`step step-${st.status}`} data-step={st.name}>
      <span aria-hidden="true">{STEP_SYMBOL[st.status] ?? ""} </span>
      {st.name}: {st.status === "waiting" ? "waiting for approval" : st.status}
      {st.status === "waiting" ? "" : `, ${formatDuration(stepDurationMs(st))}`}
      {st.detail ? <span class="muted"> ({st.detail})</span> : null}
      {st.status === "waiting" && st.approval ? (
        <p class="approval" data-field="approval">
          {st.approval.message} Approve before{" "}
          <time datetime={st.approval.deadline} data-until={st.approval.deadline}>
            {st.approval.deadline}
          </time>
          , or the action fails.
        </p>
      ) : null}
      {approved ? (
        <p class="muted" data-field="approved">
          Approved by {approved.by} at <time datetime={approved.at}>{stamp(approved.at)} UTC</time>
          {st.status === "waiting" ? "; the agent goes on" : ""}.
        </p>
      ) : st.status === "waiting" && operator ? (
        <CommandForm
          target={props.target}
          csrf={operator.csrf}
          command="approve"
          label={`Approve ${st.name}`}
          question={`Approve step ${st.name} of ${props.action?.id ?? "the action"} on ${props.target}? The plan goes on at once.`}
          step={st.name}
        />
      ) : null}
    </li>
  );
}

/** The incident as bars on a time axis: each row's sentence, offset and duration in words too. */
function Timeline({ incident, view, now }: { incident: Incident; view: TargetView; now: number }) {
  const rows = timelineOf(incident, view, now);
  if (rows.length === 0) return null;
  const t0 = Math.min(...rows.map((r) => r.start));
  const t1 = Math.max(t0 + 1000, ...rows.map((r) => r.end ?? r.start), incident.end === null ? now : 0);
  const span = t1 - t0;
  const x = (t: number) => Math.round(((t - t0) / span) * 1000);
  return (
    <section class="timeline" aria-label="Incident timeline">
      <h3>
        {incident.end === null ? "Current incident" : "Last incident"}, from{" "}
        <time datetime={incident.start}>{stamp(incident.start)} UTC</time>
      </h3>
      <div class="axis" aria-hidden="true">
        <span>0 s</span>
        <span>+{span < 60_000 ? formatDuration(span / 2) : formatSpan(span / 2)}</span>
        <span>+{span < 60_000 ? formatDuration(span) : formatSpan(span)}</span>
      </div>
      <ol class="tl">
        {rows.map((r: TimelineRow) => {
          const left = x(r.start);
          const width = r.end === undefined ? 0 : Math.max(6, x(r.end) - left);
          const took = r.end === undefined ? "" : `, ${formatDuration(r.end - r.start)}${r.running ? " so far" : ""}`;
          return (
            <li class={`tl-row tl-${r.kind}${r.running ? " tl-running" : ""}`}>
              <span class="tl-text">
                <span class="tl-at">+{formatDuration(r.start - t0)}</span> {r.label}
                {took}
              </span>
              <svg class="tl-bar" viewBox="0 0 1000 12" preserveAspectRatio="none" aria-hidden="true" focusable="false">
                <rect class="tl-track" x="0" y="5" width="1000" height="2" />
                {r.end === undefined ? (
                  <rect class="tl-mark" x={String(Math.min(left, 994))} y="0" width="6" height="12" />
                ) : (
                  <rect class="tl-span" x={String(Math.min(left, 994))} y="1" width={String(width)} height="10" />
                )}
              </svg>
            </li>
          );
        })}
      </ol>
    </section>
  );
}

function History({ incidents }: { incidents: Incident[] }) {
  return (
    <section class="history" aria-label="Incident history">
      <h3>Incident history</h3>
      {incidents.length === 0 ? (
        <p class="muted">No incidents in the recent audit log.</p>
      ) : (
        <table>
          <caption class="muted">
            Last {incidents.length} incident{incidents.length === 1 ? "" : "s"}, newest first
          </caption>
          <thead>
            <tr>
              <th scope="col">Start</th>
              <th scope="col">End</th>
              <th scope="col">Action</th>
              <th scope="col">Recovery</th>
              <th scope="col">Executions</th>
              <th scope="col">Outcome</th>
            </tr>
          </thead>
          <tbody>
            {incidents.map((i) => (
              <tr>
                <td data-label="Start">
                  <time datetime={i.start}>{stamp(i.start)}</time>
                </td>
                <td data-label="End">{i.end ? <time datetime={i.end}>{stamp(i.end)}</time> : "ongoing"}</td>
                <td data-label="Action">{i.action ?? "none"}</td>
                <td data-label="Recovery">{i.recoveryMs === null ? "–" : formatDuration(i.recoveryMs)}</td>
                <td data-label="Executions" data-field="executions">
                  {i.executions.length === 0 ? "–" : i.executions.map(executionText).join("; ")}
                </td>
                <td data-label="Outcome">{i.outcome}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

/** "plan-a:1 succeeded in 1 min 3 s": one execution, dispatch to final report. */
export function executionText(x: Execution): string {
  return x.outcome === "running" ? `${x.id} running` : `${x.id} ${x.outcome} in ${formatDuration(x.recoveryMs)}`;
}

/** "RTO trend over 3 drills: 4.0 s → 2.5 s (1.5 s faster)". */
export function rtoTrend(drills: DrillRun[]): string | null {
  const measured = drills.filter((d) => d.recoveryMs.length > 0).reverse();
  const first = measured[0]?.recoveryMs[0];
  const last = measured.at(-1)?.recoveryMs[0];
  if (first === undefined || last === undefined) return null;
  if (measured.length === 1) return `RTO ${formatDuration(last)} (one measured drill)`;
  const delta = last - first;
  const how = delta === 0 ? "unchanged" : `${formatDuration(Math.abs(delta))} ${delta < 0 ? "faster" : "slower"}`;
  return `RTO trend over ${measured.length} drills: ${formatDuration(first)} → ${formatDuration(last)} (${how})`;
}

function Drills({ drills, last }: { drills: DrillRun[]; last: DrillSummary | null }) {
  const trend = rtoTrend(drills);
  const measured = drills.filter((d) => d.recoveryMs.length > 0).reverse();
  const max = Math.max(1, ...measured.map((d) => d.recoveryMs[0] ?? 0));
  return (
    <section class="drill" aria-label="Drills">
      <h3>Drills</h3>
      {last === null ? (
        <p class="muted">No drill has run.</p>
      ) : (
        <p data-field="lastDrill">
          Last: {last.mode} drill <strong>{last.outcome}</strong> at{" "}
          <time datetime={last.startedAt}>{last.startedAt}</time>
          {last.switches.length > 0
            ? `; recovery ${last.switches.map((s) => `${s.kind} ${formatDuration(s.recoveryMs)}`).join(", ")}`
            : ""}
          . <span class="muted">{last.detail}</span>
        </p>
      )}
      {trend ? (
        <figure class="rto">
          <svg
            viewBox={`0 0 ${measured.length * 20} 40`}
            preserveAspectRatio="none"
            class="rto-chart"
            aria-hidden="true"
            focusable="false"
          >
            {measured.map((d, i) => {
              const h = Math.max(2, Math.round(((d.recoveryMs[0] ?? 0) / max) * 38));
              return <rect x={String(i * 20 + 4)} y={String(40 - h)} width="12" height={String(h)} />;
            })}
          </svg>
          <figcaption data-field="rto">{trend}</figcaption>
        </figure>
      ) : null}
      {drills.length > 0 ? (
        <ol class="drills" reversed aria-label="Drill results, newest first">
          {drills.map((d) => (
            <li>
              <time datetime={d.at}>{stamp(d.at)}</time> {d.mode} {d.outcome}
              {d.recoveryMs.length > 0 ? `, recovery ${d.recoveryMs.map((ms) => formatDuration(ms)).join(" / ")}` : ""}
            </li>
          ))}
        </ol>
      ) : null}
    </section>
  );
}
