// The Connections page in real Chromium against real Vault, the egress broker and the token
// service: alice stores a GitHub token in the form, an agent acting for her calls the stand-in
// API through the broker with it, and no response the page ever received carried the token.
// Bob's page shows nothing stored and his agent gets nothing; without delegation, refused.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { peerSkip } from '@precinct/testing';
import type { Browser, Page } from 'playwright-core';
import { startBrowserWorld, type BrowserWorld } from './world.js';
import { startPeopleTokensRig, type PeopleTokensRig } from './people-tokens.js';

const skip = peerSkip('chromium') || peerSkip('vault');
const require = createRequire(import.meta.url);
const ARTEFACTS = process.env.PRECINCT_ARTEFACTS ?? join(tmpdir(), 'precinct-browser-artefacts');
const TOKEN = `ghp_browser_${randomBytes(12).toString('hex')}`;

describe('Connections page in Chromium', { skip }, () => {
  let w: BrowserWorld;
  let rig: PeopleTokensRig;
  let browser: Browser;
  let page: Page;
  let base: string;
  const received: Array<Promise<string>> = [];
  const cspViolations: string[] = [];
  const pageErrors: string[] = [];

  before(async () => {
    mkdirSync(ARTEFACTS, { recursive: true });
    w = await startBrowserWorld(async (world) => {
      const r = await startPeopleTokensRig(world);
      rig = r.rig;
      return r.dashboard;
    });
    base = w.dashboard.url;
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: ['--no-sandbox'],
    });
    page = await newPage();
  });
  after(async () => {
    await browser?.close();
    await w?.close();
    await rig?.close();
  });

  async function newPage(): Promise<Page> {
    const p = await (
      await browser.newContext({ viewport: { width: 1280, height: 860 } })
    ).newPage();
    p.on('console', (m) => {
      if (/Content Security Policy|Refused to/i.test(m.text())) cspViolations.push(m.text());
    });
    p.on('pageerror', (e) => pageErrors.push(e.message));
    // Everything the browser received: status line, headers and body of every response.
    p.on('response', (r) =>
      received.push(
        (async () =>
          `${r.url()} ${r.status()} ${JSON.stringify(await r.allHeaders())} ${await r
            .text()
            .catch(() => '')}`)(),
      ),
    );
    return p;
  }

  async function axe(name: string) {
    const src = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
    await page.evaluate(src);
    const violations = await page.evaluate(async () => {
      const r = await (
        globalThis as unknown as {
          axe: {
            run(): Promise<{ violations: Array<{ id: string; impact: string; nodes: unknown[] }> }>;
          };
        }
      ).axe.run();
      return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length }));
    });
    const bad = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    assert.deepEqual(bad, [], `${name}: ${JSON.stringify(violations)}`);
  }

  async function signIn(user: string) {
    await page.goto(base);
    await page.getByLabel('User name').fill(user);
    await page.getByLabel('Password').fill(w.world.passwords[user]!);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('whoami').waitFor();
    await page.getByRole('link', { name: 'Connections' }).click();
    await page.getByRole('heading', { name: 'Connections', level: 1 }).waitFor();
  }

  test('alice stores her GitHub token in the form; an agent acting for her uses it', async () => {
    await signIn('alice');
    const card = page.getByTestId('connection-github');
    await card.getByText('No token stored.').waitFor();
    await axe('connections-empty');
    await card.getByLabel('github token').fill(TOKEN);
    await card.getByRole('button', { name: 'Store token' }).click();
    await card.getByText('Your github token is stored.').waitFor();
    await card.getByText(/A token is stored \(updated /).waitFor();
    assert.equal(await card.getByLabel('github token').inputValue(), '', 'the field is cleared');
    await axe('connections-stored');
    await page.screenshot({ path: join(ARTEFACTS, 'connections.png'), fullPage: true });
    // A reload asks the BFF again: still stored, still not shown.
    await page.reload();
    await card.getByText(/A token is stored/).waitFor();

    const before = rig.seen.length;
    const r = await rig.agentCall('gpt4', 'alice');
    assert.equal(r.status, 200, r.body);
    assert.equal(rig.seen.at(-1), `Bearer ${TOKEN}`, 'the stand-in API got her token');
    assert.equal(rig.seen.length, before + 1);
    assert.ok(!r.body.includes(TOKEN), 'the agent did not');
  });

  test('without delegation the agent is refused (control above)', async () => {
    const before = rig.seen.length;
    assert.equal((await rig.agentCallWithoutDelegation('gpt4', 'alice')).status, 403);
    assert.equal(rig.seen.length, before);
  });

  test("bob's page shows nothing stored and his agent gets nothing", async () => {
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    // Read every response alice's page got before her context goes: a capture still pending
    // when the page closes would fail to read (and the leak check would lose that response).
    await page.waitForLoadState('networkidle');
    await Promise.all(received);
    await page.context().close();
    page = await newPage();
    await signIn('bob');
    await page.getByTestId('connection-github').getByText('No token stored.').waitFor();
    const before = rig.seen.length;
    assert.equal((await rig.agentCall('gpt4', 'bob')).status, 403);
    assert.equal(rig.seen.length, before);
  });

  test('no response the browser received carried the token; no CSP violation or page error', async () => {
    const all = await Promise.all(received);
    assert.ok(
      all.some((x) => x.includes('/api/secrets/github')),
      'the store call was seen',
    );
    for (const x of all) assert.ok(!x.includes(TOKEN), x.slice(0, 200));
    assert.deepEqual(cspViolations, []);
    assert.deepEqual(pageErrors, []);
  });
});
