/**
 * The namespace lab from the command line; the lab outlives the command, found
 * again through .lab/state.json.
 *
 *   node --import tsx scripts/lab/cli.ts up [--start-mcu [--takeover] [--witness]] [--no-vip] [--port N]
 *   node --import tsx scripts/lab/cli.ts down
 *   node --import tsx scripts/lab/cli.ts status [--json]
 *   node --import tsx scripts/lab/cli.ts kill-primary [--pid N]
 *   node --import tsx scripts/lab/cli.ts crash-primary-host | restore-primary-host
 *   node --import tsx scripts/lab/cli.ts freeze-primary [--pid N] | thaw-primary [--pid N]
 *   node --import tsx scripts/lab/cli.ts raise-vip|drop-vip|silence|unsilence primary|standby
 *   node --import tsx scripts/lab/cli.ts cut|heal <host> <host>
 *   node --import tsx scripts/lab/cli.ts exec <client|primary|standby|witness|lan> -- cmd...
 *
 * See scripts/lab/README.md.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { McuError } from '../../mcu/src/core/errors.ts';
import { LabError, LabNoStateFileError, LabStateError } from './errors.ts';
import { labAdminToken, startLabMcu, type LabMcuProcesses } from './start-mcu.ts';
import { LAB_HOSTS, LAB_NAMESPACES, LAB_PREFIX_ROOT, LabTopology, projectRoot, SERVER_HOSTS, type LabDescriptor, type LabHost, type LabNamespace, type ServerHost } from './topology.ts';

const STATE_DIR = join(projectRoot, '.lab');
const STATE_FILE = join(STATE_DIR, 'state.json');

interface CliState {
  lab: LabDescriptor;
  mcu?: Omit<LabMcuProcesses, 'status'>;
}

const USAGE = `usage: node --import tsx scripts/lab/cli.ts <command>
  up [--start-mcu [--takeover] [--witness]] [--no-vip] [--port N]   make the lab; --start-mcu starts mcu/src/main.ts
                                           (primary: it sets its host up and raises the VIP) and
                                           standby/src/main.ts (standby) and checks /status via the VIP;
                                           --witness: etcd in the witness host first, both MCUs use it;
                                           without it the MCU's host setup is installed in both server
                                           hosts and the primary raises the VIP unless --no-vip
  down                                     remove the lab (idempotent; also stale labs of dead owners)
  status [--json]                          namespaces, NICs, VIP holder, silenced ports, firewall drops
  kill-primary [--pid N]                   SIGKILL the primary MCU (or pid N, which must run in the primary host)
  crash-primary-host | restore-primary-host  primary NIC down (silent host) / up again
  freeze-primary [--pid N] | thaw-primary [--pid N]  SIGSTOP / SIGCONT
  raise-vip|drop-vip|silence|unsilence <primary|standby>
  cut|heal <host> <host>                   drop (or let through again) every frame between two hosts only
  exec <client|primary|standby|witness|lan> -- cmd...  run a command inside a host`;

function readState(): CliState | null {
  if (!existsSync(STATE_FILE)) return null;
  return JSON.parse(readFileSync(STATE_FILE, 'utf8')) as CliState;
}

function writeState(state: CliState): void {
  mkdirSync(STATE_DIR, { recursive: true });
  writeFileSync(STATE_FILE, JSON.stringify(state, null, 2) + '\n');
  chmodSync(STATE_FILE, 0o600); // holds the replication secret
}

function attach(): { lab: LabTopology; state: CliState } {
  const state = readState();
  if (!state) throw new LabNoStateFileError(STATE_FILE);
  return { lab: LabTopology.attach(state.lab), state };
}

function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

function serverHost(value: string | undefined): ServerHost {
  if (value === 'primary' || value === 'standby') return value;
  throw new LabError('LAB_STATE', `expected primary or standby, got ${value ?? 'nothing'}`);
}

/** The pid a primary fault aims at: --pid, else the MCU started with --start-mcu. */
function primaryPid(args: string[], state: CliState): number {
  const given = option(args, '--pid');
  if (given !== undefined) return Number(given);
  if (state.mcu) return state.mcu.primaryPid;
  throw new LabStateError('no MCU was started with `up --start-mcu`: pass --pid N (a process in the primary host)');
}

