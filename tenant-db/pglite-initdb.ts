// Initialises an embedded PostgreSQL data directory on disk, in a process of its own:
//   node pglite-initdb.js <data directory>
// initdb in WebAssembly leaves 200-300 MB behind (its module, its memory, copies of the files)
// that the collector of the process that ran it may keep for minutes; this process's exit gives
// all of it back, and the server then opens the ready directory without running initdb itself.
import { argv, exit } from 'node:process'
import { PGlite } from '@electric-sql/pglite'
import { INITDB_PARAMS, POSTGRES_CONF, useBaselineWasmCompilerOnly } from './pglite-databases.ts'

const dataDir = argv[2]
if (dataDir === undefined) {
  console.error('usage: pglite-initdb <data directory>')
  exit(2)
}
useBaselineWasmCompilerOnly()
const db = await PGlite.create({ dataDir, postgresqlconf: POSTGRES_CONF, initDbStartParams: INITDB_PARAMS })
// No school may create objects outside its own schema.
await db.exec('REVOKE ALL ON SCHEMA public FROM PUBLIC')
await db.close()
