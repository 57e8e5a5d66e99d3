/** The Node platform services the proxy uses: the file system and paths, nothing heavier. */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as Layer from "effect/Layer"

export const PlatformLive = Layer.merge(NodeFileSystem.layer, NodePath.layer)
