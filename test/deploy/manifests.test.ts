// The Kubernetes manifests under deploy/, as `kubectl kustomize` renders them offline: every
// object valid against the Kubernetes OpenAPI schemas (kubernetes-models; the Prometheus
// Operator's for the ServiceMonitor), and the invariants a rollout depends on.
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import t from 'tap'
import { parseAllDocuments } from 'yaml'
import { ConfigError, parseConfig } from '../../proxy/config.ts'

// Rendered YAML, read field by field; the schemas above are what checks its shape.
type Obj = Record<string, any>

const ROOT = new URL('../../', import.meta.url)
const OVERLAYS = ['deploy/base', 'deploy/overlays/production']
// Kept out of the ConfigMap whatever their name says: they carry credentials.
const SECRET_KEYS = ['SESSION_SECRET', 'UNLEASH_API_TOKEN', 'ADMIN_TOKEN', 'REDIS_URL', 'DATABASE_URL', 'TENANT_DATABASE_URL_TEMPLATE']
const SECRET_LOOKING = /SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|PRIVATE|API_KEY/i
const LB_IDLE_ANNOTATION = 'ficus.example.org/load-balancer-idle-timeout-seconds'

function render (dir: string): Obj[] {
  const out = execFileSync('kubectl', ['kustomize', dir], { cwd: ROOT, encoding: 'utf8' })
  return parseAllDocuments(out).map((doc) => doc.toJS() as Obj).filter((obj) => obj !== null)
}

/** The kubernetes-models class for an object's apiVersion and kind (a missing one fails). */
async function modelFor (apiVersion: string, kind: string): Promise<new (data: Obj) => { validate (): void }> {
  const module = apiVersion.startsWith('monitoring.coreos.com/')
    ? await import(`@kubernetes-models/prometheus-operator/${apiVersion}/${kind}`)
    : await import(`kubernetes-models/${apiVersion}/${kind}`)
  return module[kind]
}

function only (objects: Obj[], kind: string): Obj {
  const found = objects.filter((obj) => obj.kind === kind)
  if (found.length !== 1) throw new Error(`expected one ${kind}, found ${found.length}`)
  return found[0] as Obj
}

function ms (data: Record<string, string>, key: string): number {
  const value = Number(data[key])
  if (!Number.isInteger(value)) throw new Error(`${key} is not set in the ConfigMap`)
  return value
}

function documentedVariables (): Set<string> {
  const readme = readFileSync(new URL('README.md', ROOT), 'utf8')
  const table = readme.slice(readme.indexOf('## Configuration'), readme.indexOf('## Admin listener'))
  return new Set([...table.matchAll(/^\| `([A-Z0-9_]+)` \|/gm)].map((match) => match[1] as string))
}

t.test('kubectl is installed (the .ci setup step installs it)', async (t) => {
  t.match(execFileSync('kubectl', ['version', '--client'], { encoding: 'utf8' }), /Kustomize Version/)
})