function print(value: unknown): void {
  process.stdout.write((typeof value === 'string' ? value : JSON.stringify(value, null, 2)) + '\n');
}

async function up(args: string[]): Promise<void> {
  const previous = readState();
  if (previous && LAB_NAMESPACES.every((ns) => existsSync(`/run/netns/${previous.lab.prefix}${ns}`))) {
    throw new LabStateError(`a lab is already up (${previous.lab.prefix}): run down first`);
  }
  await LabTopology.cleanupStale(LAB_PREFIX_ROOT, { includeDetached: true });
  const port = option(args, '--port');
  const lab = new LabTopology({ detached: true, residentHelpers: false, servicePort: port ? Number(port) : undefined });
  await lab.up();
  const state: CliState = { lab: lab.descriptor() };
  writeState(state);
  const startMcu = args.includes('--start-mcu');
  // With an MCU, each host is set up by the MCU in it; without, by the same product code from here.
  if (!startMcu) {
    for (const host of SERVER_HOSTS) await lab.installMcuHostSetup(host);
    if (!args.includes('--no-vip')) await lab.raiseVip('primary');
  }
  const holder = startMcu ? ' (raised by the primary MCU)' : args.includes('--no-vip') ? ' (held by nobody)' : ' (held by the primary)';
  print(`lab ${lab.prefix} is up: client ${lab.addresses.client}, primary ${lab.addresses.primary}, standby ${lab.addresses.standby}, VIP ${lab.addresses.vip}:${lab.servicePort}${holder}`);
  if (startMcu) {
    try {
      const mcu = await startLabMcu(lab, { logDir: STATE_DIR, takeover: args.includes('--takeover'), witness: args.includes('--witness') });
      const { status, ...rest } = mcu;
      writeState({ ...state, mcu: rest });
      print(`MCU primary pid ${mcu.primaryPid} (log ${mcu.primaryLog}), standby pid ${mcu.standbyPid} (log ${mcu.standbyLog})`);
      if (mcu.witnessPid !== undefined) print(`witness: etcd pid ${mcu.witnessPid} at ${lab.witnessEndpoint} (log ${mcu.witnessLog})`);
      print(`GET http://${lab.addresses.vip}:${lab.servicePort}/status from the client host (Authorization: Bearer ${labAdminToken(mcu.secret)}):`);
      print(status);
    } catch (err) {
      print(`starting the MCU failed: ${(err as Error).message}\n(the lab stays up; \`down\` removes it and whatever started)`);
      process.exitCode = 1;
    }
  }
}

async function down(): Promise<void> {
  const state = readState();
  if (state) {
    // Whatever is left of it, even half a lab: the sweep below takes the rest.
    try {
      await LabTopology.attach(state.lab).close();
    } catch (err) {
      if (!(err instanceof LabStateError)) throw err;
    }
    await LabTopology.cleanupStale(state.lab.prefix, { includeLive: true, includeDetached: true });
  }
  const stale = await LabTopology.cleanupStale(LAB_PREFIX_ROOT, { includeDetached: true });
  rmSync(STATE_FILE, { force: true });
  print(state ? `lab ${state.lab.prefix} removed` : 'no lab state');
  if (stale.length > 0) print(`also removed: ${stale.join(', ')}`);
}

async function status(args: string[]): Promise<void> {
  const state = readState();
  if (!state) {
    print('no lab (no .lab/state.json)');
    return;
  }
  let lab: LabTopology;
  try {
    lab = LabTopology.attach(state.lab);
  } catch (err) {
    print(`${(err as Error).message}`);
    process.exitCode = 1;
    return;
  }
  const s = await lab.status();
  const alive = (pid: number | undefined): string => {
    if (pid === undefined) return 'not started';
    try {
      process.kill(pid, 0);
      return `pid ${pid} ${lab.hostOf(pid) ? 'running' : 'not in the lab'}`;
    } catch {
      return `pid ${pid} gone`;
    }
  };
  if (args.includes('--json')) {
    print({ ...s, mcu: state.mcu && { primary: alive(state.mcu.primaryPid), standby: alive(state.mcu.standbyPid) } });
    return;
  }
  print(`lab ${s.prefix} (created ${state.lab.createdAt}), VIP ${s.addresses.vip}:${state.lab.servicePort} held by ${s.vipHolders.join(' and ') || 'nobody'}`);
  for (const host of ['client', ...SERVER_HOSTS, 'witness'] as const) {
    const h = s.hosts[host];
    const extra = host === 'client' || host === 'witness' ? '' : `, VIP ${h.vipUp ? 'up' : 'down'}, silenced [${h.silencedPorts?.join(', ')}], firewall drops fin/rst ${s.firewall[host]?.finRstDropped} silenced ${s.firewall[host]?.silencedDropped}`;
    print(`  ${host.padEnd(8)} ${s.addresses[host].padEnd(12)} NIC ${h.nicUp ? 'up' : 'DOWN'}${extra}, pids [${s.namespaces[host].pids.join(', ')}]`);
  }
  if (state.mcu) print(`  MCU: primary ${alive(state.mcu.primaryPid)}, standby ${alive(state.mcu.standbyPid)}`);
}

