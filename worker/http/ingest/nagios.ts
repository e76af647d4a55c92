/**
 * Nagios Core / Icinga 2 notification bodies (flat macro-keyed objects, wire-formats §b) to one
 * signal (design §4). Pure: the receipt time is a parameter.
 */
import type { ConfigProblem } from "../../../shared/config.ts";
import { LITERAL_MACRO, type Notice, type Signal } from "../../engine/signals.ts";

/** Parsed notification: exactly one signal. */
export type NagiosParse = { ok: true; signal: Signal } | { ok: false; errors: ConfigProblem[] };

/** `NOTIFICATIONTYPE` values of Nagios (base/notifications.c) and Icinga 2 (notification.cpp). */
const NOTIFICATION_TYPES = [
  "PROBLEM",
  "RECOVERY",
  "ACKNOWLEDGEMENT",
  "FLAPPINGSTART",
  "FLAPPINGSTOP",
  "FLAPPINGEND",
  "FLAPPINGDISABLED",
  "DOWNTIMESTART",
  "DOWNTIMEEND",
  "DOWNTIMECANCELLED",
  "DOWNTIMEREMOVED",
  "CUSTOM",
] as const;
type NotificationType = (typeof NOTIFICATION_TYPES)[number] | "";

/** Form bodies: every field a string; the last of repeated keys wins, as with Object.fromEntries. */
export function formFields(text: string): Record<string, string> {
  return Object.fromEntries(new URLSearchParams(text));
}

function notice(type: NotificationType, get: (k: string) => string, prefix: "SERVICE" | "HOST"): Notice | undefined {
  switch (type) {
    case "ACKNOWLEDGEMENT":
      return {
        kind: "acknowledgement",
        author: get("NOTIFICATIONAUTHOR") || get(`${prefix}ACKAUTHOR`),
        comment: get("NOTIFICATIONCOMMENT") || get(`${prefix}ACKCOMMENT`),
      };
    case "FLAPPINGSTART":
      return { kind: "flapping", active: true };
    case "FLAPPINGSTOP": // Nagios
    case "FLAPPINGEND": // Icinga 2
    case "FLAPPINGDISABLED":
      return { kind: "flapping", active: false };
    case "DOWNTIMESTART":
      return { kind: "downtime", active: true };
    case "DOWNTIMEEND":
    case "DOWNTIMECANCELLED":
    case "DOWNTIMEREMOVED":
      return { kind: "downtime", active: false };
    default:
      return undefined;
  }
}

const ID = /^\d+$|^[0-9a-fA-F-]{36}$/; // %lu in Nagios, a UUID in Naemon (wire-formats §b)

/** Normalizes one notification body (a parsed JSON value or form fields). */
export function parseNagios(body: unknown, receivedAt: number): NagiosParse {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    return {
      ok: false,
      errors: [{ path: "(root)", message: "expected a flat object keyed by macro name (wire-formats §b)" }],
    };
  }
  const errors: ConfigProblem[] = [];
  const fields = new Map<string, string>();
  for (const [name, value] of Object.entries(body)) {
    if (typeof value === "string") fields.set(name, value);
    else if (typeof value === "number" || typeof value === "boolean") fields.set(name, String(value));
    else if (value === null) fields.set(name, "");
    else errors.push({ path: name, message: "expected a string: the body is a flat object keyed by macro name" });
  }
  // A macro that does not apply arrives literal, e.g. `$SERVICEDESC$` in a host notification.
  const get = (name: string): string => {
    const v = (fields.get(name) ?? "").trim();
    return LITERAL_MACRO.test(v) ? "" : v;
  };
  const rawType = get("NOTIFICATIONTYPE").toUpperCase();
  if (!fields.has("NOTIFICATIONTYPE")) {
    errors.push({ path: "NOTIFICATIONTYPE", message: "required (empty for an event handler)" });
  } else if (rawType !== "" && !(NOTIFICATION_TYPES as readonly string[]).includes(rawType)) {
    errors.push({ path: "NOTIFICATIONTYPE", message: `expected one of ${NOTIFICATION_TYPES.join(", ")} or empty` });
  }
  const host = get("HOSTNAME");
  if (host === "") errors.push({ path: "HOSTNAME", message: "required" });
  const service = get("SERVICEDESC");
  const prefix = service !== "" ? "SERVICE" : "HOST";
  const state = get(`${prefix}STATE`).toUpperCase();
  if (state === "") {
    errors.push({
      path: `${prefix}STATE`,
      message: service !== "" ? "required for a service notification" : "required for a host notification",
    });
  }
  if (errors.length > 0) {
    const looksLikeIcingaNotifications = ["contact", "object", "incident", "event"].every((k) => k in body);
    if (looksLikeIcingaNotifications) {
      errors.unshift({
        path: "(root)",
        message:
          "this is the Icinga Notifications default webhook body ({contact, object, incident, event}); " +
          "set the channel's body template to the flat macro object of wire-formats §b",
      });
    }
    return { ok: false, errors };
  }
  const type = rawType as NotificationType;
  const key = `nagios:${host}!${service}`;
  const okState = prefix === "SERVICE" ? state === "OK" : state === "UP";
  const status = type === "PROBLEM" ? "firing" : type === "RECOVERY" ? "resolved" : okState ? "resolved" : "firing";
  const stateType = get(`${prefix}STATETYPE`).toUpperCase() || "HARD";
  // SOFT states are recorded but never count as down (design §4).
  const soft = status === "firing" && stateType === "SOFT";
  // The incident is the first non-zero of …PROBLEMID, LAST…PROBLEMID, for PROBLEM and RECOVERY
  // alike (wire-formats §b): Nagios 4.4 still sends the recovering problem's id in …PROBLEMID on
  // RECOVERY (LAST… is the problem before it); newer releases clear it first (0, the id in LAST…).
  const problemId = [get(`${prefix}PROBLEMID`), get(`LAST${prefix}PROBLEMID`)].find(
    (id) => ID.test(id) && !/^0+$/.test(id),
  );
  // Icinga 2 has no problem ids. Its PROBLEM's last_state_change is the state change that started
  // the problem; on RECOVERY that change is previous_state_change (examples/icinga2/turnout.conf
  // sends it as PREVIOUS…STATECHANGE), so the two share an incident.
  const previous = get(`PREVIOUS${prefix}STATECHANGE`);
  const since = (status === "resolved" && previous) || get(`LAST${prefix}STATECHANGE`);
  const incident = problemId ? `${key}#problem:${problemId}` : since ? `${key}#since:${since}` : `${key}#`;
  const seconds = [get("TIMET"), get(`LAST${prefix}CHECK`)].find((t) => /^\d{1,12}$/.test(t));
  const at = seconds ? Number(seconds) * 1000 : receivedAt;
  const annotations: Record<string, string> = { notification_type: type };
  const output = get(`${prefix}OUTPUT`);
  if (output) annotations.output = output;
  const origin = get("source");
  if (origin) annotations.origin = origin;
  if (problemId) annotations.problem_id = problemId;
  const n = notice(type, get, prefix);
  const signal: Signal = {
    source: "nagios",
    key,
    incident,
    status,
    soft,
    labels: { host, service, state, state_type: stateType, source: "nagios" },
    annotations,
    at,
    receivedAt,
  };
  if (n) signal.notice = n;
  return { ok: true, signal };
}
