#!/bin/sh
# vendor-docs.sh downloads the REST API reference page's renderer, Redoc's
# standalone bundle, from the npm registry and copies it, with its licences,
# into server/apidocs/assets/, where the server package embeds it with
# go:embed (server/apidocs.go) and serves it at /api/v1/docs. The result is
# committed, so building and running the server needs no network.
#
# Redoc 2.x rather than Scalar's @scalar/api-reference or Redoc 3: its
# standalone bundle is one 1.1 MB script (Redoc 3's is 2.3 MB, Scalar's 4.9 MB
# plus chunks), it reads OpenAPI 3.1, and runs under a strict
# Content-Security-Policy with only inline styles (styled-components) and a
# blob: worker (its search index) allowed. Redoc 3 loads icons from its CDN,
# Scalar its fonts and, for "try it", a proxy of its own.
#
# Redoc 2 fetches one thing besides the spec, and no option turns it off: the
# logo of its "API docs by Redocly" sidebar link, from cdn.redoc.ly. The
# script empties that image's URL in the copied bundle (the image then fails
# at once, without a request, and Redoc hides it); it fails if the URL is not
# found exactly once, and VERSIONS records the patch.
#
# The version and tarball integrity are pinned: a different tarball behind
# the same version makes the script fail instead of vendoring it.
#
# Usage: scripts/vendor-docs.sh   (from anywhere; needs npm, tar and openssl)
set -eu

# package@version and the sha512 integrity the registry publishes for it.
REDOC=redoc@2.5.4
REDOC_SRI=sha512-M6jWhG1qoBnH6TFmzJnstyCZ87HmOY/UzDm78mHiYihEdlV/YcS9ogOo1NlElnJMeLsyxHFe2yFc4sNjHTrABQ==

. "$(dirname "$0")/vendor-lib.sh"
dest="$root/server/apidocs/assets"

fetch "$REDOC" "$REDOC_SRI"

fresh_dest
copy "$REDOC" bundles/redoc.standalone.js redoc.standalone.js
copy "$REDOC" LICENSE LICENSE.redoc.txt
# The notices of the libraries bundled into redoc.standalone.js.
copy "$REDOC" bundles/redoc.standalone.js.LICENSE.txt LICENSE.redoc.standalone.txt

logo='src:"https://cdn.redoc.ly/redoc/logo-mini.svg"'
if [ "$(grep -o "$logo" "$dest/redoc.standalone.js" | wc -l | tr -d ' ')" != 1 ]; then
	fail "$REDOC's bundle does not load its logo from cdn.redoc.ly exactly once; check the patch"
fi
sed -i.orig "s|$logo|src:\"\"|" "$dest/redoc.standalone.js"
rm "$dest/redoc.standalone.js.orig"
if grep -q 'cdn\.redoc\.ly' "$dest/redoc.standalone.js"; then
	fail "the patched bundle still names cdn.redoc.ly"
fi

cat >"$dest/VERSIONS" <<EOV
# Written by scripts/vendor-docs.sh; do not edit by hand.
$REDOC $REDOC_SRI
# redoc.standalone.js: bundles/redoc.standalone.js with the src of its
# sidebar logo image, https://cdn.redoc.ly/redoc/logo-mini.svg, emptied.
EOV

wrote
