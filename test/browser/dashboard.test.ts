// The dashboard's UI in real Chromium against the real demo chain and audit store: log in, ask
// for direct and delegated access, watch the decision reach the audit view, verify its chain,
// tamper with the stored event in the database and see verification fail, log out. Every page
// is checked with axe-core, and the CSP is enforced throughout (a violation fails the test).
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { peerSkip } from '@precinct/testing';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startBrowserWorld, type BrowserWorld } from './world.js';

const skip = peerSkip('chromium');
const require = createRequire(import.meta.url);
const ARTEFACTS = process.env.PRECINCT_ARTEFACTS ?? join(tmpdir(), 'precinct-browser-artefacts');
const README_SHOT = process.env.PRECINCT_README_SCREENSHOT; // set to docs/img/dashboard.png to refresh

describe('dashboard UI in Chromium', { skip }, () => {
  let w: BrowserWorld;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let base: string;
  const cspViolations: string[] = [];
  const pageErrors: string[] = [];

  before(async () => {
    mkdirSync(ARTEFACTS, { recursive: true });
    w = await startBrowserWorld();
    base = w.dashboard.url;
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: ['--no-sandbox'],
    });
    context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    page = await context.newPage();
    page.on('console', (m) => {
      if (/Content Security Policy|Refused to/i.test(m.text())) cspViolations.push(m.text());
    });
    page.on('pageerror', (e) => pageErrors.push(e.message));
  });
  after(async () => {
    await browser?.close();
    await w?.close();
  });

  const shot = (name: string) =>
    page.screenshot({ path: join(ARTEFACTS, `${name}.png`), fullPage: true });

  async function axe(name: string) {
    // Injected through the DevTools protocol, which the page's CSP does not govern.
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

  async function cookieHeader(): Promise<string> {
    const c = (await context.cookies(base)).find((x) => x.name === 'precinct_session');
    assert.ok(c, 'session cookie set');
    assert.equal(c.httpOnly, true);
    assert.equal(c.sameSite, 'Strict');
    return `${c.name}=${c.value}`;
  }

  test('the page is served with a strict CSP and no inline code', async () => {
    const res = await fetch(base);
    assert.equal(res.status, 200);
    const csp = res.headers.get('content-security-policy') ?? '';
    assert.match(csp, /script-src 'self'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
    const html = await res.text();
    assert.doesNotMatch(html, /<script>|<style|style=/, 'no inline script or style');
    const script = /src="(\/assets\/main-[A-Z0-9]+\.js)"/.exec(html)?.[1];
    assert.ok(script, html);
    const js = await fetch(new URL(script, base));
    assert.equal(js.status, 200);
    assert.match(js.headers.get('content-type') ?? '', /^text\/javascript/);
    assert.equal(js.headers.get('x-content-type-options'), 'nosniff');
    // The API's answers carry the headers too.
    const api = await fetch(new URL('/api/auth/me', base));
    assert.equal(api.status, 401);
    assert.equal(api.headers.get('x-content-type-options'), 'nosniff');
    assert.equal((await fetch(new URL('/assets/nope.js', base))).status, 404);
  });

  test('log in, who am I', async () => {
    await page.goto(base);
    await page.getByRole('heading', { name: 'Sign in to Precinct' }).waitFor();
    await axe('login');
    await shot('login');
    // A wrong password first (the negative), then the right one.
    await page.getByLabel('User name').fill('alice');
    await page.getByLabel('Password').fill('not-the-password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'do not match' }).waitFor();
    await page.getByLabel('Password').fill(w.world.passwords.alice!);
    await page.getByLabel('Password').press('Enter');
    assert.equal(await page.getByTestId('whoami').textContent(), 'alice');
    await page.getByText(`spiffe://demo.example.com/user/alice`).waitFor();
  });

  test('direct and delegated access side by side, drawn as sets', async () => {
    await page.getByRole('combobox', { name: 'Document' }).selectOption('DOC-001');
    await page.getByRole('combobox', { name: 'Agent acting for you' }).selectOption('summarizer');
    await page.getByRole('button', { name: 'Decide' }).click();
    const direct = page.getByTestId('outcome-direct');
    const delegated = page.getByTestId('outcome-delegated');
    // alice has engineering; summarizer only finance: she may read DOC-001, it may not for her.
    await direct.getByText('Granted').waitFor();
    await delegated.getByText('Denied').waitFor();
    const fig = delegated.getByRole('img');
    assert.match(
      (await fig.getAttribute('aria-label')) ?? '',
      /Effective: finance\..*requires any of: engineering/,
    );
    await axe('access');
    await shot('access');
    if (README_SHOT) await page.screenshot({ path: README_SHOT });
  });

  test('consent: withdrawing an agent makes the next delegated request fail', async () => {
    await page.getByRole('combobox', { name: 'Document' }).selectOption('DOC-002');
    await page.getByRole('combobox', { name: 'Agent acting for you' }).selectOption('gpt4');
    await page.getByRole('button', { name: 'Decide' }).click();
    await page.getByTestId('outcome-delegated').getByText('Granted').waitFor();
    const box = page.getByRole('checkbox', { name: /GPT/i });
    assert.equal(await box.isChecked(), true);
    await box.uncheck();
    await page.getByText('may no longer act for you').waitFor();
    await page.getByRole('button', { name: 'Decide' }).click();
    await page.getByTestId('outcome-delegated').getByText('Denied').waitFor();
    await box.check();
    await page.getByText('may now act for you').waitFor();
    await page.getByRole('button', { name: 'Decide' }).click();
    await page.getByTestId('outcome-delegated').getByText('Granted').waitFor();
  });

  test('keyboard only: skip link, then document, agent and Decide in tab order', async () => {
    await page.reload();
    await page.getByTestId('whoami').waitFor();
    await page.keyboard.press('Tab');
    // As strings: the test's tsconfig has no DOM types.
    const focused = () => page.evaluate("document.activeElement?.textContent?.trim() ?? ''");
    assert.equal(await focused(), 'Skip to content');
    const doc = page.getByRole('combobox', { name: 'Document' });
    await doc.focus();
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate("document.activeElement?.getAttribute('name')"), 'agent');
    await page.keyboard.press('Tab');
    assert.equal(await focused(), 'Decide');
    await page.keyboard.press('Enter');
    await page.getByTestId('outcome-direct').waitFor();
  });

  test('the Audit view is the auditors’: alice sees no tab and the API refuses her; bob (admin) has both', async () => {
    const nav = page.getByRole('navigation', { name: 'Views' });
    await nav.getByRole('link', { name: 'Access' }).waitFor();
    assert.equal(await nav.getByRole('link', { name: 'Audit' }).count(), 0, 'no Audit tab');
    const alice = await cookieHeader();
    const refused = await fetch(new URL('/api/platform/audit/events', base), {
      headers: { cookie: alice },
    });
    assert.equal(refused.status, 403);
    assert.match(refused.headers.get('content-type') ?? '', /^application\/problem\+json/);
    const me = (await (
      await fetch(new URL('/api/auth/me', base), { headers: { cookie: alice } })
    ).json()) as { auditor: boolean };
    assert.equal(me.auditor, false);
    // Typing the view's address does not show it either.
    await page.goto(`${base}/#/audit`);
    await page.getByRole('heading', { name: 'Not found', level: 1 }).waitFor();

    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByLabel('User name').fill('bob');
    await page.getByLabel('Password').fill(w.world.passwords.bob!);
    await page.getByRole('button', { name: 'Sign in' }).click();
    assert.equal(await page.getByTestId('whoami').textContent(), 'bob');
    await nav.getByRole('link', { name: 'Audit' }).waitFor();
    const bob = await cookieHeader();
    const ok = await fetch(new URL('/api/platform/audit/events', base), {
      headers: { cookie: bob },
    });
    assert.equal(ok.status, 200, 'control: the auditor gets events');
  });

  test('the audit row arrives; verify chain passes, then fails after tampering', async () => {
    await page.getByRole('link', { name: 'Audit' }).click();
    await page.getByRole('heading', { name: 'Audit', level: 1 }).waitFor();
    await w.demo.flushAudit();
    const row = page
      .getByTestId('audit-row')
      .filter({ hasText: 'summarizer' })
      .filter({ hasText: 'DOC-001' })
      .first();
    await row.waitFor();
    assert.match((await row.textContent()) ?? '', /alice.*summarizer.*DOC-001.*denied/);
    await axe('audit');
    const result = page.getByTestId('verify-result');
    await row.getByRole('button', { name: /Verify chain/ }).click();
    await result.getByText('Chain intact').waitFor();
    await shot('audit-intact');

    const label = (await row
      .getByRole('button', { name: /Verify chain/ })
      .getAttribute('aria-label'))!;
    const correlation = label.replace('Verify chain of transaction ', '');
    // Someone with database access rewrites the decision (the guard trigger is theirs to drop).
    await w.db.query('SET session_replication_role = replica');
    const changed = await w.db.query(
      `UPDATE audit_events SET event_outcome = 'success' WHERE correlation_id = $1 AND resource_id = 'DOC-001'`,
      [correlation],
    );
    await w.db.query('SET session_replication_role = DEFAULT');
    assert.equal(changed.rowCount, 1);
    await row.getByRole('button', { name: /Verify chain/ }).click();
    await result.getByText('Chain broken').waitFor();
    assert.match((await result.textContent()) ?? '', /1 tampered event/);
    await shot('audit-broken');

    // Export: the store's signed NDJSON through the BFF, with the session cookie only.
    const exp = await fetch(new URL('/api/platform/audit/export', base), {
      headers: { cookie: await cookieHeader() },
    });
    assert.equal(exp.status, 200);
    assert.ok(exp.headers.get('x-audit-export-signature'));
    assert.match(await exp.text(), /DOC-001/);
  });

  test('workloads, connections, Kubernetes and NATS views', async () => {
    await page.getByRole('link', { name: 'Connections' }).click();
    await page.getByRole('heading', { name: 'Connections', level: 1 }).waitFor();
    await page.getByText('No secrets manager is connected').waitFor();
    await axe('connections');

    await page.getByRole('link', { name: 'Workloads' }).click();
    await page.getByTestId('workload-row').first().waitFor();
    assert.ok((await page.getByTestId('workload-row').count()) >= 9);
    await page.getByText('spiffe://demo.example.com/ns/demo/sa/dashboard').first().waitFor();
    await page.getByRole('heading', { name: /Trust bundle: demo.example.com/ }).waitFor();
    await axe('workloads');
    await shot('workloads');

    await page.getByRole('link', { name: 'Kubernetes' }).click();
    const sa = page.getByTestId('sa-row').filter({ hasText: 'document-service' });
    await sa.getByText('audit.events.>').first().waitFor();
    await sa.getByText('demo.>').first().waitFor();
    await axe('kubernetes');
    await shot('kubernetes');

    await page.getByRole('link', { name: 'NATS' }).click();
    await page.getByText('NATS is not connected').waitFor();
    await axe('nats');
  });

  test('no cookie or a forged one is refused; the real one works', async () => {
    const real = await cookieHeader();
    for (const path of ['/api/auth/me', '/api/platform/audit/events', '/api/platform/workloads']) {
      const ok = await fetch(new URL(path, base), { headers: { cookie: real } });
      assert.equal(ok.status, 200, `${path} with the session`);
      const none = await fetch(new URL(path, base));
      assert.equal(none.status, 401, `${path} without a cookie`);
      const forged = await fetch(new URL(path, base), {
        headers: { cookie: `precinct_session=${'A'.repeat(43)}` },
      });
      assert.equal(forged.status, 401, `${path} with a forged cookie`);
    }
    // A cross-site POST with the real cookie is refused too.
    const csrf = await fetch(new URL('/api/platform/consent', base), {
      method: 'POST',
      headers: { cookie: real, origin: 'https://evil.example', 'content-type': 'application/json' },
      body: JSON.stringify({ agent: 'spiffe://demo.example.com/agent/gpt4', granted: false }),
    });
    assert.equal(csrf.status, 403);
  });

  test('log out: the session is gone', async () => {
    const cookie = await cookieHeader();
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByRole('heading', { name: 'Sign in to Precinct' }).waitFor();
    const after = await fetch(new URL('/api/auth/me', base), { headers: { cookie } });
    assert.equal(after.status, 401);
    await page.reload();
    await page.getByRole('heading', { name: 'Sign in to Precinct' }).waitFor();
  });

  test('no CSP violation and no page error happened', () => {
    assert.deepEqual(cspViolations, []);
    assert.deepEqual(pageErrors, []);
  });
});
