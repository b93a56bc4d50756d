// Switchyard's dashboard: plain DOM, no framework, no build step. State is read from the
// REST API; the app's event stream (fetch-read Server-Sent Events, resumed with Last-Event-ID)
// says what changed, and what changed is read again (throttled per room), so the page never
// folds events itself and cannot drift from the API. Errors are shown as the API words them.
'use strict';

const $ = (sel, root = document) => root.querySelector(sel);
const AUTH_KEY = 'switchyard.auth';
const EVENT_LOG_MAX = 200;
// What a play or announce box sends as a URL rather than as a text to speak.
const URLISH = /^[a-z][a-z0-9+.-]*:\/\//i;

const state = {
  auth: null, // {mode: 'app'|'operator', app, key}
  acting: null, // the app the page shows (the operator picks one)
  view: null,
  roomId: null,
  rooms: new Map(), // room_id -> summary
  members: new Map(), // uuid -> member
  streamGen: 0,
  streamAbort: null,
  lastEventId: null,
  nodesTimer: null,
  nodes: null, // the last node figures read
  session: 0, // counts sign-ins and sign-outs: an answer to an earlier one is dropped
  stale: new Map(), // what an event said changed and a read of it failed: key -> retry timer
  callerNames: new Map(), // session uuid -> caller name (the sessions read)
  recordings: new Map(), // recording id -> as the API showed it
  seen: new Map(), // room_id -> when the page first saw it (a count): the order of equal ages
  liveText: null, // what the badge says when nothing is stale
};

// ---- reads that failed: shown as stale, read again until they succeed ----

// A read the page needs (what an event said changed) failed for a reason that passes (the
// network, a controller busy or restarting): the page says it may be stale and reads it again,
// ever more slowly (0.5 s doubling to 5 s), until it succeeds.
function readFailed(key, e, again, attempt = 0) {
  const passing = e.status === 0 || e.status === 429 || e.status >= 500;
  if (!passing) return false;
  clearTimeout(state.stale.get(key));
  const wait = Math.min(500 * 2 ** attempt, 5000);
  const session = state.session;
  state.stale.set(key, setTimeout(() => {
    if (session === state.session) again(attempt + 1);
  }, wait));
  showStale();
  return true;
}

// A read succeeded: whatever it had left stale is current again.
function readDone(key) {
  if (!state.stale.has(key)) return;
  clearTimeout(state.stale.get(key));
  state.stale.delete(key);
  if (!state.stale.size && state.liveText) setLive(...state.liveText);
}

function showStale() {
  const el = $('#live');
  el.textContent = 'may be stale: reading again…';
  el.className = 'live off';
}

class ApiFailure extends Error {
  constructor(message, status, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

// ---- the API ----

// `as`: the app an operator acts as for this request (default: the one the page shows).
function headers(as) {
  const h = { Accept: 'application/json' };
  const a = state.auth;
  if (!a) return h;
  if (a.mode === 'app') {
    h['X-App-ID'] = a.app;
    h['X-API-Key'] = a.key;
  } else {
    h['X-Admin-Key'] = a.key;
    if (as || state.acting) h['X-App-ID'] = as || state.acting;
  }
  return h;
}

async function api(method, path, body, as) {
  const session = state.session;
  const init = { method, headers: headers(as) };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiFailure('The controller cannot be reached (' + e.message + ')', 0);
  }
  const text = await res.text();
  // Signed out (or in as somebody else) meanwhile: what this read says is not for the page.
  if (session !== state.session) throw new ApiFailure('', -1);
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { json = null; }
  if (!res.ok) {
    const msg = json && typeof json.error === 'string' ? json.error : res.status + ' ' + res.statusText;
    throw new ApiFailure(msg, res.status, json);
  }
  return json;
}

const enc = encodeURIComponent;

// Reads every page of a listing (`as`: see `headers`).
async function all(path, field, as) {
  const out = [];
  let cursor = '';
  for (;;) {
    const sep = path.includes('?') ? '&' : '?';
    const page = await api('GET', path + sep + 'limit=200' + (cursor ? '&cursor=' + enc(cursor) : ''), undefined, as);
    out.push(...(page[field] || []));
    cursor = page.cursor;
    if (!cursor) return out;
  }
}

// ---- feedback ----

function showError(message) {
  // A read of a session that has ended says nothing to the one the page shows now.
  if (!message) return;
  $('#error-text').textContent = message;
  $('#error').hidden = false;
}

function clearError() {
  $('#error').hidden = true;
  $('#error-text').textContent = '';
}

// Runs a control: the button is disabled meanwhile, a refusal is shown as the API words it.
async function act(button, fn) {
  if (button) button.disabled = true;
  try {
    clearError();
    await fn();
  } catch (e) {
    showError(e.message);
  } finally {
    // Back as it was, unless what it did made it one that cannot act (see `can`).
    if (button) button.disabled = button.hasAttribute('data-why');
  }
}

function setLive(on, text) {
  state.liveText = [on, text];
  if (state.stale.size) return showStale();
  const el = $('#live');
  el.textContent = text;
  el.className = 'live ' + (on ? 'on' : 'off');
}

// ---- small DOM helpers ----

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') node.className = v;
    else if (k.startsWith('data-')) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) node.append(c);
  return node;
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function badge(text, kind) {
  return el('span', { class: 'badge ' + (kind || text) }, text);
}

function age(iso) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  const s = Math.max(0, Math.round((Date.now() - t) / 1000));
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min';
  return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
}

const NIL = '00000000-0000-0000-0000-000000000000';

// ---- routing ----

function route() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  let acting = state.auth && state.auth.mode === 'app' ? state.auth.app : null;
  if (parts[0] === 'app' && parts[1] && state.auth && state.auth.mode === 'operator') {
    acting = parts[1];
    parts.splice(0, 2);
  }
  const roomId = parts[0] === 'room' && parts[1] ? parts[1] : null;
  return { acting, roomId };
}

function base() {
  return state.auth && state.auth.mode === 'operator' && state.acting ? '#/app/' + enc(state.acting) : '#';
}

function roomHref(id) {
  return base() + '/room/' + enc(id);
}

function show(view) {
  for (const v of ['signin', 'overview', 'room']) $('#view-' + v).hidden = v !== view;
  state.view = view;
}

async function render() {
  clearError();
  if (!state.auth) {
    stopStream();
    show('signin');
    $('#signout').hidden = true;
    setText($('#whoami'), '');
    $('#live').textContent = '';
    $('#live').className = 'live';
    return;
  }
  $('#signout').hidden = false;
  const { acting, roomId } = route();
  const who = state.auth.mode === 'operator'
    ? 'operator' + (acting ? ' · acting as ' + acting : '')
    : 'app ' + state.auth.app;
  setText($('#whoami'), who);
  if (acting !== state.acting) {
    state.acting = acting;
    state.rooms.clear();
    // Another app's log: from its newest page, unfiltered.
    resetDeliveries();
    startStream();
  }
  state.roomId = roomId;
  if (roomId) {
    show('room');
    await openRoom(roomId);
  } else {
    stopListening();
    show('overview');
    await openOverview();
  }
}

// ---- sign-in ----

function signIn(ev) {
  ev.preventDefault();
  const mode = $('#signin-mode').value;
  const key = $('#signin-key').value;
  const app = $('#signin-app').value.trim();
  state.auth = { mode, key, app: mode === 'app' ? app : null };
  act($('#signin button[type=submit]'), async () => {
    // One read proves the key before it is kept for the tab.
    if (mode === 'operator') await api('GET', '/api/v1/operator/overview');
    else await api('GET', '/api/v1/nodes');
    sessionStorage.setItem(AUTH_KEY, JSON.stringify(state.auth));
    $('#signin-key').value = '';
    forget();
    state.acting = undefined;
    if (location.hash !== '#/') location.hash = '#/';
    else await render();
  }).then(() => {
    if (!sessionStorage.getItem(AUTH_KEY)) state.auth = null;
  });
}

