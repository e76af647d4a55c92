/**
 * A real BIND 9 for tests: `named -g` on 127.0.0.1 with a random free port, one primary zone that
 * accepts RFC 2136 updates signed with a fresh hmac-sha256 TSIG key, all state in a temp dir.
 * The process-starting core lives in agent/sandbox/bind-server.ts (the sandbox starts the same
 * server for `npm start`); this module keeps the tests' API.
 */
export {
  type BindOptions,
  type BindServer,
  requireNsupdate,
  startBindServer as startBind,
} from "../../agent/sandbox/bind-server.ts";
