// Starts Swagger UI on /docs (api/pages.py): a file rather than an inline script, so the
// page's Content-Security-Policy allows scripts from this server only. The settings come
// from the page (FastAPI's defaults, the app's, and the URL of its OpenAPI document).
"use strict";
(function () {
  const element = document.getElementById("swagger-ui");
  const parameters = JSON.parse(element.dataset.parameters);
  window.ui = SwaggerUIBundle(Object.assign(parameters, {
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  }));
})();
