/**
 * The modes: small descriptors of how to start a system and how to kill its primary, so every
 * mode runs the same rounds and lands in the same report.
 */
import type { Browser } from 'playwright-core';
import type { ModeName } from './settings.ts';
import { LabSystem, SupervisedSystem, type Promotion, type SystemUnderTest } from './systems.ts';

/** A mode: how its system starts and how its primary dies, and what a page must see before it counts as recovered. */
export interface ModeDescriptor {
  name: ModeName;
  description: string;
  /** Page events that must have fired after the kill before a page counts as recovered. */
  recoveryEvents: readonly string[];
  /** Each kill gets a new system (and pages): its standby cannot be replaced in place. */
  freshSystemPerKill: boolean;
  /** `browser`: the run's shared browser, for systems that do not bring their own. */
  start(browser: Browser): Promise<SystemUnderTest>;
  kill(system: SystemUnderTest): Promise<Promotion>;
}

/** A lab mode: takeover with a server-initiated media restart, or with warm spare paths; a process kill or a host crash. */
function labMode(name: ModeName, spares: boolean, fault: 'kill' | 'crash'): ModeDescriptor {
  const media = spares
    ? 'the pages switch to the warm spare paths the standby kept connected (MCU_SPARE_PATHS=1)'
    : 'then the media restarts on the same RTCPeerConnection (server offer; MCU_SPARE_PATHS=0)';
  const how = fault === 'kill' ? 'kill -9 of the primary process' : "crash of the primary's host (its processes stopped, link down; missed heartbeats and a host probe)";
  return {
    name,
    description: `MCU_TAKEOVER=1 in the namespace lab, ${how}: the standby rebuilds the signaling connections (no disconnect), ${media}; a fresh lab per kill`,
    recoveryEvents: spares ? ['spare-switched'] : ['media-restarted'],
    freshSystemPerKill: true,
    start: () => LabSystem.start({ spares, takeover: true }),
    kill: (system) => (fault === 'kill' ? system.killPrimary('SIGKILL') : (system as LabSystem).crashPrimaryHost()),
  };
}

/** Every mode; reconnect mode runs on loopback under the Supervisor where the lab cannot run (`reconnectOnLoopback`). */
export function chaosModes(reconnectOnLoopback: boolean): Record<ModeName, ModeDescriptor> {
  return {
    reconnect: {
      name: 'reconnect',
      description:
        'kill -9 of the primary process in the namespace lab (a fresh lab per kill); the standby raises the VIP, signaling reconnects and resumes, server-initiated media restart on the same RTCPeerConnection (MCU_SPARE_PATHS=0). Without the lab (not root): primary and standby under the Supervisor on 127.0.0.1',
      recoveryEvents: ['reconnected', 'media-restarted'],
      freshSystemPerKill: true,
      start: (browser) => (reconnectOnLoopback ? SupervisedSystem.start(browser) : LabSystem.start({ spares: false, takeover: false })),
      kill: (system) => system.killPrimary('SIGKILL'),
    },
    takeover: labMode('takeover', false, 'kill'),
    'takeover-crash': labMode('takeover-crash', false, 'crash'),
    'warm-spare': labMode('warm-spare', true, 'kill'),
    'warm-spare-crash': labMode('warm-spare-crash', true, 'crash'),
  };
}