async function main(argv: string[]): Promise<void> {
  const [command, ...args] = argv;
  switch (command) {
    case 'up':
      return up(args);
    case 'down':
      return down();
    case 'status':
      return status(args);
    case 'kill-primary': {
      const { lab, state } = attach();
      const fault = lab.killPrimaryProcess(primaryPid(args, state));
      return print(`SIGKILL sent to pid ${fault.pid} at ${new Date(fault.at).toISOString()}`);
    }
    case 'crash-primary-host': {
      const { lab } = attach();
      await lab.crashHost('primary');
      return print(`primary host's NIC is down (took ${lab.timings.at(-1)?.ms.toFixed(1)} ms)`);
    }
    case 'restore-primary-host': {
      const { lab } = attach();
      await lab.restoreHost('primary');
      return print('primary host restored (NIC up, silenced ports cleared)');
    }
    case 'freeze-primary':
    case 'thaw-primary': {
      const { lab, state } = attach();
      const pid = primaryPid(args, state);
      if (lab.hostOf(pid) !== 'primary') throw new LabStateError(`pid ${pid} does not run in the primary host`);
      const fault = command === 'freeze-primary' ? lab.freeze(pid) : lab.thaw(pid);
      return print(`${fault.fault} pid ${pid}`);
    }
    case 'raise-vip':
    case 'drop-vip':
    case 'silence':
    case 'unsilence': {
      const { lab } = attach();
      const host = serverHost(args[0]);
      const op = { 'raise-vip': () => lab.raiseVip(host), 'drop-vip': () => lab.dropVip(host), silence: () => lab.silenceServicePort(host), unsilence: () => lab.unsilenceServicePort(host) }[command];
      const timing = await op();
      return print(`${timing.op}(${host}): ${timing.ms.toFixed(2)} ms (${timing.method})`);
    }
    case 'cut':
    case 'heal': {
      const { lab } = attach();
      const [a, b] = args as [LabHost | undefined, LabHost | undefined];
      if (!a || !b || !LAB_HOSTS.includes(a) || !LAB_HOSTS.includes(b)) throw new LabStateError(`usage: ${command} <${LAB_HOSTS.join('|')}> <${LAB_HOSTS.join('|')}>`);
      await (command === 'cut' ? lab.cut(a, b) : lab.heal(a, b));
      return print(`${command === 'cut' ? 'cut' : 'healed'}: ${a} <-> ${b}`);
    }
    case 'exec': {
      const host = args[0] as LabNamespace;
      const sep = args.indexOf('--');
      const cmd = sep >= 0 ? args.slice(sep + 1) : args.slice(1);
      if (!LAB_NAMESPACES.includes(host) || cmd.length === 0) throw new LabStateError(`usage: exec <${LAB_NAMESPACES.join('|')}> -- cmd...`);
      const { lab } = attach();
      const child = lab.spawn(host, cmd, {}, { stdio: 'inherit', cwd: process.cwd() });
      const code = await new Promise<number>((resolve) => child.on('close', (c, signal) => resolve(c ?? (signal ? 128 : 1))));
      process.exitCode = code;
      return;
    }
    default:
      print(USAGE);
      process.exitCode = command === undefined || command === 'help' || command === '--help' ? 0 : 2;
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`${err instanceof McuError ? `[${err.code}] ` : ''}${(err as Error)?.message ?? String(err)}\n`);
  process.exitCode = 1;
});
