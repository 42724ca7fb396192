import { UsageError, type Command } from '@precinct/runtime';

const USAGE = [
  'Usage: precinct audit <subcommand> [flags]',
  '',
  'Offline tools for the audit store.',
  '',
  'Subcommands:',
  '  verify-export  check an export (JSON Lines) against its detached signature',
  '',
  'Run `precinct audit <subcommand> --help` for its flags.',
].join('\n');

export const auditCommand: Command = {
  name: 'audit',
  summary: 'offline audit tools (verify-export)',
  async run(argv) {
    const [sub, ...rest] = argv;
    if (!sub || sub === '--help' || sub === '-h') {
      console.log(USAGE);
      return;
    }
    if (sub === 'verify-export') {
      const { verifyExportCommand } = await import('@precinct/audit-store');
      await verifyExportCommand.run(rest);
      return;
    }
    throw new UsageError(`unknown subcommand "${sub}"`);
  },
};
