export { startKubeDev, type KubeDev, type KubeDevOptions } from './server.js';
export { kubeDevCommand } from './commands.js';
export { KubeDevError, type KubeDevErrorCode } from './errors.js';
