// The project's own TypeScript files, for the tests that read the sources themselves (error codes,
// import arrows): every .ts file but dependencies, build output and tool state.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const SOURCE_ROOT = fileURLToPath(new URL('../../', import.meta.url))
// Dot folders (.git, .tap, .tools, .ci) are skipped as well.
const NOT_SOURCE = new Set(['node_modules', 'dist', 'coverage'])

/** Paths relative to the project root, with `/` separators, sorted. */
export function projectTsFiles (root: string = SOURCE_ROOT): string[] {
  const found: string[] = []
  const walk = (relative: string): void => {
    for (const entry of readdirSync(join(root, relative), { withFileTypes: true })) {
      if (NOT_SOURCE.has(entry.name) || entry.name.startsWith('.')) continue
      const path = relative === '' ? entry.name : `${relative}/${entry.name}`
      if (entry.isDirectory()) walk(path)
      else if (entry.isFile() && entry.name.endsWith('.ts')) found.push(path)
    }
  }
  walk('')
  return found.sort()
}

/** The text of every project file, by path. */
export function readProjectFiles (paths: readonly string[], root: string = SOURCE_ROOT): Map<string, string> {
  return new Map(paths.map((path) => [path, readFileSync(join(root, path), 'utf8')]))
}
