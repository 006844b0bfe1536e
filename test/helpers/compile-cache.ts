// Preloaded into every test process (package.json, tap's node-arg): Node keeps the code it
// compiles (tap, the kits, ficus's modules, a child's dependencies) in an on-disk cache keyed by
// file content, so each of the suite's hundreds of Node starts does not compile it all again.
import { enableCompileCache, getCompileCacheDir } from 'node:module'

enableCompileCache()

/** For the clean environment of a Node child (ficus, the Unleash server): the same cache. */
export function compileCacheEnv (): Record<string, string> {
  const dir = getCompileCacheDir()
  return dir === undefined ? {} : { NODE_COMPILE_CACHE: dir }
}
