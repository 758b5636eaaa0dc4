// The console's only script: it puts the fragments the server pushes over
// SSE in place. Without it every page still renders, without live updates.
(function () {
  var view = document.body.getAttribute('data-view');
  var status = document.getElementById('status');
  if (!window.EventSource || !view || view === 'login' || view === 'dlq') {
    if (status && view === 'dlq') status.textContent = 'reload to refresh';
    return;
  }
  var es = new EventSource('/console/events?view=' + encodeURIComponent(view));
  es.onopen = function () { if (status) status.textContent = 'live'; };
  es.onerror = function () { if (status) status.textContent = 'reconnecting…'; };
  es.addEventListener('fragment', function (e) {
    var f = JSON.parse(e.data);
    var el = document.getElementById(f.id);
    if (!el) return;
    if (f.prepend) {
      var hint = el.querySelector('.hint');
      if (hint) hint.remove();
      el.insertAdjacentHTML('afterbegin', f.html);
    } else {
      // keep open <details> open across updates
      var open = Array.prototype.map.call(el.querySelectorAll('details[open]'), function (d) { return d.parentElement && d.parentElement.getAttribute('data-group'); });
      el.innerHTML = f.html;
      open.forEach(function (g) { var d = g && el.querySelector('[data-group="' + g + '"] details'); if (d) d.open = true; });
    }
    document.body.setAttribute('data-updated', String(f.seq));
  });
})();
