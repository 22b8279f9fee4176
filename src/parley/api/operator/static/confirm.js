// Every action is confirmed in a dialog that says what will happen; nothing runs on one click.

export function confirmAction({title, message, confirmLabel = "Confirm", reason = false, code = false}) {
  const dialog = document.getElementById("confirm");
  const form = dialog.querySelector("form");
  dialog.querySelector(".title").textContent = title;
  dialog.querySelector(".message").textContent = message;
  dialog.querySelector(".confirm").textContent = confirmLabel;
  dialog.querySelector(".reason").hidden = !reason;
  dialog.querySelector(".code").hidden = !code;
  form.reset();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      if (dialog.returnValue !== "confirm") { resolve(null); return; }
      resolve({reason: form.elements.reason.value.trim(), code: Number(form.elements.code.value)});
    }, {once: true});
    dialog.returnValue = "";
    dialog.showModal();
  });
}
