/** Before any test: a real etcd must exist (fail loudly otherwise) and the CLI is built fresh. */
import { execFileSync } from "node:child_process"
import { join } from "node:path"
import { etcdBinary } from "../scripts/lib/cluster.mjs"

export default function setup(): void {
  etcdBinary()
  const root = join(import.meta.dirname, "..")
  execFileSync(
    process.execPath,
    [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.build.json"],
    {
      cwd: root,
      stdio: "inherit",
    },
  )
}
