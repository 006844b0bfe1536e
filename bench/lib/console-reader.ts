// A signed-in console reading pages every second, for bench/console.ts: a browser on someone's
// laptop. One process for the whole bench (started before the first round, so that no round
// pays for a Node start), under SCHED_IDLE on the load generator's core, and told what to read
// on stdin, one JSON line per run: {"port":P,"cookie":C,"seconds":S,"paths":[...]}. It answers
// each with one JSON line, the milliseconds each round of pages took: {"took":[...]}.
import { createInterface } from 'node:readline'
import { request } from 'undici'

const READ_EVERY_MS = 1_000

interface Run {
  readonly port: number
  readonly cookie: string
  readonly seconds: number
  readonly paths: readonly string[]
}

async function read (run: Run): Promise<number[]> {
  const end = performance.now() + run.seconds * 1_000
  const took: number[] = []
  while (performance.now() < end) {
    const started = performance.now()
    for (const path of run.paths) {
      const answer = await request(`http://127.0.0.1:${run.port}${path}`, { headers: { cookie: run.cookie } })
      await answer.body.text()
      if (answer.statusCode !== 200) throw new Error(`${path}: ${answer.statusCode}`)
    }
    took.push(performance.now() - started)
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, READ_EVERY_MS - (performance.now() - started))))
  }
  return took
}

for await (const line of createInterface({ input: process.stdin })) {
  process.stdout.write(`${JSON.stringify({ took: await read(JSON.parse(line) as Run) })}\n`)
}
