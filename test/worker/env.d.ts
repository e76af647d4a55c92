// Worker tests see the worker's own bindings on `env` and its handlers on `exports`
// (`cloudflare:workers`), so the test files are typechecked like the worker itself.
import type { Env as WorkerEnv } from "../../worker/env.ts";

declare global {
  namespace Cloudflare {
    interface Env extends WorkerEnv {}
    interface GlobalProps {
      mainModule: typeof import("../../worker/index.ts");
    }
  }
}
