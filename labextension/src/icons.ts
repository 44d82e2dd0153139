import { LabIcon } from '@jupyterlab/ui-components';

const trainIconSvg = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M3 3h2v16h16v2H3z"/>
    <path d="M7 15.6l4.1-4.6 3 2.6 4.6-6.1 1.6 1.2-5.9 7.9-3-2.6-2.9 3.3z"/>
  </g>
</svg>`;

export const trainIcon = new LabIcon({
  name: 'jupyter-train:runs',
  svgstr: trainIconSvg
});
