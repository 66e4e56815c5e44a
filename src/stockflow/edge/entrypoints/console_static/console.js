// stockflow console: renders the snapshots of /console/stream (server-sent events).
"use strict";
(function () {
  let source = null;
  let token = "";
  const SPARK_POINTS = 60;
  const trends = {}; // series name -> the last SPARK_POINTS values

  function cell(row, text, cls) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "" : String(text);
    if (cls) td.className = cls;
    row.appendChild(td);
    return td;
  }
  function num(value, digits) {
    return value === null || value === undefined ? "" : Number(value).toFixed(digits);
  }
  function ms(seconds) {
    return seconds === null || seconds === undefined ? "" : (seconds * 1000).toFixed(1) + " ms";
  }
  function fill(id, items, render) {
    const body = document.querySelector("#" + id + " tbody");
    const rows = items.map(function (item) {
      const tr = document.createElement("tr");
      render(tr, item);
      return tr;
    });
    body.replaceChildren.apply(body, rows);
  }
  function yesNo(tr, flag) {
    cell(tr, flag ? "yes" : "no", flag ? "ok" : "bad");
  }
  function remember(name, value) {
    const series = trends[name] || (trends[name] = []);
    series.push(value === null || value === undefined ? 0 : Number(value));
    if (series.length > SPARK_POINTS) series.shift();
    return series;
  }
  function sparkline(parent, series, label) {
    // An inline SVG: the series scaled to its own maximum, newest on the right.
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("class", "spark");
    svg.setAttribute("viewBox", "0 0 " + (SPARK_POINTS - 1) + " 20");
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("role", "img");
    const top = Math.max.apply(null, series.concat([1e-9]));
    svg.setAttribute("aria-label", label + ": last " + series.length + " s, peak " +
      top.toFixed(1));
    const offset = SPARK_POINTS - series.length;
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", series.map(function (v, i) {
      return (offset + i) + "," + (19 - 18 * v / top).toFixed(2);
    }).join(" "));
    svg.appendChild(line);
    parent.replaceChildren(svg);
  }
  function outcomes(perMinute) {
    if (!perMinute) return "";
    const keys = Object.keys(perMinute);
    if (!keys.length) return "none yet";
    return keys.map(function (k) { return k + ": " + Number(perMinute[k]).toFixed(1); })
      .join("; ");
  }
  function renderAudit(audit) {
    const verdict = document.getElementById("audit-verdict");
    const unavailable = document.getElementById("audit-unavailable");
    unavailable.hidden = !(audit && audit.unavailable);
    unavailable.textContent = audit && audit.unavailable ? "Cannot audit: " + audit.unavailable : "";
    document.getElementById("run-audit").disabled = !audit || !!audit.unavailable || audit.running;
    const last = audit && audit.last;
    let text = "No audit has run since edge started.";
    let cls = "";
    if (last) {
      const when = new Date(last.at * 1000).toLocaleTimeString();
      if (last.ok === true) {
        text = "Every invariant holds (" + last.events + " events over " + last.skus +
          " SKUs, audited at " + when + " in " + last.seconds.toFixed(1) + " s).";
        cls = "ok";
      } else if (last.ok === false) {
        text = last.violations + " violation(s) found by the audit at " + when + ".";
        cls = "bad";
      } else {
        text = "The audit at " + when + " could not run: " + last.error;
        cls = "warn";
      }
    }
    if (audit && audit.running) text = "Auditing… " + (last ? "(last: " + text + ")" : "");
    verdict.textContent = text;
    verdict.className = audit && audit.running ? "warn" : cls;
    verdict.dataset.ok = last ? String(last.ok) : "";
    verdict.dataset.running = audit ? String(audit.running) : "";
  }

  function error(id, text) {
    const p = document.getElementById(id);
    p.textContent = text ? "Could not read: " + text : "";
    p.hidden = !text;
  }

  function render(view) {
    fill("services", view.services, function (tr, s) {
      tr.dataset.service = s.name;
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = s.name;
      tr.appendChild(th);
      yesNo(tr, s.up);
      const ready = cell(tr, s.ready ? "yes" : "no" + (s.why ? " (" + s.why + ")" : ""));
      ready.className = s.ready ? "ok" : "bad";
      const red = s.red || {};
      cell(tr, num(red.rate, 1), "num");
      cell(tr, red.error_rate === undefined ? "" : (red.error_rate * 100).toFixed(1) + " %", "num");
      cell(tr, ms(red.p50), "num");
      cell(tr, ms(red.p99), "num");
      sparkline(cell(tr, ""), remember("rate:" + s.name, red.rate), s.name + " requests/s");
    });
    const flow = view.flow || {};
    const events = flow.inventory_events_per_second;
    document.getElementById("events-rate").textContent = num(events, 1);
    sparkline(document.getElementById("events-trend"), remember("events", events),
      "inventory events/s");
    document.getElementById("saga-outcomes").textContent = outcomes(flow.saga_outcomes_per_minute);
    renderAudit(view.audit);
    fill("breakers", Object.keys(view.breakers), function (tr, name) {
      const b = view.breakers[name];
      tr.id = "breaker-" + name;
      tr.dataset.state = b.state;
      cell(tr, name);
      cell(tr, b.state, b.state === "closed" ? "ok" : b.state === "open" ? "bad" : "warn");
      cell(tr, b.state === "open" ? num(b.retry_after, 1) : "", "num");
    });
    fill("bus", view.services.filter(function (s) { return s.bus; }), function (tr, s) {
      cell(tr, s.name);
      cell(tr, num(s.bus.consumer_pending, 0), "num");
      cell(tr, num(s.bus.consumer_oldest_age_seconds, 1), "num");
      cell(tr, num(s.bus.outbox_backlog, 0), "num");
      cell(tr, num(s.bus.outbox_oldest_age_seconds, 1), "num");
      cell(tr, num(s.bus.webhook_backlog, 0), "num");
    });
    const consumers = [];
    view.services.forEach(function (s) {
      ((s.bus && s.bus.consumers) || []).forEach(function (c) {
        consumers.push({ service: s.name, consumer: c });
      });
    });
    fill("consumers", consumers, function (tr, row) {
      tr.dataset.subscription = row.consumer.subscription;
      cell(tr, row.service);
      cell(tr, row.consumer.subscription);
      cell(tr, num(row.consumer.pending, 0), "num");
      cell(tr, num(row.consumer.oldest_age_seconds, 1), "num");
    });
    const staff = view.view === "staff";
    document.getElementById("staff").hidden = !staff;
    if (staff) {
      error("orders-error", view.orders_error);
      error("stock-error", view.stock_error);
      fill("orders", view.orders, function (tr, o) {
        tr.dataset.orderId = o.id;
        tr.dataset.status = o.status;
        cell(tr, o.id);
        cell(tr, o.customer_id);
        cell(tr, o.status, o.status === "CONFIRMED" || o.status === "SHIPPED" ? "ok"
          : o.status === "PENDING" ? "warn" : "bad");
        cell(tr, (o.lines || []).map(function (l) { return l.sku + " × " + l.qty; }).join(", "));
        cell(tr, o.updated_at);
      });
      fill("stock", view.stock, function (tr, s) {
        cell(tr, s.sku);
        cell(tr, s.on_hand, "num");
        cell(tr, s.reserved, "num");
        cell(tr, s.available, "num");
      });
      fill("audit-checks", view.audit_checks || [], function (tr, c) {
        tr.dataset.invariant = c.invariant;
        cell(tr, c.invariant);
        cell(tr, c.description);
        cell(tr, c.checked ? c.violations : c.note, c.checked ? (c.violations ? "bad" : "ok")
          : "warn");
        cell(tr, (c.examples || []).map(function (e) {
          return (e.sku || "") + (e.order_id ? " " + e.order_id : "") + ": " + e.detail;
        }).join("; "));
      });
      fill("dead", Object.keys(view.dead_letters), function (tr, name) {
        const d = view.dead_letters[name];
        cell(tr, name);
        cell(tr, num(d.dead_lettered, 0), "num");
        cell(tr, num(d.webhook_dead, 0), "num");
      });
    }
    const open = Object.keys(view.breakers).filter(function (n) {
      return view.breakers[n].state !== "closed";
    });
    const down = view.services.filter(function (s) { return !s.ready; }).map(function (s) {
      return s.name;
    });
    document.getElementById("updated").textContent =
      "Updated " + new Date(view.at * 1000).toLocaleTimeString();
    setStatus((staff ? "Staff view" : "Public view") +
      (down.length ? "; not ready: " + down.join(", ") : "; all services ready") +
      (open.length ? "; breakers not closed: " + open.join(", ") : "") + ".");
  }

  function setStatus(text) {
    // A live region: only a change is announced, not the clock ticking every second.
    const status = document.getElementById("status");
    if (status.textContent !== text) status.textContent = text;
  }

  function connect() {
    if (source) source.close();
    const url = "/console/stream" + (token ? "?token=" + encodeURIComponent(token) : "");
    source = new EventSource(url);
    source.addEventListener("snapshot", function (event) {
      render(JSON.parse(event.data));
    });
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) {
        setStatus("Disconnected" + (token ? " (is the token valid?)" : "") + ".");
      } else {
        setStatus("Connection lost; reconnecting…");
      }
    };
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.getElementById("auth").addEventListener("submit", function (event) {
      event.preventDefault();
      token = document.getElementById("token").value.trim();
      connect();
    });
    document.getElementById("run-audit").addEventListener("click", function () {
      const said = document.getElementById("audit-request");
      said.textContent = "Asking edge to run the audit…";
      fetch("/console/audit", { method: "POST", headers: { Authorization: "Bearer " + token } })
        .then(function (response) {
          return response.json().then(function (body) {
            said.textContent = response.ok
              ? (body.audit === "running" ? "An audit is running already." : "Audit started.")
              : "Refused: " + (body.detail || body.title || response.status);
          });
        })
        .catch(function (err) { said.textContent = "Could not reach edge: " + err; });
    });
    document.getElementById("public").addEventListener("click", function () {
      token = "";
      document.getElementById("token").value = "";
      connect();
    });
    connect();
  });
})();
