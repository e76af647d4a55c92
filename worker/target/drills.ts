/**
 * Timer-triggered drills (design §5b): the Worker's cron triggers (wrangler.toml `[triggers]`) run
 * `scheduled()`, which starts a drill for every target whose `drill.cron` equals the trigger's cron.
 * The drill itself (dry run, or live fail over → hold → fail back) is the decision engine's; this
 * module only issues the `drill` command and renders the recorded result for people.
 */
import type { WorkerConfig } from "../../shared/config.ts";
import { normalizeCron } from "../../shared/cron.ts";
import { loadConfig } from "../config.ts";
import type { Env } from "../env.ts";

/** What `scheduled()` did for one target: started, refused by the machine (409 reason), or failed. */
export interface ScheduledDrill {
  target: string;
  mode: "dry-run" | "live";
  outcome: "started" | "refused" | "error";
  /** The machine's refusal reason, or the error. */
  detail?: string;
}

/** Names (sorted) of the targets whose configured drill runs on `cron`. */
export function targetsForCron(config: WorkerConfig, cron: string): string[] {
  const wanted = normalizeCron(cron);
  return Object.entries(config.targets)
    .filter(([, t]) => t.drill !== undefined && normalizeCron(t.drill.cron) === wanted)
    .map(([name]) => name)
    .sort();
}

function log(level: "info" | "warn" | "error", msg: string, fields: Record<string, unknown>): void {
  const line = JSON.stringify({ level, msg, ...fields });
  if (level === "info") console.log(line);
  else if (level === "warn") console.warn(line);
  else console.error(line);
}

/**
 * Starts the drills due on `cron`, one `drill` command per matching target (actor `cron`). A
 * refused drill (a side down, not steady, paused, in cooldown…) is audited by the machine and
 * logged here; nothing throws, so one target's trouble never stops another's drill.
 */
export async function runScheduledDrills(cron: string, env: Env): Promise<ScheduledDrill[]> {
  const loaded = loadConfig(env);
  if (!loaded.ok) {
    log("error", "scheduled drills skipped: the worker configuration is invalid", {
      cron,
      source: loaded.source,
      problems: loaded.problems,
    });
    return [];
  }
  const config = loaded.value;
  const names = targetsForCron(config, cron);
  if (names.length === 0) log("info", "no drill is configured for this cron", { cron });
  return Promise.all(
    names.map(async (target): Promise<ScheduledDrill> => {
      const mode = config.targets[target]?.drill?.mode ?? "dry-run";
      try {
        const result = await env.TARGETS.getByName(target).command(target, {
          command: "drill",
          mode,
          actor: "cron",
          reason: `scheduled drill ${normalizeCron(cron)}`,
        });
        if (result.applied) {
          log("info", "scheduled drill started", { cron, target, mode });
          return { target, mode, outcome: "started" };
        }
        const detail = result.rejected ?? "drill does not apply now";
        log("warn", "scheduled drill refused", { cron, target, mode, reason: detail });
        return { target, mode, outcome: "refused", detail };
      } catch (err) {
        log("error", "scheduled drill failed to start", { cron, target, mode, error: String(err) });
        return { target, mode, outcome: "error", detail: String(err) };
      }
    }),
  );
}

export { type DrillSummary, type DrillSwitchSummary, drillSummary } from "../engine/drill-summary.ts";
