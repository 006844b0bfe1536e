// Which database a school's row names: a full URL (`database_url`), or a database name put into
// TENANT_DATABASE_URL_TEMPLATE. The registry resolves it when it reads the row; tenant-db only
// opens what the registry says. Also how such a URL may appear in logs.

/** The placeholder a database URL template must contain, replaced by the tenant row's database name. */
export const DATABASE_NAME_PLACEHOLDER = '{database}'

/** The tenant database URL from the template and a database name, or undefined when either is missing. */
export function databaseUrlFromTemplate (template: string | undefined, databaseName: string | null | undefined): string | undefined {
  if (template === undefined || databaseName === null || databaseName === undefined || databaseName === '') return undefined
  return template.replace(DATABASE_NAME_PLACEHOLDER, encodeURIComponent(databaseName))
}

/** A connection string fit for logs: the password, if any, is replaced. */
export function redactUrl (raw: string): string {
  try {
    const url = new URL(raw)
    if (url.password !== '') url.password = '***'
    return url.toString()
  } catch {
    return '(unparsable URL)'
  }
}
