// The console's shell: language switch, sign-in (on AWS), and a hash router over four pages.
// Routes carry no personal data: a member is opened by a search in a POST body, never a URL.
import { t, lang, setLang, translateShell } from './i18n.js';
import { api, loadConfig, needsSignIn, signIn, signedInAs } from './api.js';
import { el, setTimeZone } from './format.js';
import * as dashboard from './pages/dashboard.js';
import * as campaigns from './pages/campaigns.js';
import * as rewards from './pages/rewards.js';
import * as members from './pages/members.js';

const pages = { dashboard, campaigns, rewards, members };
const view = document.getElementById('view');
let stopCurrent = null;
let zoneKnown = false;

function signInForm() {
  const user = el('input', { name: 'username', autocomplete: 'username' });
  const pass = el('input', { name: 'password', type: 'password', autocomplete: 'current-password' });
  const err = el('div', { class: 'form-error' });
  const form = el('form', { class: 'grid card', onsubmit: async (e) => {
    e.preventDefault();
    err.textContent = '';
    try { await signIn(user.value, pass.value); route(); } catch (x) { err.textContent = x.message; }
  } }, el('label', {}, t('common.username')), user, el('label', {}, t('common.password')), pass, el('span'), el('button', { type: 'submit' }, t('common.signin')), err);
  view.replaceChildren(el('h1', {}, t('app.title')), form);
}

export function route() {
  if (stopCurrent) { stopCurrent(); stopCurrent = null; }
  translateShell();
  document.getElementById('lang').textContent = t('lang.other');
  document.getElementById('who').textContent = signedInAs ? `${t('common.signedInAs')}: ${signedInAs === 'local' ? t('common.localOperator') : signedInAs}` : '';
  if (needsSignIn()) return signInForm();
  if (!zoneKnown) {
    // Times are shown in the program's time zone, which the rules set and the report names:
    // a one-day report is the cheapest way to ask, whatever page is opened first.
    zoneKnown = true;
    const day = new Date().toISOString().slice(0, 10);
    api('GET', `/reports/kpis?from=${day}&to=${day}`).then((r) => { setTimeZone(r.timeZone); }, () => { zoneKnown = false; }).finally(renderPage);
    return;
  }
  renderPage();
}

function renderPage() {
  const name = (location.hash.replace(/^#\//, '') || 'dashboard').split('/')[0];
  const page = pages[name] || dashboard;
  for (const a of document.querySelectorAll('.bar nav a')) a.classList.toggle('active', a.getAttribute('href') === `#/${name}`);
  view.replaceChildren();
  stopCurrent = page.render(view) || null;
}

document.getElementById('lang').addEventListener('click', () => { setLang(lang === 'zh' ? 'en' : 'zh'); route(); });
window.addEventListener('hashchange', route);
setLang(lang);
loadConfig().then(route, (e) => view.replaceChildren(el('div', { class: 'form-error' }, e.message)));
