/* The explorer (/explore): a map of the events of a filter, events by province and period,
   and one event's claims side by side. Everything comes from the public API, as any
   frontend would ask it: the page is also an example of how to use it.

     the filter      the form's fields are GET /v1/events' parameters, by the same names,
                     and the page's URL holds them (plus `event`, `measure`, `period`), so
                     a view can be shared; the API checks them and names what is wrong
     the map         GET /v1/events.ndjson?fields=latitude,longitude: every matching event's
                     id and point, nothing more (a popup asks for the rest); clustered
                     (Leaflet.markercluster) over Natural Earth's country outlines
                     (world-atlas), all served from here
     the chart       GET /v1/stats/events: group_by=<period>&fill=true gives the periods
                     (none missing) and the fatality band, group_by=admin1,<period> the
                     stacks; clicking a bar narrows the filter to that province and period
     the list        GET /v1/events?fields=...&count=true, paged with next_cursor
     one event       GET /v1/events/{id} (claims, derived figures and attribution with the
                     claim ids behind them, linked records, happening), and its history

   No inline script or style (the page's Content-Security-Policy allows files from this
   server only); text from the API is put in the page as text, never as HTML. */
(function () {
  "use strict";

  const root = document.getElementById("explorer");
  const API = root.dataset.api;
  const PAGE = root.dataset.page;
  const form = document.getElementById("filters");
  const statusLine = document.getElementById("status");
  const problemLine = document.getElementById("problem");
  // The form's fields are filters of GET /v1/events, by their names (api/pages.py, EXPLORER_FIELDS).
  const FILTERS = [...form.elements].map((field) => field.name).filter(Boolean);
  // The page's own parameters beside the filter.
  const VIEW = { measure: ["events", "fatalities"], period: ["month", "week"] };
  // The map's points: each event's id and coordinates, as NDJSON (a popup asks for the rest):
  // the least to send and parse, 1.4 MB for the shipped 16,580 where the GeoJSON of the same is 3.8.
  const MAP_FIELDS = "latitude,longitude";
  const LIST_FIELDS = "id,date_start,date_end,event_type,sub_event_type,place,fatalities";
  const LIST_PAGE = 50;
  const HISTORY_PARAMS = new URLSearchParams({ limit: "50" });  // an event's first 50 changes (oldest first)
  const PROVINCES_SHOWN = 8;
  const NO_PROVINCE = "No province";  // (events placed in a country only: a bar narrows them by period)
  // The provinces' colours: Okabe-Ito's, told apart with colour-blindness; grey for the rest.
  const PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#8C6D00", "#332288", "#9a9a9a"];

  /* ---------------------------------------------------------------- the API */

  class ApiProblem extends Error {
    constructor(problem) {
      super(problem.detail || problem.title || "The API refused the request");
      this.problem = problem;
    }
  }

  /** An answer of the API, parsed: JSON, or for NDJSON (an export) the list of its lines. */
  async function ask(url, signal) {
    const response = await fetch(url, { signal });
    if (!response.ok) throw new ApiProblem({ status: response.status, ...(await response.json().catch(() => ({}))) });
    if (!response.headers.get("content-type").startsWith("application/x-ndjson")) return response.json();
    const text = (await response.text()).trimEnd();
    // parsed at once as one JSON array: 16,000 lines parsed one by one take longer
    return text ? JSON.parse("[" + text.split("\n").join(",") + "]") : [];
  }

  /** The requests of one part of the page (the events, the chart, the event, a field's
      suggestions). renew() stops the previous ones, whose answers are no longer wanted (a
      new filter, a closed event): the browser drops their connections, and the server stops
      working on them; an export stops streaming and frees its slot for the new filter's. */
  class Requests {
    /** The latest requests' signal (a page more of the same filter joins them). */
    get signal() {
      return this.controller.signal;
    }

    renew() {
      if (this.controller) this.controller.abort();
      this.controller = new AbortController();
      return this.controller.signal;
    }
  }

  // The first view's answers, asked for as this script runs: it comes before Leaflet and
  // Chart.js in the page, which take the browser a quarter of a second to load, and the
  // server answers meanwhile. Each is taken once, by the first getAnswer of its URL, and
  // stopped with its taker's signal.
  const askedEarly = new Map();

  function askEarly(path, params) {
    const url = API + path + (params ? "?" + params.toString() : "");
    const controller = new AbortController();
    const answer = ask(url, controller.signal);
    answer.catch(() => {});  // (its taker sees the problem; nobody may take it, if the filter changes first)
    askedEarly.set(url, { answer, controller });
  }

  /** Early answers the first view did not take (it changed before they were taken): stopped. */
  function dropEarlyAnswers() {
    for (const { controller } of askedEarly.values()) controller.abort();
    askedEarly.clear();
  }

  /** The answer to `path` with `params`, stopped when `signal` aborts. */
  function getAnswer(path, params, signal) {
    const url = API + path + (params ? "?" + params.toString() : "");
    const early = askedEarly.get(url);
    if (!early) return ask(url, signal);
    askedEarly.delete(url);
    if (signal) signal.addEventListener("abort", () => early.controller.abort(), { once: true });
    return early.answer;
  }

  /** What the map, the list and the chart ask the API for a filter (and the chart's view). */
  function mapParams(filter) {
    const params = new URLSearchParams(filter);
    params.set("fields", MAP_FIELDS);
    return params;
  }

  function listParams(filter, cursor) {
    const params = new URLSearchParams(filter);
    params.set("fields", LIST_FIELDS);
    params.set("limit", String(LIST_PAGE));
    if (cursor) params.set("cursor", cursor);
    else params.set("count", "true");
    return params;
  }

  /** The periods (every one, with the fatality sums), and for events the stacks by province. */
  function statsParams(filter, { measure, period }) {
    const periods = new URLSearchParams(filter);
    periods.set("group_by", period);
    periods.set("fill", "true");
    if (measure !== "events") return [periods];
    const stacks = new URLSearchParams(filter);
    stacks.set("group_by", `admin1,${period}`);
    return [periods, stacks];
  }

  /* ------------------------------------------------------------- the filter */

  /** The filter in the page's URL (only the API's parameters, in its names). */
  function filterFromURL() {
    const url = new URLSearchParams(location.search);
    const filter = new URLSearchParams();
    for (const name of FILTERS) for (const value of url.getAll(name)) if (value) filter.append(name, value);
    return filter;
  }

  function viewFromURL() {
    const url = new URLSearchParams(location.search);
    const view = {};
    for (const [name, choices] of Object.entries(VIEW)) {
      view[name] = choices.includes(url.get(name)) ? url.get(name) : choices[0];
    }
    view.event = url.get("event");
    return view;
  }

  /** The filter the form shows. A field given several values (`country=SYR&country=IRQ`,
      from a shared URL) shows its first: while that one is unchanged, all are kept. */
  function formToFilter() {
    const filter = new URLSearchParams();
    for (const name of FILTERS) {
      const value = form.elements[name].value.trim();
      const shown = current.filter.getAll(name);
      if (value && shown.length > 1 && shown[0] === value) for (const each of shown) filter.append(name, each);
      else if (value) filter.append(name, value);
    }
    return filter;
  }

  /** The filter in the form; with `keepTyped`, not in a field the person has filled
      already (as the page starts: the form is shown before this script has come). */
  function filterToForm(filter, keepTyped = false) {
    for (const name of FILTERS) {
      if (keepTyped && form.elements[name].value) continue;  // (every field's default is empty)
      form.elements[name].value = filter.get(name) || "";
    }
    typesToForm(filter);
  }

  /** The type fields: the event type, then the sub-event types offered for it (made first),
      then the chosen one. */
  function typesToForm(filter) {
    form.elements.event_type.value = filter.get("event_type") || "";
    syncSubEventTypes();
    form.elements.sub_event_type.value = filter.get("sub_event_type") || "";
  }

  function pageURL(filter, view) {
    const params = new URLSearchParams(filter);
    for (const [name, choices] of Object.entries(VIEW)) if (view[name] !== choices[0]) params.set(name, view[name]);
    if (view.event) params.set("event", view.event);
    const query = params.toString();
    return PAGE + (query ? "?" + query : "");
  }

  let current = { filter: filterFromURL(), view: viewFromURL() };
  // Whether the libraries have loaded and the page has begun to show `current` (a filter
  // chosen before that is shown then: the map and the chart need Leaflet and Chart.js).
  let started = false;

  /** Show `next` ({filter, view}): only the parts that differ from what is shown are asked for again. */
  function show(next) {
    const previous = current;
    current = next;
    if (!started) return;
    const filterChanged = next.filter.toString() !== previous.filter.toString();
    if (filterChanged) refreshEvents();
    if (filterChanged || next.view.measure !== previous.view.measure || next.view.period !== previous.view.period) {
      chart.refresh();
    }
    if (next.view.event !== previous.view.event) eventPanel.show(next.view.event);
  }

  /** Show `filter` and `view`, and record them in the URL as a new history entry. */
  function go(filter, view) {
    const url = pageURL(filter, view);
    if (url !== location.pathname + location.search) history.pushState(null, "", url);
    show({ filter, view });
  }

  // Back and forward: the view the URL holds.
  window.addEventListener("popstate", () => {
    const next = { filter: filterFromURL(), view: viewFromURL() };
    filterToForm(next.filter);
    setViewControls(next.view);
    show(next);
  });

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    go(formToFilter(), current.view);
  });
  document.getElementById("reset").addEventListener("click", () => {
    form.reset();
    syncSubEventTypes();
    go(new URLSearchParams(), { ...current.view, event: null });
  });

  /** What went wrong, for a person: the API's problem, no answer, or a fault of this page
      (which is also logged, for whoever looks at the console). */
  function describe(error) {
    if (error instanceof ApiProblem) return error.message;
    if (error instanceof TypeError && /fetch/i.test(error.message)) return "The API could not be reached: " + error.message;
    console.error(error);
    return "Something went wrong on this page: " + error.message;
  }

  function showProblem(error) {
    const names = error instanceof ApiProblem ? (error.problem.errors || []).map((e) => e.name) : [];
    for (const name of FILTERS) {
      const field = form.elements[name];
      if (names.includes(name)) {
        field.setAttribute("aria-invalid", "true");
        field.setAttribute("aria-describedby", "problem");
      } else {
        field.removeAttribute("aria-invalid");
        field.removeAttribute("aria-describedby");
      }
    }
    problemLine.textContent = describe(error);
    problemLine.hidden = false;
  }

  function clearProblem() {
    problemLine.hidden = true;
    problemLine.textContent = "";
    for (const name of FILTERS) {
      form.elements[name].removeAttribute("aria-invalid");
      form.elements[name].removeAttribute("aria-describedby");
    }
  }

  /* ------------------------------------------- vocabularies and suggestions */

  let vocabulary = [];

  async function loadVocabulary() {
    vocabulary = (await getAnswer("/vocabularies")).event_types;
    const types = form.elements.event_type;
    for (const type of vocabulary) types.append(new Option(type.name, type.name));
    // only the type fields, which had no choices until now: what was typed meanwhile stays
    typesToForm(current.filter);
  }

  /** The sub-event types of the chosen event type (all, grouped, when none is chosen). */
  function syncSubEventTypes() {
    const select = form.elements.sub_event_type;
    const chosen = select.value;
    select.replaceChildren(new Option("Any", ""));
    for (const type of vocabulary) {
      if (form.elements.event_type.value && type.name !== form.elements.event_type.value) continue;
      const group = document.createElement("optgroup");
      group.label = type.name;
      for (const sub of type.sub_event_types) group.append(new Option(sub.name, sub.name));
      select.append(group);
    }
    select.value = chosen;
    if (select.value !== chosen) select.value = "";
  }
  form.elements.event_type.addEventListener("change", syncSubEventTypes);

  /** Names for a field as the person types, from the API's search (any spelling or alias). */
  function suggest(input) {
    const [path, query] = input.dataset.suggest.split("?");
    const list = input.list;
    const requests = new Requests();
    let timer = null;
    let asked = "";
    input.addEventListener("input", () => {
      clearTimeout(timer);
      const q = input.value.trim();
      if (q.length < 2 || q === asked) return;
      timer = setTimeout(async () => {
        asked = q;
        const params = new URLSearchParams(query);
        for (const [name, value] of Object.entries({ q, limit: "10", fields: "name" })) params.set(name, value);
        const signal = requests.renew();
        try {
          const answer = await getAnswer(path, params, signal);
          if (input.value.trim() !== q) return;  // typed on meanwhile: a later answer is coming
          list.replaceChildren(...answer.data.map((item) => new Option(item.name, item.name)));
        } catch (error) {
          // (suggestions are a help; the filter itself reports problems)
          if (!signal.aborted) list.replaceChildren();
        }
      }, 200);
    });
  }
  for (const input of form.querySelectorAll("input[data-suggest]")) suggest(input);

  /* ----------------------------------------------------------------- the map */

  let map, clusters, dot;  // made by makeMap, once Leaflet has loaded

  function makeMap() {
    map = L.map("map", { preferCanvas: true, worldCopyJump: true, minZoom: 2, maxZoom: 14 }).setView([35, 38], 6);
    map.attributionControl.setPrefix(false);
    map.attributionControl.addAttribution("Country outlines: Natural Earth");
    dot = L.divIcon({ className: "event-dot", iconSize: [12, 12] });
  }

  /** The map's markers, in a cluster group of their own: a new one for each filter, since
      markercluster 1.5.3's clearLayers does not stop a chunked addLayers still under way
      (the previous filter's markers would go on arriving). */
  function showMarkers(markers) {
    if (clusters) map.removeLayer(clusters);
    clusters = L.markerClusterGroup({ chunkedLoading: true, showCoverageOnHover: false, maxClusterRadius: 50 });
    // one handler for all markers (16,000 closures would cost the first view 50 ms)
    clusters.on("click", (e) => {
      L.popup().setLatLng(e.layer.getLatLng()).setContent(popupFor(e.layer.options.eventId)).openOn(map);
    });
    map.addLayer(clusters);
    clusters.addLayers(markers);
  }

  async function loadCountries() {
    const response = await fetch(root.dataset.countries);
    const topology = await response.json();
    L.geoJSON(topojson.feature(topology, topology.objects.countries), {
      interactive: false,
      style: { color: "#8a96a3", weight: 1, fillColor: "#f4f1ea", fillOpacity: 1 },
    }).addTo(map).bringToBack();
  }

  /** A marker's popup: the event's place, date and figures, asked for when it opens. */
  function popupFor(id) {
    const box = element("div", "popup", "Loading…");
    getAnswer("/events/" + encodeURIComponent(id)).then((event) => {
      const killed = event.fatalities && event.fatalities.best != null ? ` · ${figure(event.fatalities)} killed` : "";
      box.replaceChildren(element("strong", null, `${event.sub_event_type || event.event_type} at ${event.place.name}`),
                          element("div", null, dates(event.date_start, event.date_end) + killed),
                          eventLink(id, "The claims behind it"));
    }, (error) => { box.textContent = error.message; });
    return box;
  }

  // The list's and the map's requests: a new filter stops the previous one's (and an answer
  // that was on its way is dropped).
  const eventsRequests = new Requests();

  async function refreshMap(signal) {
    const points = await getAnswer("/events.ndjson", mapParams(current.filter), signal);
    if (signal.aborted) return null;
    const markers = [];
    let unplaced = 0;
    for (const point of points) {
      if (point.latitude == null) { unplaced += 1; continue; }
      markers.push(L.marker([point.latitude, point.longitude], { icon: dot, keyboard: false, eventId: point.id }));
    }
    showMarkers(markers);
    // (the markers' own bounds: the clusters take them in chunks, and may not hold them all yet)
    if (markers.length) map.fitBounds(L.latLngBounds(markers.map((m) => m.getLatLng())), { maxZoom: 9, padding: [20, 20] });
    document.getElementById("map-note").textContent = unplaced === 0 ? ""
      : unplaced === 1 ? "One of these events has no coordinates: it is in the list, not on the map."
        : `${unplaced.toLocaleString("en")} of these events have no coordinates: they are in the list, not on the map.`;
    root.dataset.mapEvents = String(markers.length);
    return points.length;
  }

  /* ---------------------------------------------------------------- the list */

  let nextCursor = null;
  const list = document.getElementById("event-list");
  const more = document.getElementById("more");

  function dates(start, end) {
    return !end || end === start ? start : `${start} to ${end}`;
  }

  function eventLink(id, text) {
    const link = element("a", null, text);
    link.href = pageURL(current.filter, { ...current.view, event: id });
    link.addEventListener("click", (e) => {
      if (e.ctrlKey || e.metaKey || e.shiftKey) return;  // a new tab: the URL does it
      e.preventDefault();
      go(current.filter, { ...current.view, event: id });
    });
    return link;
  }

  function listItem(event) {
    const item = element("li");
    const killed = event.fatalities && event.fatalities.best != null ? ` · ${event.fatalities.best} killed` : "";
    item.append(eventLink(event.id, `${event.sub_event_type || event.event_type} at ${event.place.name}`),
                element("span", null, dates(event.date_start, event.date_end) + killed));
    return item;
  }

  async function loadList(cursor, signal) {
    const page = await getAnswer("/events", listParams(current.filter, cursor), signal);
    if (signal.aborted) return null;
    if (!cursor) list.replaceChildren();
    list.append(...page.data.map(listItem));
    nextCursor = page.next_cursor;
    more.hidden = !nextCursor;
    return page.total;
  }
  more.addEventListener("click", async () => {
    more.disabled = true;  // (a second click would ask for the same page again)
    const signal = eventsRequests.signal;  // (a new filter meanwhile stops this page)
    try {
      await loadList(nextCursor, signal);
    } catch (error) {
      if (!signal.aborted) showProblem(error);
    } finally {
      more.disabled = false;
    }
  });

  /** The list, the map and the links to the same events in other formats. */
  async function refreshEvents() {
    const signal = eventsRequests.renew();
    clearProblem();
    statusLine.textContent = "Loading…";
    root.dataset.state = "loading";
    nextCursor = null;  // (the previous filter's next page is not this one's)
    more.hidden = true;
    const query = current.filter.toString();
    document.getElementById("as-json").href = API + "/events" + (query ? "?" + query : "");
    document.getElementById("as-csv").href = API + "/events.csv" + (query ? "?" + query : "");
    try {
      const [, total] = await Promise.all([refreshMap(signal), loadList(null, signal)]);
      if (signal.aborted) return;
      statusLine.textContent = total === 1 ? (query ? "1 event matches the filter." : "1 event.")
        : `${total.toLocaleString("en")} events` + (query ? " match the filter." : ".");
      root.dataset.state = "ready";
      // when the first view was complete, in ms from the navigation (bench/explorer.py reads it)
      if (!root.dataset.firstViewMs) root.dataset.firstViewMs = String(Math.round(performance.now()));
    } catch (error) {
      if (signal.aborted) return;  // a newer filter is being shown
      // nothing of the previous filter left to be taken for this one's
      list.replaceChildren();
      showMarkers([]);
      root.dataset.mapEvents = "0";
      statusLine.textContent = "No events shown.";
      root.dataset.state = "failed";
      showProblem(error);
    }
  }

  /* --------------------------------------------------------------- the chart */

  const chartTable = document.querySelector("#chart-table table");

  function setViewControls(view) {
    for (const name of Object.keys(VIEW)) {
      for (const input of document.querySelectorAll(`input[name="${name}"]`)) input.checked = input.value === view[name];
    }
  }

  for (const name of Object.keys(VIEW)) {
    for (const input of document.querySelectorAll(`input[name="${name}"]`)) {
      input.addEventListener("change", () => go(current.filter, { ...current.view, [name]: input.value }));
    }
  }

  /** The first and last day of a period: 2018-04, or the ISO week 2018-W14. */
  function periodDays(period) {
    const iso = (d) => d.toISOString().slice(0, 10);
    const week = /^(\d{4})-W(\d{2})$/.exec(period);
    if (week) {
      const jan4 = new Date(Date.UTC(+week[1], 0, 4));
      const monday = new Date(jan4);
      monday.setUTCDate(jan4.getUTCDate() - ((jan4.getUTCDay() + 6) % 7) + 7 * (+week[2] - 1));
      const sunday = new Date(monday);
      sunday.setUTCDate(monday.getUTCDate() + 6);
      return [iso(monday), iso(sunday)];
    }
    const [year, month] = period.split("-").map(Number);
    return [iso(new Date(Date.UTC(year, month - 1, 1))), iso(new Date(Date.UTC(year, month, 0)))];
  }

  /** Narrow the filter to a period (and a province, unless null), as a click on the chart does. */
  function narrowTo(period, province) {
    const filter = periodFilter(period);
    if (province) filter.set("admin1", province);
    filterToForm(filter);
    go(filter, current.view);
  }

  /** The filter narrowed to a period, inside the dates it had (a week can start before them). */
  function periodFilter(period) {
    const filter = new URLSearchParams(current.filter);
    let [from, to] = periodDays(period);
    const [after, before] = [current.filter.get("date_from"), current.filter.get("date_to")];
    if (after && after > from) from = after;
    if (before && before < to) to = before;
    filter.set("date_from", from);
    filter.set("date_to", to);
    return filter;
  }

  const chart = {
    instance: null,
    requests: new Requests(),

    async refresh() {
      const signal = this.requests.renew();
      root.dataset.chart = "loading";
      const { measure, period } = current.view;
      document.getElementById("chart-heading").textContent =
        `${measure === "events" ? "Events" : "Fatalities"} by ${measure === "events" ? "province and " : ""}${period}`;
      try {
        const asks = statsParams(current.filter, current.view).map((params) => getAnswer("/stats/events", params, signal));
        const [totals, byProvince] = await Promise.all(asks);
        if (signal.aborted) return;
        const labels = totals.data.map((row) => row[period]);
        const config = measure === "events"
          ? this.stacked(labels, period, byProvince.data)
          : this.band(labels, totals.data);
        this.draw(config);
        this.table(labels, config);
        root.dataset.chartPeriods = String(labels.length);
        root.dataset.chart = "ready";
      } catch (error) {
        if (signal.aborted) return;
        root.dataset.chart = "failed";
        showProblem(error);
      }
    },

    /** Events stacked by province: the provinces with most events, then the rest together. */
    stacked(labels, period, rows) {
      const index = new Map(labels.map((label, i) => [label, i]));
      const byProvince = new Map();
      for (const row of rows) {
        const name = row.admin1 || NO_PROVINCE;
        if (!byProvince.has(name)) byProvince.set(name, { total: 0, counts: new Array(labels.length).fill(0) });
        const province = byProvince.get(name);
        province.total += row.events;
        province.counts[index.get(row[period])] += row.events;
      }
      const ranked = [...byProvince.entries()].sort((a, b) => b[1].total - a[1].total);
      const shown = ranked.slice(0, PROVINCES_SHOWN);
      const rest = ranked.slice(PROVINCES_SHOWN);
      const datasets = shown.map(([name, p], i) => ({ label: name, province: name === NO_PROVINCE ? null : name, data: p.counts,
                                                        backgroundColor: PALETTE[i] }));
      if (rest.length) {
        const counts = new Array(labels.length).fill(0);
        for (const [, p] of rest) p.counts.forEach((n, i) => { counts[i] += n; });
        datasets.push({ label: `${rest.length} other provinces`, province: null, data: counts,
                        backgroundColor: PALETTE[PALETTE.length - 1] });
      }
      return {
        type: "bar",
        data: { labels, datasets },
        options: { scales: { x: { stacked: true },
                             y: { stacked: true, beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: "events" } } } },
      };
    },

    /** Fatalities: the best estimate as a line inside the band from the low to the high estimate. */
    band(labels, rows) {
      const line = (label, key, extra) => ({ label, data: rows.map((row) => row[key]), pointRadius: 0, ...extra });
      return {
        type: "line",
        data: {
          labels,
          datasets: [
            line("low estimate", "fatalities_low", { borderColor: "rgba(213,94,0,0.35)", borderWidth: 1 }),
            // null: a source gives no upper bound ("over two dozen"): the band is open there
            line("high estimate", "fatalities_high", { borderColor: "rgba(213,94,0,0.35)", borderWidth: 1,
                                                        fill: "-1", backgroundColor: "rgba(213,94,0,0.18)",
                                                        missing: "no upper bound" }),
            line("best estimate", "fatalities_best", { borderColor: "#D55E00", borderWidth: 2 }),
          ],
        },
        options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: "killed" } } } },
      };
    },

    draw(config) {
      config.options = {
        ...config.options,
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: "nearest", intersect: true },
        plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
        onClick: (_event, elements) => {
          if (!elements.length) return;
          const { datasetIndex, index } = elements[0];
          const dataset = this.instance.data.datasets[datasetIndex];
          narrowTo(this.instance.data.labels[index], dataset.province || null);
        },
      };
      if (this.instance) this.instance.destroy();
      this.instance = new Chart(document.getElementById("chart"), config);
    },

    /** The same figures as a table, each period a link that narrows the filter to it. */
    table(labels, config) {
      const { datasets } = config.data;
      const head = element("tr");
      head.append(element("th", null, current.view.period), ...datasets.map((d) => element("th", null, d.label)));
      const rows = labels.map((label, i) => {
        const first = element("th");
        first.scope = "row";
        const link = element("a", null, label);
        link.href = pageURL(periodFilter(label), { ...current.view, event: null });
        first.append(link);
        const row = element("tr");
        row.append(first, ...datasets.map((d) => element("td", null, String(d.data[i] ?? d.missing ?? ""))));
        return row;
      });
      const thead = element("thead");
      thead.append(head);
      const tbody = element("tbody");
      tbody.append(...rows);
      chartTable.replaceChildren(thead, tbody);
    },
  };

  /* --------------------------------------------------------------- one event */

  // What a claim is about, in the order a reader asks: who did it, to whom, how many died.
  const TOPICS = [
    ["perpetrator", "Who struck"],
    ["target", "Who was hit"],
    ["fatalities", "How many died"],
    ["civilian_fatalities", "How many civilians died"],
    ["occurred", "Whether it happened"],
    ["location", "Where"],
    ["date", "When"],
    ["weapon", "With what"],
  ];

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = text;
    return node;
  }

  /** A count as the API gives it ({low, best, high}; high null: no upper bound, "over two dozen"). */
  function figure(value) {
    if (value == null) return "";
    if (typeof value === "number") return String(value);
    const { low, best, high } = value;
    const best_ = (shown) => (best != null && best !== shown ? ` (best ${best})` : "");
    if (low != null && high != null) return low === high ? String(low) : `${low} to ${high}` + best_(null);
    if (low != null) return `at least ${low}` + best_(low);
    if (high != null) return `at most ${high}` + best_(high);
    return best != null ? String(best) : "";
  }

  function claimValue(claim) {
    const value = claim.value;
    if (value == null) return "";
    if (value.actor) return value.actor.name;
    if (value.place) return value.place.name;
    if (["fatalities", "civilian_fatalities"].includes(claim.predicate)) return figure(value);
    return typeof value === "object" ? Object.values(value).join(", ") : String(value);
  }

  /** Where the claim was read: the channel it came through and the document. */
  function channel(claim) {
    const parts = [];
    if (claim.via) parts.push(`via ${claim.via.name}`);
    if (claim.speaker) parts.push(`speaking: ${claim.speaker.name}`);
    const doc = claim.document;
    if (doc) parts.push([doc.publisher, doc.title, doc.published_at && doc.published_at.slice(0, 10)].filter(Boolean).join(", "));
    return parts.filter(Boolean).join(" · ");
  }

  function claimCard(claim, uses, subject) {
    const card = element("article", `claim stance-${claim.stance}`);
    card.id = `claim-${claim.id}`;
    card.dataset.claimant = claim.claimant.name;
    card.dataset.stance = claim.stance;
    const head = element("header");
    head.append(element("strong", "claimant", claim.claimant.name), element("span", `stance stance-${claim.stance}`, claim.stance));
    card.append(head);
    const value = claimValue(claim);
    if (value && value !== subject) card.append(element("p", "value", value));  // (the row names its subject)
    if (claim.quote) card.append(element("blockquote", null, claim.quote));
    const seen = channel(claim);
    if (seen) card.append(element("p", "channel", seen));
    if (uses.length) {
      card.classList.add("derives");
      card.append(element("p", "uses", uses.join("; ")));
    }
    return card;
  }

  function statusBadge(status) {
    return element("span", `status status-${status || "none"}`, status || "no status");
  }

  const eventPanel = {
    panel: document.getElementById("event"),
    body: document.getElementById("event-body"),
    requests: new Requests(),
    opener: null,

    async show(id) {
      const signal = this.requests.renew();  // (another event, or none: this one's are stopped)
      if (!id) { this.hide(); return; }
      if (this.panel.hidden) this.opener = document.activeElement;
      this.panel.hidden = false;
      this.panel.dataset.state = "loading";
      this.body.replaceChildren(element("p", "status", "Loading the event…"));
      try {
        const path = "/events/" + encodeURIComponent(id);
        const [event, history] = await Promise.all([getAnswer(path, null, signal),
                                                    getAnswer(path + "/history", HISTORY_PARAMS, signal)]);
        if (signal.aborted) return;
        this.render(event, history.data);
        this.panel.dataset.state = "ready";
        this.panel.dataset.event = event.id;
        // when it was shown, in ms from the navigation (bench/explorer.py reads it)
        this.panel.dataset.shownMs = String(Math.round(performance.now()));
        document.getElementById("event-heading").focus();
      } catch (error) {
        if (signal.aborted) return;
        this.panel.dataset.state = "failed";
        this.body.replaceChildren(element("h2", null, "The event cannot be shown"), element("p", "problem", describe(error)));
        this.body.firstChild.id = "event-heading";
        this.body.firstChild.tabIndex = -1;
        this.body.firstChild.focus();
      }
    },

    hide() {
      this.panel.hidden = true;
      delete this.panel.dataset.event;
      if (this.opener && document.contains(this.opener)) this.opener.focus();
    },

    render(event, history) {
      const figureClaims = new Set(event.fatalities.claim_ids || []);
      const uses = (claim) => {
        const found = [];
        if (figureClaims.has(claim.id)) found.push("makes the fatality figures");
        for (const a of event.actors) {
          if ((a.status_claim_ids || []).includes(claim.id)) found.push(`makes ${a.actor.name} ${a.status} as ${a.role}`);
        }
        return found;
      };
      const parts = [];
      const heading = element("h2", null, `${event.sub_event_type || event.event_type} at ${event.place.name}`);
      heading.id = "event-heading";
      heading.tabIndex = -1;
      parts.push(heading);
      const where = [...(event.place.ancestors || []).map((a) => a.name).reverse()].join(", ");
      parts.push(element("p", "when", `${dates(event.date_start, event.date_end)} (to the ${event.date_precision})` +
                                       (where ? ` · ${where}` : "")));
      if (event.summary) parts.push(element("p", "summary", event.summary));

      // What the claims add up to, with the claims that made it.
      const derived = element("section", "derived");
      derived.append(element("h3", null, "What the claims add up to"));
      const f = event.fatalities;
      const killed = element("p", "figures");
      killed.append(element("strong", null, "Killed: "),
                    document.createTextNode(f.best == null && f.low == null ? "no source gives a figure" : figure(f)));
      if (f.civilians != null || f.civilians_low != null) {
        killed.append(document.createTextNode(`; civilians: ${figure({ low: f.civilians_low, best: f.civilians, high: f.civilians_high })}`));
      }
      killed.append(claimRefs(f.claim_ids || [], event.claims));
      derived.append(killed);
      const actors = element("ul", "attribution");
      for (const a of event.actors) {
        const item = element("li");
        item.dataset.actor = a.actor.name;
        item.append(element("span", "role", a.role), document.createTextNode(" "), element("strong", null, a.actor.name),
                    document.createTextNode(" "), statusBadge(a.status), claimRefs(a.status_claim_ids || [], event.claims));
        actors.append(item);
      }
      derived.append(actors);
      parts.push(derived);

      // The claims, by what they are about; within a topic, by the actor or figure they name.
      const claims = element("section", "claims-section");
      claims.append(element("h3", null, `The claims (${event.claims.length})`));
      const known = new Set(TOPICS.map(([key]) => key));
      const topics = [...TOPICS, ...[...new Set(event.claims.map((c) => c.predicate))].filter((p) => !known.has(p)).map((p) => [p, p])];
      for (const [predicate, title] of topics) {
        const about = event.claims.filter((c) => c.predicate === predicate);
        if (!about.length) continue;
        const topic = element("section", "topic");
        topic.dataset.predicate = predicate;
        topic.append(element("h4", null, title));
        const bySubject = new Map();
        for (const claim of about) {
          const subject = claim.value && claim.value.actor ? claim.value.actor.name : "";
          if (!bySubject.has(subject)) bySubject.set(subject, []);
          bySubject.get(subject).push(claim);
        }
        for (const [subject, said] of bySubject) {
          const row = element("div", "subject");
          if (subject) {
            row.dataset.subject = subject;
            const label = element("p", "subject-label");
            label.append(element("strong", null, subject));
            const roles = event.actors.filter((a) => a.actor.name === subject && a.role === predicate);
            for (const a of roles) label.append(document.createTextNode(" "), statusBadge(a.status));
            row.append(label);
          }
          const side = element("div", "side-by-side");
          const order = { asserts: 0, concedes: 1, denies: 2, uncertain: 3 };
          for (const claim of [...said].sort((a, b) => order[a.stance] - order[b.stance])) side.append(claimCard(claim, uses(claim), subject));
          row.append(side);
          topic.append(row);
        }
        claims.append(topic);
      }
      parts.push(claims);

      // The same happening as reported by other sources.
      const linked = element("section", "linked");
      linked.append(element("h3", null, "The same happening in other sources"));
      if (event.linked_events && event.linked_events.length) {
        const items = element("ul");
        for (const other of event.linked_events) {
          const item = element("li");
          const ids = (other.external_ids || []).map((x) => `${x.dataset}:${x.id}`).join(", ");
          item.append(eventLink(other.id, ids || other.id), document.createTextNode(` (match score ${other.score})`));
          items.append(item);
        }
        linked.append(items);
        if (event.happening) {
          const json = element("a", null, `the happening's ${event.happening.record_count} records and all their claims (JSON)`);
          json.href = API + "/happenings/" + encodeURIComponent(event.happening.id);
          const line = element("p");
          line.append(document.createTextNode("See "), json, document.createTextNode("."));
          linked.append(line);
        }
      } else {
        linked.append(element("p", null, "None linked."));
      }
      parts.push(linked);

      // Its history: who changed what, when.
      const changes = element("section", "history");
      changes.append(element("h3", null, "History"));
      const items = element("ol");
      for (const entry of history) {
        const changed = (entry.changed || []).filter((name) => !["id", "created_at", "updated_at"].includes(name));
        items.append(element("li", null, `${entry.at.slice(0, 19).replace("T", " ")} UTC · ${entry.who || "unknown"} · ` +
                                         `${entry.op} ${entry.record.type}` + (changed.length ? `: ${changed.join(", ")}` : "")));
      }
      changes.append(items);
      parts.push(changes);

      const raw = element("p", "raw");
      const json = element("a", null, "This event as JSON");
      json.href = API + "/events/" + encodeURIComponent(event.id);
      raw.append(json, document.createTextNode(` · ids: ${[event.id, ...event.external_ids.map((x) => `${x.dataset}:${x.id}`)].join(", ")}`));
      parts.push(raw);
      this.body.replaceChildren(...parts);
    },
  };

  /** Links to the claim cards a figure or status was made from, each named by its claimant. */
  function claimRefs(ids, claims) {
    const span = element("span", "refs");
    if (!ids.length) return span;
    span.append(document.createTextNode(ids.length === 1 ? " from the claim of " : " from the claims of "));
    ids.forEach((id, i) => {
      const claim = claims.find((c) => c.id === id);
      const link = element("a", null, claim ? claim.claimant.name : id);
      link.href = `#claim-${id}`;
      link.addEventListener("click", (e) => {
        e.preventDefault();
        const card = document.getElementById(`claim-${id}`);
        if (!card) return;
        card.scrollIntoView({ block: "center" });
        card.classList.add("pointed");
        setTimeout(() => card.classList.remove("pointed"), 1500);
      });
      if (i) span.append(document.createTextNode(i === ids.length - 1 ? " and " : ", "));
      span.append(link);
    });
    return span;
  }

  document.getElementById("close-event").addEventListener("click", () => go(current.filter, { ...current.view, event: null }));
  document.addEventListener("keydown", (e) => {
    // (in a field, Escape belongs to the field: it closes its suggestions or clears it)
    if (e.key !== "Escape" || eventPanel.panel.hidden || e.target.closest("input, select")) return;
    go(current.filter, { ...current.view, event: null });
  });

  /* ---------------------------------------------------------------- start */

  // The form shows the URL's filter at once; what a person types while the libraries load stays.
  filterToForm(current.filter, true);
  setViewControls(current.view);
  askEarly("/vocabularies");
  askEarly("/events.ndjson", mapParams(current.filter));
  askEarly("/events", listParams(current.filter, null));
  for (const params of statsParams(current.filter, current.view)) askEarly("/stats/events", params);
  if (current.view.event) {
    askEarly("/events/" + encodeURIComponent(current.view.event));
    askEarly("/events/" + encodeURIComponent(current.view.event) + "/history", HISTORY_PARAMS);
  }

  // The rest once the libraries after this script have loaded.
  document.addEventListener("DOMContentLoaded", () => {
    started = true;
    makeMap();
    loadVocabulary().catch(showProblem);  // (it fills the type choices, then sets them from the URL)
    // A shared event is what its reader came for: shown before the map, the list and the
    // chart are made (their answers are on their way already).
    const opened = current.view.event ? eventPanel.show(current.view.event) : Promise.resolve();
    opened.then(() => {
      refreshEvents();
      chart.refresh();
      dropEarlyAnswers();  // (what the first view asked for is taken by now: the rest is not needed)
      loadCountries().catch(() => { /* the points still show on the plain background */ });
    });
  });
})();
