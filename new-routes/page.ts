// The look of migrated pages: deliberately unlike legacy's, so a switch is visible at a glance.
import { escapeHtml } from '../html/escape.ts'

export function page (schoolName: string, title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)} - ${escapeHtml(schoolName)}</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 0; background: #f4f7fb; color: #14213d }
  header { background: #2a9d8f; color: white; padding: 1rem 2rem }
  main { padding: 2rem } .lead { font-size: 1.2rem }
  .cards { list-style: none; padding: 0; display: grid; grid-template-columns: repeat(auto-fill, minmax(12rem, 1fr)); gap: 1rem }
  .cards li { background: white; border-radius: .75rem; padding: 1rem; box-shadow: 0 1px 4px #0002; display: flex; flex-direction: column }
</style></head>
<body><header><h1>${escapeHtml(title)}</h1><p>${escapeHtml(schoolName)} &middot; new</p></header>
<main>${body}</main></body></html>
`
}
