// A request URL's path: everything before its query. The access log, the legacy lane, legacy's
// upstream routing and the shadow comparisons all look at a request by its path alone.

/** `url` up to its query (`/attendance?date=…` -> `/attendance`). */
export function pathOf (url: string): string {
  const queryAt = url.indexOf('?')
  return queryAt === -1 ? url : url.slice(0, queryAt)
}
