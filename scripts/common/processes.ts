export { projectRoot, startMcu, startNode, type RunningMcu, type StartedProcess } from '../../standby/src/supervisor/managed-process.ts';
