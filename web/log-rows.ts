/** The columns the Logs and Live tail pages show a log line in, so the two tables read alike. */
import type { LogRow } from './api.ts';
import { badge, h } from './dom.ts';
import { fmtTime } from './format.ts';

export function logTableHead(): HTMLElement {
  return h(
    'thead',
    null,
    h(
      'tr',
      null,
      h('th', null, 'Time'),
      h('th', null, 'Level'),
      h('th', null, 'Service'),
      h('th', null, 'Env'),
      h('th', null, 'Message'),
    ),
  );
}

export function logCells(row: LogRow): HTMLElement[] {
  return [
    h('td', { class: 'nowrap mono' }, fmtTime(row.timestamp)),
    h('td', null, badge(row.level)),
    h('td', null, row.service),
    h('td', { class: 'muted' }, row.environment),
    h('td', null, h('div', { class: 'msg' }, row.message)),
  ];
}
