// The load generator and the C reference come from Debian, installed on first use so that
// `npm run bench` works on a fresh machine; nothing else is downloaded.
import { execFileSync, spawnSync } from 'node:child_process'

const DEBIAN_PACKAGES: Readonly<Record<string, string>> = { wrk: 'wrk', nginx: 'nginx-light', taskset: 'util-linux' }
// nginx is installed as a binary only: the package's own service must not hold port 80 on a dev machine.
const NGINX_CANDIDATES = ['/usr/sbin/nginx', '/usr/bin/nginx']
const POLICY_RC = '/usr/sbin/policy-rc.d'

export interface Tools {
  readonly wrk: string
  readonly nginx: string
  readonly taskset: string
}

function which (name: string): string | undefined {
  const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' })
  const path = found.stdout.trim()
  return found.status === 0 && path !== '' ? path : undefined
}

function locate (): Partial<Record<keyof Tools, string>> {
  return {
    wrk: which('wrk'),
    nginx: which('nginx') ?? NGINX_CANDIDATES.find((path) => spawnSync(path, ['-v']).status === 0),
    taskset: which('taskset')
  }
}

export function ensureTools (log: (line: string) => void): Tools {
  let found = locate()
  const missing = (Object.keys(DEBIAN_PACKAGES) as Array<keyof Tools>).filter((name) => found[name] === undefined)
  if (missing.length > 0) {
    if (process.getuid?.() !== 0) {
      throw new Error(`missing ${missing.join(', ')}: run as root, or apt-get install ${missing.map((name) => DEBIAN_PACKAGES[name]).join(' ')}`)
    }
    const packages = missing.map((name) => DEBIAN_PACKAGES[name] as string)
    log(`installing ${packages.join(', ')} from Debian`)
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env })
    // A policy-rc.d answering 101 keeps the nginx package from starting its system service on
    // install; one the machine already has is left exactly as it is.
    execFileSync('sh', ['-c', [
      'created=',
      `if [ ! -e ${POLICY_RC} ]; then printf '#!/bin/sh\\nexit 101\\n' > ${POLICY_RC} && chmod 755 ${POLICY_RC} && created=1; fi`,
      `apt-get install -y -qq --no-install-recommends ${packages.join(' ')}`,
      'status=$?',
      `if [ -n "$created" ]; then rm -f ${POLICY_RC}; fi`,
      'exit $status'
    ].join('\n')], { stdio: 'inherit', env })
    found = locate()
  }
  const { wrk, nginx, taskset } = found
  if (wrk === undefined || nginx === undefined || taskset === undefined) throw new Error('wrk, nginx and taskset are required and could not be installed')
  return { wrk, nginx, taskset }
}
