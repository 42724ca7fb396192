// The dashboard with people from an OpenID Provider, in real Chromium: sign in through the
// provider's own login and consent pages (oidc-provider on loopback), run a delegated access,
// check that the Audit tab is the auditors', log out. axe-core on the dashboard's pages; the
// dashboard's CSP is enforced throughout.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { peerSkip } from '@precinct/testing';
import type { Browser, Page } from 'playwright-core';
import { startBrowserWorld, type BrowserWorld } from './world.js';
import { DASHBOARD_CLIENT, startOidcPeer, type OidcPeer } from './oidc-peer.js';

const skip = peerSkip('chromium');
const require = createRequire(import.meta.url);
const ARTEFACTS = process.env.PRECINCT_ARTEFACTS ?? join(tmpdir(), 'precinct-browser-artefacts');

describe('dashboard UI with an OpenID Provider, in Chromium', { skip }, () => {
  let w: BrowserWorld;
  let op: OidcPeer;
  let browser: Browser;
  let page: Page;
  let base: string;
  const cspViolations: string[] = [];
  const pageErrors: string[] = [];

  before(async () => {
    mkdirSync(ARTEFACTS, { recursive: true });
    op = await startOidcPeer({ alice: {}, bob: { groups: ['auditors'] } });
    w = await startBrowserWorld({
      oidc: {
        issuer: op.issuer,
        clientId: DASHBOARD_CLIENT,
        clientSecret: op.clientSecret(DASHBOARD_CLIENT),
        auditorGroups: ['auditors'],
        endProviderSession: true,
      },
    });
    base = w.dashboard.url;
    op.start(`${base}/api/auth/oidc/callback`);
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: ['--no-sandbox'],
    });
    page = await newPage();
  });

  async function newPage(): Promise<Page> {
    const p = await (
      await browser.newContext({ viewport: { width: 1280, height: 860 } })
    ).newPage();
    p.on('console', (m) => {
      // The provider's development pages are not ours: only the dashboard's CSP is checked.
      if (!m.location().url.startsWith(base)) return;
      if (/Content Security Policy|Refused to/i.test(m.text())) cspViolations.push(m.text());
    });
    p.on('pageerror', (e) => pageErrors.push(e.message));
    return p;
  }
  after(async () => {
    await browser?.close();
    await w?.close();
    await op?.close();
  });

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

  async function signIn(login: string) {
    await page.goto(base);
    await page.getByRole('heading', { name: 'Sign in to Precinct' }).waitFor();
    assert.equal(await page.getByLabel('Password').count(), 0, 'no password form');
    await page.getByRole('link', { name: 'Sign in with your identity provider' }).click();
    // The provider's own pages.
    await page.waitForURL((u) => u.href.startsWith(op.issuer));
    await page.locator('input[name="login"]').fill(login);
    await page.locator('input[name="password"]').fill('whatever-the-provider-checks');
    await page.getByRole('button', { name: 'Sign-in' }).click();
    const consent = page.getByRole('button', { name: 'Continue' });
    const whoami = page.getByTestId('whoami');
    await Promise.race([consent.waitFor(), whoami.waitFor()]);
    if (await consent.isVisible()) await consent.click();
    await whoami.waitFor();
    assert.ok(page.url().startsWith(base), page.url());
    assert.equal(await whoami.textContent(), login);
  }

  test('sign in through the provider, run a delegated access, log out', async () => {
    await page.goto(base);
    await page.getByRole('heading', { name: 'Sign in to Precinct' }).waitFor();
    await axe('oidc-login');
    await page.screenshot({ path: join(ARTEFACTS, 'oidc-login.png'), fullPage: true });
    await signIn('alice');
    await page.getByText('spiffe://demo.example.com/user/alice').waitFor();
    const nav = page.getByRole('navigation', { name: 'Views' });
    assert.equal(await nav.getByRole('link', { name: 'Audit' }).count(), 0, 'alice: no Audit');

    await page.getByRole('combobox', { name: 'Document' }).selectOption('DOC-002');
    await page.getByRole('combobox', { name: 'Agent acting for you' }).selectOption('gpt4');
    await page.getByRole('button', { name: 'Decide' }).click();
    await page.getByTestId('outcome-direct').getByText('Granted').waitFor();
    await page.getByTestId('outcome-delegated').getByText('Granted').waitFor();
    await axe('oidc-access');
    await page.screenshot({ path: join(ARTEFACTS, 'oidc-access.png'), fullPage: true });

    const session = (await page.context().cookies(base)).find(
      (c) => c.name === 'precinct_session',
    )!;
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, 'Strict');
    await page.getByRole('button', { name: 'Log out' }).click();
    // Logged out at the provider too (RP-initiated logout), then back at the dashboard.
    await page.getByRole('button', { name: 'Yes, sign me out' }).click();
    await page.getByRole('heading', { name: 'Sign in to Precinct' }).waitFor();
    assert.ok(page.url().startsWith(base), page.url());
    const me = await fetch(new URL('/api/auth/me', base), {
      headers: { cookie: `precinct_session=${session.value}` },
    });
    assert.equal(me.status, 401, 'the session is gone');
    // The provider's session is gone too: signing in again asks for the login.
    await page.getByRole('link', { name: 'Sign in with your identity provider' }).click();
    await page.locator('input[name="login"]').waitFor();
  });

  test('bob, in the provider’s auditors group, gets the Audit tab and its events', async () => {
    // Another person, another browser: this one still holds alice's session at the provider.
    const old = page;
    page = await newPage();
    await old.context().close();
    await signIn('bob');
    await page
      .getByRole('navigation', { name: 'Views' })
      .getByRole('link', { name: 'Audit' })
      .click();
    await page.getByRole('heading', { name: 'Audit', level: 1 }).waitFor();
    await w.demo.flushAudit();
    await page.getByTestId('audit-row').filter({ hasText: 'gpt4' }).first().waitFor();
    await axe('oidc-audit');
  });

  test('no CSP violation and no page error happened on the dashboard', () => {
    assert.deepEqual(cspViolations, []);
    assert.deepEqual(pageErrors, []);
  });
});
