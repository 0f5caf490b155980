// Rewards catalog: list (GET /rewards), create, edit price and stock (PATCH with the version
// read, so two operators cannot overwrite each other), deactivate; a gift claim marked
// shipped or cancelled by member id and claim id (the fulfilment route of the order system).
import { api, ApiProblem, newKey } from '../api.js';
import { t } from '../i18n.js';
import { num, time, el } from '../format.js';

function problemText(x) {
  return x instanceof ApiProblem ? `${x.code || x.status}: ${x.message}` : String(x.message || x);
}

export function render(view) {
  const list = el('tbody', { id: 'reward-list' });
  const err = el('div', { class: 'form-error', role: 'alert' });
  const refresh = async () => {
    try {
      const { rewards } = await api('GET', '/rewards');
      list.replaceChildren(...rewards.map((r) => {
        const price = el('input', { value: r.price, size: 7, inputmode: 'numeric', 'aria-label': t('rew.price') });
        const stock = el('input', { value: r.stock ?? '', size: 7, inputmode: 'numeric', placeholder: t('rew.unlimited'), 'aria-label': t('rew.stock') });
        const msg = el('span', {});
        const save = el('button', { type: 'button', class: 'secondary', onclick: async () => {
          msg.className = ''; msg.textContent = '';
          try {
            await api('PATCH', `/rewards/${encodeURIComponent(r.rewardId)}`, { price: Number(price.value), stock: stock.value.trim() === '' ? null : Number(stock.value), version: r.version });
            refresh();
          } catch (x) { msg.className = 'field-error'; msg.textContent = problemText(x); }
        } }, t('common.save'));
        const off = el('button', { type: 'button', class: 'secondary', disabled: !r.active, onclick: async () => {
          try { await api('POST', `/rewards/${encodeURIComponent(r.rewardId)}/deactivate`); refresh(); } catch (x) { msg.className = 'field-error'; msg.textContent = problemText(x); }
        } }, t('rew.deactivate'));
        return el('tr', { dataset: { rewardId: r.rewardId } }, el('td', {}, r.name), el('td', {}, t(`rew.kind.${r.kind}`)), el('td', {}, price), el('td', {}, stock),
          el('td', { class: 'num' }, num(r.claimed)), el('td', {}, r.active ? t('rew.yes') : t('rew.no')), el('td', {}, time(r.updatedAt)), el('td', { class: 'row' }, save, off, msg));
      }));
      if (!rewards.length) list.replaceChildren(el('tr', {}, el('td', { colspan: 8, class: 'muted' }, t('common.none'))));
    } catch (x) { err.textContent = `${t('common.error')}: ${problemText(x)}`; }
  };

  const name = el('input', { id: 'reward-name' });
  const kind = el('select', { id: 'reward-kind' }, el('option', { value: 'coupon' }, t('rew.kind.coupon')), el('option', { value: 'gift' }, t('rew.kind.gift')));
  const price = el('input', { id: 'reward-price', inputmode: 'numeric' });
  const stock = el('input', { id: 'reward-stock', inputmode: 'numeric', placeholder: t('rew.unlimited') });
  const coupon = el('select', { id: 'reward-coupon' }, ['amount-20', 'percent-15', 'free-shipping'].map((c) => el('option', { value: c }, c)));
  const msg = el('div', {});
  let rewardKey = newKey('reward'); // kept until the reward is created: a resend is a replay
  const create = el('form', { class: 'grid card', id: 'reward-form', onsubmit: async (e) => {
    e.preventDefault();
    msg.className = ''; msg.textContent = '';
    const body = { name: name.value, kind: kind.value, price: Number(price.value) };
    if (stock.value.trim() !== '') body.stock = Number(stock.value);
    if (kind.value === 'coupon') body.coupon = coupon.value;
    try {
      await api('POST', '/rewards', body, { 'idempotency-key': rewardKey });
      rewardKey = newKey('reward');
      msg.className = 'notice'; msg.textContent = t('rew.saved');
      name.value = ''; price.value = ''; stock.value = '';
      refresh();
    } catch (x) { msg.className = 'form-error'; msg.textContent = problemText(x); }
  } }, el('label', {}, t('rew.name')), name, el('label', {}, t('rew.kind')), kind, el('label', {}, t('rew.price')), price,
  el('label', {}, t('rew.stock')), stock, el('label', {}, t('rew.coupon')), coupon, el('span'), el('div', {}, el('button', { type: 'submit' }, t('common.create')), msg));

  const member = el('input', { id: 'claim-member', placeholder: t('mem.id') });
  const claim = el('input', { id: 'claim-id', placeholder: t('rew.claimId') });
  const claimMsg = el('div', {});
  const fulfil = (status) => async () => {
    claimMsg.className = ''; claimMsg.textContent = '';
    try {
      const r = await api('POST', `/internal/members/${encodeURIComponent(member.value.trim())}/reward-claims/${encodeURIComponent(claim.value.trim())}/fulfilment`, { status });
      claimMsg.className = 'notice'; claimMsg.textContent = `${r.claimId ?? claim.value}: ${r.fulfilment ?? status}`;
    } catch (x) { claimMsg.className = 'form-error'; claimMsg.textContent = problemText(x); }
  };
  const claims = el('div', { class: 'card' }, el('p', { class: 'muted' }, t('rew.claimsNote')),
    el('div', { class: 'row' }, member, claim, el('button', { type: 'button', onclick: fulfil('shipped') }, t('rew.ship')), el('button', { type: 'button', class: 'secondary', onclick: fulfil('cancelled') }, t('rew.cancel'))), claimMsg);

  view.append(el('h1', {}, t('rew.title')), err,
    el('table', { class: 'card' }, el('thead', {}, el('tr', {}, ['rew.name', 'rew.kind', 'rew.price', 'rew.stock', 'rew.claimed', 'rew.active', 'rew.updatedAt', 'rew.edit'].map((k) => el('th', {}, t(k))))), list),
    el('h2', {}, t('rew.new')), create, el('h2', {}, t('rew.claims')), claims);
  refresh();
}
