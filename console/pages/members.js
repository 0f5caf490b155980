// Member support: one member at a time, found by id or a verified contact sent in a POST body
// (never in the URL, never logged); profile, tier history, coupons, ledger pages, a manual
// points adjustment with a reason and its own Idempotency-Key, birthday, erasure.
import { api, newKey } from '../api.js';
import { t } from '../i18n.js';
import { cny, num, time, el } from '../format.js';

function table(cols, rows, body = el('tbody')) {
  body.append(...rows);
  return el('table', {}, el('thead', {}, el('tr', {}, cols.map(([k, cls]) => el('th', { class: cls }, t(k))))), body);
}

function ledgerRow(e) {
  return el('tr', { dataset: { kind: e.kind, points: e.points } },
    el('td', {}, time(e.at)), el('td', {}, t(`ledger.${e.kind}`)), el('td', { class: 'num' }, e.points > 0 ? `+${num(e.points)}` : num(e.points)),
    el('td', { class: 'num' }, num(e.balanceAfter)), el('td', {}, e.reason));
}

function memberView(found, reopen, onErased) {
  const p = found.profile;
  const id = p.memberId;
  const box = el('div', { id: 'member', dataset: { memberId: id } });
  const ledgerBody = el('tbody', { id: 'ledger' });
  const more = el('button', { type: 'button', class: 'secondary', hidden: true }, t('common.more'));
  let cursor = null;
  const loadLedger = async (reset) => {
    if (reset) { cursor = null; ledgerBody.replaceChildren(); }
    const q = cursor ? `?cursor=${encodeURIComponent(cursor)}` : '';
    const page = await api('GET', `/support/members/${encodeURIComponent(id)}/ledger${q}`);
    ledgerBody.append(...page.entries.map(ledgerRow));
    cursor = page.nextCursor || null;
    more.hidden = !cursor;
  };
  more.addEventListener('click', () => loadLedger(false));

  // Adjustment: the key is made when the form is shown and kept until an answer arrives, so a
  // double submit or a retry after a network error is the same adjustment, credited once.
  let adjustKey = newKey('adj');
  const points = el('input', { name: 'points', id: 'adjust-points', inputmode: 'numeric' });
  const reason = el('input', { name: 'reason', id: 'adjust-reason', maxlength: 200 });
  const adjustMsg = el('div', { id: 'adjust-message' });
  const adjust = el('form', { class: 'grid', id: 'adjust-form', onsubmit: async (e) => {
    e.preventDefault();
    adjustMsg.className = ''; adjustMsg.textContent = '';
    try {
      const r = await api('POST', `/support/members/${encodeURIComponent(id)}/adjustments`, { points: Number(points.value), reason: reason.value }, { 'idempotency-key': adjustKey });
      adjustKey = newKey('adj');
      adjustMsg.className = 'notice';
      adjustMsg.textContent = `${t('mem.adjustDone')}: ${r.pointsAdjusted > 0 ? '+' : ''}${num(r.pointsAdjusted)} → ${num(r.points)}`;
      points.value = ''; reason.value = '';
      reopen(adjustMsg.textContent);
    } catch (x) {
      adjustMsg.className = 'form-error';
      adjustMsg.textContent = `${x.code || x.status}: ${x.message}`;
      if (x.status && x.status < 500 && x.code !== 'idempotency_key_reused') return; // nothing was recorded; fix and resend with the same key
    }
  } }, el('label', { for: 'adjust-points' }, t('mem.adjustPoints')), points, el('label', { for: 'adjust-reason' }, t('mem.adjustReason')), reason, el('span'), el('div', {}, el('button', { type: 'submit', id: 'adjust-submit' }, t('common.save')), adjustMsg));

  // Gift claims: a pending gift is shipped or cancelled here (cancelling gives the points back).
  const claimsBody = el('tbody', { id: 'claims' });
  const claimsMsg = el('div', {});
  const loadClaims = async () => {
    const { claims } = await api('GET', `/support/members/${encodeURIComponent(id)}/reward-claims`);
    claimsBody.replaceChildren(...claims.map((c) => {
      const act = (status) => el('button', { type: 'button', class: status === 'shipped' ? '' : 'secondary', onclick: async () => {
        claimsMsg.className = ''; claimsMsg.textContent = '';
        try {
          await api('POST', `/internal/members/${encodeURIComponent(id)}/reward-claims/${encodeURIComponent(c.claimId)}/fulfilment`, { status });
          reopen(`${c.name}: ${t(`claim.${status}`)}`);
        } catch (x) { claimsMsg.className = 'form-error'; claimsMsg.textContent = `${x.code || x.status}: ${x.message}`; }
      } }, t(status === 'shipped' ? 'rew.ship' : 'rew.cancel'));
      return el('tr', { dataset: { claimId: c.claimId, status: c.status } }, el('td', {}, time(c.claimedAt)), el('td', {}, c.name), el('td', { class: 'num' }, num(c.price)),
        el('td', {}, t(`claim.${c.status}`)), el('td', { class: 'row' }, c.status === 'pending' ? [act('shipped'), act('cancelled')] : []));
    }));
    if (!claims.length) claimsBody.replaceChildren(el('tr', {}, el('td', { colspan: 5, class: 'muted' }, t('common.none'))));
  };

  const bday = el('input', { type: 'date', id: 'birthday' });
  const bdayReason = el('input', { id: 'birthday-reason', maxlength: 200 });
  const bdayMsg = el('div');
  const birthday = el('form', { class: 'grid', onsubmit: async (e) => {
    e.preventDefault();
    try {
      await api('PUT', `/members/${encodeURIComponent(id)}/birthday`, { birthday: bday.value, reason: bdayReason.value });
      reopen(t('mem.birthdayDone'));
    } catch (x) { bdayMsg.className = 'form-error'; bdayMsg.textContent = `${x.code || x.status}: ${x.message}`; }
  } }, el('label', {}, t('mem.birthday')), bday, el('label', {}, t('mem.birthdayReason')), bdayReason, el('span'), el('div', {}, el('button', { type: 'submit' }, t('common.save')), bdayMsg));

  const confirmId = el('input', { id: 'erase-confirm', placeholder: t('mem.eraseConfirm') });
  const eraseMsg = el('div');
  const erase = el('form', { class: 'row', onsubmit: async (e) => {
    e.preventDefault();
    if (confirmId.value !== id) { eraseMsg.className = 'form-error'; eraseMsg.textContent = t('mem.eraseConfirm'); return; }
    try { await api('DELETE', `/support/members/${encodeURIComponent(id)}`); onErased(); } catch (x) { eraseMsg.className = 'form-error'; eraseMsg.textContent = x.message; }
  } }, confirmId, el('button', { type: 'submit', class: 'secondary' }, t('mem.erase')), eraseMsg);

  const verified = (ok) => (ok ? t('mem.verified') : t('mem.unverified'));
  box.append(
    el('div', { class: 'cols' },
      el('div', { class: 'card' }, el('h2', {}, t('mem.profile')), el('dl', { class: 'kv' },
        el('dt', {}, t('mem.id')), el('dd', {}, id),
        el('dt', {}, t('mem.name')), el('dd', {}, p.name ?? '—'),
        el('dt', {}, t('mem.email')), el('dd', {}, p.email ? `${p.email} (${verified(p.emailVerified)})` : '—'),
        el('dt', {}, t('mem.phone')), el('dd', {}, p.phone ? `${p.phone} (${verified(p.phoneVerified)})` : '—'),
        el('dt', {}, t('mem.birthday')), el('dd', {}, p.birthday ?? '—'),
        el('dt', {}, t('mem.joinedAt')), el('dd', {}, time(p.joinedAt)),
        el('dt', {}, t('mem.tier')), el('dd', {}, `${t(`tier.${p.tier}`)} · ${t('mem.tierSince')} ${time(p.tierSince)}`),
        el('dt', {}, t('mem.lifetimeSpend')), el('dd', {}, cny(p.lifetimeSpend)))),
      el('div', { class: 'card' }, el('h2', {}, t('mem.points')), el('div', { class: 'stats' },
        ...[['points', p.points], ['available', p.pointsAvailable], ['pending', p.pointsPending], ['onHold', p.pointsOnHold]].map(([k, v]) =>
          el('div', { class: 'stat', dataset: { points: k, value: v } }, el('div', { class: 'label' }, t(k === 'points' ? 'mem.points' : `mem.${k}`)), el('div', { class: 'value' }, num(v))))),
      el('h2', {}, t('mem.adjust')), adjust)),
    el('div', { class: 'card' }, el('h2', {}, t('mem.ledger')),
      table([['mem.at'], ['mem.kind'], ['mem.change', 'num'], ['mem.balanceAfter', 'num'], ['mem.reason']], [], ledgerBody), more),
    el('div', { class: 'cols' },
      el('div', { class: 'card' }, el('h2', {}, t('mem.tierHistory')),
        table([['mem.at'], ['mem.from'], ['mem.to'], ['mem.reason']], found.tierHistory.length ? found.tierHistory.map((h) => el('tr', {}, el('td', {}, time(h.at)), el('td', {}, t(`tier.${h.from}`)), el('td', {}, t(`tier.${h.to}`)), el('td', {}, h.reason))) : [el('tr', {}, el('td', { colspan: 4, class: 'muted' }, t('common.none')))])),
      el('div', { class: 'card' }, el('h2', {}, t('mem.coupons')),
        table([['mem.code'], ['mem.couponTitle'], ['mem.status'], ['mem.validUntil']], p.coupons.map((c) => el('tr', {}, el('td', {}, c.code), el('td', {}, c.title), el('td', {}, t(`coupon.${c.status}`)), el('td', {}, time(c.validUntil))))))),
    el('div', { class: 'card' }, el('h2', {}, t('rew.claims')),
      table([['mem.at'], ['rew.name'], ['rew.price', 'num'], ['mem.status'], ['rew.actions']], [], claimsBody), claimsMsg),
    el('div', { class: 'cols' }, el('div', { class: 'card' }, el('h2', {}, t('mem.setBirthday')), birthday), el('div', { class: 'card' }, el('h2', {}, t('mem.erase')), erase)));
  loadClaims().catch((x) => { claimsMsg.className = 'form-error'; claimsMsg.textContent = x.message; });
  loadLedger(true).catch((x) => { adjustMsg.className = 'form-error'; adjustMsg.textContent = x.message; });
  return box;
}

