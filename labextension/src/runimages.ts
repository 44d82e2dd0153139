/**
 * The images a run logged (``run.log_image``): each is a file under ``outputs/images/`` and a
 * text point of the metric of its name holding that path. The gallery lists the files once when
 * the run view opens, then adds each image whose point streams in: no polling of the files.
 */

import { TrainApi } from './api';
import { h } from './dom';
import { IMetricPoint } from './metrics';

export const IMAGES_PREFIX = 'outputs/images/';

/** Whether a metric point (or a file name) is a logged image. */
export function isImagePath(value: unknown): value is string {
  return typeof value === 'string' && value.startsWith(IMAGES_PREFIX) && !value.includes('/../') &&
    /\.(png|jpe?g|gif|svg|webp|bmp)$/i.test(value);
}

export class RunImages {
  constructor(
    panel: HTMLElement,
    private readonly api: TrainApi,
    private readonly runId: string
  ) {
    this._node = h('div', { class: 'jp-train-images', testid: 'jp-train-images', hidden: true });
    panel.append(this._node);
  }

  /** The images already in the run's history. */
  async load(): Promise<void> {
    try {
      (await this.api.files(this.runId)).filter(isImagePath).sort().forEach(f => this._show(f));
    } catch (err) {
      console.warn(`jupyter-train: images of ${this.runId}`, err); // streamed ones still appear
    }
  }

  /** Points from the run's stream: a logged image's path adds it. */
  add(items: ReadonlyArray<IMetricPoint>): void {
    for (const p of items) {
      if (isImagePath(p.value)) {
        this._show(p.value);
      }
    }
  }

  get shown(): string[] {
    return [...this._shown];
  }

  private _show(path: string): void {
    if (this._shown.has(path)) {
      return;
    }
    this._shown.add(path);
    const name = path.slice(IMAGES_PREFIX.length);
    this._node.append(
      h('figure', { class: 'jp-train-image', 'data-image': path },
        h('a', { href: this.api.fileUrl(this.runId, path), target: '_blank', rel: 'noopener', title: `Open ${name}` },
          h('img', { src: this.api.fileUrl(this.runId, path), alt: name, loading: 'lazy' })),
        h('figcaption', {}, name))
    );
    this._node.hidden = false;
  }

  private _node: HTMLDivElement;
  private _shown = new Set<string>();
}
