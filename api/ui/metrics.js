// A job's metric series in the page: loaded once, then only the new points per
// `metrics` event (GET /jobs/{id}/metrics?since_step=), appended in step order.
import { getJson } from "./api.js";

export const LOSS = "loss";
export const isEval = (name) => name.startsWith("val/");
const tracked = (name) => name === LOSS || isEval(name);

export class MetricStore {
  constructor(jobId, onChange, onError) {
    this.jobId = jobId;
    this.onChange = onChange;
    this.onError = onError;
    this.series = new Map(); // name -> [{step, value}], steps ascending
    this.pending = null; // {names: Set, since} of events not fetched yet
    this.busy = false;
  }

  last(name) {
    const points = this.series.get(name);
    return points && points.length ? points.at(-1).step : -1;
  }

  names() { return [...this.series.keys()].sort(); }

  // The first load: the tracked names the job already has (from its last_metrics).
  async load(knownNames) {
    const names = [LOSS, ...knownNames.filter(isEval)];
    await this.fetch(names, 0);
  }

  // A `metrics` event {names, step}: fetch its tracked series from the first step we lack.
  // Replayed events (after a reconnect from the start) name steps we hold and fetch nothing.
  noteEvent(data) {
    const names = (data.names || []).filter(tracked)
      .filter((n) => !this.series.has(n) || data.step > this.last(n));
    if (!names.length) return;
    const since = Math.min(...names.map((n) => (this.series.has(n) ? this.last(n) + 1 : data.step)));
    if (this.pending) {
      names.forEach((n) => this.pending.names.add(n));
      this.pending.since = Math.min(this.pending.since, since);
    } else {
      this.pending = { names: new Set(names), since };
    }
    this.drain();
  }

  async drain() {
    if (this.busy) return; // the running fetch drains again when done
    this.busy = true;
    try {
      while (this.pending) {
        const { names, since } = this.pending;
        this.pending = null;
        try {
          await this.fetch([...names], since);
        } catch (err) {
          this.onError(err); // the next event asks again from the last step held
        }
      }
    } finally {
      this.busy = false;
    }
  }

  async fetch(names, since) {
    const query = new URLSearchParams({ names: names.join(","), since_step: String(since) });
    const body = await getJson(`/jobs/${this.jobId}/metrics?${query}`);
    let changed = false;
    for (const s of body.series) {
      const points = this.series.get(s.name) || [];
      const after = points.length ? points.at(-1).step : -1;
      const fresh = s.points.filter((p) => p.step > after).map((p) => ({ step: p.step, value: p.value }));
      if (fresh.length || !this.series.has(s.name)) changed = true;
      this.series.set(s.name, points.concat(fresh));
    }
    if (changed) this.onChange();
  }
}
