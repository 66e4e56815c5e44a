// stockflow console: renders the snapshots of /console/stream (server-sent events).
"use strict";
(function () {
  let source = null;
  let token = "";

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
    });
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
    document.getElementById("public").addEventListener("click", function () {
      token = "";
      document.getElementById("token").value = "";
      connect();
    });
    connect();
  });
})();
