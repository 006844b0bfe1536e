// The console's page worker: renders every console page, and builds the matrix, off the event
// loop that serves the public port. The main thread sends the evidence it owns, changed parts
// only (see console-pages.ts); this thread decides sides with the same flag definitions and
// engine, and answers with HTML. It runs at the lowest CPU priority the system allows, so that
// on a busy core the public port's thread always goes first.
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
  | { readonly id: number, readonly html: string, readonly decisionMs?: number }
  | { readonly id: number, readonly changes: SideChanges }
  | { readonly id: number, readonly error: string }

/** Linux: a thread's nice value is its own (setpriority on the thread id). Elsewhere, nothing. */
function lowerPriority (): void {
  try {
    const threadId = Number(readlinkSync('/proc/thread-self').split('/').pop())
    if (Number.isInteger(threadId) && threadId > 0) setPriority(threadId, 19)
  } catch {
    // Not Linux, or not allowed: the worker still helps, only without yielding its core.
  }
}

if (parentPort !== null) {
  const port = parentPort
  lowerPriority()
  const matrix = new Matrix(workerData as MatrixSetup)
  port.on('message', (request: WorkerRequest) => {
    let answer: WorkerAnswer
    try {
      if (request.kind === 'matrix') {
        const before = matrix.lastDecisionMs
        matrix.update(request.update)
        answer = { id: request.id, html: matrix.render(request.view), ...(matrix.lastDecisionMs !== before ? { decisionMs: matrix.lastDecisionMs } : {}) }
      } else if (request.kind === 'changes') {
        matrix.update(request.update)
        const flags = matrix.flags
        if (flags === undefined) throw new Error('no flags yet')
        answer = { id: request.id, changes: sideChanges(flags, matrix.schools, request.question) }
      } else {
        answer = { id: request.id, html: (PAGES[request.page] as (options: unknown) => string)(request.options) }
      }
    } catch (error) {
      answer = { id: request.id, error: (error as Error).message }
    }
    port.postMessage(answer)
  })
}
