/**
 * The `turnout` CLI (design §10): `status [target]`, `events <target> [--follow]`, the commands
 * (`failover|failback|approve|cancel|pause|resume|drill|retry|revert <target>`), `clear <target>
 * <key>` and `confirm <target> <request>`, against the worker's operator API (design §3) at
 * `TURNOUT_URL` with the bearer token `TURNOUT_TOKEN`; `approve <target> --step <name>` approves a
 * plan step waiting for approval. Human-readable by default, `--json` for
 * scripts. Exit codes: 0 success, 1 refused (the problem's detail is printed) or unreachable,
 * 2 bad usage.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { type AgentView, agentsTable } from "./agents.ts";
import { Client, Refused, Unreachable } from "./client.ts";
import { type EventView, eventLine, statusTable, type TargetView, targetDetail } from "./render.ts";
import { registerSandboxCommands } from "./sandbox.ts";

/** Exit codes of design §10. */
export const EXIT = { ok: 0, refused: 1, usage: 2 } as const;

/** Where output goes; a seam for the process's own streams. */
export interface Io {
  out(line: string): void;
  err(line: string): void;
}

/** How often `events --follow` asks for new events: well inside the one second the issue asks for. */
const FOLLOW_POLL_MS = 400;
const EVENTS_PAGE = 1000;
const DEFAULT_URL = "http://127.0.0.1:8787";

/** The target commands that take only `--force` and `--reason` (and `--mode` for drill). */
const TARGET_COMMANDS = {
  failover: "switch the active side to the other side now (hold, quorum, flapping, cooldown and budget are skipped)",
  failback: "switch back to the home side now",
  approve:
    "approve the switch a target with approval: required is waiting for, or (--step) a plan step waiting for approval",
  cancel: "cancel a pending or awaiting switch, a failed action, or a drill",
  pause: "stop automatic action on a target (signals are still recorded)",
  resume: "allow automatic action again (the hold starts anew)",
  drill: "run a drill (dry run unless --mode live)",
  retry: "retry a failed action from the step that failed",
  revert: "undo a failed failover or failback: go back to the side it came from",
} as const;

class UsageError extends Error {}

interface Globals {
  json?: boolean;
  url?: string;
}

interface BreakGlass {
  pending: "break-glass";
  request: { id: string; command?: string; target?: string; by?: string; expiresAt?: string };
}

const isBreakGlass = (b: unknown): b is BreakGlass =>
  typeof b === "object" &&
  b !== null &&
  (b as { pending?: unknown }).pending === "break-glass" &&
  typeof (b as { request?: { id?: unknown } }).request?.id === "string";

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError("expected a whole number ≥ 0");
  return n;
}

