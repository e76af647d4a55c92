/** Runs `npm run simulate -- …` (scripts/simulate.ts) as its own process, as a user would. */
import { execFile } from "node:child_process";
import { join } from "node:path";

const root = join(import.meta.dirname, "../..");

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** The simulator with `args`; resolves with its exit code and output (never rejects on exit ≠ 0). */
export function runSimulate(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [join(root, "scripts/simulate.ts"), ...args],
      { cwd: root, env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024, timeout: 120_000 },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== "number") {
          reject(new Error(`simulate did not run: ${err.message}\n${stderr}`));
          return;
        }
        resolve({ code: typeof err?.code === "number" ? err.code : 0, stdout, stderr });
      },
    );
  });
}

/** The parts of a `--json` summary the tests compare. */
export interface JsonSummary {
  failovers: number;
  failbacks: number;
  blocked: Record<string, number>;
  approvals: number;
  downMinutes: Record<string, number>;
  alerts: number;
  shortAlerts: number;
}

export interface JsonResult {
  from: string;
  until: string;
  problems: { severity: string; origin: string; message: string }[];
  variants: {
    name: string;
    summary: JsonSummary;
    targets: {
      name: string;
      summary: JsonSummary;
      final: { activeSide: string; phase: string };
      timeline?: { at: string; type: string; text: string; detail: Record<string, unknown> }[];
    }[];
  }[];
}
