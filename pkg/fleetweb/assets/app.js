// Tessera fleet page. Every element is built with createElement and every
// value set with textContent or setAttribute: names that come from clusters
// (GPU models, pods, error messages) may carry markup, and none of it is
// ever parsed as HTML. The numbers are formatted exactly as `tessera fleet`
// prints them.
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const view = {
    fleet: null, key: '', refresh: 10, serverNow: 0, fetchedAt: 0,
    readError: '', fetchError: '', fitSeq: 0, tipFor: null,
  };
  const tileInfo = new WeakMap(); // tile element -> {cluster, node, gpu}
  const maxPodRows = 1000;

  // el builds an element; attrs.text sets its text, other attrs are set as
  // attributes (never event handlers or URLs from data), kids are appended
  // (strings become text nodes).
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = String(v);
      else e.setAttribute(k, String(v));
    }
    for (const kid of kids) if (kid !== null && kid !== undefined) e.append(kid);
    return e;
  }

  const gib = (mib) => (mib % 1024 === 0 ? String(mib / 1024) : (mib / 1024).toFixed(1));
  // big is GiB with thousands separators, for prose (the tables keep the CLI's format).
  const big = (mib) => (mib / 1024).toLocaleString('en-US', { maximumFractionDigits: 1 });
  const ratio = (c) => c.free + '/' + c.total;
  const gibRatio = (c) => gib(c.free) + '/' + gib(c.total);
  function ago(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 90) return s + ' s';
    if (s < 5400) return Math.round(s / 60) + ' min';
    if (s < 172800) return Math.round(s / 3600) + ' h';
    return Math.round(s / 86400) + ' days';
  }
  // serverNow is the server's clock now, from its last answer: ages are
  // measured against it, not against the browser's clock.
  const serverNow = () => view.serverNow + (performance.now() - view.fetchedAt);
  const ageSpan = (when) => el('span', { class: 'age', 'data-at': Date.parse(when), text: ago((serverNow() - Date.parse(when)) / 1000) });
  // colour is a stable colour per pod, so that a pod spread over GPUs reads
  // as one. Pods take blues, violets and magentas only: green, amber, grey
  // and red mean free, fragment, stranded and unhealthy.
  function colour(key) {
    let h = 2166136261;
    for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619);
    h >>>= 0;
    return 'hsl(' + (195 + h % 135) + ' ' + (45 + (h >>> 8) % 25) + '% ' + (42 + (h >>> 16) % 22) + '%)';
  }
  // compactNodes is the node count above which a cluster's tiles are drawn
  // small, without node names: 500 nodes must still fit on a few screens.
  const compactNodes = 64;
  const gpuCount = (c) => c.nodes.reduce((n, node) => n + node.gpus.length, 0);

  // ---- Fleet table ----
  function statusCell(c) {
    const td = el('td', { 'data-value': c.reachable ? 'reachable' : 'unreachable', class: 'wrap' });
    if (!c.reachable) {
      td.append(el('span', { class: 'badge bad', text: 'unreachable' }));
      td.append(el('span', { class: 'sub', text: c.error || 'no answer' }));
      td.append(el('span', { class: 'sub' }, ...(c.readAt ? ['data from ', ageSpan(c.readAt), ' ago'] : ['never read'])));
      return td;
    }
    if (!c.tessera) td.append(el('span', { class: 'badge warn', text: 'no Tessera nodes' }));
    else td.append(el('span', { class: 'badge ok', text: 'reachable' }));
    if (!c.ready) td.append(el('span', { class: 'sub', text: 'Karmada says: not Ready' }));
    if (c.problems && c.problems.length) {
      td.append(el('span', { class: 'sub', title: c.problems.join('\n'), text: c.problems.length + ' object(s) not counted' }));
    }
    return td;
  }
  function modelCells(m) {
    if (!m) return ['-', '0/0', '-', '-', '-', '-'].map((t, i) => el('td', { class: i ? 'num' : null, text: t }));
    // Fragmented: no GPU has an average GPU's memory free, yet the free
    // memory adds up to more than twice the largest block.
    const perGPU = m.gpus ? m.memoryMiB.total / m.gpus : 0;
    const fragmented = m.largestFreeMiB < perGPU && m.memoryMiB.free >= 2 * m.largestFreeMiB && m.memoryMiB.free > 0;
    return [
      el('td', { class: 'wrap', text: m.model }),
      el('td', { class: 'num', text: m.healthyGPUs + '/' + m.gpus }),
      el('td', { class: 'num', text: ratio(m.slots) }),
      el('td', { class: 'num', text: gibRatio(m.memoryMiB) }),
      el('td', { class: 'num', text: ratio(m.cores) }),
      el('td', { class: 'num' + (fragmented ? ' low' : ''), title: fragmented ? 'fragmented: the free memory is spread over GPUs' : null, text: gib(m.largestFreeMiB) }),
    ];
  }
  function renderFleet(f) {
    const rows = [];
    for (const c of f.clusters) {
      const models = c.models.length ? c.models : [null];
      models.forEach((m, i) => {
        const cells = modelCells(m);
        rows.push(el('tr', { class: c.reachable ? null : 'down', 'data-cluster': c.name },
          el('th', { scope: 'row', text: c.name }), statusCell(c), cells[0],
          el('td', { class: 'num', text: m ? m.nodes : c.nodes.length }), ...cells.slice(1),
          el('td', { class: 'num', text: i === 0 ? c.waitingPods : '' })));
      });
    }
    document.querySelector('#fleet-table tbody').replaceChildren(...rows);
    const waiting = f.clusters.reduce((n, c) => n + (c.reachable ? c.waitingPods : 0), 0);
    const foot = f.totals.map((m, i) => {
      const cells = modelCells(m);
      return el('tr', null, el('th', { scope: 'row', text: 'Fleet' }), el('td', { text: 'reachable clusters' }), cells[0],
        el('td', { class: 'num', text: m.nodes }), ...cells.slice(1), el('td', { class: 'num', text: i === 0 ? waiting : '' }));
    });
    document.querySelector('#fleet-table tfoot').replaceChildren(...foot);
  }

  // ---- Mosaic ----
  // gpuKind says what a GPU's free memory is good for, which is what makes
  // fragmentation visible: free on a whole GPU, in a fragment of a shared
  // one, or stranded behind a GPU with no slot left.
  function gpuKind(g) {
    if (!g.healthy) return 'bad';
    if (g.free.slots <= 0) return 'stranded';
    if (g.used.slots === 0 && g.used.memoryMiB === 0) return 'whole';
    return 'frag';
  }
  function tile(c, n, g) {
    const kind = gpuKind(g);
    const holders = g.holders || [];
    const cap = Math.max(g.capacity.memoryMiB, 1);
    const label = 'GPU ' + g.index + ' of ' + n.name + ': ' + g.model + (g.healthy ? '' : ', UNHEALTHY') + ', ' +
      gib(g.free.memoryMiB) + ' of ' + gib(g.capacity.memoryMiB) + ' GiB free, ' + g.free.slots + ' of ' +
      g.capacity.slots + ' slots free, ' + holders.length + ' holder(s)';
    const bar = el('span', { class: 'bar' });
    for (const h of holders) {
      const seg = el('i', { class: 'pod' });
      seg.style.height = (100 * h.memoryMiB / cap) + '%';
      seg.style.background = colour(h.namespace + '/' + h.pod);
      bar.append(seg);
    }
    if (g.free.memoryMiB > 0) {
      const free = el('i', { class: 'free ' + kind });
      free.style.height = (100 * g.free.memoryMiB / cap) + '%';
      bar.append(free);
    }
    const li = el('li', {
      class: 'gpu ' + kind + (g.healthy ? '' : ' bad'), tabindex: '-1', 'aria-label': label,
      'data-uuid': g.uuid, 'data-free-mib': g.free.memoryMiB, 'data-free-slots': g.free.slots,
      'data-holders': holders.length, 'data-healthy': g.healthy,
    }, bar, el('span', { class: 'slots', 'aria-hidden': 'true', text: g.healthy ? g.free.slots : '✕' }));
    tileInfo.set(li, { c, n, g });
    return li;
  }
  function meter(parts, total) {
    const m = el('span', { class: 'meter', role: 'img', 'aria-label': parts.map((p) => p[2] + ' ' + gib(p[1]) + ' GiB').join(', ') });
    for (const [cls, v] of parts) {
      if (v <= 0) continue;
      const seg = el('i', { class: cls });
      seg.style.width = (100 * v / Math.max(total, 1)) + '%';
      m.append(seg);
    }
    return m;
  }
  function clusterMosaic(c) {
    const t = { gpus: 0, whole: 0, used: 0, wholeFree: 0, frag: 0, stranded: 0, bad: 0, total: 0, largest: 0 };
    for (const n of c.nodes) for (const g of n.gpus) {
      const k = gpuKind(g);
      t.gpus++; t.total += g.capacity.memoryMiB; t.used += g.used.memoryMiB;
      if (k === 'bad') { t.bad += g.capacity.memoryMiB - g.used.memoryMiB; continue; }
      if (k === 'whole') { t.whole++; t.wholeFree += g.free.memoryMiB; } else if (k === 'frag') t.frag += g.free.memoryMiB; else t.stranded += g.free.memoryMiB;
      if (k !== 'stranded') t.largest = Math.max(t.largest, g.free.memoryMiB);
    }
    let verdict = ['full', 'no room on any GPU'];
    if (t.gpus === 0) verdict = ['full', c.reachable ? 'no Tessera GPUs' : 'no data'];
    else if (t.whole > 0) verdict = ['whole', t.whole + ' whole GPU' + (t.whole > 1 ? 's' : '') + ' free'];
    else if (t.frag > 0) verdict = ['frag', 'fragmented: ' + big(t.frag) + ' GiB free, at most ' + big(t.largest) + ' GiB on one GPU'];
    const head = el('div', { class: 'cluster-head' }, el('h3', { text: c.name }),
      el('span', { class: 'badge ' + (c.reachable ? 'ok' : 'bad'), text: c.reachable ? 'reachable' : 'unreachable' }),
      el('span', { class: 'verdict ' + verdict[0], text: verdict[1] }),
      el('span', { class: 'facts', text: c.nodes.length + ' nodes · ' + t.gpus + ' GPUs · ' + big(t.wholeFree + t.frag + t.stranded) + ' of ' + big(t.total) + ' GiB free' }));
    const sec = el('section', { class: 'cluster' + (c.reachable ? '' : ' down'), 'data-cluster': c.name, 'data-gpus': t.gpus, 'aria-label': 'GPUs of cluster ' + c.name }, head);
    if (!c.reachable) {
      sec.append(el('p', { class: 'error' }, 'Unreachable: ' + (c.error || 'no answer') + '. ',
        ...(c.readAt ? ['Showing the data read ', ageSpan(c.readAt), ' ago.'] : ['No data was ever read.'])));
    }
    if (t.gpus > 0) {
      const parts = [['m-used', t.used, 'held'], ['m-whole', t.wholeFree, 'free on whole GPUs'], ['m-frag', t.frag, 'free on shared GPUs'],
        ['m-stranded', t.stranded, 'free, no slot left'], ['m-bad', t.bad, 'on unhealthy GPUs']];
      const words = el('span', { class: 'meter-words' });
      for (const [cls, v, what] of parts) if (v > 0) words.append(el('span', null, el('i', { class: 'key ' + cls }), what + ' ' + big(v) + ' GiB'));
      sec.append(el('div', { class: 'meter-row' }, meter(parts, t.total), words));
    }
    const nodes = el('div', { class: 'nodes' + (c.nodes.length > compactNodes ? ' compact' : '') });
    for (const n of c.nodes) {
      if (!n.gpus.length && !n.inventoryError) continue;
      const name = el('p', { class: 'node-name', title: n.name }, n.name);
      if (n.unschedulable) name.append(' ', el('span', { class: 'flag', text: 'cordoned' }));
      if (n.inventoryError) name.append(' ', el('span', { class: 'flag', title: n.inventoryError, text: 'bad inventory' }));
      const list = el('ul', { class: 'gpus', 'aria-label': 'GPUs of node ' + n.name });
      for (const g of n.gpus) list.append(tile(c, n, g));
      nodes.append(el('div', { class: 'node' + (n.unschedulable ? ' cordoned' : '') }, name, list));
    }
    if (nodes.childElementCount) sec.append(nodes);
    else sec.append(el('p', { class: 'none', text: c.reachable ? 'No node publishes a Tessera GPU inventory.' : 'No GPUs known.' }));
    if (c.problems && c.problems.length) {
      const d = el('details', null, el('summary', { text: c.problems.length + ' object(s) whose GPU data could not be read (not counted)' }));
      for (const p of c.problems) d.append(el('p', { class: 'mono', text: p }));
      sec.append(d);
    }
    const first = sec.querySelector('.gpu');
    if (first) first.tabIndex = 0; // one tab stop per cluster; arrows move within it
    return sec;
  }
  function renderMosaic(f) {
    const frag = document.createDocumentFragment();
    for (const c of f.clusters) frag.append(clusterMosaic(c));
    $('mosaic-clusters').replaceChildren(frag);
  }
  function showTip(li) {
    const info = tileInfo.get(li);
    if (!info) return;
    const { n, g } = info;
    const tip = $('tip');
    const lines = [el('b', { text: n.name + ' · GPU ' + g.index }), el('div', { text: g.model })];
    if (!g.healthy) lines.push(el('div', { class: 'bad', text: 'UNHEALTHY: nothing new is placed here' }));
    lines.push(el('div', { text: 'free ' + gib(g.free.memoryMiB) + ' of ' + gib(g.capacity.memoryMiB) + ' GiB · ' + g.free.slots + ' of ' +
      g.capacity.slots + ' slots · ' + g.free.cores + ' of ' + g.capacity.cores + '% cores' }));
    const hs = g.holders || [];
    for (const h of hs.slice(0, 10)) {
      lines.push(el('div', { text: h.namespace + '/' + h.pod + (h.container ? ' (' + h.container + ')' : '') + ': ' + gib(h.memoryMiB) + ' GiB, ' + (h.cores ? h.cores + '% cores' : 'no core cap') }));
    }
    if (hs.length > 10) lines.push(el('div', { text: '… and ' + (hs.length - 10) + ' more' }));
    tip.replaceChildren(...lines);
    tip.hidden = false;
    view.tipFor = li;
    const r = li.getBoundingClientRect();
    const w = tip.offsetWidth, h = tip.offsetHeight;
    let top = r.bottom + 6;
    if (top + h > window.innerHeight - 4) top = Math.max(4, r.top - h - 6);
    tip.style.left = Math.max(4, Math.min(r.left, window.innerWidth - w - 4)) + 'px';
    tip.style.top = top + 'px';
  }
  function hideTip() { $('tip').hidden = true; view.tipFor = null; }
  // onScroll keeps the tooltip of a focused tile beside it (focusing a tile
  // scrolls it into view) and hides one that followed the mouse.
  function onScroll() {
    if (view.tipFor && view.tipFor === document.activeElement) showTip(view.tipFor);
    else hideTip();
  }
  function moveFocus(li, key) {
    const tiles = Array.from(li.closest('.cluster').querySelectorAll('.gpu'));
    let i = tiles.indexOf(li);
    const perRow = li.parentElement.childElementCount;
    if (key === 'ArrowRight') i++; else if (key === 'ArrowLeft') i--;
    else if (key === 'ArrowDown') i += perRow; else if (key === 'ArrowUp') i -= perRow;
    else if (key === 'Home') i = 0; else if (key === 'End') i = tiles.length - 1;
    else return false;
    const next = tiles[Math.max(0, Math.min(tiles.length - 1, i))];
    li.tabIndex = -1; next.tabIndex = 0; next.focus();
    return true;
  }

  // ---- Pods ----
  function fillSelect(select, values) {
    const keep = select.value;
    select.replaceChildren(el('option', { value: '', text: 'all' }), ...values.map((v) => el('option', { value: v, text: v })));
    select.value = values.includes(keep) ? keep : '';
  }
  function renderPods(f) {
    const namespaces = new Set();
    for (const c of f.clusters) for (const p of c.pods) namespaces.add(p.namespace);
    fillSelect($('pod-cluster'), f.clusters.map((c) => c.name));
    fillSelect($('pod-namespace'), Array.from(namespaces).sort());
    const wantCluster = $('pod-cluster').value, wantNS = $('pod-namespace').value;
    const rows = [];
    let pods = 0, shown = 0;
    for (const c of f.clusters) {
      if (wantCluster && c.name !== wantCluster) continue;
      const index = new Map();
      for (const n of c.nodes) for (const g of n.gpus) index.set(g.uuid, g.index);
      for (const p of c.pods) {
        if (wantNS && p.namespace !== wantNS) continue;
        pods++;
        const containers = p.containers && p.containers.length ? p.containers : [null];
        for (const k of containers) {
          if (rows.length >= maxPodRows) continue;
          const node = p.node ? el('td', { text: p.node }) : el('td', { class: 'wrap' }, el('span', { class: 'badge warn', text: 'waiting' }), p.reason ? el('span', { class: 'sub', text: p.reason }) : null);
          const gpus = k && k.gpus ? k.gpus.map((u) => (index.has(u) ? 'GPU ' + index.get(u) : u)).join(', ') : '';
          rows.push(el('tr', { 'data-cluster': c.name, 'data-namespace': p.namespace },
            el('td', { text: c.name }), el('td', { text: p.namespace }), el('th', { scope: 'row', class: 'wrap', text: p.name }), node,
            el('td', { text: p.phase }), el('td', { text: k ? k.name : '' }), el('td', { class: 'num', text: k ? k.vgpus : '' }),
            el('td', { title: k && k.gpus ? k.gpus.join('\n') : null, text: gpus }),
            el('td', { class: 'num', text: !k ? '' : k.memoryMiB ? gib(k.memoryMiB) : 'whole' }),
            el('td', { class: 'num', text: !k ? '' : k.cores ? k.cores + '%' : 'no cap' }),
            el('td', { class: 'num', text: k && k.usedMemoryMiB != null ? gib(k.usedMemoryMiB) : '–' })));
        }
        shown++;
      }
    }
    document.querySelector('#pods-table tbody').replaceChildren(...rows);
    $('pod-count').textContent = pods + ' pod(s)' + (rows.length >= maxPodRows ? '; the first ' + maxPodRows + ' rows are shown: filter by cluster or namespace' : '');
  }

  // ---- What fits ----
  function resourceWords(rl) {
    const names = Object.keys(rl || {}).sort();
    return names.length ? names.map((k) => k + '=' + rl[k]).join(', ') : 'nothing but a pod slot';
  }
  function firstWords(p) {
    if (!p) return '-';
    const gpus = [];
    for (const c of p.containers || []) for (const g of c.gpus || []) gpus.push('GPU ' + g.index + ' (' + gib(g.memoryMiB) + ' GiB)');
    return p.node + ': ' + gpus.join(', ');
  }
  function renderFit(res) {
    const rows = res.clusters.map((a) => {
      const over = a.reachable && a.karmada > a.tessera;
      return el('tr', { class: a.reachable ? null : 'down', 'data-cluster': a.cluster },
        el('th', { scope: 'row', text: a.cluster }),
        el('td', { class: 'num', text: a.reachable ? a.tessera : '-' }),
        el('td', { class: 'num' + (over ? ' over' : ''), title: over ? 'Karmada’s estimate counts ' + (a.karmada - a.tessera) + ' more than fit' : null, text: a.karmada }),
        el('td', { class: 'num', text: a.reachable ? a.scheduler : '-' }),
        a.reachable ? el('td', { class: 'wrap', text: firstWords(a.first) })
          : el('td', { class: 'wrap', 'data-value': '-' }, '-', el('span', { class: 'sub', text: 'unreachable: ' + (a.error || 'no answer') })));
    });
    const table = el('table', { id: 'fit-table', class: 'data' },
      el('caption', { class: 'hint', text: 'Replicas that fit, per cluster' }),
      el('thead', null, el('tr', null, ...['Cluster', 'Tessera (exact)', 'Karmada stock estimate', 'Karmada with Tessera', 'First replica on']
        .map((h, i) => el('th', { scope: 'col', class: i > 0 && i < 4 ? 'num' : null, text: h })))),
      el('tbody', null, ...rows),
      el('tfoot', null, el('tr', null, el('th', { scope: 'row', text: 'Total' }), el('td', { class: 'num', text: res.tessera }),
        el('td', { class: 'num', text: res.karmada }), el('td'), el('td'))));
    const out = [el('p', { class: 'replica', text: (res.workload ? res.workload + ': one' : 'One') + ' replica asks for ' + resourceWords(res.replica) + '.' }),
      el('div', { class: 'scroll' }, table)];
    if (res.replicas) {
      const ok = res.tessera >= res.replicas;
      out.push(el('p', { class: 'verdict-line ' + (ok ? 'ok' : 'no'), text: ok ? res.replicas + ' replicas fit in the fleet (' + res.tessera + ' would).'
        : res.replicas + ' replicas do NOT fit: only ' + res.tessera + ' do, by Tessera’s exact count.' }));
    }
    const box = $('fit-result');
    box.replaceChildren(...out);
    box.dataset.seq = String(++view.fitSeq);
  }
  async function submitFit(ev) {
    ev.preventDefault();
    const form = ev.target, fd = new FormData(form);
    const int = (name) => { const v = parseInt(String(fd.get(name) || ''), 10); return Number.isFinite(v) ? v : 0; };
    const body = {};
    const workload = String(fd.get('workload') || '').trim();
    if (workload) body.workload = workload;
    else body.shape = { vgpus: int('vgpus'), memory: String(fd.get('memory') || '').trim(), cores: int('cores') };
    if (int('replicas')) body.replicas = int('replicas');
    const button = form.querySelector('button');
    button.disabled = true;
    $('fit-error').hidden = true;
    try {
      const r = await fetch('api/fit', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body), cache: 'no-store' });
      const data = await r.json();
      if (!r.ok) throw new Error(data.error || 'HTTP ' + r.status);
      renderFit(data);
    } catch (e) {
      $('fit-error').textContent = String(e && e.message ? e.message : e);
      $('fit-error').hidden = false;
      $('fit-result').replaceChildren();
      $('fit-result').dataset.seq = String(++view.fitSeq);
    } finally {
      button.disabled = false;
    }
  }

  // ---- Refresh ----
  function tick() {
    const now = serverNow();
    for (const s of document.querySelectorAll('.age')) s.textContent = ago((now - Number(s.dataset.at)) / 1000);
    const status = $('status');
    const f = view.fleet;
    if (!f) { status.textContent = view.fetchError ? 'The dashboard server does not answer.' : 'Waiting for the first read of the fleet…'; return; }
    const age = (now - Date.parse(f.readAt)) / 1000;
    const down = f.clusters.filter((c) => !c.reachable).length;
    status.textContent = 'Read ' + ago(age) + ' ago · ' + f.clusters.length + ' cluster' + (f.clusters.length === 1 ? '' : 's') +
      (down ? ', ' + down + ' unreachable' : '') + ' · refreshes every ' + view.refresh + ' s';
    status.classList.toggle('stale', age > 3 * view.refresh + 5);
  }
  function renderBanner() {
    const msgs = [];
    if (view.fetchError) msgs.push('The dashboard server did not answer: ' + view.fetchError + '. Showing what it last sent.');
    if (view.readError) msgs.push('Karmada did not list its member clusters: ' + view.readError + '. Showing the fleet as last read.');
    $('banner').textContent = msgs.join(' ');
    $('banner').hidden = msgs.length === 0;
  }
  function render() {
    const f = view.fleet;
    const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.uuid : undefined;
    hideTip();
    renderFleet(f); renderMosaic(f); renderPods(f);
    if (focused) {
      const again = document.querySelector('.gpu[data-uuid="' + CSS.escape(focused) + '"]');
      if (again) { again.tabIndex = 0; again.focus({ preventScroll: true }); }
    }
    document.body.dataset.readAt = f.readAt;
    document.body.dataset.gpus = String(f.clusters.reduce((n, c) => n + gpuCount(c), 0));
  }
  async function load() {
    try {
      const r = await fetch('api/fleet', { cache: 'no-store' });
      if (!r.ok) throw new Error('HTTP ' + r.status);
      const data = await r.json();
      view.serverNow = Date.parse(data.now);
      view.fetchedAt = performance.now();
      view.refresh = data.refreshSeconds > 0 ? data.refreshSeconds : 10;
      view.readError = data.error || '';
      view.fetchError = '';
      if (data.fleet) {
        const key = data.fleet.readAt + '|' + JSON.stringify(data.fleet.clusters.map((c) => [c.name, c.reachable, c.readAt]));
        if (key !== view.key) { view.fleet = data.fleet; view.key = key; render(); }
      }
    } catch (e) {
      view.fetchError = String(e && e.message ? e.message : e);
    }
    renderBanner();
    tick();
    setTimeout(load, Math.max(2, view.refresh) * 1000);
  }

  function start() {
    const mosaic = $('mosaic-clusters');
    mosaic.addEventListener('mouseover', (e) => { const li = e.target.closest('.gpu'); if (li) showTip(li); });
    mosaic.addEventListener('mouseout', (e) => { if (e.target.closest('.gpu')) hideTip(); });
    mosaic.addEventListener('focusin', (e) => { if (e.target.classList.contains('gpu')) showTip(e.target); });
    mosaic.addEventListener('focusout', hideTip);
    mosaic.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') { hideTip(); return; }
      if (e.target.classList.contains('gpu') && moveFocus(e.target, e.key)) e.preventDefault();
    });
    window.addEventListener('scroll', onScroll, { passive: true });
    $('fit-form').addEventListener('submit', submitFit);
    for (const id of ['pod-cluster', 'pod-namespace']) $(id).addEventListener('change', () => view.fleet && renderPods(view.fleet));
    setInterval(tick, 1000);
    load();
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
