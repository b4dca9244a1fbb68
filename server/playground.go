package server

import "embed"

// playgroundFiles holds the playground page, its start script, and the
// GraphiQL, React and ReactDOM builds with their licences, vendored from npm
// by scripts/vendor-playground.sh (see playground/assets/VERSIONS).
//
//go:embed playground/index.html playground/playground.js playground/assets
var playgroundFiles embed.FS

// playgroundCSP keeps the playground to this server: scripts, styles and
// requests are same-origin only. GraphiQL sets inline styles, and its
// stylesheet carries its fonts as data: URLs.
const playgroundCSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; font-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// playground is the GraphiQL page, served at / and /playground when
// introspection is on, and its assets under /playground/assets/. An unknown
// asset is answered as net/http answers an unknown path.
var playground = newSite(playgroundFiles, "playground", "/playground/assets/", playgroundCSP, plainError)
