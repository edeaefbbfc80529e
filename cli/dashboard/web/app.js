// The dashboard page: draws the server's view of the site and redraws on every server-sent view.
// Plain DOM, no framework: every value is set as text, never as HTML, so nothing a robot reports
// (names, errors, addresses) can run in the page.

const token = new URLSearchParams(location.search).get('token');
const withToken = (path) =>
  token ? `${path}${path.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}` : path;
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('data-')) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

const ago = (ms) => (ms === null ? '–' : ms < 1000 ? 'now' : `${(ms / 1000).toFixed(1)} s ago`);
const clock = (t) => new Date(t).toLocaleTimeString([], { hour12: false });

function robotCard(r, leader) {
  const down = r.power !== 'on';
  const nodeClass = r.node === 'Ready' ? 'ok' : r.node === 'unknown' ? 'muted' : 'bad';
  const powerClass = r.power === 'on' ? 'ok' : r.power === 'no answer' ? 'warn' : 'bad';
  return el(
    'article',
    {
      class: `robot${r.name === leader ? ' leader' : ''}${down ? ' down' : ''}`,
      'data-testid': `robot-${r.name}`,
      'data-role': r.role,
    },
    el(
      'h3',
      {},
      el('span', {}, r.name),
      el(
        'span',
        { class: r.role === 'leader' ? 'role-leader' : 'muted', 'data-testid': `role-${r.name}` },
        r.role,
      ),
    ),
    el(
      'dl',
      {},
      el('dt', {}, 'power'),
      el('dd', { class: powerClass }, r.power),
      el('dt', {}, 'address'),
      el('dd', {}, r.address),
      el('dt', {}, 'term'),
      el('dd', {}, r.term ?? '–'),
      el('dt', {}, 'voter'),
      el('dd', {}, r.voter === null ? '–' : r.voter ? 'yes' : 'learner'),
      el('dt', {}, 'follows'),
      el('dd', {}, r.leader ?? '–'),
      el('dt', {}, 'control plane'),
      el('dd', {}, r.controlPlane),
      el('dt', {}, 'node'),
      el('dd', { class: nodeClass }, r.node),
      el('dt', {}, 'last heard'),
      el('dd', {}, ago(r.lastHeardMs)),
      el('dt', {}, 'link rtt'),
      el('dd', {}, r.rttMs === null ? '–' : `${r.rttMs} ms`),
    ),
  );
}

function podsTable(pods) {
  if (pods === null) return el('p', { class: 'muted' }, 'no API server serves right now');
  if (pods.length === 0) return el('p', { class: 'muted' }, 'no pods in the site namespace');
  return el(
    'table',
    {},
    el('thead', {}, el('tr', {}, ...['pod', 'node', 'phase', 'site address'].map((h) => el('th', {}, h)))),
    el(
      'tbody',
      {},
      ...pods.map((p) =>
        el(
          'tr',
          {},
          el('td', {}, p.name),
          el('td', {}, p.node ?? '–'),
          el('td', { class: p.phase === 'Running' ? 'ok' : 'warn' }, p.phase),
          el('td', {}, p.siteAddress ?? '–'),
        ),
      ),
    ),
  );
}

let shownFaults = false;

function draw(msg) {
  const err = $('error');
  err.hidden = msg.error === null;
  err.textContent = msg.error ?? '';
  const v = msg.view;
  if (!v) return;
  $('site').textContent = `${v.kind === 'lab' ? 'lab ' : ''}${v.site}`;
  $('leader').textContent = `leader: ${v.leader ?? 'none'}`;
  $('leader').className = `badge ${v.leader ? 'good' : 'bad'}`;
  $('term').textContent = `term ${v.term}`;
  $('health').textContent = v.converged
    ? 'every robot that is up is Ready'
    : v.noQuorum
      ? `no quorum: ${v.noQuorum}`
      : 'forming';
  $('health').className = `badge ${v.converged ? 'good' : 'bad'}`;
  $('robots').replaceChildren(...v.robots.map((r) => robotCard(r, v.leader)));
  $('timeline').replaceChildren(
    ...[...v.timeline]
      .reverse()
      .map((e) =>
        el(
          'li',
          { class: e.kind },
          el('time', {}, clock(e.t)),
          e.after === null ? e.text : `${e.text}, ${(e.afterMs / 1000).toFixed(1)} s after ${e.after}`,
        ),
      ),
  );
  $('pods').replaceChildren(podsTable(v.pods));
  if (msg.faults) {
    $('faults-section').hidden = false;
    const select = $('fault-robot');
    const names = ['leader', ...v.robots.map((r) => r.name)];
    if (!shownFaults || select.options.length !== names.length) {
      const keep = select.value;
      select.replaceChildren(...names.map((n) => el('option', { value: n }, n)));
      if (names.includes(keep)) select.value = keep;
      shownFaults = true;
    }
  }
}

function faultWords(kind) {
  const robot = $('fault-robot').value;
  switch (kind) {
    case 'loss':
      return `loss ${robot === 'leader' ? 'all' : robot} ${Number($('fault-loss').value)}`;
    case 'partition':
      return `partition ${$('fault-partition').value.trim()}`;
    case 'heal':
      return 'heal';
    default:
      return `${kind} ${robot}`;
  }
}

async function sendFault(kind) {
  const words = faultWords(kind);
  if (!confirm(`Apply "${words}" to the lab?`)) return;
  const headers = { 'content-type': 'application/json', 'x-edgectl-dashboard': '1' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch('/api/fault', { method: 'POST', headers, body: JSON.stringify({ words }) });
  const body = await res.json().catch(() => ({}));
  $('fault-result').textContent = res.ok
    ? `applied ${words}`
    : `refused: ${body.error ?? res.status}${body.hint ? ` (${body.hint})` : ''}`;
}

function connect() {
  const events = new EventSource(withToken('/events'));
  events.addEventListener('view', (e) => {
    $('live').textContent = 'live';
    $('live').className = 'badge good';
    draw(JSON.parse(e.data));
  });
  events.onerror = () => {
    $('live').textContent = 'reconnecting';
    $('live').className = 'badge bad';
  };
}

document.addEventListener('DOMContentLoaded', () => {
  for (const b of document.querySelectorAll('button[data-fault]'))
    b.addEventListener('click', () => void sendFault(b.dataset.fault));
  connect();
});
