// raftmq web console: one page with hash routes (#/queues, #/group, ...)
// that reads and drives the admin API described in docs/API.md. Plain
// JavaScript, no framework and no build step; the server's
// Content-Security-Policy allows no inline script or style, so everything
// is built with DOM calls and styled through classes.
'use strict';

(function () {
  const API = '/api/v1';
  const REFRESH_MS = 2000;
  const FETCH_TIMEOUT_MS = 8000;
  const BROWSE_LIMIT = 50;

  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

  // ---------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // api sends one request and returns the decoded JSON answer; a failure
  // becomes an ApiError carrying the API's {"error": ...} text.
  async function api(method, path, body) {
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), FETCH_TIMEOUT_MS);
    const init = { method, signal: ctrl.signal, cache: 'no-store', headers: {} };
    // The API takes actions only as JSON requests, which another site's
    // page cannot send without the browser asking first (CORS).
    if (method !== 'GET') init.headers['Content-Type'] = 'application/json';
    if (body !== undefined) init.body = JSON.stringify(body);
    let resp, text;
    try {
      resp = await fetch(API + path, init);
      text = await resp.text();
    } catch (e) {
      throw new ApiError(0, ctrl.signal.aborted ? 'the node did not answer in time' : 'cannot reach the node');
    } finally {
      clearTimeout(timer);
    }
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (e) {
      data = null;
    }
    if (!resp.ok) {
      const msg = data && typeof data.error === 'string' ? data.error : (text.trim() || resp.statusText);
      throw new ApiError(resp.status, `HTTP ${resp.status}: ${msg}`);
    }
    return data;
  }

  // loadAll fetches several documents at once; one failing does not hide
  // the others.
  async function loadAll(paths) {
    const keys = Object.keys(paths);
    const results = await Promise.allSettled(keys.map((k) => api('GET', paths[k])));
    const out = { data: {}, errors: [] };
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') out.data[keys[i]] = r.value;
      else out.errors.push(r.reason);
    });
    return out;
  }

  const shortQueue = (name) => (name.startsWith('/queue/') ? name.slice('/queue/'.length) : name);
  const queuePath = (name) => '/queues/' + encodeURIComponent(shortQueue(name));
  const isDLQ = (name) => shortQueue(name).startsWith('DLQ.');

  // --------------------------------------------------------- formatting

  const numberFormat = new Intl.NumberFormat('en-US');
  const fmtNum = (n) => (typeof n === 'number' && isFinite(n) ? numberFormat.format(n) : '–');

  function fmtDuration(ms) {
    if (typeof ms !== 'number' || !isFinite(ms) || ms < 0) return '–';
    if (ms < 1000) return `${Math.round(ms)} ms`;
    const s = ms / 1000;
    if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.floor(s)} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min ${Math.floor(s % 60)} s`;
    const h = Math.floor(m / 60);
    if (h < 24) return `${h} h ${m % 60} min`;
    return `${Math.floor(h / 24)} d ${h % 24} h`;
  }

  const pad = (n) => String(n).padStart(2, '0');

  function fmtClock(d) {
    return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function fmtTime(iso) {
    if (!iso) return '–';
    const d = new Date(iso);
    if (isNaN(d)) return iso;
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${fmtClock(d)}`;
  }

  // since is a cell showing how long ago iso was, with the time as title.
  function since(iso) {
    const d = iso ? new Date(iso) : null;
    if (!d || isNaN(d) || d.getFullYear() < 2000) return '–';
    return { text: fmtDuration(Date.now() - d.getTime()), title: fmtTime(iso) };
  }

  const badge = (text, state, title) => ({ text, badge: (state || text).toLowerCase(), title });

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('data-') || k.startsWith('aria-') || k === 'role' || k === 'title' || k === 'type' || k === 'href' || k === 'colspan') e.setAttribute(k, v === true ? '' : v);
      else e[k] = v;
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  // ------------------------------------------------------------- tables

  // Table keeps a table in place across refreshes: rows are matched by
  // key and only changed cells are touched, so focus, checkboxes and open
  // details survive and nothing jumps. Columns are
  //   {id, label, num, cls, get(row), fmt(value, row), sort: false}
  // where fmt returns a string, a Node or a cell description: {text,
  // title} with badge: state, href: link, clip: true or lines: [[label,
  // text]]. Each cell carries its raw value in data-value, for tests and
  // scripts.
  class Table {
    constructor(table, opts) {
      this.el = table;
      this.opts = opts;
      this.cols = opts.cols;
      this.rows = new Map(); // key -> latest row
      this.sortCol = opts.sortBy || null;
      this.sortDir = opts.sortDir || 1;
      this.filter = null;
      this.loaded = false;
      this.body = el('tbody');
      this.renderHead();
      table.append(this.body);
      this.message('Loading…');
      table.addEventListener('click', (ev) => this.onClick(ev));
    }

    renderHead() {
      const tr = el('tr');
      for (const c of this.cols) {
        const th = el('th', { scope: 'col', class: c.num ? 'num' : '', 'data-col': c.id });
        if (c.sort === false || !this.opts.sortable) {
          th.textContent = c.label;
          if (c.srLabel) th.append(el('span', { class: 'sr-only', text: c.srLabel }));
        } else {
          th.append(el('button', { type: 'button', class: 'sort', 'data-sort': c.id, text: c.label }));
        }
        tr.append(th);
      }
      if (this.opts.actions) tr.append(el('th', { scope: 'col', class: 'actions-col', text: 'Actions' }));
      this.el.append(el('thead', {}, tr));
      this.updateSortMarks();
    }

    updateSortMarks() {
      for (const th of $$('th', this.el)) {
        const active = th.dataset.col && th.dataset.col === this.sortCol;
        if (active) th.setAttribute('aria-sort', this.sortDir > 0 ? 'ascending' : 'descending');
        else th.removeAttribute('aria-sort');
      }
    }

    value(c, row) {
      return c.get ? c.get(row) : row[c.id];
    }

    onClick(ev) {
      const sortBtn = ev.target.closest('button[data-sort]');
      if (sortBtn) {
        const id = sortBtn.dataset.sort;
        if (this.sortCol === id) this.sortDir = -this.sortDir;
        else {
          this.sortCol = id;
          const c = this.cols.find((x) => x.id === id);
          this.sortDir = c && c.num ? -1 : 1;
        }
        this.updateSortMarks();
        this.render(Array.from(this.rows.values()));
        return;
      }
      const btn = ev.target.closest('button[data-action]');
      const tr = btn && btn.closest('tr[data-key]');
      if (tr && this.opts.onAction) {
        const row = this.rows.get(tr.dataset.key);
        if (row) this.opts.onAction(btn.dataset.action, row, btn);
      }
    }

    // message shows text in place of rows when there are none to show.
    message(text) {
      if (this.body.querySelector('tr[data-key]')) return;
      const span = this.cols.length + (this.opts.actions ? 1 : 0);
      this.body.replaceChildren(el('tr', { class: 'empty' }, el('td', { colspan: span, text })));
    }

    render(rows) {
      rows = rows || [];
      this.loaded = true;
      const key = this.opts.key;
      this.rows = new Map(rows.map((r) => [key(r), r]));
      const shown = this.filter ? rows.filter(this.filter) : rows.slice();
      if (this.sortCol) {
        const c = this.cols.find((x) => x.id === this.sortCol);
        if (c) {
          const v = (r) => this.value(c, r);
          shown.sort((a, b) => {
            const x = v(a);
            const y = v(b);
            if (typeof x === 'number' || typeof y === 'number') {
              const nx = typeof x === 'number' ? x : -Infinity; // missing sorts first
              const ny = typeof y === 'number' ? y : -Infinity;
              return nx === ny ? 0 : this.sortDir * (nx < ny ? -1 : 1);
            }
            return this.sortDir * String(x ?? '').localeCompare(String(y ?? ''));
          });
        }
      }
      const existing = new Map($$(':scope > tr[data-key]', this.body).map((tr) => [tr.dataset.key, tr]));
      const empty = $(':scope > tr.empty', this.body);
      if (empty) empty.remove();
      shown.forEach((row, i) => {
        const k = key(row);
        let tr = existing.get(k);
        if (tr) existing.delete(k);
        else tr = this.newRow(k, row);
        this.updateRow(tr, row);
        if (this.body.children[i] !== tr) this.body.insertBefore(tr, this.body.children[i] || null);
      });
      for (const tr of existing.values()) tr.remove();
      if (shown.length === 0) {
        this.message(rows.length && this.filter ? this.opts.noMatch || 'Nothing matches the filter.' : this.opts.empty);
      }
    }

    newRow(k, row) {
      const tr = el('tr', { 'data-key': k });
      if (this.opts.rowAttr) tr.setAttribute('data-' + this.opts.rowAttr, k);
      for (const c of this.cols) {
        tr.append(el('td', { 'data-col': c.id, class: c.num ? 'num' : c.cls || '' }));
      }
      if (this.opts.actions) {
        const td = el('td', { class: 'actions' });
        for (const a of this.opts.actions(row)) {
          td.append(el('button', {
            type: 'button',
            class: 'btn small' + (a.danger ? ' danger-outline' : ''),
            'data-action': a.action,
            'aria-label': `${a.label} ${k}`,
            title: a.title,
            text: a.label,
          }));
        }
        tr.append(td);
      }
      return tr;
    }

    updateRow(tr, row) {
      if (this.opts.rowData) {
        for (const [k, v] of Object.entries(this.opts.rowData(row))) {
          if (tr.getAttribute('data-' + k) !== String(v)) tr.setAttribute('data-' + k, v);
        }
      }
      this.cols.forEach((c, i) => {
        const td = tr.children[i];
        const v = this.value(c, row);
        const shown = c.fmt ? c.fmt(v, row) : c.num ? fmtNum(v) : v === undefined || v === null || v === '' ? '–' : String(v);
        setCell(td, shown);
        const raw = typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean' ? String(v) : null;
        if (raw === null) td.removeAttribute('data-value');
        else if (td.dataset.value !== raw) td.dataset.value = raw;
      });
    }
  }

  // setCell shows d in td, touching the DOM only when it changed.
  function setCell(td, d) {
    if (d instanceof Node) {
      td.replaceChildren(d);
      td._sig = null;
      return;
    }
    const sig = typeof d === 'string' ? d : JSON.stringify(d);
    if (td._sig === sig) return;
    td._sig = sig;
    if (typeof d === 'string') {
      td.textContent = d;
      td.removeAttribute('title');
      return;
    }
    let content = d.text;
    if (d.lines) {
      content = el('span', { class: 'lines' });
      for (const [k, v] of d.lines) content.append(el('span', { class: 'line' }, el('span', { class: 'muted', text: k + ' ' }), v));
    } else if (d.badge) content = el('span', { class: 'badge', 'data-state': d.badge, text: d.text });
    else if (d.href) content = el('a', { href: d.href, text: d.text });
    else if (d.clip) content = el('span', { class: 'clip', text: d.text });
    td.replaceChildren(content);
    if (d.title) td.title = d.title;
    else td.removeAttribute('title');
  }

  // ---------------------------------------------------- notices, dialog

  let noticeTimer = null;

  function notice(kind, text) {
    const n = $('#notice');
    clearTimeout(noticeTimer);
    n.dataset.kind = kind;
    $('#notice-text').textContent = text;
    n.hidden = false;
    if (kind === 'ok') noticeTimer = setTimeout(() => (n.hidden = true), 6000);
  }

  const dialog = $('#confirm');
  let confirmRun = null;
  let working = false; // the confirmed action runs: the dialog stays

  // confirmAction asks in a modal before running an action; run gets the
  // text of the optional input field. Refreshing pauses while it is open.
  function confirmAction({ title, text, label, danger = true, input, run }) {
    $('#confirm-title').textContent = title;
    $('#confirm-text').textContent = text;
    const field = $('#confirm-field');
    const inp = $('#confirm-input');
    field.hidden = !input;
    if (input) {
      $('#confirm-label').textContent = input.label;
      inp.value = input.value || '';
      inp.placeholder = input.placeholder || '';
      $('#confirm-hint').textContent = input.hint || '';
    }
    const ok = $('button[data-confirm]', dialog);
    ok.textContent = label;
    ok.className = 'btn ' + (danger ? 'danger' : 'primary');
    ok.disabled = false;
    $('button[data-cancel]', dialog).disabled = false;
    confirmRun = run;
    dialog.showModal();
    (input ? inp : $('button[data-cancel]', dialog)).focus();
    setRefreshState('paused', 'Paused while a confirmation is open');
  }

  async function onConfirm() {
    const run = confirmRun;
    if (!run) return;
    confirmRun = null;
    working = true;
    const ok = $('button[data-confirm]', dialog);
    const label = ok.textContent;
    ok.disabled = true;
    $('button[data-cancel]', dialog).disabled = true;
    ok.textContent = 'Working…';
    try {
      const msg = await run($('#confirm-input').value.trim());
      if (msg) notice('ok', msg);
    } catch (e) {
      notice('error', `${label} failed: ${e.message}`);
    }
    ok.textContent = label;
    working = false;
    if (dialog.open) dialog.close(); // its close event refreshes
    else refreshNow();
  }

  $('button[data-confirm]', dialog).addEventListener('click', onConfirm);
  $('button[data-cancel]', dialog).addEventListener('click', () => dialog.close());
  $('#confirm-input').addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter') {
      ev.preventDefault();
      onConfirm();
    }
  });
  dialog.addEventListener('cancel', (ev) => {
    if (working) ev.preventDefault();
  });
  dialog.addEventListener('close', () => {
    confirmRun = null;
    refreshNow();
  });
  $('#notice-close').addEventListener('click', () => ($('#notice').hidden = true));

  // -------------------------------------------------------------- state

  const state = {
    route: { page: 'overview' },
    node: null, // GET /api/v1/node of the node serving this console
  };

  // ------------------------------------------------------------- queues

  function queueActions(row) {
    const acts = [{ action: 'browse', label: 'Browse' }];
    if (row.dead_letter_queue ?? isDLQ(row.name)) acts.push({ action: 'retry', label: 'Retry', title: 'Move the messages back to the queue each was first sent to' });
    acts.push({ action: 'purge', label: 'Purge', danger: true, title: 'Delete every stored message' });
    acts.push({ action: 'delete', label: 'Delete', danger: true, title: 'Delete the queue and its messages' });
    return acts;
  }

  const plural = (n, one, many) => `${fmtNum(n)} ${n === 1 ? one : many}`;

  function onQueueAction(action, row) {
    const name = row.name;
    switch (action) {
      case 'browse':
        location.hash = '#/browse/' + encodeURIComponent(shortQueue(name));
        break;
      case 'purge':
        confirmAction({
          title: 'Purge queue',
          text: `Delete all ${plural(row.pending, 'stored message', 'stored messages')} of ${name}, in-flight ones included? This cannot be undone.`,
          label: 'Purge',
          run: async () => {
            const r = await api('POST', queuePath(name) + '/purge');
            return `Purged ${plural(r && r.purged, 'message', 'messages')} from ${name}.`;
          },
        });
        break;
      case 'delete':
        confirmAction({
          title: 'Delete queue',
          text: `Delete ${name} and its ${plural(row.pending, 'message', 'messages')}? Its consumers stay subscribed and will see new messages.`,
          label: 'Delete queue',
          run: async () => {
            await api('DELETE', queuePath(name));
            return `Deleted ${name}.`;
          },
        });
        break;
      case 'retry':
        confirmAction({
          title: 'Retry dead letters',
          text: `Move every message of ${name} that is not in flight back to the queue it was first sent to?`,
          label: 'Retry',
          danger: false,
          run: async () => moveResult(name, await moveAll(name, {})),
        });
        break;
    }
  }

  // askMove moves the messages seqs (all when null) of queue name.
  function askMove(name, seqs) {
    const what = seqs ? plural(seqs.length, 'selected message', 'selected messages') : 'every message not in flight';
    confirmAction({
      title: 'Move messages',
      text: `Move ${what} of ${name} to another queue.`,
      label: 'Move',
      danger: false,
      input: {
        label: 'Target queue',
        placeholder: 'original destination',
        hint: 'Leave empty to send each message back to the queue it was first sent to.',
      },
      run: async (to) => {
        const body = {};
        if (to) body.to = shortQueue(to);
        if (seqs) body.seqs = seqs;
        return moveResult(name, await moveAll(name, body));
      },
    });
  }

  // moveAll repeats a move while the broker says messages remain (one
  // move looks at a bounded number) and it still moves some.
  async function moveAll(name, body) {
    const sum = { moved: 0, skipped: 0, remaining: 0 };
    for (;;) {
      const r = (await api('POST', queuePath(name) + '/move', body)) || {};
      sum.moved += r.moved || 0;
      sum.skipped += r.skipped || 0;
      sum.remaining = r.remaining || 0;
      if (!sum.remaining || !r.moved || body.seqs) return sum;
    }
  }

  function moveResult(name, r) {
    r = r || {};
    let msg = `Moved ${plural(r.moved || 0, 'message', 'messages')} from ${name}`;
    if (r.skipped) msg += `; ${fmtNum(r.skipped)} skipped (in flight or no original destination)`;
    if (r.remaining) msg += `; ${fmtNum(r.remaining)} left to move`;
    return msg + '.';
  }

  const nameCol = { id: 'name', label: 'Name', cls: 'name' };

  const queuesTable = new Table($('#queues-table'), {
    sortable: true,
    sortBy: 'name',
    key: (r) => r.name,
    rowAttr: 'queue',
    empty: 'No queues yet.',
    noMatch: 'No queue matches the filter.',
    cols: [
      nameCol,
      { id: 'pending', label: 'Pending', num: true },
      { id: 'consumers', label: 'Consumers', num: true },
      { id: 'enqueued', label: 'Enqueued', num: true },
      { id: 'dequeued', label: 'Dequeued', num: true },
      { id: 'in_flight', label: 'In flight', num: true },
      { id: 'dead_lettered', label: 'Dead-lettered', num: true },
      { id: 'oldest_age', label: 'Oldest', num: true, get: (r) => r.oldest_age_ms, fmt: (v) => (v === undefined ? '–' : fmtDuration(v)) },
    ],
    actions: queueActions,
    onAction: onQueueAction,
  });

  function filterBox(input, table) {
    const apply = () => {
      const q = input.value.trim().toLowerCase();
      table.filter = q ? (r) => r.name.toLowerCase().includes(q) : null;
      if (table.loaded) table.render(Array.from(table.rows.values()));
    };
    input.addEventListener('input', apply);
  }
  filterBox($('#queue-filter'), queuesTable);

  function showSince(which, d) {
    const p = $(`p[data-since="${which}"]`);
    p.textContent = d && d.since
      ? `Counters since ${fmtTime(d.since)}, when leader ${d.leader_id || '?'} took over.`
      : '';
  }

  $('#create-queue').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const input = $('#create-queue-name');
    const name = shortQueue(input.value.trim());
    if (!name) return;
    const btn = $('button[type=submit]', ev.target);
    btn.disabled = true;
    try {
      await api('POST', '/queues', { name });
      notice('ok', `Queue /queue/${name} is ready.`);
      input.value = '';
    } catch (e) {
      notice('error', `Create queue failed: ${e.message}`);
    } finally {
      btn.disabled = false;
    }
    refreshNow();
  });

  // ------------------------------------------------------------- browse

  const browse = { name: '', from: 0, back: [], next: null, loading: false };

  function bodyCell(m) {
    const body = m.body || '';
    let note = '';
    if (m.body_encoding === 'base64') note = ' (base64)';
    if (m.body_truncated) note += ' (first 4 KiB)';
    if (body.length <= 48 && !body.includes('\n')) return el('code', { class: 'body', text: body + note });
    return el('details', { class: 'body' },
      el('summary', { text: body.slice(0, 48).replace(/\s+/g, ' ') + '…' }),
      el('pre', { text: body }),
      note ? el('span', { class: 'muted', text: note }) : null);
  }

  function headersCell(h) {
    const keys = Object.keys(h || {});
    if (!keys.length) return '–';
    const span = el('span', { class: 'headers', title: keys.map((k) => `${k}: ${h[k]}`).join('\n') });
    keys.sort().slice(0, 2).forEach((k) => span.append(el('span', { class: 'chip', text: `${k}=${h[k]}` })));
    if (keys.length > 2) span.append(el('span', { class: 'muted', text: `+${keys.length - 2}` }));
    return span;
  }

  const yesNo = (v) => (v ? 'yes' : 'no');

  function flagsCell(m) {
    const span = el('span', { class: 'flags' });
    if (m.in_flight) span.append(el('span', { class: 'badge', 'data-state': 'follower', text: 'in flight', title: 'Delivered to a consumer, not yet acknowledged' }));
    if (m.redelivered) span.append(el('span', { class: 'badge', 'data-state': 'candidate', text: 'redelivered' }));
    if (m.expires) span.append(el('span', { class: 'badge', text: 'expires', title: `Expires ${fmtTime(m.expires)}` }));
    if (!span.childElementCount) span.textContent = 'stored';
    return span;
  }

  const messagesTable = new Table($('#messages-table'), {
    key: (m) => String(m.seq),
    rowAttr: 'seq',
    empty: 'No stored messages on this page.',
    rowData: (m) => ({ 'in-flight': m.in_flight }),
    cols: [
      {
        id: 'select', label: '', srLabel: 'Select', sort: false, get: () => null,
        fmt: (_, m) => el('input', { type: 'checkbox', class: 'select', 'aria-label': `Select message ${m.seq}`, disabled: m.in_flight, title: m.in_flight ? 'In flight: cannot be moved' : undefined }),
      },
      { id: 'seq', label: 'Seq', num: true },
      { id: 'message_id', label: 'Message ID', cls: 'mono' },
      { id: 'timestamp', label: 'Time', fmt: (v) => fmtTime(v) },
      { id: 'priority', label: 'Priority', num: true },
      { id: 'flags', label: 'State', get: () => null, fmt: (_, m) => flagsCell(m) },
      { id: 'headers', label: 'Headers', get: () => null, fmt: (_, m) => headersCell(m.headers) },
      { id: 'body_size', label: 'Size', num: true, fmt: (v) => (typeof v === 'number' ? `${fmtNum(v)} B` : '–') },
      { id: 'body', label: 'Body', get: () => null, fmt: (_, m) => bodyCell(m) },
    ],
  });

  $('#messages-table').addEventListener('change', updateMoveSelected);

  function selectedSeqs() {
    return $$('#messages-table tr[data-key] input.select:checked').map((c) => Number(c.closest('tr').dataset.key));
  }

  function updateMoveSelected() {
    const n = selectedSeqs().length;
    const btn = $('button[data-action="move-selected"]');
    btn.disabled = n === 0;
    btn.textContent = n ? `Move ${n} selected…` : 'Move selected…';
  }

  async function loadBrowse() {
    const name = browse.name;
    const meta = $('#browse-meta');
    browse.loading = true;
    try {
      const r = await api('GET', `${queuePath(name)}/messages?from=${browse.from}&limit=${BROWSE_LIMIT}`);
      if (name !== browse.name) return;
      const msgs = (r && r.messages) || [];
      messagesTable.body.replaceChildren(); // a new page: nothing to keep
      messagesTable.render(msgs);
      browse.next = r && typeof r.next === 'number' ? r.next : null;
      const first = msgs.length ? msgs[0].seq : null;
      const last = msgs.length ? msgs[msgs.length - 1].seq : null;
      meta.textContent = msgs.length
        ? `Page ${browse.back.length + 1}: ${plural(msgs.length, 'message', 'messages')}, seq ${first}–${last}. Browsing does not consume; non-persistent messages are not listed.`
        : 'No stored messages from here on. Browsing does not consume; non-persistent messages are not listed.';
    } catch (e) {
      messagesTable.body.replaceChildren();
      messagesTable.message('Could not load messages.');
      meta.textContent = '';
      notice('error', `Browse ${name} failed: ${e.message}`);
      browse.next = null;
    } finally {
      browse.loading = false;
    }
    $('button[data-action="browse-next"]').disabled = browse.next === null;
    $('button[data-action="browse-first"]').disabled = browse.back.length === 0;
    updateMoveSelected();
  }

  function openBrowse(short) {
    const name = '/queue/' + short;
    if (browse.name !== name) {
      Object.assign(browse, { name, from: 0, back: [], next: null });
      messagesTable.body.replaceChildren();
      messagesTable.message('Loading…');
    }
    $('#browse-name').textContent = name;
    loadBrowse();
  }

  $('section[data-page="browse"] .tools').addEventListener('click', (ev) => {
    const btn = ev.target.closest('button[data-action]');
    if (!btn || browse.loading) return;
    switch (btn.dataset.action) {
      case 'browse-first':
        browse.from = 0;
        browse.back = [];
        break;
      case 'browse-next':
        if (browse.next === null) return;
        browse.back.push(browse.from);
        browse.from = browse.next;
        break;
      case 'move-all':
        askMove(browse.name, null);
        return;
      case 'move-selected': {
        const seqs = selectedSeqs();
        if (seqs.length) askMove(browse.name, seqs);
        return;
      }
    }
    loadBrowse();
  });

  // ------------------------------------------------------------- topics

  const topicsTable = new Table($('#topics-table'), {
    sortable: true,
    sortBy: 'name',
    key: (r) => r.name,
    rowAttr: 'topic',
    empty: 'No topics yet.',
    noMatch: 'No topic matches the filter.',
    cols: [
      nameCol,
      { id: 'consumers', label: 'Consumers', num: true },
      { id: 'network_consumers', label: 'Network consumers', num: true },
      { id: 'enqueued', label: 'Enqueued', num: true },
      { id: 'dequeued', label: 'Dequeued', num: true },
      { id: 'pending', label: 'Pending', num: true },
      { id: 'durable_subscriptions', label: 'Durable subscriptions', num: true, get: (r) => r.durable_subscriptions || 0 },
    ],
  });
  filterBox($('#topic-filter'), topicsTable);

  // ------------------------------------------------ connections, subs

  const connectionsTable = new Table($('#connections-table'), {
    sortable: true,
    sortBy: 'connected_at',
    key: (r) => r.id,
    rowAttr: 'connection',
    empty: 'No client connections.',
    cols: [
      { id: 'id', label: 'ID', cls: 'mono' },
      { id: 'remote_addr', label: 'Remote address', cls: 'mono' },
      { id: 'client_id', label: 'Client ID' },
      { id: 'login', label: 'Login' },
      { id: 'version', label: 'STOMP' },
      { id: 'bridge_group', label: 'Bridge from', fmt: (v) => (v ? badge(v, 'bridge', 'A bridge from another group') : '–') },
      { id: 'connected_at', label: 'Connected for', fmt: (v) => since(v) },
      { id: 'subscriptions', label: 'Subscriptions', num: true },
      { id: 'frames_in', label: 'Frames in', num: true },
      { id: 'messages_out', label: 'Messages out', num: true },
    ],
  });

  const subKey = (s) => (s.connection_id ? `${s.connection_id}/${s.id}` : `durable/${s.client_id}/${s.durable_name}`);

  const subscriptionsTable = new Table($('#subscriptions-table'), {
    sortable: true,
    sortBy: 'destination',
    key: subKey,
    rowAttr: 'subscription',
    rowData: (s) => ({ destination: s.destination }),
    empty: 'No subscriptions.',
    cols: [
      { id: 'destination', label: 'Destination', cls: 'name' },
      { id: 'connection_id', label: 'Connection', cls: 'mono' },
      { id: 'client_id', label: 'Client ID' },
      { id: 'id', label: 'Sub ID' },
      { id: 'durable_name', label: 'Durable name' },
      { id: 'ack', label: 'Ack' },
      { id: 'prefetch', label: 'Prefetch', num: true },
      { id: 'in_flight', label: 'In flight', num: true },
      { id: 'delivered', label: 'Delivered', num: true },
      { id: 'pending', label: 'Pending', num: true },
      { id: 'network_group', label: 'For group' },
      { id: 'active', label: 'State', fmt: (v) => (v ? badge('active', 'ok') : badge('offline', 'off', 'A durable subscription whose client is away')) },
    ],
  });

  // -------------------------------------------------------------- group

  function contactCell(v, m) {
    if (m.state === 'Leader') return '–';
    if (v === -1) return 'never';
    if (typeof v !== 'number') return '–';
    return fmtDuration(v);
  }

  const membersTable = new Table($('#members-table'), {
    sortable: true,
    sortBy: 'id',
    key: (m) => m.id,
    rowAttr: 'member',
    rowData: (m) => ({ state: m.state, reachable: m.state !== 'unreachable' }),
    empty: 'No members.',
    cols: [
      { id: 'id', label: 'ID', cls: 'name', fmt: (v) => (state.node && v === state.node.id ? { text: `${v} (this node)`, title: 'The node serving this console' } : v) },
      { id: 'state', label: 'State', fmt: (v, m) => badge(v === 'unreachable' ? 'Unreachable' : v || '?', v, m.error) },
      { id: 'reachable', label: 'Reachable', get: (m) => m.state !== 'unreachable', fmt: (v, m) => (v ? badge('yes', 'ok') : badge('no', 'error', m.error)) },
      { id: 'suffrage', label: 'Suffrage' },
      { id: 'term', label: 'Term', num: true },
      { id: 'last_log_index', label: 'Last log', num: true },
      { id: 'commit_index', label: 'Commit', num: true },
      { id: 'applied_index', label: 'Applied', num: true },
      { id: 'last_contact_ms', label: 'Last contact', num: true, fmt: contactCell },
      {
        id: 'addresses', label: 'Addresses', cls: 'addrs', get: (m) => m.raft_addr,
        fmt: (_, m) => ({ lines: [['raft', m.raft_addr], ['stomp', m.stomp_addr], ['http', m.http_addr]].filter((a) => a[1]) }),
      },
    ],
  });

  // ------------------------------------------------------------ network

  // demandCell counts the destinations a bridge forwards each way; the
  // title lists them.
  function demandCell(out, inn) {
    if (!out.length && !inn.length) return '–';
    const list = (dir, ds) => (ds.length ? [`${dir}:`, ...ds.map((d) => '  ' + d)] : []);
    return {
      text: `${fmtNum(out.length)} out · ${fmtNum(inn.length)} in`,
      title: [...list('Sent to the remote group', out), ...list('Received from it', inn)].join('\n'),
    };
  }

  const bridgesTable = new Table($('#bridges-table'), {
    sortable: true,
    key: (b) => `${b.remote_group}/${b.direction}`,
    rowAttr: 'bridge',
    rowData: (b) => ({ state: b.state }),
    empty: 'No bridges: this group is linked to no other group.',
    cols: [
      { id: 'remote_group', label: 'Remote group', cls: 'name' },
      { id: 'direction', label: 'Direction' },
      { id: 'link', label: 'Link', cls: 'mono' },
      { id: 'state', label: 'State', fmt: (v, b) => badge(v || '?', v, b.last_error) },
      { id: 'remote_leader', label: 'Remote leader' },
      { id: 'since', label: 'For', fmt: (v) => since(v) },
      { id: 'forwarded_out', label: 'Sent', num: true },
      { id: 'forwarded_in', label: 'Received', num: true },
      {
        id: 'demand', label: 'Destinations', get: (b) => (b.demand_out || []).length + (b.demand_in || []).length,
        fmt: (_, b) => demandCell(b.demand_out || [], b.demand_in || []),
      },
      { id: 'last_error', label: 'Last error', cls: 'error-text', fmt: (v) => (v ? { text: v, title: v, clip: true } : '–') },
    ],
  });

  const gossipTable = new Table($('#gossip-table'), {
    sortable: true,
    sortBy: 'name',
    key: (m) => m.name,
    rowAttr: 'gossip',
    empty: 'Gossip is off on this node: groups are linked by static --network links only.',
    cols: [
      { id: 'name', label: 'Name', cls: 'name' },
      { id: 'group', label: 'Group', get: (m) => m.meta && m.meta.group },
      { id: 'role', label: 'Role', get: (m) => m.meta && m.meta.role, fmt: (v) => badge(v || 'starting', v || 'off') },
      { id: 'term', label: 'Term', num: true, get: (m) => m.meta && m.meta.term },
      { id: 'addr', label: 'Gossip', cls: 'mono' },
      { id: 'stomp_addr', label: 'STOMP', cls: 'mono', get: (m) => m.meta && m.meta.stomp_addr },
      { id: 'http_addr', label: 'HTTP', cls: 'mono', get: (m) => m.meta && m.meta.http_addr },
      { id: 'network_links', label: 'Links by gossip', get: (m) => !!(m.meta && m.meta.network_links), fmt: yesNo },
    ],
  });

  const SVG = 'http://www.w3.org/2000/svg';

  function svg(tag, attrs, ...children) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) e.setAttribute(k, v);
    for (const c of children) if (c) e.append(c);
    return e;
  }

  // Bridge states from worst to best, to colour a line with several.
  const stateRank = { error: 0, connecting: 1, standby: 2, connected: 3 };

  // drawNetwork draws one box per group and a line per bridged pair.
  function drawNetwork(local, gossip, net) {
    const map = $('#network-map');
    const groups = new Map();
    const group = (name) => {
      if (!groups.has(name)) groups.set(name, { name, members: [], bridges: [], remoteLeader: '' });
      return groups.get(name);
    };
    group(local);
    for (const m of gossip || []) if (m.meta && m.meta.group) group(m.meta.group).members.push(m.meta);
    for (const b of (net && net.bridges) || []) {
      const g = group(b.remote_group);
      g.bridges.push(b);
      if (b.remote_leader) g.remoteLeader = b.remote_leader;
    }
    const names = [local, ...Array.from(groups.keys()).filter((n) => n !== local).sort()];
    // A hub: this group on the left, the groups it knows in a column on
    // the right. Only this group's bridges are known, so every line
    // starts here and the labels never collide.
    const W = 860;
    const BW = 180;
    const BH = 74;
    const ROW = 96;
    const others = names.slice(1);
    const H = Math.max(1, others.length) * ROW + 24;
    const pos = new Map();
    if (!others.length) pos.set(local, [W / 2, H / 2]);
    else {
      pos.set(local, [150, H / 2]);
      others.forEach((n, i) => pos.set(n, [W - 150, 12 + ROW / 2 + i * ROW]));
    }
    map.setAttribute('viewBox', `0 0 ${W} ${H}`);
    const lines = svg('g', { class: 'links' });
    const labels = svg('g', { class: 'labels' });
    const boxes = svg('g', { class: 'groups' });
    for (const name of names.slice(1)) {
      const g = groups.get(name);
      if (!g.bridges.length) continue;
      const [x1, y1] = pos.get(local);
      const [x2, y2] = pos.get(name);
      const best = g.bridges.reduce((s, b) => (stateRank[b.state] > stateRank[s] ? b.state : s), 'error');
      lines.append(svg('line', { x1, y1, x2, y2, class: `link state-${best}`, 'data-bridge-to': name }));
      const text = g.bridges.map((b) => b.direction === 'inbound'
        ? `inbound · ${b.state}`
        : `${b.state} · → ${fmtNum(b.forwarded_out)}  ← ${fmtNum(b.forwarded_in)}`);
      // The label sits past the middle of the line, where the lines of
      // different groups are furthest apart.
      const mx = x1 + (x2 - x1) * 0.56;
      const my = y1 + (y2 - y1) * 0.56;
      const w = Math.max(...text.map((t) => t.length)) * 6.6 + 16;
      const h = text.length * 15 + 8;
      const lbl = svg('g', { class: 'link-label', 'data-bridge-label': name });
      lbl.append(svg('rect', { x: mx - w / 2, y: my - h / 2, width: w, height: h, rx: 4 }));
      text.forEach((t, i) => {
        const tx = svg('text', { x: mx, y: my - h / 2 + 16 + i * 15, 'text-anchor': 'middle' });
        tx.textContent = t;
        lbl.append(tx);
      });
      labels.append(lbl);
    }
    for (const name of names) {
      const g = groups.get(name);
      const [cx, cy] = pos.get(name);
      const isLocal = name === local;
      const box = svg('g', { class: 'group' + (isLocal ? ' local' : ''), 'data-group': name });
      box.append(svg('rect', { x: cx - BW / 2, y: cy - BH / 2, width: BW, height: BH, rx: 10 }));
      const lift = g.members.length ? 12 : 4; // room for the member dots
      const title = svg('text', { x: cx, y: cy - lift, 'text-anchor': 'middle', class: 'group-name' });
      title.textContent = name.length > 20 ? name.slice(0, 19) + '…' : name;
      box.append(title);
      const leader = g.members.find((m) => m.role === 'leader');
      let sub;
      if (g.members.length) sub = `${g.members.length} node${g.members.length === 1 ? '' : 's'} · leader ${leader ? leader.id : 'none'}`;
      else if (isLocal && state.node) sub = `this group · leader ${state.node.leader_id || 'none'}`;
      else sub = g.remoteLeader ? `leader ${g.remoteLeader}` : 'not in gossip';
      const st = svg('text', { x: cx, y: cy - lift + 18, 'text-anchor': 'middle', class: 'group-sub' });
      st.textContent = sub;
      box.append(st);
      const ms = g.members.slice().sort((a, b) => a.id.localeCompare(b.id)).slice(0, 9);
      ms.forEach((m, i) => {
        const dot = svg('circle', { cx: cx - ((ms.length - 1) * 14) / 2 + i * 14, cy: cy + 24, r: 5, class: `member role-${m.role || 'none'}` });
        dot.append(svg('title', {}, document.createTextNode(`${m.id}: ${m.role || 'starting'}`)));
        box.append(dot);
      });
      box.append(svg('title', {}, document.createTextNode(isLocal ? `${name} (this group)` : name)));
      boxes.append(box);
    }
    map.replaceChildren(svg('title', { id: 'network-map-title' }, document.createTextNode('Groups and bridges')), lines, boxes, labels);
  }

  // -------------------------------------------------------------- pages

  function setStat(id, value, title) {
    const e = $(`[data-stat="${id}"]`);
    const text = value === undefined || value === null ? '–' : String(value);
    if (e.textContent !== text) e.textContent = text;
    if (title) e.title = title;
    else e.removeAttribute('title');
  }

  const topQueuesTable = new Table($('#top-queues'), {
    key: (r) => r.name,
    rowAttr: 'queue',
    empty: 'No queues yet.',
    cols: [
      { id: 'name', label: 'Queue', cls: 'name', fmt: (v) => ({ text: v, href: '#/browse/' + encodeURIComponent(shortQueue(v)) }) },
      { id: 'pending', label: 'Pending', num: true },
      { id: 'consumers', label: 'Consumers', num: true },
      { id: 'oldest_age', label: 'Oldest', num: true, get: (r) => r.oldest_age_ms, fmt: (v) => (v === undefined ? '–' : fmtDuration(v)) },
    ],
  });

  const listOf = (d, field) => (Array.isArray(d) ? d : (d && d[field]) || []);

  const pages = {
    overview: {
      load: () => loadAll({ status: '/status', dest: '/destinations', conns: '/connections', net: '/network' }),
      render({ status, dest, conns, net }) {
        if (status) {
          const ms = status.members || [];
          const up = ms.filter((m) => m.state !== 'unreachable').length;
          const leader = ms.find((m) => m.id === status.leader_id);
          setStat('group', status.group);
          setStat('leader', status.leader_id || 'none (election in progress)');
          setStat('term', status.node && status.node.term);
          setStat('members', `${up} of ${ms.length} up`);
          setStat('serving', leader ? `${leader.id} · STOMP ${leader.stomp_addr || '?'}` : 'nobody');
          setStat('self', status.node ? `${status.node.id} (${status.node.state})` : '–');
        }
        if (dest) {
          const ds = listOf(dest, 'destinations');
          const queues = ds.filter((d) => d.type === 'queue');
          setStat('queues', fmtNum(queues.length));
          setStat('topics', fmtNum(ds.filter((d) => d.type === 'topic').length));
          setStat('pending', fmtNum(ds.reduce((s, d) => s + (d.pending || 0), 0)));
          topQueuesTable.render(queues.filter((q) => q.pending > 0).sort((a, b) => b.pending - a.pending).slice(0, 8));
          if (!queues.some((q) => q.pending > 0)) topQueuesTable.message('No queue has pending messages.');
        }
        if (conns) setStat('connections', fmtNum(listOf(conns, 'connections').length));
        if (net) setStat('bridges', fmtNum((net.bridges || []).length));
      },
    },
    queues: {
      load: () => loadAll({ dest: '/destinations?type=queue' }),
      render({ dest }) {
        if (!dest) return;
        queuesTable.render(listOf(dest, 'destinations').filter((d) => d.type === 'queue'));
        showSince('queues', dest);
      },
    },
    browse: {
      // Browsing is paged by hand: the refresh loop leaves it alone.
      load: async () => ({ data: {}, errors: [] }),
      render() {},
    },
    topics: {
      load: () => loadAll({ dest: '/destinations?type=topic' }),
      render({ dest }) {
        if (!dest) return;
        topicsTable.render(listOf(dest, 'destinations').filter((d) => d.type === 'topic'));
        showSince('topics', dest);
      },
    },
    connections: {
      load: () => loadAll({ conns: '/connections' }),
      render({ conns }) {
        if (conns) connectionsTable.render(listOf(conns, 'connections'));
      },
    },
    subscriptions: {
      load: () => loadAll({ subs: '/subscriptions' }),
      render({ subs }) {
        if (subs) subscriptionsTable.render(listOf(subs, 'subscriptions'));
      },
    },
    group: {
      load: () => loadAll({ status: '/status' }),
      render({ status }) {
        if (!status) return;
        $('#group-name').textContent = status.group || '';
        membersTable.render(status.members || []);
        const n = status.node || {};
        $('#group-meta').textContent = `As seen by ${n.id || '?'} (${n.state || '?'}, term ${n.term ?? '?'}). ` +
          (status.leader_id ? `Leader: ${status.leader_id}.` : 'No leader known right now.');
      },
    },
    network: {
      load: () => loadAll({ gossip: '/gossip', net: '/network' }),
      render({ gossip, net }) {
        if (net) bridgesTable.render(net.bridges || []);
        if (gossip) gossipTable.render(gossip);
        const local = (net && net.group) || (state.node && state.node.group) || 'this group';
        drawNetwork(local, gossip || [], net);
        if (net) {
          $('#network-meta').textContent = `Bridges are kept by the group's leader; this is its view. ` +
            (net.links && net.links.length ? `Links: ${net.links.join(', ')}.` : 'No --network links configured.') +
            ' → counts messages sent to the remote group, ← messages received from it.';
        }
      },
    },
  };

  // ----------------------------------------------------- header, refresh

  function setRefreshState(kind, text, title) {
    const s = $('#refresh-status');
    s.dataset.state = kind;
    $('#refresh-text').textContent = text;
    s.title = title || text;
    $('#main').classList.toggle('stale', kind === 'error');
  }

  function renderHeader(node) {
    state.node = node;
    $('#hdr-group').textContent = node.group || '–';
    $('#hdr-node').textContent = node.id || '–';
    const role = $('#hdr-role');
    role.textContent = node.state || '?';
    role.dataset.state = (node.state || '').toLowerCase();
    role.title = node.serving ? 'This node leads and serves STOMP clients' : `Leader: ${node.leader_id || 'none'}`;
    document.title = `raftmq · ${node.group || ''}/${node.id || ''}`;
  }

  let timer = null;
  let inFlight = false;
  let again = false;

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(refresh, REFRESH_MS);
  }

  function refreshNow() {
    clearTimeout(timer);
    refresh();
  }

  async function refresh() {
    if (inFlight) {
      again = true;
      return;
    }
    if (dialog.open) {
      setRefreshState('paused', 'Paused while a confirmation is open');
      schedule();
      return;
    }
    if (document.hidden) {
      setRefreshState('paused', 'Paused while the tab is hidden');
      return; // visibilitychange restarts it
    }
    inFlight = true;
    const route = state.route;
    const page = pages[route.page];
    try {
      const [nodeRes, res] = await Promise.all([
        api('GET', '/node').then((v) => ({ v }), (e) => ({ e })),
        page.load(route),
      ]);
      if (route !== state.route) return; // moved on meanwhile: again
      const errors = res.errors.slice();
      if (nodeRes.v) renderHeader(nodeRes.v);
      else errors.unshift(nodeRes.e);
      page.render(res.data);
      const now = fmtClock(new Date());
      if (errors.length) {
        const e = errors[0];
        setRefreshState('error', `Refresh failed at ${now}: ${e.message}`,
          errors.map((x) => x.message).join('\n'));
        for (const t of tables) {
          if (!t.loaded && t.el.closest('section').dataset.page === route.page) t.message(`Could not load: ${e.message}`);
        }
      } else {
        setRefreshState('ok', `Updated ${now}`);
      }
    } catch (e) {
      setRefreshState('error', `Refresh failed at ${fmtClock(new Date())}: ${e.message}`);
    } finally {
      inFlight = false;
      if (again) {
        again = false;
        refresh();
      } else {
        schedule();
      }
    }
  }

  const tables = [queuesTable, topicsTable, connectionsTable, subscriptionsTable, membersTable, bridgesTable, gossipTable, topQueuesTable];

  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) refreshNow();
  });
  $('#refresh-now').addEventListener('click', () => {
    if (state.route.page === 'browse') loadBrowse();
    refreshNow();
  });

  // -------------------------------------------------------------- router

  function parseRoute() {
    const h = location.hash.replace(/^#\/?/, '');
    const i = h.indexOf('/');
    const page = i < 0 ? h : h.slice(0, i);
    const arg = i < 0 ? '' : h.slice(i + 1);
    if (page === 'browse' && arg) {
      try {
        return { page, arg: decodeURIComponent(arg) };
      } catch (e) {
        return { page: 'queues' };
      }
    }
    return pages[page] && page !== 'browse' ? { page } : null;
  }

  function route() {
    const r = parseRoute();
    if (!r) {
      history.replaceState(null, '', '#/overview');
      return route();
    }
    state.route = r;
    const nav = r.page === 'browse' ? 'queues' : r.page;
    for (const s of $$('section[data-page]')) s.hidden = s.dataset.page !== r.page;
    for (const a of $$('a[data-nav]')) {
      if (a.dataset.nav === nav) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    document.body.dataset.route = r.page;
    if ($('#notice').dataset.kind === 'ok') $('#notice').hidden = true;
    if (dialog.open && !working) dialog.close();
    if (r.page === 'browse') openBrowse(r.arg);
    refreshNow();
  }

  window.addEventListener('hashchange', route);
  route();
})();
