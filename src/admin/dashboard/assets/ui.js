// What the views share: the confirmation dialog, the notice line, and a table body filled from rows.
import { byId, el, fill } from './dom.js';

/**
 * Asks before acting. `body` (optional nodes: the ban's options) goes into the dialog's form; resolves with its
 * FormData on confirm, or undefined on cancel.
 */
export function confirmAction({ title, message, confirm = 'Confirm', body = [] }) {
  const dialog = byId('dialog');
  const form = byId('dialog-form');
  fill(byId('dialog-title'), title);
  fill(byId('dialog-message'), message);
  fill(byId('dialog-body'), ...body);
  fill(byId('dialog-confirm'), confirm);
  return new Promise((resolve) => {
    const finish = (answer) => {
      form.onsubmit = null;
      byId('dialog-cancel').onclick = null;
      dialog.onclose = null;
      if (dialog.open) dialog.close();
      resolve(answer);
    };
    form.onsubmit = (event) => {
      event.preventDefault();
      finish(new FormData(form));
    };
    byId('dialog-cancel').onclick = () => finish(undefined);
    dialog.onclose = () => finish(undefined);
    dialog.showModal();
  });
}

let noticeTimer;
/** A line under the header: errors stay until the next notice, confirmations go after a few seconds. */
export function notify(text, kind = 'error') {
  const notice = byId('notice');
  clearTimeout(noticeTimer);
  fill(notice, text);
  notice.className = `notice ${kind}`;
  notice.hidden = false;
  if (kind === 'ok') noticeTimer = setTimeout(() => { notice.hidden = true; }, 4000);
}

/** Runs an API call from a button; a failure becomes a notice instead of an unhandled rejection. */
export async function attempt(what, call) {
  try {
    return await call();
  } catch (err) {
    notify(`${what}: ${err.message}`);
    return undefined;
  }
}

/** Replaces a table's rows; `empty` is shown in one row when there are none. */
export function fillRows(table, rows, empty) {
  const body = table.tBodies[0];
  const columns = table.tHead.rows[0].cells.length;
  if (rows.length === 0) fill(body, el('tr', { class: 'empty' }, el('td', { colspan: columns }, empty)));
  else fill(body, ...rows);
}

/** A labelled select for a dialog or form: options as [value, text]. */
export function selectField(label, name, options, selected) {
  return el('label', {}, label, el('select', { name },
    ...options.map(([value, text]) => el('option', { value, selected: value === selected }, text))));
}

export function textField(label, name, attributes = {}) {
  return el('label', {}, label, el('input', { name, ...attributes }));
}

/** Ban durations as the forms offer them (seconds; "" until lifted). */
export const BAN_DURATIONS = [['600', '10 minutes'], ['3600', '1 hour'], ['86400', '1 day'], ['604800', '7 days'], ['', 'until lifted']];