function signOut() {
  sessionStorage.removeItem(AUTH_KEY);
  state.auth = null;
  forget();
  location.hash = '#/';
  render();
}

// Drops everything held from a session, in the page and in memory: the rooms listed, the open
// room (its title, facts, members and calls), the event log, the nodes and apps read, the
// stream's position, and every read still on its way. The next session starts from nothing.
function forget() {
  state.session += 1;
  stopListening();
  for (const timer of state.stale.values()) clearTimeout(timer);
  state.stale.clear();
  state.liveText = null;
  stopStream();
  clearInterval(state.nodesTimer);
  state.acting = null;
  state.roomId = null;
  state.openedRoom = null;
  state.rooms.clear();
  state.members.clear();
  state.callerNames.clear();
  state.seen.clear();
  state.recordings.clear();
  state.selected = null;
  $('#member-panel').hidden = true;
  const player = $('#player');
  player.pause();
  player.removeAttribute('src');
  player.hidden = true;
  state.nodes = null;
  state.lastEventId = null;
  dirty.clear();
  pending.clear();
  dialSteps.clear();
  for (const sel of ['#rooms tbody', '#members tbody', '#nodes tbody', '#apps tbody', '#recordings tbody', '#webhooks tbody']) {
    $(sel).replaceChildren();
    rowsOf.delete($(sel));
  }
  for (const sel of ['#events', '#timeline', '#room-facts', '#join-session', '#dialouts']) $(sel).replaceChildren();
  // The deliveries card's filters and page too.
  resetDeliveries();
  for (const sel of ['#room-title', '#rooms-count', '#members-count', '#members-talking']) setText($(sel), '');
  $('#members-search').value = '';
  $('#rooms-search').value = '';
  // The rooms list's choices too (which rooms, filters, sort): back to the page's defaults.
  for (const sel of ['#rooms-which', '#rooms-status', '#rooms-node', '#rooms-recording', '#rooms-playing', '#rooms-sort']) {
    const box = $(sel);
    if (box.options) {
      const first = [...box.options].findIndex((o) => o.defaultSelected);
      box.selectedIndex = Math.max(first, 0);
    } else {
      box.checked = box.defaultChecked;
    }
  }
  clearError();
}

// ---- overview: nodes, apps, rooms ----

async function openOverview() {
  const operator = state.auth.mode === 'operator';
  $('#apps-card').hidden = !operator;
  const roomsCard = $('#rooms').closest('.card');
  // The operator sees every app's rooms in one list until it picks one app.
  const everyApp = operator && !state.acting;
  roomsCard.hidden = false;
  $('#create-room').hidden = everyApp;
  $('#rooms').classList.toggle('every-app', everyApp);
  refreshNodes();
  clearInterval(state.nodesTimer);
  // Node rates and lag are sampled figures, not events: read every few seconds.
  state.nodesTimer = setInterval(() => {
    if (state.view !== 'overview') return;
    refreshNodes();
    if (state.acting) loadDeliveries();
    else if (state.auth.mode === 'operator') loadRooms();
  }, 3000);
  $('#webhooks-card').hidden = !state.acting;
  $('#timeline-card').hidden = !state.acting;
  await Promise.all([loadRooms(), state.acting ? loadDeliveries() : null]);
}

async function refreshNodes() {
  try {
    if (state.auth.mode === 'operator') {
      const o = await api('GET', '/api/v1/operator/overview');
      renderNodes(o.nodes);
      renderApps(o.apps);
    } else {
      const n = await api('GET', '/api/v1/nodes');
      renderNodes(n.nodes);
    }
  } catch (e) {
    showError(e.message);
  }
}

// Each table's rows by key, so a change finds its row without a search.
const rowsOf = new WeakMap();

// Rows built in one frame at most: a long list appears over a few frames instead of
// freezing the page for one long one.
const ROWS_PER_FRAME = 60;

// Makes `tbody`'s rows those of `items` (built by `build`, brought up to date by `update`);
// true when rows are left to build in a later frame.
function keyedRows(tbody, items, key, build, update) {
  let rows = rowsOf.get(tbody);
  if (!rows) {
    rows = new Map();
    rowsOf.set(tbody, rows);
  }
  const seen = new Set();
  let fresh = null;
  let built = 0;
  let more = false;
  for (const item of items) {
    const k = key(item);
    seen.add(k);
    let tr = rows.get(k);
    if (!tr) {
      if (built === ROWS_PER_FRAME) {
        more = true;
        continue;
      }
      built += 1;
      tr = build(item);
      tr.setAttribute('data-key', k);
      rows.set(k, tr);
      (fresh ||= document.createDocumentFragment()).append(tr);
    }
    update(tr, item);
  }
  if (fresh) tbody.append(fresh);
  for (const [k, tr] of rows) {
    if (!seen.has(k)) {
      tr.remove();
      rows.delete(k);
    }
  }
  return more;
}

// Redraws at most once a frame, however many changes come in between.
let drawing = false;
function redraw() {
  if (drawing) return;
  drawing = true;
  requestAnimationFrame(() => {
    drawing = false;
    renderRooms();
  });
}

function renderNodes(nodes) {
  state.nodes = nodes;
  // An app's own rooms and members per node are known here, live; the operator's span every
  // app and come with the sampled figures.
  const local = state.auth.mode === 'app' ? new Map() : null;
  if (local) {
    for (const r of state.rooms.values()) {
      const c = local.get(r.node) || { rooms: 0, members: 0 };
      c.rooms += 1;
      c.members += r.members;
      local.set(r.node, c);
    }
  }
  keyedRows($('#nodes tbody'), nodes, (n) => n.node,
    () => el('tr', {}, el('td'), el('td'), el('td', { class: 'num' }), el('td', { class: 'num' }),
      el('td', { class: 'num' }), el('td', { class: 'num' }), el('td'), el('td')),
    (tr, n) => {
      const c = tr.children;
      setText(c[0], n.node);
      c[1].replaceChildren(badge(n.state), n.reason ? el('span', { class: 'muted' }, n.reason) : '');
      const counts = local ? local.get(n.node) || { rooms: 0, members: 0 } : n;
      setText(c[2], String(counts.rooms));
      setText(c[3], String(counts.members));
      setText(c[4], n.applies_events ? n.events_per_second.toFixed(1) : '—');
      setText(c[5], n.applies_events ? n.reconciler_lag_ms.toFixed(1) + ' ms' : '—');
      setText(c[6], n.applies_events ? 'yes' : 'another instance');
      renderService(c[7], n);
    });
}

// A node's service: draining (no new rooms or dial-outs; its rooms moving off it, if asked) or
// in service; the operator drains (with or without moving the rooms) and undrains it here.
function renderService(cell, n) {
  const label = !n.draining ? 'in service' : n.moving_rooms ? 'draining, moving rooms' : 'draining';
  const operator = state.auth.mode === 'operator';
  const shown = cell.dataset.shown;
  const want = label + (operator ? ' op' : '');
  if (shown === want) return;
  cell.dataset.shown = want;
  const parts = [badge(label, n.draining ? 'draining' : 'up')];
  const action = (verb, text, title, body) => {
    const button = el('button', { type: 'button', class: 'node-' + verb, title }, text);
    button.addEventListener('click', async () => {
      button.disabled = true;
      try {
        const path = verb === 'undrain' ? 'undrain' : 'drain';
        await api('POST', '/api/v1/operator/nodes/' + enc(n.node) + '/' + path, body);
        await refreshNodes();
      } catch (e) {
        showError(e.message);
      } finally {
        button.disabled = false;
      }
    });
    parts.push(' ', button);
  };
  if (operator && n.draining) {
    action('undrain', 'Undrain', 'Take the node back into service', {});
  }
  if (operator && !n.draining) {
    action('drain', 'Drain', 'No new rooms or dial-outs on this node; its rooms go on', {});
  }
  if (operator && !n.moving_rooms) {
    action('move', 'Move rooms', 'Drain, and move its live rooms to other nodes while they live: every call stays up', { migrate: true });
  }
  cell.replaceChildren(...parts);
}

