/**
 * Reading prom-client metrics in tests: one sample's value by its exact labels.
 *
 * Invariant: a sample that does not exist reads as 0, as Prometheus treats an absent
 * counter; labels compare exactly (same keys, same values), in any order.
 */
interface Readable {
  get(): Promise<{
    values: { labels: Record<string, unknown>; value: number; metricName?: string }[];
  }>;
}

const key = (labels: Record<string, unknown>) =>
  JSON.stringify(Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)));

/** The value of `metric`'s sample with exactly `labels` (a histogram: its `_count`). */
export async function sampleOf(metric: Readable, labels: Record<string, unknown> = {}) {
  const { values } = await metric.get();
  const want = key(labels);
  const found = values.find(
    (v) =>
      (v.metricName === undefined || !/_(bucket|sum)$/.test(v.metricName)) &&
      key(v.labels) === want,
  );
  return found?.value ?? 0;
}
