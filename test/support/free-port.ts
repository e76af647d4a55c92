/** Tests share the sandbox's free-port helpers (one implementation, agent/sandbox/free-port.ts). */
export { freePort, freePorts } from "../../agent/sandbox/free-port.ts";
