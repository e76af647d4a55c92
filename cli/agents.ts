/**
 * `turnout agents` (design §11.1): every agent the worker knows, whether it is heard or silent,
 * its version, mode and leader, and the sides it serves. Plain text for people; `--json` prints
 * the `GET /v1/agents` answer as is.
 */

/** One agent as `GET /v1/agents` answers it (the fields the CLI shows). */
export interface AgentView {
  name: string;
  url: string;
  lastHeardAt: string | null;
  silent: boolean;
  version: string | null;
  mode: string | null;
  expectedMode?: string;
  notReady?: string | null;
  leader: string | null;
  pods?: { pod: string; lastHeardAt: string; leader: boolean }[];
  serves: Record<string, string[]>;
}

/** How long ago an ISO time was, in words ("12 s ago", "3 min ago", "never"). */
function ago(iso: string | null, nowMs: number): string {
  if (iso === null) return "never";
  const s = Math.max(0, Math.round((nowMs - Date.parse(iso)) / 1000));
  if (s < 120) return `${s} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

/** The agents as a table: name, state, last heard, version, mode, leader, serves. */
export function agentsTable(agents: readonly AgentView[], nowMs: number): string {
  if (agents.length === 0) return "no agents configured";
  const rows = agents.map((a) => [
    a.name,
    a.silent ? "SILENT" : a.lastHeardAt === null ? "not heard yet" : "heard",
    ago(a.lastHeardAt, nowMs),
    a.version || "-",
    a.notReady === "agent-mode" ? `${a.mode} (expected ${a.expectedMode}: not ready)` : (a.mode ?? "-"),
    a.leader ?? "-",
    Object.entries(a.serves)
      .map(([t, sides]) => `${t}:${sides.join("+")}`)
      .join(", ") || "-",
  ]);
  const head = ["AGENT", "STATE", "LAST HEARD", "VERSION", "MODE", "LEADER", "SERVES"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  return [line(head), ...rows.map(line)].join("\n");
}
