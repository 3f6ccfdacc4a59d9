// costwise's web page: fetch this page's view with the API token (kept in this tab's sessionStorage,
// sent as the Authorization header, never put in a URL) and keep its live parts fresh by polling.
(function () {
  "use strict";
  var KEY = "costwise.token";
  var POLL_MS = 2000;
  var main = document.getElementById("main");
  var form = document.getElementById("token-form");
  var input = document.getElementById("token-input");
  var why = document.getElementById("token-why");
  var forget = document.getElementById("forget-token");
  var status = document.getElementById("status");
  var timer = null;
  var loaded = false;

  function token() {
    try { return sessionStorage.getItem(KEY); } catch (e) { return null; }
  }

  function headers() {
    var t = token();
    return t ? { "Authorization": "Bearer " + t } : {};
  }

  function say(text) { status.textContent = text; }

  function askToken(message) {
    why.textContent = message;
    form.hidden = false;
    main.setAttribute("aria-busy", "false");
    main.dataset.state = "needs-token";
    var waiting = main.querySelector(".loading");
    if (waiting) { waiting.textContent = "The data appears once the daemon accepts the token."; }
    input.focus();
  }

  function errorText(resp, body) {
    try { return JSON.parse(body).error || resp.statusText; } catch (e) { return resp.status + " " + resp.statusText; }
  }

  function swapLive(html) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    var changed = 0;
    main.querySelectorAll("[data-live]").forEach(function (old) {
      var fresh = old.id && doc.getElementById(old.id);
      if (!fresh) { return; }
      if (fresh.innerHTML === old.innerHTML) { return; }
      var focused = document.activeElement;
      var href = focused && old.contains(focused) ? focused.getAttribute("href") : null;
      old.replaceWith(fresh);
      changed += 1;
      if (href) {
        var again = fresh.querySelector('[href="' + CSS.escape(href) + '"]');
        if (again) { again.focus(); }
      }
    });
    return changed;
  }

  function schedule() {
    clearTimeout(timer);
    if (main.querySelector("[data-live]")) { timer = setTimeout(load, POLL_MS); }
  }

  function load() {
    var url = main.dataset.view + location.search;
    fetch(url, { headers: headers(), credentials: "omit", cache: "no-store", redirect: "error" })
      .then(function (resp) {
        return resp.text().then(function (body) { return [resp, body]; });
      })
      .then(function (pair) {
        var resp = pair[0], body = pair[1];
        if (resp.status === 401) {
          askToken(token() ? "The daemon refused that token: enter it again." :
                             "This daemon needs its API token to show its data.");
          return;
        }
        if (!resp.ok) {
          say("Could not load this view: " + errorText(resp, body));
          main.setAttribute("aria-busy", "false");
          main.dataset.state = "error";
          if (!loaded) { main.querySelector(".loading").textContent = errorText(resp, body); }
          return;
        }
        form.hidden = true;
        forget.hidden = !token();
        if (!loaded) {
          main.innerHTML = body;
          loaded = true;
          main.setAttribute("aria-busy", "false");
        } else if (swapLive(body)) {
          say("Updated " + new Date().toLocaleTimeString());
        }
        main.dataset.state = "ready";
        schedule();
      })
      .catch(function (err) {
        say("The daemon did not answer (" + err + "); retrying.");
        timer = setTimeout(load, POLL_MS * 2);
      });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    try { sessionStorage.setItem(KEY, input.value.trim()); } catch (e) { say("This browser keeps no session storage."); }
    input.value = "";
    form.hidden = true;
    main.setAttribute("aria-busy", "true");
    load();
  });

  forget.addEventListener("click", function () {
    try { sessionStorage.removeItem(KEY); } catch (e) { /* nothing kept */ }
    location.reload();
  });

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && loaded) { clearTimeout(timer); load(); }
  });

  load();
}());
