// Startup failures an operator fixes in the environment or in a file (a port already taken, a
// broken tenants file): one message on stderr naming the variable (and the file), exit code 1,
// no stack trace. Anything else that fails at startup is a bug and keeps its stack.
import type { StartupCode } from './errors.ts'

export class StartupError extends Error {
  readonly code: StartupCode = 'FICUS_ERR_STARTUP'

  constructor (message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'StartupError'
  }
}

/** Listens, or fails with a StartupError that names the port and host variables. */
export async function listenOrExplain (
  server: { listen (options: { port: number, host: string }): Promise<unknown> },
  port: number,
  host: string,
  names: { readonly port: string, readonly host: string }
): Promise<void> {
  try {
    await server.listen({ port, host })
  } catch (error) {
    throw listenError(error, port, host, names)
  }
}

export function listenError (error: unknown, port: number, host: string, names: { readonly port: string, readonly host: string }): unknown {
  const code = (error as NodeJS.ErrnoException | null)?.code
  const example = port === 8080 ? 8081 : 8080
  switch (code) {
    case 'EADDRINUSE':
      return new StartupError(`${names.port}=${port}: the port is already in use on ${host}; stop what holds it or choose another, e.g. ${names.port}=${example}`, { cause: error })
    case 'EACCES':
      return new StartupError(`${names.port}=${port}: not allowed to listen on this port (ports below 1024 need privileges), e.g. ${names.port}=${example}`, { cause: error })
    case 'EADDRNOTAVAIL':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new StartupError(`${names.host}=${host}: not an address of this machine, e.g. ${names.host}=0.0.0.0`, { cause: error })
    default:
      return error
  }
}

/** Runs `open`, turning a failure to read the file into a StartupError naming the variable and the file. */
export async function openFile<T> (variable: string, path: string, what: string, open: () => T | Promise<T>): Promise<T> {
  try {
    return await open()
  } catch (error) {
    const reason = (error as Error).message.replace(/\n/g, ' ')
    throw new StartupError(`${variable}=${path}: not a valid ${what}: ${reason}`, { cause: error })
  }
}
