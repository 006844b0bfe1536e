#!/usr/bin/env node
// The `ficus` command as `npx ficus` finds it after `npm ci`: no build needed, Node 24 runs the
// TypeScript sources with its built-in type stripping. The version check is repeated here (plain
// JavaScript) because an older Node cannot even load the .ts file that holds it.
const major = Number(process.versions.node.split('.')[0])
if (major < 24) {
  process.stderr.write(`ficus: Node 24 or newer is required, this is ${process.version}; get it with: npm install --prefix .tools/node24 node@24 && export PATH="$PWD/.tools/node24/node_modules/node/bin:$PATH"\n`)
  process.exit(1)
}
await import('../proxy/cli.ts')