function renderApps(apps) {
  keyedRows($('#apps tbody'), apps, (a) => a.app_id,
    (a) => el('tr', {}, el('td'), el('td', { class: 'num' }), el('td', { class: 'num' }),
      el('td', {}, el('a', { href: '#/app/' + enc(a.app_id) }, 'Open'))),
    (tr, a) => {
      const c = tr.children;
      setText(c[0], a.app_id + (a.app_id === state.acting ? ' (shown)' : ''));
      setText(c[1], String(a.rooms));
      setText(c[2], String(a.members));
    });
}

async function loadRooms() {
  try {
    let rooms;
    if (state.auth.mode === 'operator' && !state.acting) {
      // Every app's, each read as that app, its id beside each room.
      const ended = $('#rooms-which').value === 'ended';
      const apps = (await api('GET', '/api/v1/operator/overview')).apps || [];
      const each = await Promise.all(apps.map(async (a) =>
        (await all('/api/v1/conferences' + (ended ? '?ended=true' : ''), 'conferences', a.app_id))
          .map((r) => ({ ...r, app: a.app_id }))));
      rooms = each.flat();
    } else {
      const ended = $('#rooms-which').value === 'ended';
      rooms = await all('/api/v1/conferences' + (ended ? '?ended=true' : ''), 'conferences');
    }
    state.rooms = new Map(rooms.map((r) => [r.room_id, r]));
    // The listing's order settles ties of age; a room an event named first comes after it.
    state.seen = new Map(rooms.map((r, i) => [r.room_id, i + 1]));
    redraw();
  } catch (e) {
    showError(e.message);
  }
}

function playbackText(r) {
  if (!r.playback_status || r.playback_status === 'stopped') return '—';
  const file = (r.playback_urls || [])[0] || '';
  const short = file.length > 40 ? '…' + file.slice(-39) : file;
  return r.playback_status + ' ' + short + ' (' + r.playback_volume + ' dB)';
}

// Rows of the rooms and members lists (fixed height, app.css), and how many are drawn beyond
// the view.
const ROOM_ROW = 36;
const MEMBER_ROW = 38;
const OVERSCAN = 10;

// Makes `tbody` show only the rows of `items` in view in `scroller` (each `height` px tall),
// between two spacer rows (spanning `span` columns) that stand for the rest: a list of
// thousands costs what a screenful does, in script, style and layout alike.
function windowRows(tbody, scroller, height, span, items, key, build, update) {
  const first = Math.max(0, Math.floor(scroller.scrollTop / height) - OVERSCAN);
  const shown = Math.ceil((scroller.clientHeight || window.innerHeight) / height) + 2 * OVERSCAN;
  const visible = items.slice(first, first + shown);
  let rows = rowsOf.get(tbody);
  if (!rows) {
    rows = new Map();
    rowsOf.set(tbody, rows);
    const spacer = () => el('tr', { class: 'spacer', 'aria-hidden': 'true' }, el('td', { colSpan: span }));
    tbody.replaceChildren(spacer(), spacer());
  }
  const top = tbody.firstElementChild;
  const bottom = tbody.lastElementChild;
  // A span wider than the table would add a column of its own.
  for (const spacer of [top, bottom]) if (spacer.firstChild.colSpan !== span) spacer.firstChild.colSpan = span;
  const wanted = [];
  for (const item of visible) {
    const k = key(item);
    let tr = rows.get(k);
    if (!tr) {
      tr = build(item);
      tr.setAttribute('data-key', k);
      rows.set(k, tr);
    }
    update(tr, item);
    wanted.push(tr);
  }
  const keep = new Set(wanted);
  for (const [k, tr] of rows) {
    if (!keep.has(tr)) {
      tr.remove();
      rows.delete(k);
    }
  }
  // In order, between the spacers.
  let cursor = top;
  for (const tr of wanted) {
    if (cursor.nextSibling !== tr) tbody.insertBefore(tr, cursor.nextSibling);
    cursor = tr;
  }
  if (cursor.nextSibling !== bottom) tbody.insertBefore(bottom, cursor.nextSibling);
  const above = first * height + 'px';
  const below = Math.max(0, items.length - first - visible.length) * height + 'px';
  if (top.style.height !== above) top.style.height = above;
  if (bottom.style.height !== below) bottom.style.height = below;
}

// Draws the rooms the find bar keeps, those in view only.
function renderRooms() {
  if (state.view !== 'overview') return;
  const all = [...state.rooms.values()];
  const rooms = findRooms(all);
  if (state.nodes && state.auth.mode === 'app') renderNodes(state.nodes);
  nodeChoices(all);
  setText($('#rooms-count'), '(' + (rooms.length === all.length ? all.length : rooms.length + ' of ' + all.length) + ')');
  $('#rooms-empty').hidden = rooms.length > 0;
  // The spacers span the columns shown (the App column only in the operator's every-app list).
  const span = $('#rooms').classList.contains('every-app') ? 9 : 8;
  windowRows($('#rooms tbody'), $('#rooms-scroll'), ROOM_ROW, span, rooms, (r) => r.room_id,
    () => el('tr', {}, el('td', {}, el('a')), el('td'), el('td'), el('td', { class: 'num' }),
      el('td'), el('td'), el('td', { class: 'num' }), el('td'), el('td', { class: 'app' })),
    updateRoomRow);
}

// The rooms the find bar keeps, in its order: words match the name, the id or the metadata
// (every word somewhere); the filters are status, node, recording and playing.
function findRooms(rooms) {
  const words = $('#rooms-search').value.toLowerCase().split(/\s+/).filter(Boolean);
  const status = $('#rooms-status').value;
  const node = $('#rooms-node').value;
  const recording = $('#rooms-recording').checked;
  const playing = $('#rooms-playing').checked;
  const ended = $('#rooms-which').value === 'ended';
  const kept = rooms.filter((r) => {
    if ((r.status === 'terminated') !== ended) return false;
    if (status && r.status !== status) return false;
    if (node && r.node !== node) return false;
    if (recording && !(r.recording_id && r.recording_id !== NIL)) return false;
    if (playing && r.playback_status !== 'playing') return false;
    if (!words.length) return true;
    const text = ((r.name || '') + ' ' + r.room_id + ' ' + (r.metadata ? JSON.stringify(r.metadata) : '')).toLowerCase();
    return words.every((w) => text.includes(w));
  });
  // Ties (ages are told to the second) keep the order the rooms were first seen in: the API
  // lists the oldest first, and a room that appears later is newer.
  const seen = (r) => state.seen.get(r.room_id) || 0;
  const oldest = (a, b) => cmp(a.created_at, b.created_at) || seen(a) - seen(b);
  const by = {
    oldest,
    newest: (a, b) => oldest(b, a),
    members: (a, b) => b.members - a.members || oldest(a, b),
    activity: (a, b) => cmp(b.updated_at || '', a.updated_at || '') || oldest(a, b),
  }[$('#rooms-sort').value];
  return kept.sort(by);
}

// Orders two ASCII strings (timestamps) by their code units: a locale's collation costs far more.
function cmp(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}

function see(id) {
  if (!state.seen.has(id)) state.seen.set(id, state.seen.size + 1);
}

// The node filter offers the nodes the rooms are on.
function nodeChoices(rooms) {
  const select = $('#rooms-node');
  const nodes = [...new Set(rooms.map((r) => r.node))].sort();
  const have = [...select.options].slice(1).map((o) => o.value);
  if (have.join() === nodes.join()) return;
  const current = select.value;
  select.replaceChildren(el('option', { value: '' }, 'any'), ...nodes.map((n) => el('option', { value: n }, n)));
  if (nodes.includes(current)) select.value = current;
}

