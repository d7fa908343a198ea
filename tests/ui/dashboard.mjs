// Drives the /ui dashboard in headless Chromium against a running stack, as a person
// would, and prints what it observed as one JSON object on stdout (tests/ui/test_dashboard.py
// checks it). Any step that does not happen in time throws, naming the step.
//
// env: BASE_URL, TOKEN, TRAIN_CONFIG, PREDICT_CONFIG (JSON files), UPLOAD_ARCHIVE (a .tar.gz
// of a native dataset), ARTIFACTS (screenshots, downloads), CHROMIUM (its executable).
import { mkdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`environment variable ${name} is not set`);
  return value;
};
const BASE = env("BASE_URL"), TOKEN = env("TOKEN"), ARTIFACTS = env("ARTIFACTS");
const trainConfig = readFileSync(env("TRAIN_CONFIG"), "utf8");
const predictConfig = readFileSync(env("PREDICT_CONFIG"), "utf8");
const started = Date.now();
const log = (text) => process.stderr.write(`[dashboard ${((Date.now() - started) / 1000).toFixed(1)} s] ${text}\n`);

mkdirSync(ARTIFACTS, { recursive: true });
const result = { requests: [], consoleErrors: [], pointsSeen: [] };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
  headless: true,
});
const context = await browser.newContext({ viewport: { width: 1280, height: 1000 }, acceptDownloads: true });
const page = await context.newPage();
page.on("console", (m) => { if (m.type() === "error") result.consoleErrors.push(m.text()); });
page.on("pageerror", (e) => result.consoleErrors.push(`pageerror: ${e.message}`));
page.on("request", (r) => result.requests.push({
  url: r.url(), method: r.method(), auth: r.headers().authorization || null,
  lastEventId: r.headers()["last-event-id"] || null,
}));

