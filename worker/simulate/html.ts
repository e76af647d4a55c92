/**
 * `--html FILE`: one self-contained page (inline SVG and CSS; no script, no CDN, no build step)
 * with one swim lane per target and policy variant on a shared time axis: each side's health,
 * what turnout was doing (hold, blocked, approval, executing, failed), the active side and the
 * decisions, with a legend.
 */

import { describeEvent } from "../target/sentence-parts.ts";
import type { Segment, SimulationResult, TargetResult, VariantResult } from "./engine.ts";
import { policyLine, summaryTable } from "./report.ts";

const WIDTH = 1100;
const LABEL = 170;
const ROW = 16;
const GAP = 3;
const LANE_HEIGHT = 4 * (ROW + GAP) + 10;

const COLORS = {
  up: "#8fd19e",
  down: "#d9534f",
  unknown: "#f0ad4e",
  hold: "#f7e463",
  blocked: "#7a1f1f",
  approval: "#9b59b6",
  executing: "#2f6fd6",
  failed: "#222222",
  primary: "#5d6d7e",
  secondary: "#17a2b8",
  decision: "#0b3d91",
  blockedMark: "#7a1f1f",
} as const;

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
const iso = (ms: number) => new Date(ms).toISOString();

interface Scale {
  x: (t: number) => number;
}

function scale(from: number, until: number): Scale {
  const span = Math.max(1, until - from);
  return { x: (t: number) => LABEL + ((Math.min(Math.max(t, from), until) - from) / span) * (WIDTH - LABEL - 10) };
}

/** Spans of constant `value(segment)` between change points, to `until`. */
function spans<T>(
  segments: readonly Segment[],
  until: number,
  value: (s: Segment) => T,
): { from: number; to: number; v: T }[] {
  const out: { from: number; to: number; v: T }[] = [];
  segments.forEach((s, i) => {
    const to = segments[i + 1]?.at ?? until;
    const v = value(s);
    const last = out.at(-1);
    if (last && last.v === v && last.to === s.at) last.to = to;
    else out.push({ from: s.at, to, v });
  });
  return out;
}

function rect(sc: Scale, y: number, from: number, to: number, color: string, title: string, cls: string): string {
  const x0 = sc.x(from);
  // At a month's scale a short span would vanish; keep it visible.
  const w = Math.max(2, sc.x(to) - x0);
  return `<rect class="${cls}" x="${x0.toFixed(2)}" y="${y}" width="${w.toFixed(2)}" height="${ROW}" fill="${color}"><title>${esc(title)}</title></rect>`;
}

function turnoutState(s: Segment): keyof typeof COLORS | null {
  if (s.phase === "pending") return s.blocked === null ? "hold" : "blocked";
  if (s.phase === "awaiting_approval") return "approval";
  if (s.phase === "executing") return "executing";
  if (s.phase === "failed") return "failed";
  return null;
}

function lane(v: VariantResult, t: TargetResult, sc: Scale, until: number): string {
  const rows = ["primary", "secondary", "turnout", "active side"];
  const y = (i: number) => 6 + i * (ROW + GAP);
  const parts: string[] = [];
  rows.forEach((label, i) => {
    parts.push(`<text x="${LABEL - 8}" y="${y(i) + ROW - 4}" text-anchor="end" class="row-label">${label}</text>`);
    parts.push(`<rect x="${LABEL}" y="${y(i)}" width="${WIDTH - LABEL - 10}" height="${ROW}" class="row-bg"/>`);
  });
  for (const [i, side] of [
    [0, "primary"],
    [1, "secondary"],
  ] as const) {
    for (const s of spans(t.segments, until, (seg) => seg[side])) {
      if (s.v === "up") continue;
      parts.push(
        rect(sc, y(i), s.from, s.to, COLORS[s.v], `${side} ${s.v} ${iso(s.from)} → ${iso(s.to)}`, `health-${s.v}`),
      );
    }
  }
  for (const s of spans(t.segments, until, turnoutState)) {
    if (s.v === null) continue;
    parts.push(rect(sc, y(2), s.from, s.to, COLORS[s.v], `${s.v} ${iso(s.from)} → ${iso(s.to)}`, `phase-${s.v}`));
  }
  for (const s of spans(t.segments, until, (seg) => seg.active)) {
    parts.push(
      rect(sc, y(3), s.from, s.to, COLORS[s.v], `${s.v} active ${iso(s.from)} → ${iso(s.to)}`, `active-${s.v}`),
    );
  }
  for (const e of t.events) {
    const decision = e.type === "action.dispatched";
    const blocked = e.type === "failover.blocked" || e.type === "both-sides-down";
    if (!decision && !blocked) continue;
    const x = sc.x(e.at);
    const top = y(2) - 2;
    const title = esc(`${iso(e.at)} ${describeEvent(e, "simulated") ?? e.type}`);
    parts.push(
      decision
        ? `<path class="decision" d="M${(x - 5).toFixed(2)},${top} L${(x + 5).toFixed(2)},${top} L${x.toFixed(2)},${top + 9} Z" fill="${COLORS.decision}"><title>${title}</title></path>`
        : `<path class="blocked-mark" d="M${(x - 4).toFixed(2)},${top - 2} l8,8 m0,-8 l-8,8" stroke="${COLORS.blockedMark}" stroke-width="2"><title>${title}</title></path>`,
    );
  }
  const id = `${v.name} / ${t.name}`;
  return `<figure class="lane" data-lane="${esc(id)}">
<figcaption><b>${esc(t.name)}</b> <span class="variant">${esc(v.name)}</span> · ${esc(policyLine(t.policy))} · failovers ${t.summary.failovers}, failbacks ${t.summary.failbacks}, approvals ${t.summary.approvals}</figcaption>
<svg role="img" aria-label="${esc(id)}" width="${WIDTH}" height="${LANE_HEIGHT}" viewBox="0 0 ${WIDTH} ${LANE_HEIGHT}">${parts.join("")}</svg>
</figure>`;
}