function updateRoomRow(tr, r) {
  const c = tr.children;
  const a = c[0].firstChild;
  const href = r.app ? '#/app/' + enc(r.app) + '/room/' + enc(r.room_id) : roomHref(r.room_id);
  if (a.getAttribute('href') !== href) a.href = href;
  setText(a, r.name || r.room_id);
  if (a.title !== r.room_id) a.title = r.room_id;
  if (c[1].textContent !== r.status) c[1].replaceChildren(badge(r.status));
  setText(c[2], r.type);
  setText(c[3], String(r.members));
  setText(c[4], playbackText(r));
  setText(c[5], r.recording_id && r.recording_id !== NIL ? 'recording' : '—');
  setText(c[6], age(r.created_at));
  setText(c[7], r.node);
  setText(c[8], r.app || '');
}

function summaryOf(detail) {
  return {
    room_id: detail.room_id,
    name: detail.name,
    members: detail.members,
    // As the listing writes it (to the second), so that the two sort alike.
    created_at: new Date(Number(detail.created_at) * 1000).toISOString().replace(/\.\d+Z$/, 'Z'),
    updated_at: detail.updated_at,
    metadata: detail.metadata,
    type: detail.type,
    status: detail.status,
    node: detail.room_id.slice(0, 5),
    playback_status: detail.playback_status,
    playback_volume: detail.playback_volume,
    playback_urls: detail.playback_urls,
    recording_id: detail.recording_id,
  };
}

// ---- one room ----

async function openRoom(id) {
  clearInterval(state.nodesTimer);
  if (state.openedRoom !== id) {
    state.openedRoom = id;
    stopListening();
    state.members.clear();
    $('#members tbody').replaceChildren();
    rowsOf.delete($('#members tbody'));
    $('#members-scroll').scrollTop = 0;
    $('#recordings tbody').replaceChildren();
    rowsOf.delete($('#recordings tbody'));
    $('#dialouts').replaceChildren();
    state.selected = null;
    $('#member-panel').hidden = true;
    $('#player').hidden = true;
    $('#events').replaceChildren();
  }
  await Promise.all([refreshRoom(id, true), reloadMembers(id), loadSessions()]);
}

// The room's own controls (the selected member's move and coach have their own rules).
const ROOM_CONTROLS = '#view-room .controls:not(#member-panel) button, #join button, #dial button, #announce';

function renderRoomFacts(r) {
  if (state.roomId !== r.room_id) return;
  setText($('#room-title'), r.name || r.room_id);
  const facts = [
    ['Room id', r.room_id], ['Status', r.status], ['Type', r.type], ['Node', r.room_id.slice(0, 5)],
    ['Members', String(r.members)], ['Age', age(new Date(Number(r.created_at) * 1000).toISOString())],
    ['Playback', playbackText(r)],
    ['Recording', r.recording_id && r.recording_id !== NIL ? 'recording ' + r.recording_id : '—'],
    ['Locked', r.locked ? 'yes: joins are refused' : 'no'],
  ];
  const dl = $('#room-facts');
  if (dl.children.length !== facts.length * 2) {
    dl.replaceChildren(...facts.flatMap(([k]) => [el('dt', {}, k), el('dd', { 'data-fact': k })]));
  }
  facts.forEach(([, v], i) => setText(dl.children[i * 2 + 1], v));
  const vol = $('#volume-db');
  if (document.activeElement !== vol) vol.value = r.playback_volume;
  // What cannot act now is disabled, and says why on hover. An ended room (kept for its
  // retention) is there to be read: its recordings play still, and nothing else acts. Every
  // control is set for the room shown, as it is: none keeps what another room made of it.
  const ended = r.status === 'terminated' || r.status === 'terminating';
  for (const b of document.querySelectorAll(ROOM_CONTROLS)) can(b, !ended, 'The room has ended');
  setText($('#lock'), r.locked ? 'Unlock' : 'Lock');
  $('#lock').setAttribute('data-locked', r.locked ? 'yes' : 'no');
  if (ended) {
    if (listening.room === r.room_id) stopListening('ended');
  } else {
    const playing = r.playback_status && r.playback_status !== 'stopped';
    const recording = r.recording_id && r.recording_id !== NIL;
    can($('#pause'), playing, 'Nothing is playing');
    can($('#stop'), playing, 'Nothing is playing');
    can($('#record-start'), !recording, 'The room is recording already');
    can($('#record-stop'), recording, 'The room is not recording');
    can($('#mute-all'), r.members > 0, 'Nobody is in the room');
    can($('#unmute-all'), r.members > 0, 'Nobody is in the room');
    can($('#join button[type=submit]'), !r.locked, 'The room is locked: unlock it to join a call');
  }
  loadRecordings(r.recording_ids);
}

// ---- the app's webhook deliveries ----

const DELIVERIES_SHOWN = 50;

// The card's place in the log: the cursors of the pages shown before this one (none: the
// newest page), the cursor of the next (older) page, a count of reads (an answer to an earlier
// one is dropped), and the dead letters sent again from here (by row), shown "Queued".
const deliveries = { pages: [], next: '', reads: 0, retried: new Set() };

// Back to the newest page of every attempt, as a new session or app starts.
function resetDeliveries() {
  deliveries.pages = [];
  deliveries.next = '';
  deliveries.reads += 1;
  deliveries.retried.clear();
  $('#webhooks-outcome').selectedIndex = 0;
  $('#webhooks-type').selectedIndex = 0;
  $('#webhooks-room').value = '';
  $('#webhooks-rooms').replaceChildren();
  setText($('#webhooks-page'), '');
  $('#webhooks-empty').hidden = true;
  for (const sel of ['#webhooks-older', '#webhooks-newer', '#webhooks-newest']) can($(sel), false, 'Not read yet');
}

// The filters as the API takes them (only those set), or null when the room is not a room id.
function deliveryFilters() {
  const room = $('#webhooks-room');
  if (!room.checkValidity()) return null;
  const q = [];
  const outcome = $('#webhooks-outcome').value;
  const type = $('#webhooks-type').value;
  if (outcome) q.push('outcome=' + enc(outcome));
  if (room.value.trim()) q.push('room_id=' + enc(room.value.trim()));
  if (type) q.push('type=' + enc(type));
  return q;
}

// Reads the page after the cursors `pages` (default: the page shown) under the filters, and
// shows it; a dead letter can be sent again from its row, on any page.
async function loadDeliveries(pages = deliveries.pages) {
  const filters = deliveryFilters();
  if (!filters) return;
  // The page asked for is the card's from now on: a periodic read meanwhile reads it too.
  deliveries.pages = pages;
  const read = ++deliveries.reads;
  const cursor = pages.length ? '&cursor=' + enc(pages[pages.length - 1]) : '';
  try {
    const page = await api('GET', '/api/v1/webhooks/deliveries?limit=' + DELIVERIES_SHOWN + cursor
      + filters.map((f) => '&' + f).join(''));
    if (read !== deliveries.reads) return;
    deliveries.next = page.cursor || '';
    renderDeliveries(page.deliveries || [], filters.length > 0);
  } catch (e) {
    if (read !== deliveries.reads || e.status === 404) return;
    const why = e.body && e.body.detail && e.body.detail.reason;
    showError(why ? e.message + ': ' + why : e.message);
  }
}

