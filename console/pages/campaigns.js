// Campaigns: the list (GET /campaigns, each line's state from GET /campaigns/{id}), the create
// form whose errors are the API's own (each problem code shown next to its field), run now, a
// live progress bar until the run is drained, and the experiment's arms from the KPI report.
import { api, ApiProblem, newKey } from '../api.js';
import { t } from '../i18n.js';
import { cny, num, pct, time, el } from '../format.js';

const TIERS = ['regular', 'silver', 'gold', 'diamond'];
// Which form field a problem code of POST /campaigns belongs to; others show above the button.
const FIELD_OF = {
  invalid_name: 'name', empty_segment: 'tiers', invalid_segment: 'tiers', invalid_budget: 'budget',
  schedule_in_past: 'at', invalid_experiment: 'holdout',
};
const POLL_MS = 1000;

function couponField(detail) {
  if (/validDays|valid/.test(detail)) return 'validDays';
  if (/percent/.test(detail)) return 'percent';
  if (/minSpend/.test(detail)) return 'minSpend';
  if (/value|amount/.test(detail)) return 'value';
  return 'couponTitle';
}

function fen(yuan) {
  const v = Number(yuan);
  return Number.isFinite(v) ? Math.round(v * 100) : yuan;
}

function createForm(onCreated) {
  const f = {};
  const errs = {};
  const input = (name, attrs = {}) => { f[name] = el('input', { name, ...attrs }); errs[name] = el('div', { class: 'field-error', id: `err-${name}` }); return [f[name], errs[name]]; };
  const row = (label, name, control) => [el('label', { for: name }, t(label)), el('div', {}, control, errs[name])];
  input('name', { id: 'name' });
  f.tiers = el('div', { class: 'row', id: 'tiers' }, TIERS.map((k) => el('label', {}, el('input', { type: 'checkbox', value: k, checked: k === 'regular' }), t(`tier.${k}`))));
  errs.tiers = el('div', { class: 'field-error', id: 'err-tiers' });
  input('couponTitle', { id: 'couponTitle', value: '' });
  f.offerKind = el('select', { name: 'offerKind', id: 'offerKind' }, ['amount_off', 'percent_off', 'free_shipping'].map((k) => el('option', { value: k }, t(`camp.offer.${k}`))));
  input('value', { id: 'value', inputmode: 'decimal', value: '10' });
  input('percent', { id: 'percent', inputmode: 'numeric', value: '10' });
  input('minSpend', { id: 'minSpend', inputmode: 'decimal', value: '0' });
  input('validDays', { id: 'validDays', inputmode: 'numeric', value: '7' });
  input('budget', { id: 'budget', inputmode: 'numeric', placeholder: '∞' });
  input('holdout', { id: 'holdout', inputmode: 'decimal', value: '0' });
  f.variants = el('select', { name: 'variants', id: 'variants' }, el('option', { value: 'none' }, t('camp.variants.none')), el('option', { value: 'ab' }, t('camp.variants.ab')));
  f.schedule = el('select', { name: 'schedule', id: 'schedule' }, el('option', { value: 'monthly' }, t('camp.schedule.monthly')), el('option', { value: 'once' }, t('camp.schedule.once')));
  input('at', { id: 'at', type: 'datetime-local' });
  const formErr = el('div', { class: 'form-error', role: 'alert', id: 'campaign-form-error' });
  const done = el('div', { class: 'notice', id: 'campaign-created' });
  let key = newKey('campaign');
  const body = () => {
    const kind = f.offerKind.value;
    const offer = { kind, minSpend: fen(f.minSpend.value) };
    if (kind === 'amount_off') offer.value = fen(f.value.value);
    if (kind === 'percent_off') { offer.percent = Number(f.percent.value); offer.cap = fen(f.value.value); }
    const b = {
      name: f.name.value,
      segment: { tiers: [...f.tiers.querySelectorAll('input:checked')].map((i) => i.value) },
      coupon: { title: f.couponTitle.value, offer, validDays: Number(f.validDays.value) },
      schedule: f.schedule.value === 'once' ? { kind: 'once', at: f.at.value ? new Date(f.at.value).toISOString() : '' } : { kind: 'monthly_member_day' },
    };
    if (f.budget.value.trim() !== '') b.budget = Number(f.budget.value);
    if (Number(f.holdout.value)) b.holdout = Number(f.holdout.value) / 100;
    if (f.variants.value === 'ab') {
      b.variants = [{ name: 'amount-off', weight: 1 }, { name: 'free-shipping', weight: 1, coupon: { title: t('camp.offer.free_shipping'), offer: { kind: 'free_shipping', minSpend: 0 }, validDays: Number(f.validDays.value) } }];
    }
    return b;
  };
  const submit = el('button', { type: 'submit', id: 'create-campaign' }, t('common.create'));
  const form = el('form', { class: 'grid card', id: 'campaign-form', novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    for (const k of Object.keys(errs)) { errs[k].textContent = ''; f[k]?.removeAttribute?.('aria-invalid'); }
    formErr.textContent = ''; done.textContent = '';
    submit.disabled = true;
    try {
      const r = await api('POST', '/campaigns', body(), { 'idempotency-key': key });
      key = newKey('campaign');
      done.textContent = `${t('camp.created')}: ${r.campaignId}`;
      onCreated(r.campaignId);
    } catch (x) {
      if (!(x instanceof ApiProblem)) throw x;
      const field = x.code === 'invalid_coupon' ? couponField(x.message) : FIELD_OF[x.code];
      if (field && errs[field]) {
        errs[field].textContent = x.message;
        f[field]?.setAttribute?.('aria-invalid', 'true');
        f[field]?.focus?.();
      } else {
        formErr.textContent = `${x.status} ${x.code}: ${x.message}`;
      }
      // A refused definition wrote nothing: the same key may carry the corrected one.
    } finally {
      submit.disabled = false;
    }
  } },
  row('camp.name', 'name', f.name), row('camp.tiers', 'tiers', f.tiers), row('camp.couponTitle', 'couponTitle', f.couponTitle),
  el('label', {}, t('camp.offerKind')), f.offerKind, row('camp.value', 'value', f.value), row('camp.percent', 'percent', f.percent),
  row('camp.minSpend', 'minSpend', f.minSpend), row('camp.validDays', 'validDays', f.validDays), row('camp.budget', 'budget', f.budget),
  el('label', {}, t('camp.variants')), f.variants, row('camp.holdout', 'holdout', f.holdout),
  el('label', {}, t('camp.schedule')), f.schedule, row('camp.at', 'at', f.at),
  el('span'), el('div', {}, submit, formErr, done));
  return form;
}