export function render(view) {
  const by = el('select', { id: 'search-by' }, ['memberId', 'email', 'phone'].map((k) => el('option', { value: k }, t(`mem.by.${k}`))));
  const value = el('input', { id: 'search-value', autocomplete: 'off' });
  const err = el('div', { class: 'form-error', role: 'alert', id: 'search-error' });
  const note = el('div', { class: 'notice', id: 'member-notice' });
  const result = el('div', {});
  const search = async (body, message = '') => {
    err.textContent = ''; note.textContent = message;
    try {
      const found = await api('POST', '/support/members/search', body);
      // Re-opening after a change goes by id: the contact typed is not kept anywhere.
      const reopen = (msg) => search({ memberId: found.profile.memberId }, msg);
      result.replaceChildren(memberView(found, reopen, () => { result.replaceChildren(); note.textContent = t('mem.erased'); }));
    } catch (x) {
      result.replaceChildren();
      err.textContent = `${x.code || x.status}: ${x.message}`;
    }
  };
  const form = el('form', { class: 'row card', id: 'search-form', onsubmit: (e) => {
    e.preventDefault();
    const v = value.value.trim();
    value.value = '';
    search({ [by.value]: v });
  } }, el('label', {}, t('mem.by')), by, value, el('button', { type: 'submit', id: 'search-submit' }, t('common.search')), el('span', { class: 'muted' }, t('mem.unverifiedNote')));
  view.append(el('h1', {}, t('mem.title')), form, err, note, result);
}