for (const dir of OVERLAYS) {
  t.test(dir, async (t) => {
    const objects = render(dir)
    t.ok(objects.length >= 7, `${objects.length} objects rendered`)

    t.test('every object is valid against its OpenAPI schema', async (t) => {
      for (const obj of objects) {
        const Model = await modelFor(obj.apiVersion, obj.kind)
        t.doesNotThrow(() => new Model(obj).validate(), `${obj.kind}/${obj.metadata?.name}`)
      }
    })

    const deployment = only(objects, 'Deployment')
    const pod = deployment.spec.template.spec
    const container = pod.containers[0]
    const configMap = only(objects, 'ConfigMap')
    const secret = only(objects, 'Secret')
    const config = configMap.data as Record<string, string>
    const ports = new Map<string, number>(container.ports.map((port: Obj) => [port.name, port.containerPort]))
    const portOf = (port: string | number): number | undefined => typeof port === 'number' ? port : ports.get(port)

    t.test('the pod reads its config from the ConfigMap and its secrets from the Secret', async (t) => {
      const from = container.envFrom.map((source: Obj) => source.configMapRef?.name ?? source.secretRef?.name)
      t.same(from, [configMap.metadata.name, secret.metadata.name])
    })

    t.test('no secret in the ConfigMap; every secret in the Secret', async (t) => {
      for (const [key, value] of Object.entries(config)) {
        t.notOk(SECRET_LOOKING.test(key) || SECRET_KEYS.includes(key), `${key} is not a secret`)
        let password = ''
        try { password = new URL(value).password } catch {}
        t.equal(password, '', `${key}'s value carries no password`)
      }
      const secretKeys = Object.keys({ ...secret.data, ...secret.stringData })
      for (const key of ['SESSION_SECRET', 'UNLEASH_API_TOKEN', 'REDIS_URL', 'DATABASE_URL', 'TENANT_DATABASE_URL_TEMPLATE']) t.ok(secretKeys.includes(key), `${key} in the Secret`)
    })

    t.test('the configuration is one ficus accepts, every variable documented', async (t) => {
      const env = { ...config, ...secret.stringData }
      const documented = documentedVariables()
      for (const key of Object.keys(env)) t.ok(documented.has(key), `${key} is in README's Configuration table`)
      let problems: readonly string[] = []
      try { parseConfig(env) } catch (error) { if (error instanceof ConfigError) problems = error.problems; else throw error }
      t.same(problems, [], 'parseConfig finds no problem')
    })

    t.test('non-root, read-only root filesystem, resources set', async (t) => {
      t.equal(pod.securityContext.runAsNonRoot, true)
      t.equal(container.securityContext.readOnlyRootFilesystem, true)
      t.equal(container.securityContext.allowPrivilegeEscalation, false)
      t.same(container.securityContext.capabilities.drop, ['ALL'])
      t.ok(container.resources.requests.cpu !== undefined && container.resources.requests.memory !== undefined, 'requests')
      t.ok(container.resources.limits.memory !== undefined, 'memory limit')
      t.ok(pod.topologySpreadConstraints.some((c: Obj) => c.topologyKey === 'topology.kubernetes.io/zone'), 'spread over zones')
      t.notOk('replicas' in deployment.spec, 'the HPA owns the replica count')
      // The only file ficus writes is the Unleash backup: it must land on a writable volume.
      const writable = (container.volumeMounts as Obj[]).filter((mount) => pod.volumes.some((v: Obj) => v.name === mount.name && v.emptyDir !== undefined))
      t.ok(writable.some((mount) => config.UNLEASH_BACKUP_DIR === mount.mountPath), `UNLEASH_BACKUP_DIR ${config.UNLEASH_BACKUP_DIR} is an emptyDir mount`)
    })

    t.test('node runs with the flags `npm start` uses', async (t) => {
      const start = JSON.parse(readFileSync(new URL('package.json', ROOT), 'utf8')).scripts.start as string
      const flags = start.slice(start.indexOf('node ') + 5).split(' ').filter((word) => word.startsWith('--'))
      t.ok(flags.length > 0)
      t.equal(container.command[0], 'node')
      for (const flag of flags) t.ok(container.command.includes(flag), `${flag} on the command line`)
      t.equal(container.command.at(-1), 'dist/proxy/main.js')
    })

    t.test('probes on the admin port, never the public one', async (t) => {
      t.equal(container.readinessProbe.httpGet.path, '/readyz')
      t.equal(container.livenessProbe.httpGet.path, '/livez')
      for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
        t.equal(portOf(container[probe].httpGet.port), ms(config, 'ADMIN_PORT'), `${probe} on ADMIN_PORT`)
      }
      t.not(ms(config, 'ADMIN_PORT'), ms(config, 'PORT'))
      t.equal(portOf('http'), ms(config, 'PORT'))
      t.equal(config.ADMIN_HOST, '0.0.0.0', 'the admin listener is reachable by the kubelet')
    })

    t.test('grace period > preStop pause + DRAIN_DELAY_MS + SHUTDOWN_TIMEOUT_MS', async (t) => {
      const pause = container.lifecycle.preStop.exec?.command?.[0] === 'sleep'
        ? Number(container.lifecycle.preStop.exec.command[1])
        : Number(container.lifecycle.preStop.sleep?.seconds)
      t.ok(pause > 0, `preStop pauses ${pause} s`)
      const needed = pause * 1000 + ms(config, 'DRAIN_DELAY_MS') + ms(config, 'SHUTDOWN_TIMEOUT_MS')
      t.ok(pod.terminationGracePeriodSeconds * 1000 > needed, `${pod.terminationGracePeriodSeconds} s > ${needed} ms`)
    })

    t.test('keep-alive timeouts ordered: LB idle < ficus keep-alive < client idle; headers < keep-alive', async (t) => {
      const keepAlive = ms(config, 'KEEP_ALIVE_TIMEOUT_MS')
      t.ok(keepAlive < ms(config, 'CLIENT_IDLE_TIMEOUT_MS'))
      t.ok(ms(config, 'HEADERS_TIMEOUT_MS') < keepAlive)
      const lbIdle = only(objects, 'Service').metadata.annotations?.[LB_IDLE_ANNOTATION]
      if (lbIdle !== undefined) t.ok(Number(lbIdle) * 1000 < keepAlive, `LB idle ${lbIdle} s < ${keepAlive} ms`)
    })

    t.test('a PDB and an HPA over the pods, scale-down damped', async (t) => {
      const labels = deployment.spec.template.metadata.labels as Record<string, string>
      const selects = (selector: Record<string, string>): boolean => Object.entries(selector).every(([k, v]) => labels[k] === v)
      const pdb = only(objects, 'PodDisruptionBudget')
      t.ok(selects(pdb.spec.selector.matchLabels), 'PDB selects the pods')
      t.ok(pdb.spec.maxUnavailable !== undefined || pdb.spec.minAvailable !== undefined)
      t.ok(selects(only(objects, 'Service').spec.selector), 'Service selects the pods')
      const hpa = only(objects, 'HorizontalPodAutoscaler')
      t.same(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: deployment.metadata.name })
      t.ok(hpa.spec.minReplicas >= 2 && hpa.spec.maxReplicas > hpa.spec.minReplicas)
      t.ok(hpa.spec.behavior.scaleDown.stabilizationWindowSeconds >= 300, 'scale-down waits out lulls')
      t.ok(hpa.spec.behavior.scaleDown.policies.every((p: Obj) => p.periodSeconds >= 60), 'and steps slowly')
    })

    const monitor = objects.find((obj) => obj.kind === 'ServiceMonitor')
    if (monitor !== undefined) {
      t.test('the ServiceMonitor scrapes the admin port of the Service', async (t) => {
        const service = only(objects, 'Service')
        const port = service.spec.ports.find((p: Obj) => p.name === monitor.spec.endpoints[0].port)
        t.equal(portOf(port.targetPort), ms(config, 'ADMIN_PORT'))
        t.equal(monitor.spec.endpoints[0].path, '/metrics')
      })
    }
  })
}