function renderDeliveries(list, filtered) {
  const rows = list.map((d) => ({ ...d, key: d.id + '#' + d.attempt + '#' + d.at }));
  $('#webhooks tbody').replaceChildren(...rows.map((d) => el('tr', { 'data-id': d.id, 'data-outcome': d.outcome },
    el('td', {}, (d.at || '').replace(/^.*T/, '').replace('Z', '')),
    el('td', {}, d.type || ''),
    el('td', { title: d.room_id || '' }, d.room_id ? d.room_id.slice(0, 18) + '…' : ''),
    el('td', { class: 'num' }, String(d.seq ?? '')),
    el('td', { class: 'num' }, String(d.attempt ?? '')),
    el('td', {}, badge(d.outcome, d.outcome === 'delivered' ? 'up' : d.outcome === 'dead_letter' ? 'failed' : 'starting')),
    el('td', {}, d.status ? String(d.status) : (d.error || '')),
    el('td', {}, d.outcome === 'dead_letter' ? retryButton(d) : ''))));
  const first = deliveries.pages.length === 0;
  const more = deliveries.next !== '';
  can($('#webhooks-older'), more, 'No older attempts');
  can($('#webhooks-newer'), !first, 'This is the newest page');
  can($('#webhooks-newest'), !first, 'This is the newest page');
  const where = first ? 'newest' : 'page ' + (deliveries.pages.length + 1);
  // A filtered page ends where the API stopped reading (it reads a bounded stretch of the
  // log a page): short, with more to read.
  const short = filtered && more && rows.length < DELIVERIES_SHOWN ? ' so far; Older reads further' : '';
  setText($('#webhooks-page'), where + ': ' + rows.length + (rows.length === 1 ? ' attempt' : ' attempts') + short);
  const empty = $('#webhooks-empty');
  empty.hidden = rows.length > 0;
  setText(empty, !filtered && first ? 'No delivery yet (or no webhook URL for this app).'
    : more ? 'None that match here; Older reads on.' : 'No attempt matches.');
}

function retryButton(d) {
  const queued = deliveries.retried.has(d.key);
  const button = el('button', { type: 'button', class: 'quiet', 'data-retry': d.id, 'data-key': d.key }, queued ? 'Queued' : 'Retry');
  if (queued) can(button, false, 'Sent again: its next attempts are on the newest page');
  return button;
}

// The app's rooms the page knows, offered to the room filter (at most 200).
function offerRooms() {
  const rooms = [...state.rooms.values()].slice(0, 200);
  $('#webhooks-rooms').replaceChildren(...rooms.map((r) => el('option', { value: r.room_id, label: r.name || r.room_id })));
}

function deliveryControls() {
  $('#webhooks-refresh').addEventListener('click', (ev) => act(ev.currentTarget, () => loadDeliveries()));
  $('#webhooks-older').addEventListener('click', (ev) =>
    act(ev.currentTarget, () => loadDeliveries([...deliveries.pages, deliveries.next])));
  $('#webhooks-newer').addEventListener('click', (ev) =>
    act(ev.currentTarget, () => loadDeliveries(deliveries.pages.slice(0, -1))));
  $('#webhooks-newest').addEventListener('click', (ev) => act(ev.currentTarget, () => loadDeliveries([])));
  // A filter changed: its newest page. A room that is not a room id says so, and is not read.
  const refilter = () => {
    if ($('#webhooks-room').reportValidity()) loadDeliveries([]);
  };
  for (const sel of ['#webhooks-outcome', '#webhooks-type', '#webhooks-room']) $(sel).addEventListener('change', refilter);
  $('#webhooks-room').addEventListener('focus', offerRooms);
  $('#webhooks-find').addEventListener('submit', (ev) => {
    ev.preventDefault();
    refilter();
  });
  $('#webhooks').addEventListener('click', (ev) => {
    const button = ev.target.closest('button[data-retry]');
    if (!button) return;
    act(button, async () => {
      try {
        await api('POST', '/api/v1/webhooks/deliveries/' + enc(button.getAttribute('data-retry')) + '/retry', {});
      } catch (e) {
        // Sent again already (from another page or tab): queued all the same.
        if (e.status === 409) deliveries.retried.add(button.getAttribute('data-key'));
        throw e;
      }
      deliveries.retried.add(button.getAttribute('data-key'));
      await loadDeliveries();
    });
  });
}

// ---- one member: move, coach, announce ----

function selectMember(uuid) {
  state.selected = uuid;
  for (const tr of document.querySelectorAll('#members tr.selected')) tr.classList.remove('selected');
  const tr = document.querySelector(`#members tr[data-uuid="${CSS.escape(uuid)}"]`);
  if (tr) tr.classList.add('selected');
  renderMemberPanel();
  if (![...state.rooms.keys()].some((id) => id !== state.roomId)) loadRooms().then(renderMemberPanel);
}

// The panel of the selected member: the app's other rooms to move it to, the room's other
// members it can coach.
function renderMemberPanel() {
  const m = state.members.get(state.selected);
  const panel = $('#member-panel');
  panel.hidden = !m;
  if (!m) return;
  setText($('#member-selected'), (state.callerNames.get(m.uuid) || m.caller_id) + ':');
  const options = (select, items) => {
    const current = select.value;
    select.replaceChildren(...items.map(([value, text]) => el('option', { value }, text)));
    if (items.some(([v]) => v === current)) select.value = current;
  };
  const rooms = [...state.rooms.values()].filter((r) => r.room_id !== state.roomId);
  options($('#move-room'), rooms.map((r) => [r.room_id, r.name || r.room_id]));
  can($('#move'), rooms.length > 0, 'The app has no other live room');
  const others = [...state.members.values()].filter((o) => o.uuid !== m.uuid);
  options($('#coach-member'), others.map((o) => [o.uuid, state.callerNames.get(o.uuid) || o.caller_id]));
  can($('#coach'), others.length > 0, 'Nobody else is in the room to coach');
  can($('#uncoach'), Boolean(m.coaching), 'Not coaching anyone');
}

function memberPanel() {
  const command = (verb, body) => api('POST', '/api/v1/sessions/' + enc(state.selected) + '/commands/conference/' + verb, body);
  $('#move').addEventListener('click', (ev) => act(ev.currentTarget, () => command('move', { room_id: $('#move-room').value })));
  $('#coach').addEventListener('click', (ev) => act(ev.currentTarget, () => command('coach', { member: $('#coach-member').value })));
  $('#uncoach').addEventListener('click', (ev) => act(ev.currentTarget, () => command('uncoach', {})));
  $('#announce').addEventListener('click', (ev) => act(ev.currentTarget, () => {
    const what = $('#announce-what').value.trim();
    if (!what) throw new Error('Give a URL to play or a text to speak.');
    return command('announce', URLISH.test(what) ? { url: what } : { text: what });
  }));
}

// ---- a room's recordings ----

// The room's recordings as the API shows them, read again while one is not final.
async function loadRecordings(ids) {
  const final = (rec) => rec.status === 'ended' && (rec.storage !== 's3' || ['ready', 'failed'].includes(rec.upload_status));
  const wanted = (ids || []).filter((id) => !state.recordings.has(id) || !final(state.recordings.get(id)));
  const roomId = state.roomId;
  await Promise.all(wanted.map(async (id) => {
    try {
      state.recordings.set(id, await api('GET', '/api/v1/recordings/' + enc(id)));
    } catch (e) {
      if (e.status === 404) state.recordings.delete(id);
    }
  }));
  if (state.roomId !== roomId) return;
  const shown = (ids || []).map((id) => state.recordings.get(id)).filter(Boolean);
  setText($('#recordings-count'), '(' + shown.length + ')');
  keyedRows($('#recordings tbody'), shown, (rec) => rec.id,
    (rec) => el('tr', { 'data-id': rec.id }, el('td', { title: rec.id }, rec.id.slice(0, 8) + '…'),
      el('td'), el('td', { class: 'num' }), el('td', { class: 'num' }),
      el('td', {}, el('button', { type: 'button', class: 'quiet', 'data-rec': 'play' }, 'Play'), ' ',
        el('button', { type: 'button', class: 'quiet', 'data-rec': 'download' }, 'Download'))),
    (tr, rec) => {
      const c = tr.children;
      setText(c[1], rec.storage === 's3' && rec.status === 'ended' ? 'ended · ' + rec.upload_status : rec.status);
      setText(c[2], rec.duration_ms != null ? (rec.duration_ms / 1000).toFixed(1) + ' s' : '—');
      setText(c[3], rec.size_bytes != null ? (rec.size_bytes / 1024).toFixed(0) + ' KiB' : '—');
      const playable = rec.status === 'ended' && (rec.storage !== 's3' || rec.upload_status === 'ready');
      for (const b of c[4].querySelectorAll('button')) can(b, playable, 'The file is not complete yet');
    });
}