/** Runs the CLI once; resolves with the exit code. */
export async function main(argv: string[], env: NodeJS.ProcessEnv, io: Io, signal?: AbortSignal): Promise<number> {
  let code: number = EXIT.ok;
  const program = new Command("turnout");

  const client = (g: Globals): Client => {
    const url = g.url ?? env.TURNOUT_URL ?? DEFAULT_URL;
    try {
      new URL(url);
    } catch {
      throw new UsageError(`TURNOUT_URL is not a URL: ${JSON.stringify(url)}`);
    }
    const token = env.TURNOUT_TOKEN;
    if (!token) throw new UsageError("set TURNOUT_TOKEN to a viewer or operator token (see docs/api.md)");
    return new Client(url, token);
  };
  const globals = (cmd: Command): Globals => cmd.optsWithGlobals<Globals>();
  const print = (g: Globals, value: unknown, human: () => string) =>
    io.out(g.json ? JSON.stringify(value, null, 2) : human());

  program
    .description(
      "Operate turnout from a shell: read targets and their audit log, send commands.\n" +
        `Reads TURNOUT_URL (default ${DEFAULT_URL}) and TURNOUT_TOKEN (a viewer token reads, an operator token also commands).\n` +
        "Exit codes: 0 success, 1 refused or unreachable (the reason is printed), 2 bad usage.",
    )
    .option("--json", "print JSON for scripts (events: one JSON object a line)")
    .option("--url <url>", "the worker's base URL (overrides TURNOUT_URL)")
    .showHelpAfterError("(run `turnout --help` for usage)")
    .configureHelp({ showGlobalOptions: true })
    .configureOutput({ writeOut: (s) => io.out(s.trimEnd()), writeErr: (s) => io.err(s.trimEnd()) })
    .exitOverride();

  program
    .command("status")
    .description("every target in a table, or one target in detail (sides, action steps, recent events)")
    .argument("[target]", "a target name")
    .action(async (target: string | undefined, _opts: unknown, cmd: Command) => {
      const g = globals(cmd);
      const api = client(g);
      const now = Date.now();
      if (target === undefined) {
        const { body } = await api.get<{ targets: TargetView[] }>("v1/targets");
        print(g, body, () => statusTable(body.targets, now));
      } else {
        const { body } = await api.get<TargetView>(`v1/targets/${encodeURIComponent(target)}`);
        print(g, body, () => targetDetail(body, now));
      }
    });

  program
    .command("agents")
    .description("every agent: heard or SILENT, last heartbeat, version, mode, leader, the sides it serves")
    .action(async (_opts: unknown, cmd: Command) => {
      const g = globals(cmd);
      const { body } = await client(g).get<{ agents: AgentView[] }>("v1/agents");
      print(g, body, () => agentsTable(body.agents, Date.now()));
    });

  program
    .command("events")
    .description("a target's audit log, oldest first, one sentence an event")
    .argument("<target>", "a target name")
    .option("-f, --follow", "keep printing new events as they are audited (Ctrl-C stops)")
    .option("--after <seq>", "only events after this seq", positiveInt, 0)
    .action(async (target: string, opts: { follow?: boolean; after: number }, cmd: Command) => {
      const g = globals(cmd);
      const api = client(g);
      const path = (after: number) =>
        `v1/targets/${encodeURIComponent(target)}/events?after=${after}&limit=${EVENTS_PAGE}`;
      let after = opts.after;
      let day = "";
      const show = (e: EventView) => {
        if (g.json) return io.out(JSON.stringify(e));
        const d = e.at.slice(0, 10);
        if (d !== day) {
          day = d;
          io.out(`-- ${d} (UTC)`);
        }
        io.out(eventLine(e));
      };
      /** Prints every event after `after`, page by page; returns the new `after`. */
      const drain = async () => {
        for (;;) {
          const { body } = await api.get<{ events: EventView[]; next?: number }>(path(after));
          for (const e of body.events) {
            show(e);
            after = Math.max(after, e.seq);
          }
          if (body.next === undefined || body.events.length === 0) return;
          after = Math.max(after, body.next);
        }
      };
      await drain();
      if (!opts.follow) return;
      let warned = false;
      while (!signal?.aborted) {
        await new Promise((resolve) => setTimeout(resolve, FOLLOW_POLL_MS));
        try {
          await drain();
          if (warned) io.err("turnout: the worker answers again");
          warned = false;
        } catch (err) {
          // A worker restarting or a network blip must not end a follow; a refusal (401, 404) does.
          if (!(err instanceof Unreachable)) throw err;
          if (!warned) io.err(`turnout: ${err.message}; still trying`);
          warned = true;
        }
      }
    });

  /** Sends one command; prints what it did, a break-glass request, or (via the caller) the refusal. */
  const send = async (cmd: Command, target: string, body: Record<string, unknown>) => {
    const g = globals(cmd);
    const answer = await client(g).post<unknown>(`v1/targets/${encodeURIComponent(target)}/commands`, body);
    const b = answer.body;
    if (isBreakGlass(b)) {
      const r = b.request;
      print(g, b, () =>
        [
          `break-glass request ${r.id}: ${r.command ?? String(body.command)} on ${r.target ?? target}` +
            `${r.by ? `, requested by ${r.by}` : ""}. Nothing runs until a different operator confirms it` +
            `${r.expiresAt ? ` before ${r.expiresAt}` : ""}:`,
          `  turnout confirm ${r.target ?? target} ${r.id}`,
        ].join("\n"),
      );
      return;
    }
    const view = (b as { target?: TargetView }).target;
    const confirmed = (b as { confirmed?: { command?: string; requester?: string } }).confirmed;
    print(g, b, () => {
      const what = confirmed
        ? `confirmed ${confirmed.requester ?? "another operator"}'s forced ${confirmed.command ?? "command"}`
        : body.step !== undefined
          ? `step ${String(body.step)} approved (forwarded to the agent)`
          : `${String(body.command)} accepted`;
      if (!view) return `${what} on ${target}`;
      const a = view.action;
      return (
        `${what} on ${target}: phase ${view.phase}, active side ${view.activeSide}` +
        (a && (view.phase === "executing" || body.command === "retry" || body.command === "revert")
          ? `, action ${a.id} ${a.kind}${a.from && a.to ? ` ${a.from} → ${a.to}` : ""} ${a.status}`
          : "") +
        (view.paused ? " (paused)" : "")
      );
    });
  };

  for (const [name, description] of Object.entries(TARGET_COMMANDS)) {
    const c = program
      .command(name)
      .description(description)
      .argument("<target>", "a target name")
      .option("--force", "break-glass: allow switching to a side turnout considers down (a second operator confirms)")
      .option("--reason <text>", "why, for the audit log and Slack");
    if (name === "drill") c.addOption(new Option("--mode <mode>", "drill mode").choices(["dry-run", "live"]));
    if (name === "approve") {
      c.option("--step <name>", "a plan step waiting for approval (`turnout status <target>` names it)");
    }
    c.action(
      async (
        target: string,
        opts: { force?: boolean; reason?: string; mode?: string; step?: string },
        cmd: Command,
      ) => {
        if (opts.step !== undefined && opts.force)
          throw new UsageError("--step and --force: a plan step's approval is never forced");
        await send(cmd, target, {
          command: name,
          ...(opts.reason !== undefined ? { reason: opts.reason } : {}),
          ...(opts.force ? { force: true } : {}),
          ...(opts.mode !== undefined ? { mode: opts.mode } : {}),
          ...(opts.step !== undefined ? { step: opts.step } : {}),
        });
      },
    );
  }

  program
    .command("clear")
    .description("mark a stored firing signal resolved (one its source will never resolve)")
    .argument("<target>", "a target name")
    .argument("<key>", "the signal's key, as `turnout status <target>` lists it (e.g. am:2307b5e600000001)")
    .option("--reason <text>", "why, for the audit log")
    .action(async (target: string, key: string, opts: { reason?: string }, cmd: Command) => {
      await send(cmd, target, { command: "clear", key, ...(opts.reason !== undefined ? { reason: opts.reason } : {}) });
    });

  program
    .command("confirm")
    .description("confirm another operator's break-glass request (two people for every --force)")
    .argument("<target>", "a target name")
    .argument("<request>", "the request id printed by the --force command")
    .option("--reason <text>", "why, for the audit log")
    .action(async (target: string, request: string, opts: { reason?: string }, cmd: Command) => {
      await send(cmd, target, {
        command: "confirm",
        request,
        ...(opts.reason !== undefined ? { reason: opts.reason } : {}),
      });
    });

  registerSandboxCommands(program, {
    env,
    out: (line) => io.out(line),
    json: (cmd) => globals(cmd).json === true,
    usage: (message) => new UsageError(message),
  });

  try {
    if (argv.length === 0) {
      program.outputHelp({ error: true });
      return EXIT.usage;
    }
    await program.parseAsync(argv, { from: "user" });
  } catch (err) {
    code = failure(err, program, io);
  }
  return code;
}

/** The exit code for an error, after printing it. */
function failure(err: unknown, program: Command, io: Io): number {
  if (err instanceof CommanderError) {
    // Commander has printed its message; --help (exit code 0 in commander's own terms) is a success.
    return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
  }
  if (err instanceof UsageError) {
    io.err(`turnout: ${err.message}`);
    return EXIT.usage;
  }
  const json = program.opts<Globals>().json === true;
  if (err instanceof Refused) {
    if (json) io.out(JSON.stringify(err.body ?? { status: err.status, detail: err.detail }, null, 2));
    io.err(`turnout: refused (${err.status}${err.title ? ` ${err.title}` : ""}): ${err.detail}`);
    for (const e of err.errors) io.err(`  ${e.path}: ${e.message}`);
    return EXIT.refused;
  }
  if (err instanceof Unreachable) {
    io.err(`turnout: ${err.message}`);
    return EXIT.refused;
  }
  io.err(`turnout: ${err instanceof Error ? err.message : String(err)}`);
  return EXIT.refused;
}