async function shot(name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

async function step(name, body) {
  log(name);
  try {
    return await body();
  } catch (err) {
    await shot(`failed-${name.replace(/\W+/g, "-")}`).catch(() => {});
    throw new Error(`step "${name}": ${err.message}`);
  }
}

async function submitJob(kind, name, config) {
  await page.goto(`${BASE}/ui/#/submit`);
  await page.selectOption("#submit-kind", kind);
  await page.fill("#submit-name", name);
  await page.fill("#submit-config", config);
  await page.click("#submit-button");
  await page.waitForURL(/#\/jobs\/\d+$/, { timeout: 15_000 });
  const id = Number(/#\/jobs\/(\d+)$/.exec(page.url())[1]);
  await page.waitForSelector("#job-header h2", { timeout: 15_000 });
  return id;
}

const pointsOf = () => page.$eval("#loss-chart", (svg) => Number(svg.dataset.points || 0));
const stateOf = () => page.$eval("#job-header", (el) => el.dataset.state || "");

try {
  await step("page loads and asks for a token", async () => {
    await page.goto(`${BASE}/`);
    await page.waitForSelector("#login-form:not([hidden])", { timeout: 15_000 });
    result.landedAt = new URL(page.url()).pathname;
    await shot("01-login");
  });

  await step("a wrong token is refused with a clear message", async () => {
    await page.fill("#login-token", "sam3v_not-a-real-token");
    await page.click("#login-button");
    await page.waitForSelector("#login-message .error", { timeout: 10_000 });
    result.badTokenMessage = await page.textContent("#login-message");
  });

  await step("the real token signs in", async () => {
    await page.fill("#login-token", TOKEN);
    await page.click("#login-button");
    await page.waitForSelector("#jobs-table", { timeout: 10_000 });
    result.storedToken = await page.evaluate(() => localStorage.getItem("sam3v.token")) === TOKEN;
  });

  await step("a bad field shows the server's error next to the form", async () => {
    await page.goto(`${BASE}/ui/#/submit`);
    const bad = JSON.parse(trainConfig);
    bad.max_steps = -3;
    await page.selectOption("#submit-kind", "train");
    await page.fill("#submit-config", JSON.stringify(bad));
    await page.click("#submit-button");
    await page.waitForSelector("#submit-errors .problems li", { timeout: 15_000 });
    result.fieldErrors = await page.$$eval("#submit-errors .problems li", (lis) => lis.map((li) => li.textContent));
    result.highlightedFields = await page.$$eval("#submit-errors code.field", (cs) => cs.map((c) => c.textContent));
    result.stillOnForm = page.url().endsWith("#/submit");
    await shot("02-submit-error");
  });

  result.trainJobId = await step("submit the training job from the form", () => submitJob("train", "ui-train", trainConfig));
  result.predictJobId = await step("submit a predict job", () => submitJob("predict", "ui-predict", predictConfig));
  result.cancelJobId = await step("submit a job and cancel it", async () => {
    const id = await submitJob("train", "ui-cancel", trainConfig);
    await page.waitForSelector("#cancel-job:not([disabled])", { timeout: 15_000 });
    await page.click("#cancel-job");
    await page.waitForFunction(() => document.querySelector("#job-header")?.dataset.state === "cancelled",
                               null, { timeout: 60_000 });
    await shot("03-cancelled");
    return id;
  });

  await step("the jobs appear in the list, and the filters work", async () => {
    await page.goto(`${BASE}/ui/#/jobs`);
    const row = (id) => `#jobs-table tr[data-job-id="${id}"]`;
    await page.waitForSelector(row(result.trainJobId), { timeout: 15_000 });
    result.listedStates = Object.fromEntries(await page.$$eval("#jobs-table tbody tr[data-job-id]",
      (trs) => trs.map((tr) => [tr.dataset.jobId, tr.dataset.state])));
    result.trainRowText = await page.textContent(row(result.trainJobId));
    await page.selectOption("#filter-state", "cancelled");
    await page.waitForFunction((id) => !document.querySelector(`#jobs-table tr[data-job-id="${id}"]`),
                               result.trainJobId, { timeout: 10_000 });
    result.cancelledFilterIds = await page.$$eval("#jobs-table tbody tr[data-job-id]", (trs) => trs.map((tr) => Number(tr.dataset.jobId)));
    await page.selectOption("#filter-state", "");
    await page.selectOption("#filter-kind", "predict");
    await page.waitForFunction((id) => !document.querySelector(`#jobs-table tr[data-job-id="${id}"]`),
                               result.trainJobId, { timeout: 10_000 });
    result.predictFilterIds = await page.$$eval("#jobs-table tbody tr[data-job-id]", (trs) => trs.map((tr) => Number(tr.dataset.jobId)));
    await shot("04-list");
  });

  await step("the loss curve gains points while the job runs", async () => {
    await page.goto(`${BASE}/ui/#/jobs/${result.trainJobId}`);
    await page.waitForSelector("#loss-chart[data-points]", { timeout: 15_000 });
    result.metricsRequestsBeforeLive = result.requests.filter((r) => r.url.includes("/metrics")).length;
    const first = await pointsOf();
    result.pointsSeen.push(first);
    const deadline = Date.now() + 150_000;
    while (Date.now() < deadline) {
      const now = await pointsOf();
      if (now !== result.pointsSeen.at(-1)) result.pointsSeen.push(now);
      if (now > first && now >= 2) break;
      await page.waitForTimeout(500);
    }
    result.stateWhenGrown = await stateOf();
    await shot("05-job-live");
  });

  await step("the training job finishes; its checkpoint downloads", async () => {
    await page.waitForFunction(() => document.querySelector("#job-header")?.dataset.state === "succeeded",
                               null, { timeout: 150_000 });
    result.finalPoints = await pointsOf();
    await page.waitForSelector("#checkpoints button.link", { timeout: 15_000 });
    const [download] = await Promise.all([page.waitForEvent("download", { timeout: 30_000 }),
                                          page.click("#checkpoints button.link")]);
    const saved = join(ARTIFACTS, download.suggestedFilename());
    await download.saveAs(saved);
    result.download = { name: download.suggestedFilename(), bytes: statSync(saved).size };
    await page.waitForFunction(() => document.querySelector("#log-tail")?.textContent.length > 20, null, { timeout: 15_000 });
    result.logTail = (await page.textContent("#log-tail")).slice(-300);
    await shot("06-job-finished");
  });

  await step("datasets: previews and an upload", async () => {
    await page.goto(`${BASE}/ui/#/datasets`);
    await page.waitForSelector('#datasets-table tr[data-dataset="synthetic"] td.preview img', { timeout: 30_000 });
    await page.fill("#upload-name", "ui-upload");
    await page.setInputFiles("#upload-file", env("UPLOAD_ARCHIVE"));
    await page.click("#upload-form button[type=submit]");
    await page.waitForSelector('#datasets-table tr[data-dataset="ui-upload"][data-state="valid"] td.preview img',
                               { timeout: 60_000 });
    // Each valid row fetches its preview on its own after a redraw: wait until every one has
    // landed (an image that finished loading, or the error text that replaces it).
    await page.waitForFunction(() => !document.querySelector('#datasets-table tr[data-state="validating"]') &&
      [...document.querySelectorAll('#datasets-table tr[data-state="valid"] td.preview')]
        .every((cell) => cell.querySelector("img")?.complete || cell.querySelector("span")), null, { timeout: 30_000 });
    result.previews = Object.fromEntries(await page.$$eval("#datasets-table tr[data-dataset]", (trs) =>
      trs.map((tr) => [tr.dataset.dataset, tr.querySelector("td.preview img")?.naturalWidth ?? 0])));
    await shot("07-datasets");
  });

  await step("the predict job's overlays display", async () => {
    await page.goto(`${BASE}/ui/#/jobs/${result.predictJobId}`);
    await page.waitForFunction(() => document.querySelector("#job-header")?.dataset.state === "succeeded",
                               null, { timeout: 150_000 });
    await page.waitForSelector("#overlays img.overlay", { timeout: 30_000 });
    await page.waitForFunction(() => [...document.querySelectorAll("#overlays img")].every((i) => i.complete && i.naturalWidth > 0),
                               null, { timeout: 15_000 });
    result.overlayImages = await page.$$eval("#overlays img", (imgs) => imgs.map((i) => ({ src: i.src, width: i.naturalWidth })));
    result.overlayVideos = await page.$$eval("#overlays video", (vs) => vs.map((v) => v.src));
    await shot("08-overlays");
  });

  await step("sign out forgets the token", async () => {
    await page.click("#sign-out");
    await page.waitForSelector("#login-form:not([hidden])", { timeout: 5_000 });
    result.tokenAfterSignOut = await page.evaluate(() => localStorage.getItem("sam3v.token"));
  });
} finally {
  await browser.close();
  result.seconds = (Date.now() - started) / 1000;
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
