/**
 * Text the panel shows for numbers and times: durations, metric values, sizes, dates, a
 * node's resources and one line about a Ray cluster. Pure: jest tests it directly.
 */

/** "850 ms", "12 s", "3 min 05 s", "2 h 04 min"; "—" for null. */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) {
    return '—';
  }
  if (seconds < 1) {
    return `${Math.round(seconds * 1000)} ms`;
  }
  if (seconds < 60) {
    return `${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)} s`;
  }
  const s = Math.round(seconds);
  if (s < 3600) {
    return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  }
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

/** A metric value for a table cell: 4 significant digits, integers as they are. */
export function formatValue(value: number | string | null | undefined): string {
  if (value === null || value === undefined) {
    return '';
  }
  if (typeof value === 'string') {
    return value;
  }
  if (Number.isInteger(value)) {
    return String(value);
  }
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e6)) {
    return value.toExponential(3);
  }
  return String(Number(value.toPrecision(4)));
}

/** A size in bytes as "512 B", "1.5 KB", "2.0 MB", "3.1 GB" (powers of 1000); '' for none. */
export function formatBytes(n: number | undefined): string {
  if (n === undefined || n === null) {
    return '';
  }
  const units = ['B', 'KB', 'MB', 'GB'];
  let v = n;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i ? v.toFixed(1) : v} ${units[i]}`;
}

/** Local date-time of epoch seconds, '' for none. */
export function formatTime(ts: number | null | undefined, short = false): string {
  if (ts === null || ts === undefined || !isFinite(ts)) {
    return '';
  }
  const d = new Date(ts * 1000);
  const today = d.toDateString() === new Date().toDateString();
  if (short) {
    return today
      ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
      : d.toLocaleDateString([], { month: 'short', day: 'numeric' });
  }
  return today ? d.toLocaleTimeString() : d.toLocaleString();
}

/* ---- Ray clusters (the Compute section) ---------------------------------------------- */

export interface IRayNodeView {
  node_id: string;
  address: string;
  state: string;
  resources: Record<string, number>;
  used?: Record<string, number>;
}

export interface IRayStatusView {
  state: string;
  nodes: ReadonlyArray<IRayNodeView>;
  error?: string | null;
  requested?: ReadonlyArray<Record<string, number>>;
  pending_nodes?: number;
  waiting_placement_groups?: number;
}

const GIB = 1024 ** 3;

function amount(name: string, value: number): string {
  if (name === 'memory') {
    return (value / GIB).toFixed(1);
  }
  return Number.isInteger(value) ? String(value) : value.toFixed(2).replace(/0+$/, '');
}

/**
 * A node's resources as "CPU 2/2 · GPU 0/1 · memory 1.0/22.9 GiB": CPU and GPU first, custom
 * resources by name, memory last; used/total where the usage is known, else the total.
 */
export function formatResources(total: Record<string, number>, used?: Record<string, number>): string {
  const rank = (k: string) => (k === 'CPU' ? 0 : k === 'GPU' ? 1 : k === 'memory' ? 3 : 2);
  const names = Object.keys(total).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  return names
    .map(k => {
      const tot = amount(k, total[k]);
      const text = used && k in used ? `${amount(k, used[k])}/${tot}` : tot;
      return `${k} ${text}${k === 'memory' ? ' GiB' : ''}`;
    })
    .join(' · ');
}

/** One line about a Ray cluster: its nodes, busy and idle, and what the autoscaler is doing. */
export function raySummary(ray: IRayStatusView): string {
  if (ray.state === 'unreachable') {
    return `unreachable: ${ray.error ?? 'no answer'}`;
  }
  if (ray.state === 'connecting') {
    return 'connecting…';
  }
  if (ray.state === 'not started') {
    return ray.error ?? 'not started';
  }
  const busy = ray.nodes.filter(n => n.state === 'busy').length;
  const idle = ray.nodes.filter(n => n.state === 'idle').length;
  const parts = [`${ray.nodes.length} Ray node${ray.nodes.length === 1 ? '' : 's'}`];
  if (busy || idle) {
    parts.push(`${busy} busy`, `${idle} idle`);
  }
  if (ray.pending_nodes) {
    parts.push(`${ray.pending_nodes} starting`);
  }
  if (ray.waiting_placement_groups) {
    parts.push(`${ray.waiting_placement_groups} waiting for resources`);
  }
  const asked = ray.requested?.length ?? 0;
  if (asked) {
    parts.push(`${asked} bundle${asked === 1 ? '' : 's'} requested`);
  }
  return parts.join(' · ');
}