// A recording's file, fetched with the key (an <audio> or a link cannot send it): a blob URL.
async function recordingBlob(id) {
  const res = await fetch('/api/v1/recordings/' + enc(id) + '/file', { headers: headers() });
  if (!res.ok) {
    let msg = res.status + ' ' + res.statusText;
    try { msg = (await res.json()).error || msg; } catch (_) { /* the status says it */ }
    throw new ApiFailure(msg, res.status);
  }
  return URL.createObjectURL(await res.blob());
}

async function recordingAction(ev) {
  const button = ev.target.closest('button[data-rec]');
  if (!button) return;
  const id = button.closest('tr').getAttribute('data-id');
  await act(button, async () => {
    const url = await recordingBlob(id);
    if (button.getAttribute('data-rec') === 'play') {
      const player = $('#player');
      if (player.src.startsWith('blob:')) URL.revokeObjectURL(player.src);
      player.src = url;
      player.hidden = false;
      player.setAttribute('data-id', id);
      await player.play().catch(() => {});
    } else {
      const a = el('a', { href: url, download: id + '.wav' });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    }
  });
}

// Enables `button` when it can act; else disables it with the reason as its tooltip.
function can(button, ok, why) {
  button.disabled = !ok;
  button.title = ok ? '' : why;
  if (ok) button.removeAttribute('data-why');
  else button.setAttribute('data-why', why);
}

async function reloadMembers(id, attempt = 0) {
  const key = 'members:' + id;
  try {
    const members = await all('/api/v1/conferences/' + enc(id) + '/members', 'members');
    readDone(key);
    if (state.roomId !== id) return;
    state.members = new Map(members.map((m) => [m.uuid, m]));
    renderMembers();
    dropJoined();
  } catch (e) {
    // The open room's members only: another room's are read when it is opened.
    if (state.roomId === id && readFailed(key, e, (n) => reloadMembers(id, n), attempt)) return;
    readDone(key);
    if (state.roomId === id && e.status !== 404 && e.status !== -1) showError(e.message);
  }
}

// A call that became a member is no longer one to join.
function dropJoined() {
  const select = $('#join-session');
  for (const option of [...select.options]) if (state.members.has(option.value)) option.remove();
  if (!select.options.length) select.append(el('option', { value: '' }, 'no parked calls'));
}

function memberButton(label, action) {
  return el('button', { type: 'button', class: 'quiet', 'data-action': action }, label);
}

function renderMembers() {
  const all = [...state.members.values()];
  // The find box keeps the members whose caller number or name holds every word.
  const words = $('#members-search').value.toLowerCase().split(/\s+/).filter(Boolean);
  const members = words.length
    ? all.filter((m) => {
      const text = (m.caller_id + ' ' + (state.callerNames.get(m.uuid) || '')).toLowerCase();
      return words.every((w) => text.includes(w));
    })
    : all;
  setText($('#members-count'), '(' + (members.length === all.length ? all.length : members.length + ' of ' + all.length) + ')');
  const talking = all.reduce((n, m) => n + (m.talking ? 1 : 0), 0);
  setText($('#members-talking'), talking ? talking + ' talking' : '');
  windowRows($('#members tbody'), $('#members-scroll'), MEMBER_ROW, 6, members, (m) => m.uuid,
    (m) => el('tr', { 'data-uuid': m.uuid },
      el('td', {}, el('span', { class: 'talk', role: 'img' })),
      el('td'), el('td'), el('td', { class: 'joined' }), el('td'),
      el('td', {}, memberButton('Mute', 'mute'), ' ', memberButton('Deafen', 'deaf'), ' ',
        memberButton('Hold', 'hold'), ' ', memberButton('Kick', 'kick'))),
    (tr, m) => {
      const c = tr.children;
      tr.classList.toggle('selected', m.uuid === state.selected);
      const dot = c[0].firstChild;
      dot.className = 'talk' + (m.talking ? ' on' : '');
      dot.setAttribute('aria-label', m.talking ? 'talking' : 'silent');
      tr.setAttribute('data-talking', m.talking ? 'yes' : 'no');
      const name = state.callerNames.get(m.uuid);
      setText(c[1], name && name !== m.caller_id ? name + ' · ' + m.caller_id : m.caller_id);
      setText(c[2], m.did);
      c[3].setAttribute('data-joined', m.joined_at || '');
      setText(c[3], joinedText(m.joined_at));
      const flags = [m.muted && 'muted', m.deaf && 'deaf', m.held && 'held', m.moderator && 'moderator',
        m.coaching && 'coaching', m.volume_in && 'speaks ' + signed(m.volume_in),
        m.volume_out && 'hears ' + signed(m.volume_out),
        m.energy != null && 'energy ' + m.energy].filter(Boolean);
      const flagText = flags.join(' ');
      if (c[4].getAttribute('data-flags') !== flagText) {
        c[4].setAttribute('data-flags', flagText);
        c[4].replaceChildren(...(flags.length ? flags.map((f) => badge(f, 'flag')) : ['—']));
      }
      const [mute, deaf, hold] = c[5].querySelectorAll('button');
      setText(mute, m.muted ? 'Unmute' : 'Mute');
      mute.setAttribute('data-action', m.muted ? 'unmute' : 'mute');
      setText(deaf, m.deaf ? 'Undeafen' : 'Deafen');
      deaf.setAttribute('data-action', m.deaf ? 'undeaf' : 'deaf');
      setText(hold, m.held ? 'Unhold' : 'Hold');
      hold.setAttribute('data-action', m.held ? 'unhold' : 'hold');
    });
  if (state.selected) renderMemberPanel();
}

// Scrolling the members list draws the rows come into view, once a frame.
let drawingMembers = false;
function redrawMembers() {
  if (drawingMembers) return;
  drawingMembers = true;
  requestAnimationFrame(() => {
    drawingMembers = false;
    if (state.view === 'room') renderMembers();
  });
}

function signed(n) {
  return (n > 0 ? '+' : '') + n;
}

// When a member joined, and for how long it has been in the room.
function joinedText(iso) {
  if (!iso) return 'joining';
  const at = new Date(iso);
  const secs = Math.max(0, Math.floor((Date.now() - at.getTime()) / 1000));
  const dur = secs < 3600
    ? Math.floor(secs / 60) + ':' + String(secs % 60).padStart(2, '0')
    : Math.floor(secs / 3600) + 'h' + String(Math.floor(secs / 60) % 60).padStart(2, '0');
  return at.toTimeString().slice(0, 8) + ' · ' + dur;
}

// The open room's members' time in the room moves on without events.
function tickDurations() {
  if (state.view !== 'room') return;
  for (const td of document.querySelectorAll('#members td.joined')) {
    const iso = td.getAttribute('data-joined');
    if (iso) setText(td, joinedText(iso));
  }
}

async function memberAction(ev) {
  const button = ev.target.closest('button[data-action]');
  if (!button) {
    const tr = ev.target.closest('tbody tr[data-uuid]');
    if (tr) selectMember(tr.getAttribute('data-uuid'));
    return;
  }
  const uuid = button.closest('tr').getAttribute('data-uuid');
  const action = button.getAttribute('data-action');
  const m = state.members.get(uuid);
  await act(button, async () => {
    if (action === 'kick') {
      await api('DELETE', '/api/v1/conferencecalls/' + enc(m.conferencecall_id));
    } else {
      await api('POST', '/api/v1/sessions/' + enc(uuid) + '/commands/conference/' + action, {});
    }
    await reloadMembers(state.roomId);
  });
}