function axis(sc: Scale, from: number, until: number): string {
  const ticks = 6;
  const parts: string[] = [];
  for (let i = 0; i <= ticks; i++) {
    const t = from + ((until - from) * i) / ticks;
    const x = sc.x(t);
    const label = iso(t).slice(0, 16).replace("T", " ");
    parts.push(`<line x1="${x.toFixed(2)}" y1="0" x2="${x.toFixed(2)}" y2="6" stroke="#555"/>`);
    parts.push(
      `<text x="${x.toFixed(2)}" y="20" text-anchor="${i === 0 ? "start" : i === ticks ? "end" : "middle"}" class="tick">${label}</text>`,
    );
  }
  return `<svg class="axis" width="${WIDTH}" height="26" viewBox="0 0 ${WIDTH} 26">${parts.join("")}</svg>`;
}

function legend(): string {
  const items: [string, string, string][] = [
    ["health-down", COLORS.down, "side down"],
    ["health-unknown", COLORS.unknown, "firing below quorum (unknown)"],
    ["phase-hold", COLORS.hold, "holding (pending)"],
    ["phase-blocked", COLORS.blocked, "past the hold, blocked"],
    ["phase-approval", COLORS.approval, "awaiting approval"],
    ["phase-executing", COLORS.executing, "action executing"],
    ["phase-failed", COLORS.failed, "failed"],
    ["active-primary", COLORS.primary, "primary active"],
    ["active-secondary", COLORS.secondary, "secondary active"],
  ];
  const cells = items.map(
    ([cls, color, text]) =>
      `<li><svg width="22" height="12"><rect class="${cls}" width="22" height="12" fill="${color}"/></svg> ${esc(text)}</li>`,
  );
  cells.push(
    `<li><svg width="14" height="12"><path d="M2,1 L12,1 L7,10 Z" fill="${COLORS.decision}"/></svg> decision: action dispatched</li>`,
    `<li><svg width="14" height="12"><path d="M3,2 l8,8 m0,-8 l-8,8" stroke="${COLORS.blockedMark}" stroke-width="2"/></svg> failover blocked</li>`,
  );
  return `<ul class="legend" aria-label="legend">${cells.join("")}</ul>`;
}

/** The whole page as one HTML string. */
export function renderHtml(result: SimulationResult): string {
  const sc = scale(result.from, result.until);
  const sections = result.variants.map(
    (v) => `<section class="variant-block"><h2>${esc(v.name)}</h2>
${axis(sc, result.from, result.until)}
${v.targets.map((t) => lane(v, t, sc, result.until)).join("\n")}
</section>`,
  );
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>turnout simulate ${esc(iso(result.from))} → ${esc(iso(result.until))}</title>
<style>
body { font: 13px/1.4 system-ui, sans-serif; margin: 16px; color: #222; background: #fff; }
h1 { font-size: 18px; margin: 0 0 4px; } h2 { font-size: 15px; margin: 18px 0 4px; }
.legend { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 6px 16px; margin: 8px 0; }
.legend li { display: flex; align-items: center; gap: 5px; }
.lane { margin: 4px 0 10px; } figcaption { font-size: 12px; margin-bottom: 2px; } .variant { color: #666; }
.row-label { font-size: 11px; fill: #444; } .row-bg { fill: #eef7ee; } .tick { font-size: 10px; fill: #444; }
pre { background: #f6f6f6; padding: 8px; overflow-x: auto; font-size: 12px; }
</style></head>
<body>
<h1>turnout simulate: ${esc(iso(result.from))} → ${esc(iso(result.until))}</h1>
<p>${result.inputs.replayed} deliveries, ${result.inputs.signals} signals; ${result.variants.length} policy variant(s). A green row is a side that is up.</p>
${legend()}
<pre class="summary">${esc(summaryTable(result))}</pre>
${sections.join("\n")}
</body></html>
`;
}
