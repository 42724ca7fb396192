export { startKubeDev, type KubeDev, type KubeDevOptions } from './kubedev.js';
export { kubeDevCommand } from './command.js';
export { KubeDevError, type KubeDevErrorCode } from './errors.js';
