// The token field: kept in sessionStorage only (this tab, until it closes); who it is
// comes from GET /v1/whoami, whose grants decide which actions the page offers.
import { ApiError, getToken, loadWho, setToken } from "../api.js";

export async function initToken(ui) {
  const form = document.getElementById("token-form");
  const input = document.getElementById("token-input");
  const clear = document.getElementById("token-clear");
  const who = document.getElementById("whoami");
  input.value = getToken();

  // GET /v1/whoami first: when it answers 401 the server needs a (valid) token, and the
  // page makes no other call (each would be one more 401) until one is saved.
  let asked = 0;
  const ask = async () => {
    const mine = ++asked;
    who.textContent = "";
    try {
      const me = await loadWho();
      if (mine !== asked) return; // a newer token was saved meanwhile
      ui.tokenNeeded = false;
      form.classList.remove("needed");
      if (me.unknown) who.textContent = "";
      else who.textContent = me.anonymous ? "no token needed" : `as ${me.name}`;
    } catch (exc) {
      if (mine !== asked) return;
      ui.tokenNeeded = false;
      form.classList.remove("needed");
      if (exc instanceof ApiError && exc.status === 401) {
        ui.tokenNeeded = true;
        form.classList.add("needed");
        who.textContent = getToken() ? "token refused" : "token needed";
        if (getToken()) ui.error(exc); // a saved token the server refused: in its words
        input.focus();
        return;
      }
      who.textContent = "not signed in";
      ui.error(exc);
    }
  };
  // The views wait for the newest answer before they call anything (ui.whoReady).
  const refresh = () => {
    ui.whoReady = ask();
    return ui.whoReady;
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    setToken(input.value.trim());
    ui.clearError();
    await refresh();
    ui.rerender();
  });
  clear.addEventListener("click", async () => {
    setToken("");
    input.value = "";
    ui.clearError();
    await refresh();
    ui.rerender();
  });
  await refresh();
}