async function loadSessions() {
  try {
    const sessions = await all('/api/v1/sessions', 'sessions');
    for (const s of sessions) if (s.caller_name) state.callerNames.set(s.uuid, s.caller_name);
    if (state.members.size) renderMembers();
    const select = $('#join-session');
    // Parked calls; one that is joining this room (still parked for a moment) is not offered.
    const parked = sessions.filter((s) => s.state === 'parked' && !state.members.has(s.uuid));
    const current = select.value;
    select.replaceChildren(...(parked.length
      ? parked.map((s) => el('option', { value: s.uuid }, (s.caller_id || '?') + ' → ' + s.did + ' (' + s.uuid.slice(0, 13) + '…)'))
      : [el('option', { value: '' }, 'no parked calls')]));
    if (parked.some((s) => s.uuid === current)) select.value = current;
  } catch (e) {
    showError(e.message);
  }
}

// Listen and Talk (listen.js): each starts a listen-in of the room, or ends the one it started.
function listenControls() {
  const toggle = (talk) => (ev) => {
    const button = ev.currentTarget;
    if (listening.room && listening.room === state.roomId && listening.talk === talk) {
      stopListening('stopped');
      return;
    }
    act(button, () => startListening(state.roomId, talk, (path, body) => api('POST', path, body), showListening));
  };
  $('#listen').addEventListener('click', toggle(false));
  $('#talk').addEventListener('click', toggle(true));
}

// What the listen-in does: its buttons, and the level heard (in `data-level`, dBFS).
function showListening(s) {
  const out = $('#listen-state');
  setText($('#listen'), s.on && !listening.talk ? 'Stop listening' : 'Listen');
  setText($('#talk'), s.on && listening.talk ? 'Stop talking' : 'Talk');
  if (!s.on) {
    setText(out, s.why ? 'listen-in ' + s.why : '');
    out.removeAttribute('data-level');
    return;
  }
  let heard = '…';
  if (s.level != null) {
    const level = Number.isFinite(s.level) ? Math.round(s.level) : -120;
    out.setAttribute('data-level', String(level));
    heard = level <= -90 ? 'silence' : level + ' dBFS';
  }
  setText(out, (s.talk ? 'talking · ' : 'listening · ') + heard + (s.why ? ' (' + s.why + ')' : ''));
}

function roomControls() {
  const id = () => state.roomId;
  const room = (path) => '/api/v1/conferences/' + enc(id()) + path;
  $('#play').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const what = $('#play-url').value.trim();
    // A URL (anything with a scheme: the API says which it takes) is played; anything else
    // is spoken to the room.
    const body = URLISH.test(what) ? { urls: [what] } : { text: what };
    act(ev.submitter, () => api('POST', room('/play'), body));
  });
  $('#pause').addEventListener('click', (ev) => act(ev.currentTarget, () => api('POST', room('/pause'), {})));
  $('#stop').addEventListener('click', (ev) => act(ev.currentTarget, () => api('POST', room('/stop'), {})));
  $('#volume').addEventListener('submit', (ev) => {
    ev.preventDefault();
    act(ev.submitter, () => api('POST', room('/volume'), { volume: Number($('#volume-db').value) }));
  });
  $('#record-start').addEventListener('click', (ev) => act(ev.currentTarget, () => api('POST', room('/recording/start'), {})));
  $('#record-stop').addEventListener('click', (ev) => act(ev.currentTarget, () => api('POST', room('/recording/stop'), {})));
  $('#mute-all').addEventListener('click', (ev) => act(ev.currentTarget, () => api('POST', room('/mute_all'), {})));
  $('#unmute-all').addEventListener('click', (ev) => act(ev.currentTarget, () => api('POST', room('/unmute_all'), {})));
  $('#lock').addEventListener('click', (ev) => {
    const verb = ev.currentTarget.getAttribute('data-locked') === 'yes' ? '/unlock' : '/lock';
    act(ev.currentTarget, async () => {
      const r = await api('POST', room(verb), {});
      if (r && r.room_id === state.roomId) renderRoomFacts(r);
    });
  });
  $('#delete-room').addEventListener('click', (ev) => {
    if (!confirm('Delete this room? Its members leave it.')) return;
    act(ev.currentTarget, async () => {
      await api('DELETE', room(''));
      state.rooms.delete(id());
      location.hash = base() + '/';
    });
  });
  $('#join').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const uuid = $('#join-session').value;
    act(ev.submitter, async () => {
      if (!uuid) throw new Error('No parked call to join: a call must be parked (not in a room) to join one.');
      const join = { room_id: id() };
      if ($('#join-moderator').checked) join.moderator = true;
      if ($('#join-end-on-exit').checked) join.end_on_exit = true;
      await api('POST', '/api/v1/sessions/' + enc(uuid) + '/commands/conference/join', join);
      await loadSessions();
    });
  });
  $('#join-session').addEventListener('focus', loadSessions);
  $('#dial').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const to = $('#dial-to').value.trim();
    act(ev.submitter, async () => {
      const r = await api('POST', room('/participants'), { to });
      // Its events may have come before this answer.
      dialProgress(r.uuid, to, dialSteps.get(r.uuid) || 'dialing');
      $('#dial-to').value = '';
    });
  });
  $('#members').addEventListener('click', memberAction);
  $('#members-search').addEventListener('input', () => {
    $('#members-scroll').scrollTop = 0;
    renderMembers();
  });
  memberPanel();
  deliveryControls();
  $('#recordings').addEventListener('click', recordingAction);
  $('#rooms-scroll').addEventListener('scroll', redraw, { passive: true });
  $('#members-scroll').addEventListener('scroll', redrawMembers, { passive: true });
  $('#create-room').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const name = $('#create-name').value.trim();
    act(ev.submitter, async () => {
      const created = await api('POST', '/api/v1/conferences', name ? { name } : {});
      $('#create-name').value = '';
      await refreshRoom(created.room_id, false);
    });
  });
}

// ---- live: the event stream ----

// Per key, at most one read in flight; events meanwhile make one more read after it.
const pending = new Map();
function throttle(key, fn) {
  const p = pending.get(key);
  if (p) { p.again = true; return; }
  const entry = { again: false };
  pending.set(key, entry);
  (async () => {
    do {
      entry.again = false;
      await fn();
      await new Promise((r) => setTimeout(r, 50));
    } while (entry.again);
    pending.delete(key);
  })();
}

// Reads one room again: its row (gone once it ends) and, when it is open, its facts; a refusal
// is shown when `report` (the room was opened, not named by an event).
// An ended room as `/v1.0` keeps it for its retention (`/api/v1` answers 404 once it is
// deleted), in the fields the page reads.
async function endedRoom(id) {
  const c = await api('GET', '/v1.0/conferences/' + enc(id));
  const secs = (tm) => String(Math.floor(Date.parse(String(tm).replace(' ', 'T') + 'Z') / 1000));
  return {
    room_id: c.id, name: c.name, status: c.status, type: c.type, members: 0,
    created_at: secs(c.tm_create), updated_at: new Date(Number(secs(c.tm_update)) * 1000).toISOString().replace(/\.\d+Z$/, 'Z'),
    playback_status: 'stopped', playback_volume: 0, playback_urls: [], locked: false,
    recording_id: c.recording_id, recording_ids: c.recording_ids, metadata: null,
  };
}

