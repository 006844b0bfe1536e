// Which peers may speak for the client: only their X-Forwarded-* and X-Request-Id are believed.
import { BlockList, isIPv4, isIPv6 } from 'node:net'

export class TrustedProxies {
  readonly #list = new BlockList()
  readonly #empty: boolean

  /** `entries` are addresses or CIDR ranges, already validated by the config. */
  constructor (entries: readonly string[]) {
    this.#empty = entries.length === 0
    for (const entry of entries) {
      const [address = '', bits] = entry.split('/')
      const family = isIPv6(address) ? 'ipv6' : 'ipv4'
      if (bits === undefined) this.#list.addAddress(address, family)
      else this.#list.addSubnet(address, Number(bits), family)
    }
  }

  trusts (remoteAddress: string | undefined): boolean {
    if (this.#empty || remoteAddress === undefined) return false
    // Dual-stack sockets report IPv4 peers as ::ffff:a.b.c.d.
    const address = remoteAddress.startsWith('::ffff:') && isIPv4(remoteAddress.slice(7)) ? remoteAddress.slice(7) : remoteAddress
    return this.#list.check(address, isIPv6(address) ? 'ipv6' : 'ipv4')
  }
}
