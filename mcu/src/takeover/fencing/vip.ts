import { execFile } from 'node:child_process';
import type { Logger } from '../../core/logger.ts';
import { FailoverStep } from '../../wire/failover-steps.ts';

/**
 * Brings the service address (VIP) up on this host: its interface (a macvlan with the
 * service's virtual MAC, VRRP style) and an optional policy route, in one `ip -batch`.
 * Used at a promotion in both modes: in takeover mode before the connections are rebuilt
 * on it, in reconnect mode before the MCU binds it for the clients coming back.
 * Never throws: a failure is logged (the bind that follows then says what is missing).
 */
export function raiseVip(ifname: string | null, route: string | null, log: Logger): Promise<void> {
  if (!ifname) return Promise.resolve();
  const lines = [`link set dev ${ifname} up`];
  if (route) lines.push(`route replace ${route}`);
  return new Promise<void>((resolve) => {
    const child = execFile('ip', ['-batch', '-'], { timeout: 2000 }, (err, _stdout, stderr) => {
      if (err) log.error(`raising the VIP on ${ifname} failed: ${err.message} ${stderr}`);
      else log.info('failover step: VIP raised', { failover: FailoverStep.VipRaised, interface: ifname });
      resolve();
    });
    child.stdin?.end(lines.join('\n') + '\n');
  });
}
