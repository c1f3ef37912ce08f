/**
 * The names and addresses this host is reached by: what a certificate for it names
 * (scripts/demo/self-signed-cert.ts) and the URLs the demo prints for a second machine.
 */
import { hostname, networkInterfaces } from 'node:os';

export interface HostNames {
  /** The host name, then `localhost`. */
  dns: string[];
  /** 127.0.0.1, then every non-loopback IPv4 address of its interfaces. */
  ips: string[];
}

export function hostNames(): HostNames {
  const dns = [...new Set([hostname(), 'localhost'].filter((n) => /^[A-Za-z0-9.-]+$/.test(n)))];
  const ips = ['127.0.0.1'];
  for (const addresses of Object.values(networkInterfaces())) {
    for (const a of addresses ?? []) {
      if (a.family === 'IPv4' && !a.internal && !ips.includes(a.address)) ips.push(a.address);
    }
  }
  return { dns, ips };
}
