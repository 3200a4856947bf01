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
});
