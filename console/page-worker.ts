// The console's page worker: renders every console page, and builds the matrix, off the event
// loop that serves the public port. The main thread sends the evidence it owns, changed parts
// only (see console-pages.ts); this thread decides sides with the same flag definitions and
// engine, and answers with HTML, encoded here and its buffer handed over (not copied), so that
// the main thread neither copies nor encodes the page before it writes it out. It runs at the
// lowest CPU priority the system allows, so that on a busy core the public port's thread always
// goes first.
import { execFileSync } from 'node:child_process'
import { readlinkSync } from 'node:fs'
import { setPriority } from 'node:os'
import { parentPort, workerData } from 'node:worker_threads'
import { Matrix, type EvidenceUpdate, type MatrixSetup, type MatrixView } from './matrix.ts'
import { sideChanges, type SideChanges, type SideChangesQuestion } from './side-changes.ts'
import { cellPage, historyPage, previewPage, routePage, scheduledPage, schoolPage } from './pages.ts'

export const PAGES = { cell: cellPage, route: routePage, school: schoolPage, history: historyPage, scheduled: scheduledPage, preview: previewPage }
export type PageName = keyof typeof PAGES

export type WorkerTask =
  | { readonly kind: 'matrix', readonly update: EvidenceUpdate, readonly view: MatrixView }
  | { readonly kind: 'page', readonly page: PageName, readonly options: unknown }
  | { readonly kind: 'changes', readonly update: EvidenceUpdate, readonly question: SideChangesQuestion }

export type WorkerRequest = WorkerTask & { readonly id: number }

export type WorkerAnswer =
  | { readonly id: number, readonly html: Uint8Array, readonly decisionMs?: number }
  | { readonly id: number, readonly changes: SideChanges }
  | { readonly id: number, readonly error: string }

/**
 * Linux: a thread's scheduling is its own. Nice 19 (setpriority on the thread id), then
 * SCHED_IDLE through util-linux's chrt: nice alone still lets this thread finish its time slice
 * before a waking main thread gets the core; under SCHED_IDLE the kernel switches at once. Where
 * either is not possible, nothing: the worker still helps, only without yielding its core.
 */
function lowerPriority (): void {
  let threadId: number
  try {
    threadId = Number(readlinkSync('/proc/thread-self').split('/').pop())
    if (!Number.isInteger(threadId) || threadId <= 0) return
    setPriority(threadId, 19)
  } catch {
    return
  }
  try {
    execFileSync('chrt', ['--idle', '--pid', '0', String(threadId)], { stdio: 'ignore', timeout: 2_000 })
  } catch {}
}

if (parentPort !== null) {
  const port = parentPort
  lowerPriority()
  const matrix = new Matrix(workerData as MatrixSetup)
  const utf8 = new TextEncoder()
  port.on('message', (request: WorkerRequest) => {
    let answer: WorkerAnswer
    try {
      if (request.kind === 'matrix') {
        const before = matrix.lastDecisionMs
        matrix.update(request.update)
        answer = { id: request.id, html: utf8.encode(matrix.render(request.view)), ...(matrix.lastDecisionMs !== before ? { decisionMs: matrix.lastDecisionMs } : {}) }
      } else if (request.kind === 'changes') {
        matrix.update(request.update)
        const flags = matrix.flags
        if (flags === undefined) throw new Error('no flags yet')
        answer = { id: request.id, changes: sideChanges(flags, matrix.schools, request.question) }
      } else {
        answer = { id: request.id, html: utf8.encode((PAGES[request.page] as (options: unknown) => string)(request.options)) }
      }
    } catch (error) {
      answer = { id: request.id, error: (error as Error).message }
    }
    port.postMessage(answer, 'html' in answer ? [answer.html.buffer as ArrayBuffer] : [])
  })
}
