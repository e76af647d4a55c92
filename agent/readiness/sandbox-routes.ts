/**
 * The sandbox agent's `POST /v1/sandbox/break` and `POST /v1/sandbox/mend` (`{target, check,
 * side?}`), what `turnout sandbox break|mend` calls. Mounted only when the agent runs the sandbox
 * itself; anywhere else the paths do not exist (404). Signed like an action (Turnout-Signature
 * with the agent's key, verified before the body is parsed), so another local process cannot
 * flip a person's sandbox.
 */
import type { Hono } from "hono";
import { z } from "zod";
import { formatIssues, SideSchema } from "../../shared/config.ts";
import { describeSignatureFailure, SIGNATURE_HEADER, verify } from "../../shared/signature.ts";
import { problem } from "../actions.ts";
import type { Logger } from "../log.ts";
import { FaultError, type SandboxFaults } from "./sandbox-faults.ts";

export const SandboxFaultRequestSchema = z
  .object({
    target: z.string().min(1),
    check: z.string().min(1),
    side: SideSchema.optional(),
  })
  .strict();
export type SandboxFaultRequest = z.infer<typeof SandboxFaultRequestSchema>;

export interface SandboxRoutesDeps {
  faults: SandboxFaults;
  /** The agent's keys (current, next). */
  secrets: readonly string[];
  log: Logger;
  now?: () => number;
}

/** Adds the break/mend routes to the sandbox agent's app. */
export function registerSandboxRoutes(app: Hono, deps: SandboxRoutesDeps): void {
  for (const verb of ["break", "mend"] as const) {
    app.post(`/v1/sandbox/${verb}`, async (c) => {
      const raw = await c.req.text();
      const check = await verify(deps.secrets, c.req.header(SIGNATURE_HEADER), raw, (deps.now ?? Date.now)() / 1000);
      if (!check.ok) return problem(401, "unauthorized", "Unauthorized", describeSignatureFailure(check.reason));
      let json: unknown;
      try {
        json = JSON.parse(raw);
      } catch {
        return problem(400, "validation", "Validation failed", "the body is not JSON", {
          errors: [{ path: "(root)", message: "not JSON" }],
        });
      }
      const body = SandboxFaultRequestSchema.safeParse(json);
      if (!body.success) {
        return problem(400, "validation", "Validation failed", "expected {target, check, side?}", {
          errors: formatIssues(body.error),
        });
      }
      const { target, check: name, side } = body.data;
      try {
        const did = await deps.faults[verb](target, name, side);
        deps.log.warn(`sandbox: ${verb} ${name}`, { target, check: name, side: side ?? "secondary", did });
        return c.json({ target, check: name, side: side ?? "secondary", did });
      } catch (err) {
        if (err instanceof FaultError) return problem(err.status, "sandbox-fault", "Cannot do that here", err.message);
        throw err;
      }
    });
  }
}
