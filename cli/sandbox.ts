/**
 * `turnout sandbox break <target> <check>` and `turnout sandbox mend <target> <check>` (design
 * §11.6): make one kind of readiness check fail in the local sandbox and pass again, so a person
 * sees readiness go red and green on the status page. They talk to the sandbox agent at
 * `TURNOUT_AGENT_URL` (default http://127.0.0.1:8788), signed with `TURNOUT_AGENT_SECRET`, and
 * are refused unless that agent says it runs in sandbox mode.
 */
import type { Command } from "commander";
import { Option } from "commander";
import { SIGNATURE_HEADER, sign } from "../shared/signature.ts";
import { Refused, Unreachable } from "./client.ts";

const DEFAULT_AGENT_URL = "http://127.0.0.1:8788";
/** The checks the sandbox can break (agent/readiness/sandbox-faults.ts), for the help text. */
export const CHECKS = "permissions, dns-server, destination-nodes, saved-spec, object, check";

export interface SandboxCommandDeps {
  env: NodeJS.ProcessEnv;
  out(line: string): void;
  json(cmd: Command): boolean;
  /** Thrown for bad usage (exit 2). */
  usage(message: string): Error;
}

async function call(url: string, init?: RequestInit): Promise<{ status: number; body: unknown }> {
  let res: Response;
  try {
    res = await fetch(url, { ...init, signal: AbortSignal.timeout(30_000) });
  } catch (err) {
    throw new Unreachable(url, err);
  }
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  if (!res.ok) {
    const p = (typeof body === "object" && body !== null ? body : {}) as {
      title?: string;
      detail?: string;
      errors?: { path: string; message: string }[];
    };
    throw new Refused(res.status, p.title ?? "", p.detail ?? String(text).slice(0, 200), p.errors ?? [], body);
  }
  return { status: res.status, body };
}

/** Adds `sandbox break|mend` to the program. */
export function registerSandboxCommands(program: Command, deps: SandboxCommandDeps): void {
  const sandbox = program
    .command("sandbox")
    .description("the local sandbox only: break and mend readiness checks to watch readiness go red and green");
  for (const verb of ["break", "mend"] as const) {
    sandbox
      .command(verb)
      .description(
        verb === "break"
          ? `make a readiness check of a target fail (${CHECKS})`
          : "make a check broken with `turnout sandbox break` pass again",
      )
      .argument("<target>", "a target name")
      .argument("<check>", `a check name: ${CHECKS}`)
      .addOption(new Option("--side <side>", "the side a failover would go to").choices(["primary", "secondary"]))
      .action(async (target: string, check: string, opts: { side?: string }, cmd: Command) => {
        const base = deps.env.TURNOUT_AGENT_URL ?? DEFAULT_AGENT_URL;
        try {
          new URL(base);
        } catch {
          throw deps.usage(`TURNOUT_AGENT_URL is not a URL: ${JSON.stringify(base)}`);
        }
        const secret = deps.env.TURNOUT_AGENT_SECRET;
        if (!secret) throw deps.usage("set TURNOUT_AGENT_SECRET to the sandbox agent's key");
        const health = await call(new URL("/healthz", base).toString());
        const mode = (health.body as { mode?: unknown }).mode;
        if (mode !== "sandbox") {
          throw new Refused(
            409,
            "Not a sandbox",
            `the agent at ${base} runs in ${String(mode)} mode; break and mend exist only in the sandbox`,
            [],
            health.body,
          );
        }
        const body = JSON.stringify({ target, check, ...(opts.side ? { side: opts.side } : {}) });
        const answer = await call(new URL(`/v1/sandbox/${verb}`, base).toString(), {
          method: "POST",
          headers: {
            "content-type": "application/json",
            [SIGNATURE_HEADER]: await sign(secret, body, Math.floor(Date.now() / 1000)),
          },
          body,
        });
        const did = (answer.body as { did?: string }).did ?? "";
        deps.out(
          deps.json(cmd)
            ? JSON.stringify(answer.body, null, 2)
            : `${verb === "break" ? "broke" : "mended"} ${check} of ${target}: ${did}`,
        );
      });
  }
}
