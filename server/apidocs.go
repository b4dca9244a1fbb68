package server

import "embed"

// apiDocsFiles holds the REST API's reference page, its start script, and
// Redoc's standalone bundle with its licences, vendored from npm by
// scripts/vendor-docs.sh (see apidocs/assets/VERSIONS). Redoc 2.x: one
// script of 1.1 MB that reads OpenAPI 3.1, fetches nothing but the spec
// (the script empties the one CDN URL of its bundle, its sidebar logo), and
// runs under the policy below.
//
//go:embed apidocs/index.html apidocs/docs.js apidocs/assets
var apiDocsFiles embed.FS

// apiDocsCSP keeps the reference page to this server: scripts, styles and
// requests are same-origin only. Redoc's styled-components inject <style>
// elements, and its search index runs in a worker it starts from a blob:
// URL; its icons are data: SVGs. It needs no fonts (the page uses the
// system's) and no frames. Each of the three is needed: without it Chromium
// reports a violation (TestDocsChromium).
const apiDocsCSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; connect-src 'self'; worker-src blob:; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// apiDocs is the REST API's reference page, served at /api/v1/docs when
// Config.REST is set, which renders the API's own /api/v1/openapi.json, and
// its assets under /api/v1/docs/assets/. It lives under the REST API, so an
// unknown asset is answered in the API's shape: 404 {"detail":"Not Found"}.
var apiDocs = newSite(apiDocsFiles, "apidocs", "/api/v1/docs/assets/", apiDocsCSP, detailError)
