/**
 * Slack endpoints (design §3, §5b): `POST /v1/slack/commands` (the `/turnout` slash command) and
 * `POST /v1/slack/interactions` (approve / cancel buttons).
 */
import { Hono } from "hono";
import type { Env } from "../env.ts";

export const slackRoutes = new Hono<{ Bindings: Env }>();
