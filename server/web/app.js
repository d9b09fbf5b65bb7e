// Medfleet locate page: search, nearest available, floor plan, par
// levels and marking status, over /api/v1. Plain JavaScript, no build step;
// every text goes in with textContent, never as HTML.
'use strict';

(() => {
  const TOKEN_KEY = 'medfleet.token'; // sessionStorage: gone when the tab closes
  const UNIT_KEY = 'medfleet.unit'; // localStorage: the station's own unit, not a secret
  const SVG_NS = 'http://www.w3.org/2000/svg';

  const AVAILABILITY = {
    AVAILABILITY_AVAILABLE: ['available', 'available'],
    AVAILABILITY_IN_USE: ['in_use', 'in use'],
    AVAILABILITY_SOILED: ['soiled', 'soiled'],
    AVAILABILITY_IN_MAINTENANCE: ['in_maintenance', 'in maintenance'],
    AVAILABILITY_OUT_OF_SERVICE: ['out_of_service', 'out of service'],
    AVAILABILITY_DECOMMISSIONED: ['decommissioned', 'decommissioned'],
  };

  let me = null; // GET whoami
  let units = null; // GET units, once per sign-in
  let floors = null; // floor id -> floor, once per sign-in
  let floorSeq = 0; // the latest floor request; older answers are dropped
  let selectedZone = null; // the zone whose devices are listed
  let uid = 0;

  const $ = (sel) => document.querySelector(sel);

  class APIError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // api calls /api/v1/{path} with the token; a 401 goes back to sign-in.
  async function api(path, method = 'GET', body = undefined) {
    const headers = { Accept: 'application/json' };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = 'Bearer ' + token;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let resp;
    try {
      resp = await fetch('api/v1/' + path, {
        method, headers, cache: 'no-store', credentials: 'omit',
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new APIError(0, 'Cannot reach Medfleet. Check the network and try again.');
    }
    let data = null;
    try { data = await resp.json(); } catch (e) { /* not JSON */ }
    if (resp.status === 401) {
      showLogin(token ? 'Your token was not accepted or has expired. Sign in again.' : '');
      throw new APIError(401, 'Sign in first.');
    }
    if (!resp.ok) throw new APIError(resp.status, (data && data.error) || resp.statusText);
    return data;
  }

  // el builds an element: attributes (class, text, on*), then children.
  function el(tag, attrs, ...children) {
    return build(document.createElement(tag), attrs, children);
  }
  function sv(tag, attrs, ...children) {
    return build(document.createElementNS(SVG_NS, tag), attrs, children);
  }
  function build(e, attrs, children) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.setAttribute('class', v);
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c !== null && c !== undefined && c !== false) e.append(c);
    }
    return e;
  }

  function availability(a) {
    return AVAILABILITY[a] || ['unknown', 'unknown'];
  }

  function badge(a) {
    const [cls, label] = availability(a);
    return el('span', { class: 'badge a-' + cls, text: label });
  }

  function deviceID(name) {
    return (name || '').replace(/^devices\//, '');
  }

  function ago(iso) {
    const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (s < 45) return 'just now';
    if (s < 90) return '1 min ago';
    if (s < 3600) return Math.round(s / 60) + ' min ago';
    if (s < 48 * 3600) return Math.round(s / 3600) + ' h ago';
    return Math.round(s / 86400) + ' days ago';
  }

  function freshText(seen, stale) {
    return stale ? '⚠ Stale: last seen ' + ago(seen) + ', it may have moved' : 'Seen ' + ago(seen);
  }

  function freshness(loc) {
    if (!loc.place || !loc.seen_time) return el('p', { class: 'fresh stale', text: '⚠ No location known' });
    return el('p', {
      class: 'fresh' + (loc.stale ? ' stale' : ''),
      'data-seen': loc.seen_time, 'data-stale': loc.stale ? '1' : undefined,
      text: freshText(loc.seen_time, loc.stale),
    });
  }

  function placeText(p) {
    if (!p) return 'Not located yet';
    return [p.room_name || p.room, p.unit_name || p.unit, p.floor_name || p.floor, p.site]
      .filter(Boolean).join(' · ');
  }

  // The status changes a person may ask for, by current availability. The
  // server decides; these are only the likely ones.
  function actionsFor(a) {
    const out = [];
    const cur = availability(a)[0];
    if (['soiled', 'in_maintenance', 'unknown'].includes(cur)) {
      out.push(['AVAILABILITY_AVAILABLE', 'Mark clean', 'secondary']);
    }
    if (['available', 'in_use', 'in_maintenance', 'unknown'].includes(cur)) {
      out.push(['AVAILABILITY_SOILED', 'Mark soiled', 'secondary']);
    }
    if (!['out_of_service', 'decommissioned'].includes(cur)) {
      out.push(['AVAILABILITY_OUT_OF_SERVICE', 'Out of service', 'danger']);
    }
    return out;
  }

  // card is one device's location, with its distance when given.
  function card(loc, distance) {
    const id = deviceID(loc.device);
    const hid = 'dev-' + (++uid);
    const li = el('li', { class: 'card' + (loc.stale ? ' is-stale' : ''), 'data-device': id, tabindex: '-1', 'aria-labelledby': hid },
      el('h3', { id: hid }, el('span', { text: id }), badge(loc.availability)),
      el('p', { class: 'meta', text: [loc.profile, loc.model].filter(Boolean).join(' · ') }),
      el('p', { class: 'place' },
        distance === undefined ? null : el('span', { class: 'distance', text: Math.round(distance) + ' m away · ' }),
        placeText(loc.place)),
      freshness(loc));
    if (me && me.can_mark_status) {
      const actions = actionsFor(loc.availability);
      if (actions.length) {
        li.append(el('div', { class: 'actions' }, actions.map(([to, label, cls]) =>
          el('button', {
            type: 'button', class: cls, 'data-set': to, 'aria-describedby': hid,
            onclick: () => mark(li, loc, to, distance),
          }, label, el('span', { class: 'vh', text: ' ' + id })))));
      }
    }
    return li;
  }

  async function mark(li, loc, to, distance) {
    const id = deviceID(loc.device);
    const label = availability(to)[1];
    if (to === 'AVAILABILITY_OUT_OF_SERVICE' &&
        !window.confirm('Mark ' + id + ' out of service? Clinical engineering must check it before it is used again.')) {
      return;
    }
    li.querySelectorAll('button').forEach((b) => { b.disabled = true; });
    const old = li.querySelector('.error');
    if (old) old.remove();
    try {
      const updated = await api('devices/' + encodeURIComponent(id) + '/availability', 'POST',
        { availability: to, reason: 'marked ' + label + ' on the locate page' });
      const fresh = card(updated, distance);
      li.replaceWith(fresh);
      fresh.focus();
      notice(id + ' is now ' + availability(updated.availability)[1] + '.');
    } catch (e) {
      li.querySelectorAll('button').forEach((b) => { b.disabled = false; });
      if (e.status === 401) return;
      let text = e.message;
      if (e.status === 409) text = 'Not allowed now: ' + e.message;
      if (e.status === 403) text = 'You may not change the status of devices.';
      li.append(el('p', { class: 'error', role: 'alert', text }));
    }
  }

  function notice(text, bad) {
    const n = $('#notice');
    n.className = 'notice' + (bad ? ' bad' : '');
    n.textContent = text;
  }

  function say(region, text) {
    region.replaceChildren(el('p', { text }));
  }

  function failed(region, e) {
    if (e.status === 401) return;
    region.replaceChildren(el('p', { class: 'error', role: 'alert', text: e.message }));
  }

  // Search.
  async function search(q) {
    const out = $('#search-results');
    say(out, 'Searching…');
    try {
      const r = await api('search?q=' + encodeURIComponent(q));
      if (!r.devices.length) {
        say(out, 'No device matches “' + q + '”.');
        return;
      }
      out.replaceChildren(
        el('p', { text: r.devices.length + (r.devices.length === 1 ? ' device' : ' devices') +
          (r.truncated ? ' shown; more match, narrow the search.' : '.') }),
        el('ul', { class: 'cards' }, r.devices.map((d) => card(d))));
    } catch (e) {
      failed(out, e);
    }
  }

  // Nearest available.
  async function loadUnits() {
    if (units) return;
    units = await api('units');
    const sel = $('#near');
    const groups = new Map();
    const sites = new Set(units.map((u) => u.site)).size;
    for (const u of units) {
      const key = u.site + '/' + u.floor;
      const label = (u.floor_name || u.floor) + (sites > 1 ? ' · ' + u.site : '');
      if (!groups.has(key)) groups.set(key, el('optgroup', { label }));
      groups.get(key).append(el('option', { value: u.unit, text: u.unit_name || u.unit }));
    }
    sel.replaceChildren(...groups.values());
    const saved = localStorage.getItem(UNIT_KEY);
    if (saved && units.some((u) => u.unit === saved)) sel.value = saved;
    if (!units.length) say($('#nearest-results'), 'The facility has no units yet.');
    try {
      const par = await api('par');
      const profiles = [...new Set((par.levels || []).map((l) => l.profile))].sort();
      $('#profiles').replaceChildren(...profiles.map((p) => el('option', { value: p })));
    } catch (e) { /* suggestions only */ }
  }

  async function nearest() {
    const out = $('#nearest-results');
    const near = $('#near').value;
    const profile = $('#profile').value.trim();
    if (!near || !profile) return;
    localStorage.setItem(UNIT_KEY, near);
    const unitName = $('#near').selectedOptions[0].textContent;
    say(out, 'Looking…');
    try {
      const q = new URLSearchParams({ near, profile, limit: $('#limit').value });
      const r = await api('nearest?' + q);
      const devs = r.devices || [];
      if (!devs.length) {
        say(out, 'No available ' + profile + ' near ' + unitName + '.');
        return;
      }
      out.replaceChildren(
        el('p', { text: devs.length + ' available ' + profile + ', nearest to ' + unitName + ' first.' }),
        el('ol', { class: 'cards' }, devs.map((d) => card(d.location, d.distance_m || 0))));
    } catch (e) {
      failed(out, e);
    }
  }

  // Floor plan.
  async function loadFloors() {
    if (floors) {
      await refreshFloor();
      return;
    }
    const list = await api('floors');
    floors = new Map(list.map((f) => [f.floor, f]));
    // Name the building and site only when there are several.
    const where = (f) => (f.building_name || f.building) + ' · ' + (f.site_name || f.site);
    const several = new Set(list.map(where)).size > 1;
    $('#floor').replaceChildren(...list.map((f) =>
      el('option', { value: f.floor, text: several ? f.name + ' · ' + where(f) : f.name })));
    if (list.length) drawFloor(list[0]);
    else say($('#floor-plan'), 'The facility has no floors yet.');
    $('#floor-plan').setAttribute('aria-busy', 'false');
  }

  // refreshFloor redraws the chosen floor with the devices there now. The
  // plan is aria-busy until the latest request is drawn.
  async function refreshFloor() {
    const id = $('#floor').value;
    if (!id) return;
    const seq = ++floorSeq;
    const plan = $('#floor-plan');
    plan.setAttribute('aria-busy', 'true');
    try {
      const [f] = await api('floors?floor=' + encodeURIComponent(id));
      if (seq !== floorSeq) return;
      floors.set(f.floor, f);
      drawFloor(f);
    } catch (e) {
      if (seq === floorSeq) failed($('#zone-devices'), e);
    } finally {
      if (seq === floorSeq) plan.setAttribute('aria-busy', 'false');
    }
  }

  function drawFloor(f) {
    let w = f.width, h = f.height;
    for (const z of f.zones) {
      w = Math.max(w || 0, z.x + z.w);
      h = Math.max(h || 0, z.y + z.h);
    }
    w = w || 10;
    h = h || 10;
    const font = Math.max(0.4, Math.min(w, h) / 50);
    const total = f.zones.reduce((n, z) => n + z.count, 0);
    const svg = sv('svg', {
      viewBox: [-1, -1, w + 2, h + 2].join(' '), role: 'group',
      'aria-label': f.name + ': ' + total + (total === 1 ? ' device' : ' devices') + ' located',
    });
    const perRoom = new Map();
    for (const z of f.zones) perRoom.set(z.room, (perRoom.get(z.room) || 0) + 1);
    const plan = $('#floor-plan');
    const hadFocus = plan.contains(document.activeElement);
    for (const z of f.zones) svg.append(zoneShape(z, font, perRoom.get(z.room) > 1));
    plan.replaceChildren(svg);
    // Keep the zone that was chosen, with its devices as they are now.
    const z = f.zones.find((z) => z.zone === selectedZone && z.count);
    const g = z && svg.querySelector('g[data-zone="' + CSS.escape(z.zone) + '"]');
    if (g) {
      showZone(g, z);
      if (hadFocus) g.focus();
      return;
    }
    selectedZone = null;
    $('#zone-devices').replaceChildren(el('p', {
      text: total ? 'Choose a zone with a count to list its devices.' : 'No devices are located on this floor.',
    }));
  }

  // zoneShape draws a zone: its room's name, the zone's own name under it
  // when the room has several, and a count of the devices in it.
  function zoneShape(z, font, several) {
    const avail = z.devices.filter((d) => d.availability === 'AVAILABILITY_AVAILABLE' && !d.stale).length;
    const name = several ? (z.room_name || z.room) + ' · ' + z.name : z.room_name || z.name;
    const chars = Math.max(3, Math.floor((z.w - font * 0.6) / (font * 0.55)));
    const fit = (s) => (s.length > chars ? s.slice(0, chars - 1) + '…' : s);
    const g = sv('g', {
      class: 'zone' + (z.count ? ' has' : '') + (avail ? ' avail' : ''), 'data-zone': z.zone,
    }, sv('rect', { class: 'area', x: z.x, y: z.y, width: z.w, height: z.h, 'stroke-width': font / 10 }),
    sv('text', { x: z.x + font * 0.3, y: z.y + font * 1.1, 'font-size': font, text: fit(z.room_name || z.name) }),
    several && z.h > font * 3 ? sv('text', { x: z.x + font * 0.3, y: z.y + font * 2.2, 'font-size': font * 0.9, text: fit(z.name) }) : null);
    if (!z.count) {
      g.setAttribute('aria-hidden', 'true');
      return g;
    }
    g.setAttribute('tabindex', '0');
    g.setAttribute('role', 'button');
    g.setAttribute('aria-label', name + ', ' + (z.unit_name || z.unit) + ': ' + z.count +
      (z.count === 1 ? ' device' : ' devices') + ', ' + avail + ' available');
    const r = Math.min(font * 1.1, z.w / 2.5, z.h / 2.5);
    const cx = z.x + z.w / 2, cy = z.y + Math.max(z.h / 2, font * 1.4 + r);
    g.append(sv('circle', { cx, cy: Math.min(cy, z.y + z.h - r), r }),
      sv('text', {
        class: 'count', x: cx, y: Math.min(cy, z.y + z.h - r), 'font-size': r * 1.1,
        'text-anchor': 'middle', 'dominant-baseline': 'central', text: String(z.count),
      }));
    g.addEventListener('click', () => showZone(g, z));
    g.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' || ev.key === ' ') {
        ev.preventDefault();
        showZone(g, z);
      }
    });
    return g;
  }

  function showZone(g, z) {
    document.querySelectorAll('.zone.selected').forEach((s) => s.classList.remove('selected'));
    g.classList.add('selected');
    selectedZone = z.zone;
    const title = [z.room_name, z.name].filter(Boolean).join(' · ') + ' (' + (z.unit_name || z.unit) + ')';
    $('#zone-devices').replaceChildren(
      el('h3', { text: title + ': ' + z.count + (z.count === 1 ? ' device' : ' devices') }),
      el('ul', { class: 'cards' }, z.devices.map((d) =>
        el('li', { class: 'card' + (d.stale ? ' is-stale' : ''), 'data-device': d.id },
          el('h3', {}, el('span', { text: d.id }), badge(d.availability)),
          el('p', { class: 'meta', text: [d.profile, d.model].filter(Boolean).join(' · ') }),
          d.stale ? el('p', { class: 'fresh stale', text: '⚠ Stale location' }) : null,
          el('div', { class: 'actions' }, el('button', {
            type: 'button', class: 'secondary',
            onclick: () => { show('search'); $('#q').value = d.id; search(d.id); },
          }, 'Details', el('span', { class: 'vh', text: ' of ' + d.id })))))),
      ...(z.devices.length < z.count ? [el('p', { text: 'Only the first ' + z.devices.length + ' are listed.' })] : []));
  }

  // Par levels.
  async function par() {
    const out = $('#par-results');
    say(out, 'Loading…');
    try {
      const r = await api('par');
      const levels = r.levels || [];
      if (!levels.length) {
        say(out, 'No par levels are set for this facility.');
        return;
      }
      out.replaceChildren(el('table', {},
        el('caption', { class: 'vh', text: 'Available devices against par level, per unit and profile' }),
        el('thead', {}, el('tr', {},
          el('th', { scope: 'col', text: 'Unit' }), el('th', { scope: 'col', text: 'Profile' }),
          el('th', { scope: 'col', class: 'num', text: 'Available' }), el('th', { scope: 'col', class: 'num', text: 'Par' }),
          el('th', { scope: 'col', text: 'Status' }))),
        el('tbody', {}, levels.map((l) => el('tr', { class: l.below ? 'below' : undefined },
          el('td', { text: l.unit_name || l.unit }), el('td', { text: l.profile }),
          el('td', { class: 'num', text: String(l.available || 0) }), el('td', { class: 'num', text: String(l.min || 0) }),
          el('td', { text: l.below ? '⚠ below par' : 'ok' }))))));
    } catch (e) {
      failed(out, e);
    }
  }

  // Views and sign-in.
  const loaders = {
    search: null,
    nearest: () => loadUnits(),
    floor: () => loadFloors(),
    par: () => par(),
  };

  async function show(view) {
    document.querySelectorAll('.tabs button').forEach((b) => {
      if (b.dataset.view === view) b.setAttribute('aria-current', 'page');
      else b.removeAttribute('aria-current');
    });
    document.querySelectorAll('.view').forEach((v) => { v.hidden = v.id !== 'view-' + view; });
    if (loaders[view]) {
      try {
        await loaders[view]();
      } catch (e) {
        if (e.status !== 401) notice(e.message, true);
      }
    }
  }

  function showLogin(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    me = null;
    units = null;
    floors = null;
    selectedZone = null;
    // A station's screen is shared: leave nothing of the last session.
    for (const id of ['#search-results', '#nearest-results', '#floor-plan', '#zone-devices', '#par-results']) {
      $(id).replaceChildren();
    }
    $('#floor-plan').setAttribute('aria-busy', 'true');
    $('#q').value = '';
    notice('');
    $('#app').hidden = true;
    $('#who').hidden = true;
    $('#login').hidden = false;
    $('#login-error').textContent = message || '';
    $('#token').value = '';
    $('#token').focus();
  }

  function showApp() {
    $('#login').hidden = true;
    $('#app').hidden = false;
    $('#who').hidden = false;
    $('#who-text').textContent = 'Signed in as ' + me.user + ' (' + me.role + (me.site ? ', site ' + me.site : '') + ')';
    $('#logout').hidden = !sessionStorage.getItem(TOKEN_KEY);
    notice('');
    show('search');
    $('#q').focus();
  }

  async function signIn(ev) {
    ev.preventDefault();
    const token = $('#token').value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    try {
      me = await api('whoami');
      $('#token').value = '';
      showApp();
    } catch (e) {
      if (e.status === 401) showLogin('That token was not accepted. Check it and try again.');
      else $('#login-error').textContent = e.message;
    }
  }

  function tick() {
    document.querySelectorAll('[data-seen]').forEach((p) => {
      p.textContent = freshText(p.dataset.seen, p.dataset.stale === '1');
    });
  }

  async function start() {
    $('#login-form').addEventListener('submit', signIn);
    $('#logout').addEventListener('click', () => showLogin('Signed out.'));
    $('#search-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const q = $('#q').value.trim();
      if (q) search(q);
    });
    $('#nearest-form').addEventListener('submit', (ev) => { ev.preventDefault(); nearest(); });
    $('#floor-form').addEventListener('submit', (ev) => { ev.preventDefault(); refreshFloor(); });
    $('#floor').addEventListener('change', () => {
      const f = floors && floors.get($('#floor').value);
      if (f) drawFloor(f);
      refreshFloor();
    });
    document.querySelectorAll('.tabs button').forEach((b) => b.addEventListener('click', () => show(b.dataset.view)));
    setInterval(tick, 30000);
    try {
      me = await api('whoami');
      showApp();
    } catch (e) {
      if (e.status !== 401) showLogin(e.message);
    }
  }

  start();
})();
