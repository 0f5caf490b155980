// Dashboard: the KPI report (GET /reports/kpis) as numbers and Apache ECharts charts. Every
// number shown is a field of the report as answered (data-value keeps it raw), never recomputed
// differently here, so the page and the API cannot disagree.
import * as echarts from '../vendor/echarts.js';
import { api } from '../api.js';
import { t } from '../i18n.js';
import { cny, num, pct, el, setTimeZone } from '../format.js';

const TIERS = ['regular', 'silver', 'gold', 'diamond'];
let range = null; // { from, to } once the operator picked one

function stat(key, value, text) {
  return el('div', { class: 'stat', dataset: { kpi: key, value: value === null ? 'null' : String(value) } },
    el('div', { class: 'label' }, t(`kpi.${key}`)), el('div', { class: 'value' }, text));
}

export function numbers(r) {
  const tiers = r.totals.tiersAtEnd;
  const month = r.months[r.months.length - 1] || { activeMembers: 0, repurchaseRate: null };
  return [
    ['members', TIERS.reduce((s, k) => s + tiers[k], 0), num],
    ['joined', r.totals.joined, num],
    ['active', month.activeMembers, num],
    ['purchases', r.totals.purchases, num],
    ['gmv', r.totals.gmv, cny],
    ['netGmv', r.totals.netGmv, cny],
    ['repurchase', month.repurchaseRate, pct],
    ['liability', r.totals.liabilityAtEnd.points, num],
    ['liabilityValue', r.totals.liabilityAtEnd.value, cny],
    ['couponsIssued', r.totals.coupons.issued, num],
    ['couponsRedeemed', r.totals.coupons.redeemed, num],
    ['redemption', r.totals.coupons.redemptionRate, pct],
  ];
}

function charts(r, box, charts) {
  const add = (title, option) => {
    const div = el('div', { class: 'chart' });
    box.append(div);
    const c = echarts.init(div);
    c.setOption({ title: { text: title, left: 8, top: 6, textStyle: { fontSize: 13 } }, tooltip: { trigger: 'axis' }, grid: { top: 48, left: 56, right: 56, bottom: 32 }, ...option });
    charts.push(c);
  };
  const days = r.days.map((d) => d.date.slice(5));
  add(t('chart.gmv'), {
    legend: { top: 6, right: 8 },
    xAxis: { type: 'category', data: days },
    yAxis: [{ type: 'value', axisLabel: { formatter: (v) => `¥${v}` } }, { type: 'value', minInterval: 1 }],
    series: [
      { name: t('series.gmv'), type: 'bar', data: r.days.map((d) => d.gmv / 100) },
      { name: t('series.orders'), type: 'line', yAxisIndex: 1, data: r.days.map((d) => d.purchases) },
    ],
  });
  add(t('chart.members'), {
    legend: { top: 6, right: 8 },
    xAxis: { type: 'category', data: r.months.map((m) => m.month) },
    yAxis: { type: 'value', minInterval: 1 },
    series: [
      { name: t('series.members'), type: 'bar', data: r.months.map((m) => {
        const last = [...r.days].reverse().find((d) => d.date.startsWith(m.month));
        return last ? TIERS.reduce((s, k) => s + last.tiers[k], 0) : null;
      }) },
      { name: t('series.active'), type: 'bar', data: r.months.map((m) => m.activeMembers) },
    ],
  });
  add(t('chart.liability'), {
    xAxis: { type: 'category', data: days },
    yAxis: { type: 'value' },
    series: [{ name: t('series.points'), type: 'line', areaStyle: {}, data: r.days.map((d) => d.liability.points) }],
  });
  add(t('chart.redemption'), {
    xAxis: { type: 'category', data: days },
    yAxis: { type: 'value', max: 1, axisLabel: { formatter: (v) => `${Math.round(v * 100)}%` } },
    series: [{ name: t('series.rate'), type: 'line', connectNulls: true, data: r.days.map((d) => d.coupons.redemptionRate) }],
  });
  add(t('chart.tiers'), {
    tooltip: { trigger: 'item' },
    legend: { bottom: 4 },
    series: [{ type: 'pie', stillShowZeroSum: false, radius: ['35%', '65%'], data: TIERS.map((k) => ({ name: t(`tier.${k}`), value: r.totals.tiersAtEnd[k] })) }],
  });
  const moves = r.totals.tierMoves;
  add(t('chart.moves'), {
    xAxis: { type: 'category', data: moves.map((m) => `${t(`tier.${m.from}`)}→${t(`tier.${m.to}`)}`) },
    yAxis: { type: 'value', minInterval: 1 },
    series: [{ name: t('series.moves'), type: 'bar', data: moves.map((m) => m.members) }],
  });
}

export function render(view) {
  const live = [];
  const from = el('input', { type: 'date', name: 'from' });
  const to = el('input', { type: 'date', name: 'to' });
  const err = el('div', { class: 'form-error', role: 'alert' });
  const stats = el('div', { class: 'stats', id: 'kpis' });
  const box = el('div', { class: 'charts' });
  const tz = el('span', { class: 'muted' });
  const load = async () => {
    err.textContent = '';
    const q = range ? `?from=${range.from}&to=${range.to}` : '';
    try {
      const r = await api('GET', `/reports/kpis${q}`);
      setTimeZone(r.timeZone);
      from.value = r.from; to.value = r.to;
      tz.textContent = `${t('dash.tz')}: ${r.timeZone}`;
      stats.replaceChildren(...numbers(r).map(([k, v, f]) => stat(k, v, f(v))));
      for (const c of live.splice(0)) c.dispose();
      box.replaceChildren();
      charts(r, box, live);
      stats.dataset.from = r.from; stats.dataset.to = r.to;
      stats.dataset.ready = 'true';
    } catch (e) {
      err.textContent = `${t('common.error')}: ${e.message}`;
    }
  };
  const apply = el('button', { type: 'button', onclick: () => { range = { from: from.value, to: to.value }; load(); } }, t('dash.apply'));
  view.append(el('h1', {}, t('dash.title')),
    el('div', { class: 'row card' }, el('label', {}, t('dash.from')), from, el('label', {}, t('dash.to')), to, apply, tz), err, stats, box);
  load();
  const resize = () => live.forEach((c) => c.resize());
  window.addEventListener('resize', resize);
  return () => { window.removeEventListener('resize', resize); live.forEach((c) => c.dispose()); };
}