function stateBadge(run) {
  const s = run ? run.state : 'none';
  return el('span', { class: `state ${s}` }, t(`camp.state.${s}`));
}

function progress(run) {
  const total = Math.max(run.targeted, 1);
  const w = (n) => `${(100 * n) / total}%`;
  return el('div', { class: 'run', dataset: { runId: run.runId, state: run.state, targeted: run.targeted, issued: run.issued, skipped: run.skipped, failed: run.failed } },
    el('div', { class: 'row' }, stateBadge(run), el('span', { class: 'muted' }, time(run.startedAt))),
    el('div', { class: 'progress', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': run.targeted, 'aria-valuenow': run.issued + run.skipped + run.failed },
      el('div', { class: 'issued', style: `width:${w(run.issued)}` }), el('div', { class: 'skipped', style: `width:${w(run.skipped)}` }), el('div', { class: 'failed', style: `width:${w(run.failed)}` })),
    el('div', { class: 'legend' },
      el('span', {}, `${t('camp.targeted')} ${num(run.targeted)}`), el('span', {}, `${t('camp.issued')} ${num(run.issued)}`),
      el('span', {}, `${t('camp.skipped')} ${num(run.skipped)}`), el('span', {}, `${t('camp.failed')} ${num(run.failed)}`)));
}

function experimentTable(report, id) {
  const rows = report.campaigns.filter((c) => c.grant.startsWith(`campaign:${id}:`) && c.arms);
  if (!rows.length) return el('p', { class: 'muted' }, t('camp.noExperiment'));
  return rows.map((c) => el('table', { class: 'experiment' },
    el('thead', {}, el('tr', {}, ['camp.arm', 'camp.armMembers', 'camp.converted', 'camp.convRate', 'camp.gmvPerMember', 'camp.uplift', 'camp.ci', 'camp.pValue', 'camp.verdict'].map((k) => el('th', {}, t(k))))),
    el('tbody', {}, c.arms.map((a) => el('tr', {},
      el('td', {}, a.holdout ? t('camp.holdoutArm') : a.arm), el('td', { class: 'num', dataset: { members: a.members } }, num(a.members)), el('td', { class: 'num' }, num(a.converted)),
      el('td', { class: 'num' }, pct(a.conversionRate)), el('td', { class: 'num' }, cny(a.gmvPerMember)),
      el('td', { class: 'num' }, a.uplift ? pct(a.uplift.difference, 2) : '—'),
      el('td', { class: 'num' }, a.uplift ? `${pct(a.uplift.ciLow, 2)} … ${pct(a.uplift.ciHigh, 2)}` : '—'),
      el('td', { class: 'num' }, a.uplift ? a.uplift.pValue.toFixed(3) : '—'),
      el('td', {}, a.uplift ? t(`verdict.${a.uplift.verdict}`) : '—'))))));
}

export function render(view) {
  let timer = null;
  let stopped = false;
  const list = el('tbody', { id: 'campaign-list' });
  const detail = el('div', { id: 'campaign-detail' });
  const err = el('div', { class: 'form-error', role: 'alert' });

  const open = async (id) => {
    clearTimeout(timer);
    const runBox = el('div', { id: 'run-progress' });
    const runErr = el('div', { class: 'form-error' });
    const exp = el('div', { id: 'experiment' });
    const runBtn = el('button', { type: 'button', id: 'run-now', onclick: async () => {
      runBtn.disabled = true; runErr.textContent = '';
      try { await api('POST', `/campaigns/${encodeURIComponent(id)}/run`); poll(); } catch (x) { runErr.textContent = x.message; } finally { runBtn.disabled = false; }
    } }, t('camp.run'));
    // The report counts a run from the table's stream, a moment after the run drained: an
    // experiment's arms are asked for again for a little while until they are there.
    const showExperiment = async (campaign, run, tries) => {
      if (stopped) return;
      const r = await api('GET', '/reports/kpis').catch(() => null);
      if (r) exp.replaceChildren(...[].concat(experimentTable(r, id)));
      const isExperiment = (campaign.variants?.length || 0) > 0 || (campaign.holdout || 0) > 0;
      // Every member the run gave a coupon or held out is in one arm once the report caught up.
      const counted = [...exp.querySelectorAll('td[data-members]')].reduce((n, td) => n + Number(td.dataset.members), 0);
      const expected = run.issued + run.skippedReasons.holdout;
      exp.dataset.complete = String(!isExperiment || counted >= expected);
      if (isExperiment && counted < expected && tries < 40) timer = setTimeout(() => showExperiment(campaign, run, tries + 1), 1500);
    };
    const poll = async () => {
      if (stopped) return;
      try {
        const c = await api('GET', `/campaigns/${encodeURIComponent(id)}`);
        const run = c.runs[0];
        runBox.replaceChildren(run ? progress(run) : el('p', { class: 'muted' }, t('camp.state.none')));
        if (run && run.state === 'running') timer = setTimeout(poll, POLL_MS);
        else if (run) { showExperiment(c.campaign, run, 0); refreshList(); }
      } catch (x) { runErr.textContent = x.message; }
    };
    detail.replaceChildren(el('div', { class: 'card' }, el('h2', {}, id), el('div', { class: 'row' }, runBtn), runErr, runBox, el('h2', {}, t('camp.experiment')), exp));
    poll();
  };

  const refreshList = async () => {
    try {
      const { campaigns } = await api('GET', '/campaigns');
      const shown = await Promise.all(campaigns.map(async (c) => {
        const full = await api('GET', `/campaigns/${encodeURIComponent(c.campaignId)}`).catch(() => null);
        return { ...c, run: full?.runs?.[0] };
      }));
      list.replaceChildren(...shown.map((c) => el('tr', { dataset: { campaignId: c.campaignId } },
        el('td', {}, el('a', { href: '#/campaigns', onclick: (e) => { e.preventDefault(); open(c.campaignId); } }, c.name)),
        el('td', {}, stateBadge(c.run)), el('td', {}, c.run ? `${num(c.run.issued)} / ${num(c.run.targeted)}` : '—'), el('td', {}, time(c.createdAt)))));
      if (!shown.length) list.replaceChildren(el('tr', {}, el('td', { colspan: 4, class: 'muted' }, t('common.none'))));
    } catch (x) { err.textContent = `${t('common.error')}: ${x.message}`; }
  };

  view.append(el('h1', {}, t('camp.title')), err,
    el('div', { class: 'cols' },
      el('div', {}, el('h2', {}, t('camp.list')), el('table', {}, el('thead', {}, el('tr', {}, ['camp.name', 'camp.state', 'camp.lastRun', 'camp.createdAt'].map((k) => el('th', {}, t(k))))), list), detail),
      el('div', {}, el('h2', {}, t('camp.new')), createForm((id) => { refreshList(); open(id); }))));
  refreshList();
  return () => { stopped = true; clearTimeout(timer); };
}
