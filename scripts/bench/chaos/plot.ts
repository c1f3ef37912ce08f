/** The chaos report as an HTML page of inline-SVG distribution plots (scripts/bench/common/plot.ts), one per metric, modes side by side. */
import { PARTICIPANTS, SILENT_DB } from '../../probe/mix.ts';
import { escapeHtml, renderPlotPage, type PlotMetric } from '../common/plot.ts';
import { METRICS, type KillMetric, type PageMetric, type Report } from './report.ts';

export function plotHtml(report: Report): string {
  const colours = new Map(PARTICIPANTS.map((p) => [p.name, p.tile]));
  const modes = Object.entries(report.modes);
  const metrics: PlotMetric[] = METRICS.map((m) => ({
    label: m.label,
    unit: 'ms',
    note: m.note,
    series: modes.map(([name, rep]) => ({
      name,
      points:
        m.per === 'page'
          ? rep.rows.flatMap((r) =>
              r.pages
                .filter((p) => p.recovered && typeof p[m.key as PageMetric] === 'number')
                .map((p) => ({ value: p[m.key as PageMetric] as number, colour: colours.get(p.name), label: `kill ${r.kill} ${p.name}${p.fallback ? ' (fallback)' : ''}` })),
            )
          : rep.rows.filter((r) => typeof r[m.key as KillMetric] === 'number').map((r) => ({ value: r[m.key as KillMetric] as number, colour: '#555555', label: `kill ${r.kill}` })),
    })),
  }));
  metrics.push({
    label: 'Own tone in own mix',
    unit: 'dB',
    note: `loudest of 4 analyser reads; "silent" means below ${SILENT_DB} dB; before the kill vs after the recovery, per page per kill`,
    reference: { value: SILENT_DB, label: `silent below ${SILENT_DB} dB` },
    series: modes.flatMap(([name, rep]) =>
      (['before', 'after'] as const).map((when) => ({
        name: `${name} ${when}`,
        points: rep.rows.flatMap((r) =>
          r.pages
            .map((p) => ({ value: when === 'before' ? p.ownToneBeforeDb : (p.ownToneAfterDb ?? NaN), colour: colours.get(p.name), label: `kill ${r.kill} ${p.name}` }))
            .filter((p) => Number.isFinite(p.value)),
        ),
      })),
    ),
  });
  const counts = modes
    .map(([name, r]) => `<tr><td>${escapeHtml(name)}</td><td>${r.rounds}</td><td>${r.counts.failedRounds}</td><td>${r.counts.fallbacks}</td><td>${r.counts.newPeerConnections}</td><td>${r.counts.changedIds}</td><td>${r.counts.pagesDisconnected}</td><td>${r.counts.ownToneAudibleBeforeKill}</td><td>${r.counts.lateStalls}</td><td>${r.counts.incidents}</td><td>${r.durationS}</td><td>${escapeHtml(r.aborted ?? (r.stoppedByTimeCap ? 'time cap' : ''))}</td></tr>`)
    .join('');
  return renderPlotPage({
    title: 'Chaos benchmark: kill -9 of the primary during a 3-participant call',
    subtitle: [
      `${report.date} · ${report.machine.cpus} cores (${report.machine.model}) · Node ${report.machine.node} · Chromium ${report.machine.chromium}`,
      `${modes.map(([n, r]) => `${n}: ${r.rounds} kills`).join(' · ')} · page samples: one per page per kill (pages that recovered); detection/promotion: one per kill`,
      'The headline is what a person perceives: the voice gap (another participant inaudible) and the tile gap (a tile not moving); the audio and video gaps count packets and rendered frames',
    ],
    legend: [...PARTICIPANTS.map((p) => ({ colour: p.tile, label: `${p.name} page` })), { colour: '#555555', label: 'per kill' }],
    metrics,
    footerHtml: `${modes
      .filter(([, r]) => r.incidents.length > 0)
      .map(([n, r]) => `<h2>Incidents no kill explains (${escapeHtml(n)})</h2><ul>${r.incidents.map((i) => `<li>${escapeHtml(`${i.at} pid ${i.pid ?? '?'}: ${i.what}`)}</li>`).join('')}</ul>`)
      .join('')}<table><tr><th>mode</th><th>kills</th><th>failed rounds</th><th>fallbacks</th><th>new peer connections</th><th>changed ids</th><th>page samples with a disconnect</th><th>own tone audible (before the kill too)</th><th>late stalls</th><th>incidents</th><th>duration s</th><th>stopped</th></tr>${counts}</table>`,
  });
}
