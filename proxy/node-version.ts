// Imported first by every entry point: on an older Node the rest of ficus would fail later with
// an obscure error (or, worse, run), so it stops here with one line saying what to do.
// Written without type annotations or newer syntax so that any Node can run its built form.
export const REQUIRED_NODE_MAJOR = 24
export const NODE_INSTALL_HINT = 'npm install --prefix .tools/node24 node@24 && export PATH="$PWD/.tools/node24/node_modules/node/bin:$PATH"'

const major = Number(process.versions.node.split('.')[0])
if (major < REQUIRED_NODE_MAJOR) {
  process.stderr.write(`ficus: Node ${REQUIRED_NODE_MAJOR} or newer is required, this is ${process.version}; get it with: ${NODE_INSTALL_HINT}\n`)
  process.exit(1)
}
