// Renders this server's OpenAPI document, /api/v1/openapi.json, with the
// vendored Redoc standalone bundle that the Obsqra server serves itself: the
// page fetches nothing from anywhere else (system fonts, no CDN).
(function () {
  'use strict';

  var container = document.getElementById('redoc');
  var spec = new URL(container.dataset.spec, window.location.href).toString();

  Redoc.init(spec, {
    // The theme's default fonts (Roboto, Montserrat) are not served here.
    theme: {
      typography: {
        fontFamily: 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif',
        headings: { fontFamily: 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif' },
        code: { fontFamily: 'ui-monospace, SFMono-Regular, Menlo, Consolas, monospace' }
      }
    },
    expandResponses: '200,201',
    jsonSampleExpandLevel: 3,
    hideLoading: false
  }, container, function (err) {
    if (err) {
      container.textContent = 'The API reference could not be rendered: ' + (err.message || err);
    }
  });
})();
