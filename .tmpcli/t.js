import { Command, Options } from "@effect/cli";
import { NodeContext, NodeRuntime } from "@effect/platform-node";
import { Console, Effect } from "effect";
const logLevel = Options.text("log-level").pipe(Options.withDefault("info"), Options.withDescription("log level"));
const proxy = Options.text("proxy").pipe(Options.withDefault("on"));
const lcu = Options.text("listen-client-urls").pipe(Options.repeated);
const cmd = Command.make("etcd-proxy", { logLevel, proxy, lcu }, (o) => Console.log(JSON.stringify(o)));
const run = Command.run(cmd, { name: "etcd-proxy", version: "0.1.0" });
run(process.argv).pipe(Effect.provide(NodeContext.layer), NodeRuntime.runMain({ disableErrorReporting: true }));
//# sourceMappingURL=_t.js.map