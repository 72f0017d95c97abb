// The web console in a real browser: playwright-core driving Debian's chromium against a running
// `wardgate serve` (crates/wardgate/tests/it/console.rs starts it and the MQTT client).
//
//   node console_journey.js --url http://127.0.0.1:PORT --token TOKEN --client-id ID
//        --awaiting-port N --explain-port N --username U --attr K=V --topic T --shots DIR
//
// Visits every page, checks what it shows, saves a screenshot of each in DIR, disconnects the
// client from the Clients page and asks the explain form. Prints one closing JSON line:
// {"journey": "console", "ok": bool, "observed": {...}, "problems": [...]}.
"use strict";

const path = require("node:path");

function emit(fields) {
  process.stdout.write(`${JSON.stringify(fields)}\n`);
}

function parseOptions(argv) {
  const opts = {};
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, "").replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (argv[i + 1] === undefined) throw new Error(`${argv[i]} needs a value`);
    opts[key] = argv[i + 1];
  }
  for (const k of ["url", "token", "clientId", "awaitingPort", "explainPort", "shots"]) {
    if (!opts[k]) throw new Error(`missing --${k}`);
  }
  return opts;
}

async function journey(opts, observed, problems) {
  let chromium;
  try {
    ({ chromium } = require("playwright-core"));
  } catch (e) {
    throw new Error("npm package playwright-core is missing: run scripts/test (it installs it into tests/clients)");
  }
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
  try {
    const context = await browser.newContext({
      httpCredentials: { username: "admin", password: opts.token },
      viewport: { width: 1280, height: 860 },
    });
    const page = await context.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
    const shot = (name) => page.screenshot({ path: path.join(opts.shots, `${name}.png`), fullPage: true });
    const check = (cond, what) => cond || problems.push(what);

    // Overview: the awaiting port's line as the logs print it; the charts fill in.
    await page.goto(`${opts.url}/`);
    const row = page.locator("#ports tbody tr", { has: page.locator(`td:text-is("${opts.awaitingPort}")`) });
    observed.awaitingLine = (await row.locator("td").nth(3).innerText()).trim();
    await page.waitForFunction(
      () => [...document.querySelectorAll("figure.chart")].every((f) => Number(f.dataset.samples || 0) >= 4),
      null,
      { timeout: 20000 },
    );
    observed.connectionsLegend = (await page.locator('figure[data-chart="connections"] .legend').innerText()).trim();
    observed.messagesLegend = (await page.locator('figure[data-chart="messages"] .legend').innerText()).trim();
    observed.chartLines = await page.locator("figure.chart svg polyline").count();
    await shot("overview");

    // Certificates: the served certificate and the trust bundle link.
    await page.goto(`${opts.url}/certificates`);
    observed.certificateSubjects = await page.locator("#certificates tbody tr td:nth-child(2)").allInnerTexts();
    observed.trustBundleLink = await page.locator('a[href="/api/v1/trust-bundle"]').count();
    await shot("certificates");

    // Clients: listed, found by the search, hidden by a search that does not match, disconnected.
    await page.goto(`${opts.url}/clients`);
    const clientRow = page.locator("#clients tbody tr", { has: page.locator(`td:text-is("${opts.clientId}")`) });
    observed.clientListed = (await clientRow.count()) === 1;
    observed.clientRow = observed.clientListed ? (await clientRow.innerText()).replace(/\s+/g, " ").trim() : "";
    await page.fill("#search", opts.clientId.slice(0, 5));
    observed.visibleWhenSearched = await clientRow.isVisible();
    await page.fill("#search", "no-such-client-zzz");
    observed.hiddenWhenNotMatching = !(await clientRow.isVisible());
    await page.fill("#search", "");
    await shot("clients");
    await Promise.all([page.waitForURL(/disconnected=/), clientRow.locator("button", { hasText: "Disconnect" }).click()]);
    observed.disconnectFlash = (await page.locator("p.flash").innerText()).trim();
    let gone = false;
    for (let i = 0; i < 25 && !gone; i++) {
      await page.goto(`${opts.url}/clients`);
      gone = (await clientRow.count()) === 0;
      if (!gone) await page.waitForTimeout(200);
    }
    observed.clientGoneAfterDisconnect = gone;

    // Authorization: the policies, and the explain form's answer.
    await page.goto(`${opts.url}/authorization`);
    observed.policies = await page.locator("section.policy h3").allInnerTexts();
    await page.fill('input[name="username"]', opts.username || "");
    await page.fill('textarea[name="attributes"]', opts.attr || "");
    await page.selectOption('select[name="port"]', opts.explainPort);
    await page.selectOption('select[name="action"]', "publish");
    await page.fill('input[name="topic"]', opts.topic || "");
    await Promise.all([page.waitForURL(/action=publish/), page.click('form#explain button[type="submit"]')]);
    observed.explainVerdict = (await page.locator("#explanation").innerText()).trim();
    observed.explainText = await page.locator("pre.explain-text").textContent();
    await shot("authorization");

    // Configuration and the cluster's place.
    await page.goto(`${opts.url}/configuration`);
    observed.reloads = (await page.locator("#reloads").innerText()).trim();
    observed.secretsListed = await page.locator("#secrets li").allInnerTexts();
    await shot("configuration");
    await page.goto(`${opts.url}/cluster`);
    observed.cluster = (await page.locator("#cluster-status").innerText()).trim();
    await shot("cluster");

    // A narrow (tablet portrait) view of the overview renders too.
    await page.setViewportSize({ width: 768, height: 1024 });
    await page.goto(`${opts.url}/`);
    await shot("overview-tablet");
    observed.pageErrors = errors;
    check(errors.length === 0, `the pages logged errors: ${errors.join("; ")}`);
  } finally {
    await browser.close();
  }
}

async function main() {
  const observed = {};
  const problems = [];
  let opts;
  const limit = Number(process.env.JOURNEY_TIMEOUT || "60") * 1000;
  const timer = setTimeout(() => {
    emit({ journey: "console", ok: false, observed, problems: [...problems, `timed out after ${limit} ms`] });
    process.exit(1);
  }, limit);
  try {
    opts = parseOptions(process.argv.slice(2));
    await journey(opts, observed, problems);
  } catch (e) {
    problems.push(String(e && e.stack ? e.stack : e));
  }
  clearTimeout(timer);
  const ok = problems.length === 0;
  emit({ journey: "console", ok, observed, problems });
  process.exit(ok ? 0 : 1);
}

main();
