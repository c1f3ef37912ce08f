export { projectRoot, startMcu, startNode, type RunningMcu, type StartedProcess } from '../../standby/src/managed-process.ts';
