import { resolve } from 'node:path';
import { parseFlags, waitForShutdown, type Command } from '@precinct/runtime';
import { startKubeDev } from '@precinct/kube-dev';

const SUMMARY = 'Start the whole local platform and print where everything is.';

export const upCommand: Command = {
  name: 'up',
  summary: SUMMARY,
  async run(argv) {
    const flags = parseFlags('up', SUMMARY, argv, {
      'data-dir': {
        type: 'string',
        description: 'where state lives between runs',
        default: '.precinct',
        placeholder: 'DIR',
      },
      'advertise-host': {
        type: 'string',
        description: 'host other processes (containers, namespaces) use to reach the services',
        default: 'localhost',
        placeholder: 'HOST',
      },
      'kube-port': {
        type: 'string',
        description: 'port of the local Kubernetes auth API (0 = any free port)',
        default: '6443',
        placeholder: 'PORT',
      },
    });
    if (!flags) return;
    const dataDir = resolve(String(flags['data-dir']));
    const kube = await startKubeDev({
      listen: { host: '::', port: Number(flags['kube-port']) },
      advertiseHost: String(flags['advertise-host']),
      dataDir: resolve(dataDir, 'kube-dev'),
      kubeconfigPath: resolve(dataDir, 'kubeconfig'),
    });
    console.log(
      [
        'Precinct is up.',
        '',
        `  kube-dev    ${kube.url}`,
        `  kubeconfig  ${kube.kubeconfigPath}`,
        '',
        'Try:',
        `  export KUBECONFIG=${kube.kubeconfigPath}`,
        '  kubectl create token default',
        '  kubectl auth can-i get pods --as=system:serviceaccount:default:default',
        '',
        'Ctrl-C stops everything.',
      ].join('\n'),
    );
    await waitForShutdown();
    await kube.close();
  },
};