async function refreshRoom(id, report, attempt = 0) {
  const key = 'room:' + id;
  try {
    let r;
    try {
      r = await api('GET', '/api/v1/conferences/' + enc(id));
    } catch (e) {
      const known = state.rooms.get(id);
      if (e.status !== 404 || !(known && known.status === 'terminated')) throw e;
      r = await endedRoom(id);
    }
    const showEnded = $('#rooms-which').value === 'ended';
    if ((r.status === 'terminated' && !showEnded) || r.status === 'terminating') state.rooms.delete(id);
    else {
      state.rooms.set(id, summaryOf(r));
      see(id);
    }
    if (state.roomId === id) renderRoomFacts(r);
    readDone(key);
  } catch (e) {
    if (readFailed(key, e, (n) => refreshRoom(id, report, n), attempt)) return;
    readDone(key);
    if (e.status === 404) state.rooms.delete(id);
    if (report && state.roomId === id) showError(e.message);
  }
  redraw();
}

// Rooms that events named, read again together: each one alone while few changed, the whole
// list (a few pages) when many did.
const dirty = new Set();
let flushing = false;
const MANY = 25;

function touched(id) {
  dirty.add(id);
  if (flushing) return;
  flushing = true;
  setTimeout(async () => {
    while (dirty.size) {
      const ids = [...dirty];
      dirty.clear();
      if (ids.length > MANY) await loadRooms();
      else await Promise.all(ids.map((id) => refreshRoom(id, false)));
    }
    flushing = false;
  }, 100);
}

function onEvent(envelope) {
  const id = envelope.room_id;
  if (!id) return;
  logEvent(envelope, $('#timeline'), true);
  touched(id);
  // A member moved is told once, by the room it went to: the room it left changed too.
  const from = envelope.data && envelope.data.from_room;
  if (from && from !== id) {
    touched(from);
    if (state.roomId === from) throttle('members:' + from, () => reloadMembers(from));
  }
  if (state.roomId === id) {
    if (envelope.type.startsWith('conference.member.') || envelope.type.startsWith('conference.participant.')) {
      throttle('members:' + id, () => reloadMembers(id));
      // A call that joined or left is no longer, or is again, one to join.
      if (/joined|left|join_failed/.test(envelope.type)) throttle('sessions', loadSessions);
    }
    logEvent(envelope);
    const step = DIAL_STEPS[envelope.type];
    const d = envelope.data || {};
    if (step && d.uuid) {
      // Only the dial-outs this page placed are shown; a step told before the page heard the
      // dial-out's answer is kept for it.
      dialSteps.set(d.uuid, step(d));
      while (dialSteps.size > 100) dialSteps.delete(dialSteps.keys().next().value);
      if ($('#dialouts').querySelector(`li[data-uuid="${CSS.escape(d.uuid)}"]`)) dialProgress(d.uuid, null, step(d));
    }
  }
}

// A dial-out's progress, as its answer and its events tell it: dialing, ringing, answered,
// joined, or failed with the reason.
function dialProgress(uuid, to, status) {
  if (!uuid) return;
  const list = $('#dialouts');
  let li = list.querySelector(`li[data-uuid="${CSS.escape(uuid)}"]`);
  if (!li) {
    li = el('li', { 'data-uuid': uuid, 'data-to': to || '' });
    list.prepend(li);
  }
  li.setAttribute('data-status', status);
  setText(li, (li.getAttribute('data-to') || uuid) + ' — ' + status);
}

// The newest step each recent dial-out's events told (a bounded memory).
const dialSteps = new Map();

const DIAL_STEPS = {
  'conference.participant.ringing': () => 'ringing',
  'conference.participant.answered': () => 'answered',
  'conference.participant.failed': (d) => 'failed: ' + (d.reason || d.hangup_cause || 'unknown'),
  'conference.member.joined': () => 'joined',
};

// One event in a log (the open room's, or `withRoom` the app's timeline, which names the room).
function logEvent(e, list = $('#events'), withRoom = false) {
  const d = e.data || {};
  const who = d.caller_id ? ' ' + d.caller_id : d.uuid ? ' ' + d.uuid : '';
  const extra = e.type === 'conference.member.talking' ? (d.talking ? ' talking' : ' silent') : '';
  const time = (e.timestamp || '').replace(/^.*T/, '').replace('Z', '');
  const where = withRoom ? '  ' + ((state.rooms.get(e.room_id) || {}).name || d.name || e.room_id) : '';
  const li = el('li', { 'data-room': e.room_id || '' }, time + where + '  #' + e.seq + '  ' + e.type + who + extra);
  list.prepend(li);
  while (list.children.length > EVENT_LOG_MAX) list.lastChild.remove();
}

function stopStream() {
  state.streamGen += 1;
  if (state.streamAbort) state.streamAbort.abort();
  state.streamAbort = null;
  state.lastEventId = null;
}

function parseBlock(block) {
  let id = null;
  let data = '';
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) continue;
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
    if (field === 'id') id = value;
    else if (field === 'data') data += (data ? '\n' : '') + value;
  }
  return { id, data };
}

function startStream() {
  stopStream();
  if (!state.acting) {
    setLive(true, 'operator');
    return;
  }
  const gen = state.streamGen;
  (async () => {
    let first = true;
    while (gen === state.streamGen) {
      const ctrl = new AbortController();
      state.streamAbort = ctrl;
      const h = headers();
      h.Accept = 'text/event-stream';
      // From now on the first time; after a drop, from the last event seen.
      let url = '/api/v1/events/stream';
      if (state.lastEventId) h['Last-Event-ID'] = state.lastEventId;
      else url += '?after=now';
      try {
        const res = await fetch(url, { headers: h, signal: ctrl.signal });
        if (!res.ok) {
          const body = await res.json().catch(() => null);
          throw new ApiFailure(body && body.error ? body.error : 'event stream: ' + res.status, res.status);
        }
        setLive(true, 'live');
        // What happened while the stream was down is read again.
        if (!first) resync();
        first = false;
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done || gen !== state.streamGen) break;
          buf += value.replace(/\r\n?/g, '\n');
          let cut;
          while ((cut = buf.indexOf('\n\n')) >= 0) {
            const block = parseBlock(buf.slice(0, cut));
            buf = buf.slice(cut + 2);
            // An id without data (the position `after=now` stands for) moves the resume point.
            if (block.id) state.lastEventId = block.id;
            if (!block.data) continue;
            try { onEvent(JSON.parse(block.data)); } catch (_) { /* not an envelope */ }
          }
        }
      } catch (e) {
        if (gen !== state.streamGen) return;
        if (e.status === 401) { showError(e.message); return; }
      }
      if (gen !== state.streamGen) return;
      setLive(false, 'reconnecting…');
      await new Promise((r) => setTimeout(r, 1000));
    }
  })();
}

function resync() {
  if (state.view === 'overview') loadRooms();
  if (state.roomId) openRoom(state.roomId);
}

// ---- start ----

function start() {
  try { state.auth = JSON.parse(sessionStorage.getItem(AUTH_KEY) || 'null'); } catch (_) { state.auth = null; }
  $('#signin').addEventListener('submit', signIn);
  $('#signin-mode').addEventListener('change', () => {
    const operator = $('#signin-mode').value === 'operator';
    $('#signin-app-label').hidden = operator;
    $('#signin-app').required = !operator;
  });
  $('#signout').addEventListener('click', signOut);
  $('#error-close').addEventListener('click', clearError);
  roomControls();
  listenControls();
  $('#rooms-find').addEventListener('submit', (ev) => ev.preventDefault());
  $('#rooms-which').addEventListener('change', () => {
    state.rooms.clear();
    $('#rooms-scroll').scrollTop = 0;
    loadRooms();
  });
  for (const sel of ['#rooms-search', '#rooms-status', '#rooms-node', '#rooms-recording', '#rooms-playing', '#rooms-sort']) {
    for (const kind of ['input', 'change']) {
      $(sel).addEventListener(kind, () => {
        $('#rooms-scroll').scrollTop = 0;
        renderRooms();
      });
    }
  }
  window.addEventListener('hashchange', render);
  // Ages move on without events.
  setInterval(() => { if (state.view === 'overview') renderRooms(); }, 5000);
  setInterval(tickDurations, 1000);
  render();
}

document.addEventListener('DOMContentLoaded', start);
