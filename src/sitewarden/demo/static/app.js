// The demo's only script. It is loaded from this site with Subresource Integrity
// (integrity="sha384-..."), so a tampered copy would not run, and it needs no inline code:
// the Content-Security-Policy allows scripts from 'self' only.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Show stored UTC times in the reader's own time zone.
  for (const el of document.querySelectorAll("time[datetime]")) {
    const when = new Date(el.getAttribute("datetime"));
    if (!Number.isNaN(when.getTime())) {
      el.textContent = when.toLocaleString();
    }
  }

  // A live clock: visible proof that the script ran.
  const clock = document.getElementById("clock");
  const face = document.querySelector("[data-clock]");
  if (clock && face) {
    const tick = () => { face.textContent = new Date().toLocaleTimeString(); };
    tick();
    clock.hidden = false;
    setInterval(tick, 1000);
  }

  // "Show password" on the sign-in form (textContent only: no HTML is ever built).
  for (const button of document.querySelectorAll("[data-toggle-password]")) {
    const input = document.getElementById(button.dataset.togglePassword);
    if (!input) continue;
    button.hidden = false;
    button.addEventListener("click", () => {
      const show = input.type === "password";
      input.type = show ? "text" : "password";
      button.textContent = show ? "Hide password" : "Show password";
    });
  }

  // Live password strength: the site's own verdict (the password policy and a zxcvbn
  // estimate), fetched as JSON from this origin (CSP connect-src 'self') with the CSRF
  // header. Only text is ever written into the page. The server checks again on submit.
  for (const input of document.querySelectorAll("input[data-strength-url]")) {
    const box = document.querySelector(`[data-strength-for="${input.id}"]`);
    if (!box) continue;
    const meter = box.querySelector("meter");
    const label = box.querySelector("[data-strength-label]");
    const list = box.querySelector("[data-strength-problems]");
    const words = ["very weak", "weak", "fair", "strong", "very strong"];
    let timer = null;
    let asked = 0;
    const show = (verdict) => {
      box.hidden = false;
      const score = typeof verdict.score === "number" ? verdict.score : 0;
      if (meter) meter.value = score;
      if (label) {
        label.textContent = (verdict.ok ? "Acceptable" : "Not accepted") +
          " · " + (words[score] || "");
      }
      if (list) {
        list.replaceChildren(...(verdict.problems || []).map((message) => {
          const item = document.createElement("li");
          item.textContent = message;
          return item;
        }));
      }
    };
    const ask = async () => {
      const mine = ++asked;
      if (!input.value) { box.hidden = true; return; }
      try {
        const response = await fetch(input.dataset.strengthUrl, {
          method: "POST",
          credentials: "same-origin",
          headers: {
            "content-type": "application/json",
            [input.dataset.csrfHeader]: input.dataset.csrfToken,
          },
          body: JSON.stringify({ password: input.value }),
        });
        if (mine === asked && response.ok) show(await response.json());
      } catch (error) {
        // No verdict while offline: the form still submits and the server decides.
      }
    };
    input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(ask, 300);
    });
  }
});
